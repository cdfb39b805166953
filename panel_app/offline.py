"""Every resource from the server itself: nothing a page loads may come from another host.

Most facilities run the app without internet access. Bokeh and Panel serve their JavaScript and CSS
from the server's ``/static`` routes when ``BOKEH_RESOURCES`` is ``server`` (the default of
``panel serve``); :func:`pin_server_resources` makes that setting explicit for the process, so an
inherited ``BOKEH_RESOURCES=cdn`` cannot send browsers to a CDN. Panel's own login and logout pages
load Panel's logo and favicon from ``cdn.holoviz.org``; :data:`LOGIN_TEMPLATE` and
:data:`LOGOUT_TEMPLATE` are self-contained replacements (inline CSS, no image, no font), installed
by :func:`panel_app.guard.throttled_login_handler` and :func:`offline_logout_handler`.

OAuth logins need the provider's site anyway; its error page (Panel's) is left as it is.
"""
from __future__ import annotations

import html
import logging
import string
from typing import Any

__all__ = ["LOGIN_TEMPLATE", "LOGOUT_TEMPLATE", "offline_logout_handler", "pin_server_resources"]

log = logging.getLogger(__name__)



class _Page:
    """A page with ``$name`` fields, rendered like the Jinja template Panel's handlers expect (``.render(**kw)``).

    Every value is HTML-escaped; ``errormessage`` yields an error paragraph only when it is not empty.
    """

    def __init__(self, text: str) -> None:
        self._template = string.Template(text)

    def render(self, **values: Any) -> str:
        fields = {k: html.escape(str(v), quote=True) for k, v in values.items()}
        msg = fields.get("errormessage", "")
        fields["error_row"] = f'<p class="row error">{msg}</p>' if msg else ""
        return self._template.safe_substitute(fields)


_STYLE = """
* { box-sizing: border-box; margin: 0; padding: 0; }
html, body { height: 100%; }
body { font-family: system-ui, 'Segoe UI', sans-serif; line-height: 1.6; background: #fafafa; }
.wrap { display: flex; align-items: center; justify-content: center; height: 100%; }
.box { background: #fff; border: 1px solid #ddd; padding: 2em; width: 350px; }
h1 { font-size: 1.3em; text-align: center; margin-bottom: 0.8em; }
.row { margin-bottom: 1em; }
input { background: #fafafa; border: 1px solid #ddd; padding: 10px; width: 100%; }
button, a.button { display: block; text-align: center; background: #107bba; border: 0; color: #fff;
                   padding: 10px; width: 100%; text-decoration: none; cursor: pointer; }
.error { color: #b00020; font-weight: bold; text-align: center; }
"""

#: Panel's basic-auth login form, without external resources (variables: login_endpoint, errormessage).
LOGIN_TEMPLATE = _Page("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>xsgpu | login</title><style>""" + _STYLE + """</style></head>
<body><div class="wrap"><form class="box" action=".$login_endpoint" method="post">
<h1>xsgpu: log in to see this run</h1>
$error_row
<div class="row"><input name="username" type="text" autocapitalize="off" autocorrect="off" placeholder="user"
 autocomplete="username"></div>
<div class="row"><input name="password" type="password" placeholder="password" autocomplete="current-password"></div>
<div class="row"><button type="submit">Log in</button></div>
</form></div></body></html>
""")

#: Panel's logout page, without external resources (variable: LOGIN_ENDPOINT).
LOGOUT_TEMPLATE = _Page("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>xsgpu | logged out</title><style>""" + _STYLE + """</style></head>
<body><div class="wrap"><div class="box"><h1>You are logged out</h1>
<div class="row"><a class="button" href=".$LOGIN_ENDPOINT">Log in again</a></div></div></div></body></html>
""")


def pin_server_resources() -> None:
    """Make Bokeh and Panel serve their JS and CSS from this server (``BOKEH_RESOURCES=server``) for the process.

    An inherited ``BOKEH_RESOURCES`` other than ``server`` (``cdn``, ``inline``) is overridden with a
    warning: ``cdn`` fails offline, and ``inline`` resends megabytes of JavaScript with every page.
    """
    from bokeh.settings import settings

    current = settings.resources(default="server")
    if current != "server":
        log.warning("BOKEH_RESOURCES=%s ignored: the app serves its JavaScript and CSS itself (offline facilities)",
                    current)
    settings.resources.set_value("server")


def offline_logout_handler() -> type:
    """Panel's logout handler with :data:`LOGOUT_TEMPLATE` (registered in front of Panel's ``/logout``)."""
    from panel.auth import LogoutHandler

    class OfflineLogoutHandler(LogoutHandler):
        _logout_template = LOGOUT_TEMPLATE

    return OfflineLogoutHandler
