"""Request guards of the server: a Host-header allow-list and login throttling per client.

* :func:`restrict_hosts` puts a rule in front of every route of the Tornado application: a request
  whose ``Host`` header names no allowed host gets ``400`` (the websocket origin check of Bokeh only
  looks at ``Origin``; the Host check also stops DNS-rebinding pages and mistyped reverse proxies).
* :class:`LoginThrottle` counts failed logins per client address; after ``max_failures`` in a row the
  client is locked out for a delay that doubles with each further failure (up to ``max_delay_s``).
  :func:`throttled_login_handler` wraps Panel's basic-auth login handler with it: while locked out
  every login POST gets ``429`` with ``Retry-After``, without checking the password.
* :func:`read_basic_auth` takes the basic-auth secret from a file or the environment, so that no
  password shows in ``ps``.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Iterable

from tornado.routing import Matcher, Rule
from tornado.web import RequestHandler

__all__ = ["LoginThrottle", "host_of", "read_basic_auth", "restrict_hosts", "throttled_login_handler"]

log = logging.getLogger(__name__)


def host_of(value: str) -> str:
    """The host name of a ``Host`` header or a ``host[:port]`` origin, lower case, without the port.

    Examples
    --------
    >>> host_of("Beamline.example.org:5006"), host_of("[::1]:80"), host_of("10.0.0.5")
    ('beamline.example.org', '::1', '10.0.0.5')
    """
    value = value.strip().lower()
    if value.startswith("["):  # [IPv6]:port
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


class _HostNotAllowed(Matcher):
    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed

    def match(self, request: Any) -> dict | None:
        return None if host_of(request.host or "") in self.allowed else {}


class _RejectHost(RequestHandler):
    def prepare(self) -> None:
        log.warning("refused a request for Host %r from %s (allowed: the websocket origins' hosts)",
                    self.request.host, self.request.remote_ip)
        self.set_status(400, reason="Host not allowed")
        self.finish("Host not allowed: use the address this server was started for.")


def restrict_hosts(application: Any, hosts: Iterable[str]) -> frozenset[str]:
    """Answer ``400`` to every request of ``application`` whose ``Host`` header is not in ``hosts``.

    Parameters
    ----------
    application : tornado.web.Application
        The server's application (``bokeh.server.server.Server._tornado``).
    hosts : iterable of str
        Allowed ``host`` or ``host:port`` entries (the port is ignored).

    Returns
    -------
    frozenset of str
        The allowed host names.
    """
    allowed = frozenset(host_of(h) for h in hosts)
    router = application.default_router
    router.rules.insert(0, router.process_rule(Rule(_HostNotAllowed(allowed), _RejectHost)))
    return allowed


class LoginThrottle:
    """Failed logins per client: after ``max_failures`` in a row, a lock-out that doubles per failure.

    Parameters
    ----------
    max_failures : int, default 5
        Failures in a row that are answered normally; the next attempts wait.
    base_delay_s, max_delay_s : float, default 1 and 300
        The lock-out after failure ``max_failures + k`` lasts ``min(base_delay_s * 2**k, max_delay_s)``.
    forget_s : float, default 900
        A client whose last failure is older than this starts again from zero.
    max_clients : int, default 10000
        Clients remembered at most (the oldest are forgotten first), so a flood of addresses cannot
        exhaust memory.
    clock : callable, default time.monotonic
        Seconds (tests pass a fake clock).
    """

    def __init__(self, *, max_failures: int = 5, base_delay_s: float = 1.0, max_delay_s: float = 300.0,
                 forget_s: float = 900.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1:
            raise ValueError(f"The 'max_failures' parameter of LoginThrottle must be >= 1. Got {max_failures} instead.")
        self.max_failures = max_failures
        self.base_delay_s = float(base_delay_s)
        self.max_delay_s = float(max_delay_s)
        self.forget_s = float(forget_s)
        self.max_clients = max_clients
        self.clock = clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, tuple[int, float, float]] = OrderedDict()  # failures, last, locked until

    def retry_after(self, client: str) -> float:
        """Seconds ``client`` must still wait before its next login attempt (0: it may try now)."""
        with self._lock:
            got = self._clients.get(client)
            if got is None:
                return 0.0
            return max(0.0, got[2] - self.clock())

    def failure(self, client: str) -> float:
        """Record a failed login of ``client``; returns the lock-out it starts (0 while under the limit)."""
        now = self.clock()
        with self._lock:
            failures, last, _ = self._clients.pop(client, (0, now, 0.0))
            if now - last > self.forget_s:
                failures = 0
            failures += 1
            over = failures - self.max_failures
            delay = 0.0 if over < 0 else min(self.base_delay_s * 2.0 ** over, self.max_delay_s)
            self._clients[client] = (failures, now, now + delay)
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        if delay:
            log.warning("login: %d failures in a row from %s; locked out for %.0f s", failures, client, delay)
        return delay

    def success(self, client: str) -> None:
        """Forget the failures of ``client`` (it logged in)."""
        with self._lock:
            self._clients.pop(client, None)


def throttled_login_handler(base: type, throttle: LoginThrottle) -> type:
    """A subclass of Panel's login handler ``base`` whose POST goes through ``throttle``.

    The outcome of each attempt is taken from ``base._validate`` (Panel's password check). The form is
    :data:`panel_app.offline.LOGIN_TEMPLATE` (no external resources).
    """
    from panel_app.offline import LOGIN_TEMPLATE

    class ThrottledLoginHandler(base):  # type: ignore[misc, valid-type]
        _throttle = throttle
        _login_template = LOGIN_TEMPLATE  # Panel's own loads its logo from a CDN (offline facilities)

        def _client(self) -> str:
            return self.request.remote_ip or "unknown"

        def post(self, *args: Any, **kwargs: Any) -> Any:
            client = self._client()
            wait = self._throttle.retry_after(client)
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                self.set_status(429, reason="Too many failed logins")
                self.set_header("Retry-After", str(seconds))
                self.finish(f"<p>Too many failed logins from your address. Try again in {seconds} s.</p>"
                            f"<p><a href='{self._login_endpoint}'>Back to the login page</a></p>")
                return None
            self._xsgpu_ok: bool | None = None
            result = super().post(*args, **kwargs)
            if self._xsgpu_ok:
                self._throttle.success(client)
            elif self._xsgpu_ok is not None:
                self._throttle.failure(client)
            return result

        def _validate(self, username: str, password: str) -> bool:
            ok = bool(super()._validate(username, password))
            self._xsgpu_ok = ok
            return ok

    ThrottledLoginHandler.__name__ = ThrottledLoginHandler.__qualname__ = f"Throttled{base.__name__}"
    return ThrottledLoginHandler


def read_basic_auth(value: str, *, from_command_line: bool) -> str:
    """The ``basic_auth`` for Panel from ``--basic-auth`` or ``XSGPU_BASIC_AUTH``, never a password in ``ps``.

    Parameters
    ----------
    value : str
        A file: a JSON object ``{user: password}`` (passed on as its path; Panel reads it at each
        login) or a text file whose first line is the one password. From the environment only, the
        value may also be the password itself.
    from_command_line : bool
        Whether ``value`` came from the command line, where every user of the machine sees it in ``ps``:
        then it must name a file.

    Returns
    -------
    str
        A JSON file's path, or the password.

    Raises
    ------
    ValueError
        For a password on the command line, an empty password file or a JSON file that is not an object.
    """
    import json
    import os
    import stat

    path = os.path.expanduser(value)
    if not os.path.isfile(path):
        if from_command_line:
            raise ValueError("--basic-auth takes a FILE (a JSON object {user: password}, or a text file holding the "
                             "password): a password on the command line is visible to every user in `ps`. Put it in "
                             "a file (chmod 600) or in the environment variable XSGPU_BASIC_AUTH.")
        if not value:
            raise ValueError("XSGPU_BASIC_AUTH is empty: set it to the password or to a password file.")
        return value
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("the basic-auth file %s is readable by other users (mode %o): chmod 600 it", path,
                    stat.S_IMODE(mode))
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("{"):
        try:
            users = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"The basic-auth file {path} starts like JSON but does not parse ({exc}).") from exc
        if not isinstance(users, dict) or not users or not all(isinstance(v, str) for v in users.values()):
            raise ValueError(f"The basic-auth file {path} must hold a JSON object {{user: password}} with at least "
                             "one user.")
        return path
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise ValueError(f"The basic-auth file {path} is empty: write the password on its first line.")
    return password
