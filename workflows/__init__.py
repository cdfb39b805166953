"""Dask jobs and the ``xsgpu`` command-line interface."""
