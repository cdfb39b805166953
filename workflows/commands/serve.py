"""``xsgpu serve RUN``: the web app over one run store (127.0.0.1:5006 unless told otherwise)."""
from __future__ import annotations

import click

__all__ = ["command"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(file_okay=False, path_type=str))
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default from settings: 5006).")
@click.option("--address", default=None, help="Interface to listen on (default from settings: 127.0.0.1).")
@click.option("--allow-websocket-origin", "origins", multiple=True, metavar="HOST[:PORT]",
              help="Host names browsers may connect from (repeatable); also the only Host headers accepted. "
                   "Required with --address 0.0.0.0.")
@click.option("--allow-unauthenticated", is_flag=True,
              help="Accept a non-loopback --address without --auth (anyone on the network can use the app).")
@click.option("--auth", type=click.Choice(["basic", "oauth"]), default=None,
              help="Require a login (basic: failed logins are throttled per client).")
@click.option("--basic-auth", default=None, envvar="XSGPU_BASIC_AUTH", metavar="FILE",
              help="With --auth basic: a JSON file {user: password}, or a text file holding one password. "
                   "Env XSGPU_BASIC_AUTH: such a file or the password itself (never on the command line: ps shows it).")
@click.option("--oauth-provider", default=None, help="With --auth oauth: github, google, azure, generic, ...")
@click.option("--oauth-key", default=None, envvar="XSGPU_OAUTH_KEY", help="OAuth client id (env XSGPU_OAUTH_KEY).")
@click.option("--oauth-secret", default=None, envvar="XSGPU_OAUTH_SECRET",
              help="OAuth client secret (env XSGPU_OAUTH_SECRET).")
@click.option("--oauth-redirect-uri", default=None, help="OAuth redirect URI, if not the server's own.")
@click.option("--cookie-secret", default=None, envvar="XSGPU_COOKIE_SECRET",
              help="Secret for signed login cookies (default: random per start; env XSGPU_COOKIE_SECRET).")
@click.option("--flower-threshold", default=None, type=click.IntRange(0), show_default="2000",
              help="At most this many flowers (or dots) per view (drawing-cost cap); below it they are drawn "
                   "once they would not crowd on screen, else a raster.")
@click.option("--cutoff", default=None, type=click.FloatRange(0, 1), help="Initial probability cut-off (0.5).")
@click.option("--no-warm", is_flag=True, help="Skip loading and compiling datashader before the first session.")
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
              help="Where the dense rasters, the box/lasso/viewport queries and the group metrics run. gpu needs a "
                   "CUDA GPU with CuPy and cuDF (pip install '.[gpu]'); without them the server does not start.")
@click.option("--show", is_flag=True, help="Open a browser tab.")
@click.pass_context
def command(ctx: click.Context, run: str, port, address, origins, allow_unauthenticated, auth, basic_auth,
            oauth_provider, oauth_key, oauth_secret, oauth_redirect_uri, cookie_secret, flower_threshold, cutoff,
            no_warm, device, show) -> None:
    """Serve the linked ACT / FEA / PRD views, selection manager and detail view of RUN.

    The run is loaded once per server process and shared by every browser session. Images are
    served by integer sample id only. A missing, incomplete or damaged RUN gives a page naming the
    problem and the remedy (details in the server log). Beyond this machine (--address) the server
    needs a login (--auth) or --allow-unauthenticated, and accepts only the Host names of
    --allow-websocket-origin. Secrets come from files or XSGPU_* environment variables. With
    --device gpu the run's coordinates, indexes and labels are moved to the GPU once at start, and the
    rasters, spatial queries and group metrics of every session run there (docs/app.md).

    \b
    Examples:
      xsgpu serve runs/demo                                  # http://127.0.0.1:5006
      xsgpu serve runs/demo --port 8080 --flower-threshold 500
      xsgpu serve runs/big --device gpu                      # on a GPU node with the [gpu] extra
      xsgpu serve runs/big --address 0.0.0.0 --allow-websocket-origin beamline-pc.example.org:5006 \\
          --auth basic --basic-auth users.json          # chmod 600 users.json
      XSGPU_BASIC_AUTH=~/.xsgpu-pw xsgpu serve runs/demo --auth basic
      XSGPU_OAUTH_KEY=... XSGPU_OAUTH_SECRET=... xsgpu serve runs/demo --auth oauth --oauth-provider github
    """
    from click.core import ParameterSource

    from panel_app.guard import read_basic_auth
    from panel_app.server import make_server
    from xsgpu.config import load_settings

    for name in ("oauth_secret", "cookie_secret"):
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            env = "XSGPU_" + name.upper()
            click.echo(f"Warning: --{name.replace('_', '-')} on the command line is visible to every user in `ps`; "
                       f"set {env} instead.", err=True)
    if basic_auth is not None:
        from_cli = ctx.get_parameter_source("basic_auth") == ParameterSource.COMMANDLINE
        try:
            basic_auth = read_basic_auth(basic_auth, from_command_line=from_cli)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--basic-auth") from exc

    s = load_settings(overrides={"port": port, "address": address, "flower_threshold": flower_threshold,
                                 "cutoff": cutoff})
    server = make_server(run, port=s.port, address=s.address, allow_websocket_origin=list(origins) or None,
                         allow_unauthenticated=allow_unauthenticated, auth=auth, basic_auth=basic_auth, oauth_provider=oauth_provider, oauth_key=oauth_key,
                         oauth_secret=oauth_secret, oauth_redirect_uri=oauth_redirect_uri,
                         cookie_secret=cookie_secret, flower_threshold=s.flower_threshold, cutoff=s.cutoff,
                         warm=not no_warm, show=show, device=device)
    server.start()
    click.echo(f"xsgpu serving {run} on http://{s.address}:{server.port}/  (device {device}; Ctrl-C to stop)")
    try:
        server.io_loop.start()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        click.echo("stopped")
