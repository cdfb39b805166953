"""Serving the app safely: local address by default, explicit websocket origins, optional auth, id-only images.

:func:`serve` loads the run once for the whole process, warms datashader's numba kernels and the spatial
indexes, and starts a Panel/Bokeh server with

* the app at ``/`` (one :class:`~panel_app.state.AppState` per browser session);
* ``/xsgpu/thumb/<id>.png`` and ``/xsgpu/image/<id>.png``: a sample's thumbnail / log-scaled image,
  addressed by integer sample id only (``0 <= id < n``; the route pattern admits digits only, so no
  user-supplied path ever reaches the file system); behind the same authentication as the app;
* every JavaScript, CSS and login-page resource from this server (:mod:`panel_app.offline`), none from a CDN;
* a readable page instead of a traceback when the run store is missing, incomplete or damaged
  (:mod:`panel_app.errors`: the problem and the remedy, no local path; details in the server log).

``device="gpu"`` (``xsgpu serve RUN --device gpu``) is checked first (:func:`panel_app.device.check_app_device`:
no server starts without a CUDA device, CuPy and cuDF); the warm-up then moves the coordinates, spatial
indexes, labels and probabilities to the GPU once, and every session's rasters, queries and group metrics
run there.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import time
from typing import Any, Literal, Sequence

import numpy as np
from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.web import authenticated

from panel_app.data import RunData, check_run, load_run_data
from panel_app.errors import log_failure, make_session_exception_handler
from panel_app.guard import LoginThrottle, restrict_hosts, throttled_login_handler
from panel_app.offline import offline_logout_handler, pin_server_resources
from panel_app.views.embedding import IMAGE_ROUTE, THUMB_ROUTE

__all__ = ["serve", "make_server", "image_png", "is_loopback", "SampleImageHandler", "warm_up", "BackgroundWarmUp"]

log = logging.getLogger(__name__)


def image_png(data: RunData, sample_id: Any, *, kind: Literal["thumb", "image"]) -> bytes:
    """PNG bytes of one sample's thumbnail (uint8 as stored) or image (log-scaled, stretched to 0..255).

    Raises
    ------
    ValueError
        If ``sample_id`` is not an integer in ``0..n-1``.
    """
    import io

    from PIL import Image

    if kind == "thumb":
        arr = data.thumbnail(sample_id)
    elif kind == "image":
        img = data.image(sample_id)
        lo, hi = float(np.min(img)), float(np.max(img))
        arr = np.zeros(img.shape, np.uint8) if hi <= lo else ((img - lo) / (hi - lo) * 255).astype(np.uint8)
    else:
        raise ValueError(f"The 'kind' parameter of image_png must be 'thumb' or 'image'. Got {kind!r} instead.")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


class SampleImageHandler(AuthRequestHandler):
    """Tornado handler for ``<route>/<digits>.png`` (authenticated like the app when auth is on)."""

    def initialize(self, run_path: str, kind: str) -> None:
        self.run_path = run_path
        self.kind = kind

    @authenticated
    def get(self, sample_id: str) -> None:
        if check_run(self.run_path):
            self.send_error(404, reason="run store incomplete")
            return
        try:
            data = load_run_data(self.run_path)
        except Exception as exc:  # noqa: BLE001 - the log gets the details, the browser a status line
            log_failure(exc, what="an image request could not load the run", run_path=self.run_path)
            self.send_error(503, reason="run store cannot be read (see the server log)")
            return
        try:
            png = image_png(data, int(sample_id), kind=self.kind)
        except ValueError:
            self.send_error(404, reason=f"no sample {sample_id} (ids are 0..{data.n - 1})")
            return
        self.set_header("Content-Type", "image/png")
        self.set_header("Cache-Control", "private, max-age=3600")
        self.finish(png)


def warm_up(run_path: str | os.PathLike, *, cutoff: float = 0.5,
            panels: Literal["now", "background", "none"] = "now", io_loop: Any = None,
            device: Literal["cpu", "gpu"] = "cpu") -> dict:
    """Load the run, build the spatial indexes, compile datashader's kernels and precompute the panels'
    shared results (server start), so that the first session is as fast as the others.

    Parameters
    ----------
    run_path : path
    cutoff : float
        The app's default cut-off (the panels' results are for it).
    panels : {'now', 'background', 'none'}
        When the panels' results (overview metrics, attribute study, co-occurrence, suspicious list, the
        selection scorer) and the datashader kernels the first page does not draw are computed: before this
        returns, after it in a daemon thread (:class:`BackgroundWarmUp`), or not at all (sessions compute
        what they need).
    io_loop : tornado.ioloop.IOLoop, optional
        With ``panels='background'``: the server's loop. Each background step is then started from it, so
        never while the loop builds a page (the first page first, and no new step during later page
        builds). Without it the steps run one after another at once.
    device : {'cpu', 'gpu'}
        ``'gpu'``: also move the run to the GPU and compile the GPU kernels
        (:func:`panel_app.device.warm_up_device`), and build the selection scorer there.

    Returns
    -------
    dict
        Seconds spent: ``load_s``, ``index_s``, ``datashader_s``, ``filters_s``, with ``device='gpu'``
        ``device_s`` and, with ``panels='now'``, ``panels_s`` (empty when the run is not servable).
    """
    from panel_app.data import SPACES
    from panel_app.views.index import space_index
    from panel_app.views.raster import warmup

    if panels not in ("now", "background", "none"):
        raise ValueError(f"The 'panels' parameter of warm_up must be 'now', 'background' or 'none'. Got {panels!r} instead.")
    if check_run(run_path):
        return {}
    t0 = time.perf_counter()
    data = load_run_data(run_path)
    t1 = time.perf_counter()
    for space in SPACES:
        space_index(data, space)
    t2 = time.perf_counter()
    ds_s = warmup("all" if panels == "now" else "first_page")
    out = {"load_s": t1 - t0, "index_s": t2 - t1, "datashader_s": ds_s}
    if device == "gpu":
        from panel_app.device import warm_up_device

        t3 = time.perf_counter()
        warm_up_device(data)
        out["device_s"] = time.perf_counter() - t3
    from panel_app.filters import warm_up_filters

    t3 = time.perf_counter()
    warm_up_filters(data)   # the "More filters" card's choices and ranges
    out["filters_s"] = time.perf_counter() - t3
    if panels == "now":
        from panel_app.panels import warm_up as warm_up_panels

        t3 = time.perf_counter()
        warm_up_panels(data, cutoff=cutoff, device=device)
        out["panels_s"] = time.perf_counter() - t3
    elif panels == "background":
        # the panels' results fill in after the first paint (panels defer them), so the server answers while
        # they are computed; a session that needs one before it is done computes it itself (or waits for the
        # build of that very result: RunData.cached has a lock per key)
        from panel_app.panels import warm_up_steps

        steps = [("datashader_rest", lambda: warmup("rest")), *warm_up_steps(data, cutoff=cutoff, device=device)]
        BackgroundWarmUp(steps, run_path=str(run_path), io_loop=io_loop).start()
    log.info("warm-up of %s: %s", run_path, {k: round(v, 2) for k, v in out.items()})
    return out


class BackgroundWarmUp:
    """Run warm-up steps one at a time in daemon threads, each started from the server's IO loop.

    A page is built on the IO loop (Bokeh runs the app function there), so a step started from the loop
    never starts while a page is being built: the pages queued when the server starts are built first,
    and a session that arrives later waits at most for the step in progress, never for the rest.

    Parameters
    ----------
    steps : list of (str, callable)
        Name and work of each step, in order; a step that raises is logged and the next one runs.
    run_path : str
        For the log.
    io_loop : tornado.ioloop.IOLoop, optional
        Without it the steps run one after another in one thread, at once.
    delay : float
        Seconds after the loop starts before the first step (the queued page requests come first).

    Attributes
    ----------
    done : threading.Event
        Set when every step has run.
    seconds : dict
        Seconds per finished step.
    """

    def __init__(self, steps: Sequence[tuple[str, Any]], *, run_path: str = "", io_loop: Any = None,
                 delay: float = 0.5):
        import threading

        self.steps = list(steps)
        self.run_path = run_path
        self.io_loop = io_loop
        self.delay = float(delay)
        self.done = threading.Event()
        self.seconds: dict[str, float] = {}
        self._t0 = 0.0

    def start(self) -> "BackgroundWarmUp":
        """Schedule the first step (or, without a loop, start the thread that runs them all)."""
        import threading

        self._t0 = time.perf_counter()
        if self.io_loop is None:
            def run_all() -> None:
                while self.steps:
                    self._run(self.steps.pop(0))
                self._finish()

            threading.Thread(target=run_all, name="xsgpu-warm-up", daemon=True).start()
        else:
            self.io_loop.call_later(self.delay, self._next)
        return self

    def _next(self) -> None:
        import threading

        if not self.steps:
            self._finish()
            return
        step = self.steps.pop(0)

        def run() -> None:
            self._run(step)
            self.io_loop.add_callback(self._next)  # the next step starts once the loop is free

        threading.Thread(target=run, name=f"xsgpu-warm-up-{step[0]}", daemon=True).start()

    def _run(self, step: tuple[str, Any]) -> None:
        name, work = step
        t = time.perf_counter()
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - sessions compute what they need themselves
            log_failure(exc, what=f"background warm-up step {name!r} failed", run_path=self.run_path)
        self.seconds[name] = time.perf_counter() - t

    def _finish(self) -> None:
        log.info("background warm-up of %s done in %.2f s: %s", self.run_path, time.perf_counter() - self._t0,
                 {k: round(v, 2) for k, v in self.seconds.items()})
        self.done.set()


def _check_origins(address: str, port: int, origins: Sequence[str] | None) -> list[str]:
    if origins:
        bad = [o for o in origins if "/" in o or not o.strip()]
        if bad:
            raise ValueError(f"The 'allow_websocket_origin' parameter takes host[:port] entries (no scheme, no path). "
                             f"Got {bad!r} instead.")
        return list(origins)
    if address in ("0.0.0.0", "::", "[::]", ""):
        raise ValueError("Serving on all interfaces needs an explicit --allow-websocket-origin HOST[:PORT] "
                         "(the name users type in their browser).")
    address = address.strip("[]")
    hosts = {address, "localhost", "127.0.0.1"} if is_loopback(address) else {address}
    return sorted(f"[{h}]:{port}" if ":" in h else f"{h}:{port}" for h in hosts)  # [IPv6]:port


def is_loopback(address: str) -> bool:
    """Whether ``address`` (an interface to listen on) is reachable from this machine only."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:  # a host name: it resolves to some interface, assume a public one
        return False


def make_server(
    run_path: str | os.PathLike,
    *,
    port: int = 5006,
    address: str = "127.0.0.1",
    allow_websocket_origin: Sequence[str] | None = None,
    allow_unauthenticated: bool = False,
    auth: Literal["basic", "oauth"] | None = None,
    basic_auth: str | None = None,
    oauth_provider: str | None = None,
    oauth_key: str | None = None,
    oauth_secret: str | None = None,
    oauth_redirect_uri: str | None = None,
    cookie_secret: str | None = None,
    login_throttle: LoginThrottle | None = None,
    flower_threshold: int | None = None,
    cutoff: float | None = None,
    warm: bool = True,
    show: bool = False,
    device: Literal["cpu", "gpu"] = "cpu",
):
    """Create (not start) the Panel server for a run; see :func:`serve` for the parameters.

    Returns
    -------
    bokeh.server.server.Server
    """
    import panel as pn

    from panel_app.app import build_app, failure_page
    from panel_app.device import check_app_device

    device = check_app_device(device)   # --device gpu without CUDA, CuPy or cuDF: no server, the remedy
    run_path = str(run_path)
    if auth not in (None, "basic", "oauth"):
        raise ValueError(f"The 'auth' parameter must be 'basic', 'oauth' or None. Got {auth!r} instead.")
    if auth == "basic" and not basic_auth:
        raise ValueError("auth='basic' needs 'basic_auth': a password, or a JSON file mapping users to passwords.")
    if auth == "oauth" and not (oauth_provider and oauth_key and oauth_secret):
        raise ValueError("auth='oauth' needs 'oauth_provider' (e.g. github, google, azure, generic), 'oauth_key' "
                         "and 'oauth_secret'.")
    if auth is None and (basic_auth or oauth_provider):
        raise ValueError("Credentials were given but 'auth' is None; pass auth='basic' or auth='oauth'.")
    if flower_threshold is not None and int(flower_threshold) < 0:
        raise ValueError(f"The 'flower_threshold' parameter must be >= 0. Got {flower_threshold} instead.")
    origins = _check_origins(address, port, allow_websocket_origin)
    if auth is None and not is_loopback(address):
        if not allow_unauthenticated:
            raise ValueError(f"Serving on {address} (reachable from other machines) without a login lets anyone on "
                             "the network read the run and record label corrections. Add --auth basic or --auth "
                             "oauth, or pass --allow-unauthenticated to accept that.")
        log.warning("serving on %s WITHOUT a login (--allow-unauthenticated): anyone who can reach %s:%d can read "
                    "the run and record label corrections", address, address, port)
    problems = check_run(run_path)
    if problems:
        log.warning("serving an error page: %s cannot be served yet: %s", run_path, "; ".join(problems))
    elif warm:
        from tornado.ioloop import IOLoop

        try:  # the loop pn.serve below serves on (this thread's): background steps start from it, between pages
            warm_up(run_path, cutoff=0.5 if cutoff is None else float(cutoff), panels="background",
                    io_loop=IOLoop.current(), device=device)
        except Exception as exc:  # noqa: BLE001 - serve the error page; sessions retry the load
            log_failure(exc, what="warm-up failed; sessions will show an error page until the run is fixed",
                        run_path=run_path)
    settings = {k: v for k, v in (("flower_threshold", flower_threshold), ("cutoff", cutoff)) if v is not None}
    settings["device"] = device

    on_error = make_session_exception_handler(run_path)

    def session() -> Any:
        # per session (Panel scopes config to the current document): callback errors go to the log,
        # not to the browser as repr(exception) with the server's paths
        pn.config.exception_handler = on_error
        pn.config.notifications = True  # where on_error tells the user (scrubbed, with the incident id)
        try:
            return build_app(run_path, **settings)
        except Exception as exc:  # noqa: BLE001 - a page with the problem and the remedy, never a traceback
            return failure_page(run_path, exc, what="the page could not be built")

    patterns = [
        (rf"{THUMB_ROUTE}/(\d{{1,12}})\.png", SampleImageHandler, {"run_path": run_path, "kind": "thumb"}),
        (rf"{IMAGE_ROUTE}/(\d{{1,12}})\.png", SampleImageHandler, {"run_path": run_path, "kind": "image"}),
    ]
    pin_server_resources()  # JS and CSS from this server: offline facilities have no CDN
    kw: dict[str, Any] = {}
    if auth is not None:
        patterns.append((r"/logout", offline_logout_handler()))
    if auth == "basic":
        from panel.auth import BasicLoginHandler

        # before Panel's own /login route (Bokeh puts extra patterns first): failed logins are throttled
        patterns.append((r"/login", throttled_login_handler(BasicLoginHandler, login_throttle or LoginThrottle())))
        kw.update(basic_auth=basic_auth, cookie_secret=cookie_secret or secrets.token_urlsafe(32))
    elif auth == "oauth":
        kw.update(oauth_provider=oauth_provider, oauth_key=oauth_key, oauth_secret=oauth_secret,
                  oauth_redirect_uri=oauth_redirect_uri, cookie_secret=cookie_secret or secrets.token_urlsafe(32))
    log.info("serving %s on http://%s:%d/ (websocket origins %s, auth %s, device %s)", run_path, address, port,
             origins, auth, device)
    server = pn.serve({"/": session}, port=port, address=address, websocket_origin=origins, show=show, start=False,
                      title="xsgpu", extra_patterns=patterns, **kw)
    if "*" in origins:
        log.warning("--allow-websocket-origin '*': any Host header and any page may connect to this server")
    else:
        restrict_hosts(server._tornado, origins)
    return server


def serve(run_path: str | os.PathLike, **options: Any) -> None:
    """Serve the app for one run until interrupted.

    Parameters
    ----------
    run_path : path
        The run store.
    port : int, default 5006
    address : str, default '127.0.0.1'
        Interface to listen on. All interfaces (``0.0.0.0``, ``::``) need ``allow_websocket_origin``; any
        non-loopback address needs ``auth`` or ``allow_unauthenticated=True`` (then logged as a warning).
    allow_websocket_origin : list of str, optional
        ``host[:port]`` names browsers may connect from (default: this address and port). They are also
        the allow-list of ``Host`` headers: any other Host gets ``400`` (``'*'`` turns both checks off).
    allow_unauthenticated : bool, default False
        Accept a non-loopback ``address`` without a login.
    auth : {'basic', 'oauth'}, optional
        ``'basic'`` with ``basic_auth`` (a password or a JSON file ``{user: password}``); ``'oauth'`` with
        ``oauth_provider``, ``oauth_key``, ``oauth_secret`` (Panel's OAuth providers). Failed basic logins
        are throttled per client address (``login_throttle``, default :class:`~panel_app.guard.LoginThrottle`:
        5 failures in a row, then a lock-out of 1 s doubling per failure up to 300 s, answered ``429``).
    flower_threshold : int, default from settings (2000)
        Glyphs once a view holds at most this many images.
    cutoff : float, default from settings (0.5)
    warm : bool, default True
        Load the run, build indexes and compile datashader before the first session.
    device : {'cpu', 'gpu'}, default 'cpu'
        Where the rasters, spatial queries and group metrics run (:mod:`panel_app.device`); ``'gpu'`` needs a
        CUDA device, CuPy and cuDF (the ``[gpu]`` extra) and raises ``GPUUnavailable`` naming what is missing.
    """
    server = make_server(run_path, **options)
    server.start()
    try:
        server.io_loop.start()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        log.info("stopped")
