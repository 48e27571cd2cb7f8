"""The console's HTTP handlers, and ``mount(app)`` that adds them to the daemon's app.

Every route runs in the daemon's request skeleton (``edge.request.guarded``: request id,
access line, no traceback page). A page handler takes the live catalog once, finds the
signed-in peer from the session cookie (else redirects to the sign-in page), and renders a
template; every answer carries a strict Content-Security-Policy (own scripts and styles only)
and ``Cache-Control: no-store``. POSTs (sign-in, logout, probe) check the CSRF token first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from rpcd.config.models import Peer
from rpcd.server.core.auth import Throttled
from rpcd.server.core.loading import Loaded
from rpcd.server.core.sessions import SessionClaims
from rpcd.server.edge.http import read_body
from rpcd.server.edge.keys import (
    AUTHENTICATOR,
    HOLDER,
    METRICS,
    PEER,
    RELOADER,
    SETTINGS,
    TRANSPORT,
)
from rpcd.server.edge.request import guarded
from rpcd.server.ui import views
from rpcd.server.ui.access import visible_institutions
from rpcd.server.ui.forms import FormError, filter_text, page_number, parse_form
from rpcd.server.ui.metrics_view import (
    SAMPLE_EVERY_S,
    RecentRates,
    call_summary,
    call_totals,
    connection_summary,
    outbound_counts,
)
from rpcd.server.ui.probes import ProbeDesk
from rpcd.server.ui.session import COOKIE, LOGIN_COOKIE, LOGIN_COOKIE_TTL, ConsoleSessions
from rpcd.server.ui.signin import sign_in

__all__ = ["CONSOLE", "Console", "mount"]

STATIC = {
    "console.css": "text/css",
    "console.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Console:
    """The console's state on one app: sessions, probes, static files, start time."""

    sessions: ConsoleSessions
    probes: ProbeDesk
    static: dict[str, bytes]
    started: float
    rates: RecentRates


CONSOLE = web.AppKey("console", Console)


@dataclass(frozen=True)
class Viewer:
    """Who is looking, on which catalog, with the CSRF token of their session."""

    peer: Peer
    claims: SessionClaims
    loaded: Loaded
    csrf: str


Page = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]


def _secure(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _redirect(location: str) -> web.StreamResponse:
    return _secure(web.Response(status=303, headers={"Location": location}))


def _render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.StreamResponse:
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    return _secure(response)


def _error(
    request: web.Request, status: int, message: str, viewer: Viewer | None = None
) -> web.StreamResponse:
    context: dict[str, Any] = {"status": status, "message": message, "title": "Error"}
    if viewer is not None:
        context.update(_common(request, viewer))
    return _render(request, "error.html", context, status)


def _viewer(request: web.Request) -> Viewer | None:
    console = request.app[CONSOLE]
    claims = console.sessions.verify(request.cookies.get(COOKIE))
    if claims is None:
        return None
    loaded = request.app[HOLDER].current
    peer = loaded.peers.peers.get(claims.peer_id)  # a peer a reload removed is signed out
    if peer is None:
        return None
    request[PEER] = peer.id
    return Viewer(peer, claims, loaded, console.sessions.csrf(claims.nonce))


def _common(request: web.Request, viewer: Viewer) -> dict[str, Any]:
    return {"viewer": viewer.peer, "csrf": viewer.csrf, "path": request.path}


def page(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A signed-in page: the viewer found (else to the sign-in page), bad input a 400 page."""

    async def answer(request: web.Request) -> web.StreamResponse:
        viewer = _viewer(request)
        if viewer is None:
            return _redirect("/ui/login")
        try:
            return await handler(request, viewer)
        except FormError as exc:
            return _error(request, 400, str(exc), viewer)

    answer.__name__ = handler.__name__
    return guarded(answer)


async def _form(request: web.Request, allowed: set[str]) -> dict[str, str]:
    settings = request.app[SETTINGS]
    if request.content_type != "application/x-www-form-urlencoded":
        raise FormError("send the form as application/x-www-form-urlencoded")
    try:
        body = await read_body(request, settings.console_max_form_bytes, settings.body_timeout)
    except web.HTTPRequestEntityTooLarge:
        raise FormError(
            f"the form is larger than {settings.console_max_form_bytes} bytes "
            "(console_max_form_bytes)"
        ) from None
    return parse_form(body, allowed)


# ---------------------------------------------------------------------------- pages


async def overview(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Catalog revision, master switch, last reloads, counts, call rates and latency."""
    console = request.app[CONSOLE]
    catalog = viewer.loaded.catalog
    reloader = request.app.get(RELOADER)
    history = list(reloader.history)[-5:] if reloader is not None else []
    institutions = list(catalog.institutions)
    context = {
        **_common(request, viewer),
        "title": "Overview",
        "loaded": viewer.loaded,
        "revision": viewer.loaded.revision,
        "catalog": catalog,
        "counts": {
            "classes": len(catalog.classes),
            "connections": len(catalog.connections),
            "enabled connections": sum(1 for c in catalog.connections.values() if c.enabled),
            "services": len(catalog.services),
            "methods": len(viewer.loaded.methods),
            "peers": len(catalog.peers),
            "institutions": len(visible_institutions(viewer.peer, catalog)),
        },
        "calls": call_summary(request.app[METRICS], time.monotonic() - console.started),
        "recent": console.rates.rates(),
        "reloads": views.reload_rows(history, viewer.peer, institutions),
        "reload_counts": reloader.status() if reloader is not None else None,
    }
    return _render(request, "overview.html", context)


async def routing(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The routing matrix, filtered and paged."""
    settings = request.app[SETTINGS]
    query = request.query
    class_filter = filter_text(query.get("class"), "class")
    inst_filter = filter_text(query.get("institution"), "institution")
    grid = views.matrix(
        viewer.loaded.catalog,
        viewer.peer,
        class_filter,
        inst_filter,
        page_number(query.get("page")),
        page_number(query.get("cols"), "cols"),
        settings.console_page_size,
        settings.console_matrix_columns,
    )
    context = {
        **_common(request, viewer),
        "title": "Routing",
        "catalog": viewer.loaded.catalog,
        "grid": grid,
        "calls": outbound_counts(request.app[METRICS]),
        "probes": request.app[CONSOLE].probes,
        "class_filter": class_filter,
        "inst_filter": inst_filter,
    }
    return _render(request, "routing.html", context)


def _connection_page(request: web.Request, viewer: Viewer) -> views.ConnectionPage | None:
    full_id = f"{request.match_info['class']}/{request.match_info['id']}"
    catalog = viewer.loaded.catalog
    conn = views.visible_connection(catalog, viewer.peer, full_id)
    if conn is None:
        return None
    klass = catalog.classes[conn.class_id]
    return views.ConnectionPage(
        conn=conn,
        class_name=klass.name,
        line=views.connection_line(viewer.loaded, conn),
        fields=views.connection_fields(conn),
        summary=connection_summary(request.app[METRICS], full_id),
        last_probe=request.app[CONSOLE].probes.last(full_id),
        has_probe=klass.probe is not None,
    )


async def connection(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """One connection: fields, source, outbound figures, last probe, "probe now"."""
    data = _connection_page(request, viewer)
    if data is None:
        return _error(request, 404, "no such connection (or not one of yours)", viewer)
    context = {**_common(request, viewer), "title": data.conn.full_id, "c": data}
    return _render(request, "connection.html", context)


async def probe(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """``POST``: run the connection's class probe now (rate-limited); JSON for the script,
    else back to the connection page."""
    fields = await _form(request, {"csrf"})
    wants_json = "application/json" in request.headers.get("Accept", "")
    if not request.app[CONSOLE].sessions.csrf_ok(viewer.claims.nonce, fields.get("csrf")):
        return _refuse(request, viewer, wants_json, 403, "the form expired: reload the page")
    data = _connection_page(request, viewer)
    if data is None:
        return _refuse(request, viewer, wants_json, 404, "no such connection")
    conn = data.conn
    if not data.has_probe:
        return _refuse(request, viewer, wants_json, 409, "the class declares no probe")
    if not conn.enabled:
        return _refuse(
            request, viewer, wants_json, 409, "the connection is disabled (rpcd check skips it too)"
        )
    if not viewer.loaded.catalog.connections_enabled:
        return _refuse(
            request, viewer, wants_json, 409, "client connections are off (master switch)"
        )
    desk = request.app[CONSOLE].probes
    why = desk.refusal(conn.full_id)
    if why is not None:
        return _refuse(request, viewer, wants_json, 429, why)
    transport = request.app[TRANSPORT]
    store = viewer.loaded.secrets
    if transport is None or store is None:
        return _refuse(request, viewer, wants_json, 503, "outbound calls are not available")
    result = await desk.run(viewer.loaded.catalog, store, transport, conn)
    if wants_json:
        return _secure(
            web.json_response(
                {
                    "connection": result.connection,
                    "ok": result.ok,
                    "error": result.error,
                    "latency_ms": result.latency_ms,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.at)),
                }
            )
        )
    return _redirect(f"/ui/connections/{conn.class_id}/{conn.id}#probe")


def _refuse(
    request: web.Request, viewer: Viewer, wants_json: bool, status: int, message: str
) -> web.StreamResponse:
    if wants_json:
        return _secure(web.json_response({"error": message}, status=status))
    return _error(request, status, message, viewer)


async def services(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Services and methods, signatures, who may call them; "can peer X call Y"."""
    settings = request.app[SETTINGS]
    name_filter = filter_text(request.query.get("q"), "method")
    asked = filter_text(request.query.get("peer"), "peer") if viewer.peer.admin else ""
    catalog = viewer.loaded.catalog
    if asked and asked not in catalog.peers:
        raise FormError(f"no peer {asked[:40]!r} in the catalog")
    rows = views.service_rows(viewer.loaded, viewer.peer, name_filter, asked or None)
    context = {
        **_common(request, viewer),
        "title": "Services",
        "rows": views.paginate(
            rows, page_number(request.query.get("page")), settings.console_page_size
        ),
        "services": catalog.services,
        "name_filter": name_filter,
        "asked": asked,
        "peers": sorted(catalog.peers) if viewer.peer.admin else [],
    }
    return _render(request, "services.html", context)


async def reloads(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Every reload since start (up to ``reload_history``), refused ones with findings."""
    reloader = request.app.get(RELOADER)
    history = list(reloader.history) if reloader is not None else []
    context = {
        **_common(request, viewer),
        "title": "Reloads",
        "reloads": views.reload_rows(
            history, viewer.peer, list(viewer.loaded.catalog.institutions)
        ),
        "enabled": reloader is not None,
        "limit": request.app[SETTINGS].reload_history,
        "loaded": viewer.loaded,
    }
    return _render(request, "reloads.html", context)


# ---------------------------------------------------------------------------- sign-in


def _login_form(request: web.Request, message: str = "", status: int = 200) -> web.StreamResponse:
    console = request.app[CONSOLE]
    nonce = request.cookies.get(LOGIN_COOKIE) or ""
    if not 16 <= len(nonce) <= 64:
        nonce = console.sessions.new_login_nonce()
    context = {
        "title": "Sign in",
        "message": message,
        "csrf": console.sessions.csrf(nonce, "login"),
        "tls": request.secure,  # a client certificate reaches rpcd only over its own TLS
    }
    response = _render(request, "login.html", context, status)
    console.sessions.set_cookie(response, request, LOGIN_COOKIE, nonce, LOGIN_COOKIE_TTL)
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    if _viewer(request) is not None:
        return _redirect("/ui")
    return _login_form(request)


async def login(request: web.Request) -> web.StreamResponse:
    """``POST``: check the credentials, start a session, go to the overview."""
    console = request.app[CONSOLE]
    try:
        fields = await _form(request, {"csrf", "method", "username", "password", "token"})
    except FormError as exc:
        return _login_form(request, str(exc), 400)
    nonce = request.cookies.get(LOGIN_COOKIE) or ""
    if not nonce or not console.sessions.csrf_ok(nonce, fields.get("csrf"), "login"):
        return _login_form(request, "the sign-in form expired: please try again", 403)
    try:
        found = await sign_in(
            request.app[AUTHENTICATOR], request.app[HOLDER].current.peers, fields, request
        )
    except Throttled as exc:
        response = _login_form(request, exc.message, 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(found, str):
        return _login_form(request, found, 401)
    request[PEER] = found.id
    response = _redirect("/ui")
    ttl = console.sessions.sessions.ttl
    console.sessions.set_cookie(response, request, COOKIE, console.sessions.issue(found.id), ttl)
    console.sessions.clear_cookie(response, LOGIN_COOKIE)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """``POST``: end the session (CSRF-checked), back to the sign-in page."""
    viewer = _viewer(request)
    response = _redirect("/ui/login")
    if viewer is None:
        return response
    fields = {}
    try:
        fields = await _form(request, {"csrf"})
    except FormError as exc:
        return _error(request, 400, str(exc), viewer)
    console = request.app[CONSOLE]
    if not console.sessions.csrf_ok(viewer.claims.nonce, fields.get("csrf")):
        return _error(request, 403, "the form expired: reload the page and log out again", viewer)
    console.sessions.revoke(viewer.claims)
    console.sessions.clear_cookie(response, COOKIE)
    return response


async def static(request: web.Request) -> web.StreamResponse:
    """The console's own CSS and script (read once from the package)."""
    name = request.match_info["name"]
    body = request.app[CONSOLE].static.get(name)
    if body is None:
        raise web.HTTPNotFound(text="no such file\n")
    response = web.Response(body=body, content_type=STATIC[name], charset="utf-8")
    response.headers["Cache-Control"] = "max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# ---------------------------------------------------------------------------- mount


def mount(app: web.Application) -> None:
    """Add ``/ui`` to the daemon's ``app`` (unless ``console`` is off in the settings)."""
    settings = app[SETTINGS]
    if not settings.console:
        return
    package = resources.files("rpcd.server.ui")
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("rpcd.server.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["fmt_ms"] = _fmt_ms
    app[CONSOLE] = Console(
        sessions=ConsoleSessions.from_settings(settings),
        probes=ProbeDesk(settings.console_probe_interval, settings.console_probes_per_minute),
        static={name: (package / "static" / name).read_bytes() for name in STATIC},
        started=time.monotonic(),
        rates=RecentRates(),
    )
    app.cleanup_ctx.append(_sampler)
    app.add_routes(
        [
            web.get("/ui", page(overview)),
            web.get("/ui/routing", page(routing)),
            web.get("/ui/connections/{class}/{id}", page(connection)),
            web.post("/ui/connections/{class}/{id}/probe", page(probe)),
            web.get("/ui/services", page(services)),
            web.get("/ui/reloads", page(reloads)),
            web.get("/ui/login", guarded(login_page)),
            web.post("/ui/login", guarded(login)),
            web.post("/ui/logout", guarded(logout)),
            web.get("/ui/static/{name}", guarded(static)),
        ]
    )


async def _sampler(app: web.Application) -> AsyncIterator[None]:
    """Sample the call counters every ``SAMPLE_EVERY_S`` seconds for the recent rates."""

    async def run() -> None:
        console, metrics = app[CONSOLE], app[METRICS]
        while True:
            console.rates.add(time.monotonic(), *call_totals(metrics))
            await asyncio.sleep(SAMPLE_EVERY_S)

    task = asyncio.get_running_loop().create_task(run(), name="rpcd-console-rates")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _fmt_ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"
