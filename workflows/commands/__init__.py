"""One module per ``xsgpu`` subcommand; each defines ``command`` (a click command).

Subcommand modules import heavy libraries (torch, dask, panel) inside their functions so that
``xsgpu --help`` stays fast.
"""
