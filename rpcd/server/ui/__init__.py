"""The read-only operator console (``/ui``): routing, health and reload history in a browser.

Server-rendered pages (Jinja2 through aiohttp-jinja2; templates and assets ship in this
package, no build step, no CDN). Reading needs no JavaScript; the script only refreshes a
page and runs "probe now" in place. Nothing here changes configuration: git stays the only
way to do that. ``mount(app)`` adds the routes to the daemon's app (``edge.app.create_app``).

- ``forms.py`` — bounded parsing of the console's form bodies and query values.
- ``session.py`` — the signed session cookie and the CSRF tokens bound to it.
- ``signin.py`` — sign-in with the peers' own credentials, the RPC endpoints' throttle.
- ``access.py`` — what a signed-in peer may see (admin: everything; else its institutions).
- ``grants.py`` — who may call a method, in one function.
- ``metrics_view.py`` — request, fault and latency figures read from the daemon's metrics.
- ``probes.py`` — "probe now": rate limits and the last result per connection.
- ``views.py`` — the data of each page (pure functions of the catalog, metrics, reloads).
- ``routes.py`` — the HTTP handlers and ``mount``.
"""

from __future__ import annotations

from rpcd.server.ui.routes import mount

__all__ = ["mount"]
