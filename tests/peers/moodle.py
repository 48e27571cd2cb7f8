"""A peer shaped like Moodle's REST server (webservice/rest/server.php).

Like Moodle it reads parameters from the query string and the form body only (never a JSON
body), takes the function from ``wsfunction`` and the token from ``wstoken``, answers JSON or
Moodle's XML per ``moodlewsrestformat``, and reports errors with HTTP 200.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from peers import REQUESTS

PATH = "/webservice/rest/server.php"

USERS = {
    "ada": {"id": 2, "username": "ada", "email": "ada@uni-a.example", "suspended": None},
    "alan": {"id": 3, "username": "alan", "email": "alan@uni-a.example", "suspended": None},
}


def _error(exception: str, errorcode: str, message: str) -> dict[str, Any]:
    return {"exception": exception, "errorcode": errorcode, "message": message}


def to_moodle_xml(value: Any) -> str:
    def walk(v: Any) -> str:
        if isinstance(v, dict):
            keys = "".join(f"<KEY name={quoteattr(k)}>{walk(x)}</KEY>" for k, x in v.items())
            return f"<SINGLE>{keys}</SINGLE>"
        if isinstance(v, list):
            return "<MULTIPLE>" + "".join(walk(x) for x in v) + "</MULTIPLE>"
        if v is None:
            return '<VALUE null="null"/>'
        return f"<VALUE>{escape(str(v))}</VALUE>"

    return f'<?xml version="1.0" encoding="UTF-8" ?>\n<RESPONSE>\n{walk(value)}</RESPONSE>\n'


def moodle_app(token: str) -> web.Application:
    """``app[REQUESTS]`` records (method, query, form, headers, raw body) of each request."""
    app = web.Application()
    app[REQUESTS] = []

    async def handler(request: web.Request) -> web.Response:
        raw = await request.read()
        form: dict[str, str] = {}
        if request.content_type == "application/x-www-form-urlencoded":
            form = {k: str(v) for k, v in (await request.post()).items()}
        query = dict(request.query)
        app[REQUESTS].append(
            {
                "method": request.method,
                "query": query,
                "form": form,
                "headers": dict(request.headers),
                "body": raw,
            }
        )
        params = {**query, **form}  # $_GET + $_POST, as optional_param() sees them
        fmt = params.pop("moodlewsrestformat", "xml")
        sent_token = params.pop("wstoken", None) or request.headers.get("X-Moodle-Token")
        function = params.pop("wsfunction", None) or request.match_info.get("function")
        if sent_token != token:
            result: Any = _error(
                "moodle_exception", "invalidtoken", "Invalid token - token not found"
            )
        elif function == "core_user_get_users_by_field":
            values = [v for k, v in sorted(params.items()) if k.startswith("values[")]
            result = [USERS[v] for v in values if v in USERS]
            if params.get("field") != "username":
                result = _error(
                    "invalid_parameter_exception",
                    "invalidparameter",
                    "Invalid parameter value detected",
                )
        elif function == "echo":
            result = params
        elif function == "core_webservice_get_site_info":
            result = {"sitename": "Test Moodle", "release": "4.3"}
        else:
            result = _error(
                "dml_missing_record_exception",
                "invalidrecord",
                "Can't find data record in database table external_functions.",
            )
        if fmt == "json":
            return web.Response(text=json.dumps(result), content_type="application/json")
        if isinstance(result, dict) and "exception" in result:
            xml = (
                f'<?xml version="1.0" encoding="UTF-8" ?>\n'
                f'<EXCEPTION class="{result["exception"]}">'
                f"<ERRORCODE>{result['errorcode']}</ERRORCODE>"
                f"<MESSAGE>{escape(result['message'])}</MESSAGE></EXCEPTION>"
            )
            return web.Response(text=xml, content_type="application/xml")
        return web.Response(text=to_moodle_xml(result), content_type="application/xml")

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(b'["' + b"x" * 200_000)
        await resp.write(b'"]')
        return resp

    async def slow(request: web.Request) -> web.Response:
        import asyncio

        await asyncio.sleep(1.5)
        return web.json_response([])

    async def http500(request: web.Request) -> web.Response:
        return web.Response(status=503, text="<html>down</html>", content_type="text/html")

    app.router.add_route("*", PATH, handler)
    app.router.add_route("*", "/fn/{function}", handler)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    app.router.add_get("/down", http500)
    return app
