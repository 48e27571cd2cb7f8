"""A REST peer that verifies two-legged OAuth 1.0a signatures with oauthlib."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from oauthlib.oauth1 import RequestValidator, SignatureOnlyEndpoint


class Validator(RequestValidator):  # type: ignore[misc]
    enforce_ssl = False  # the test peer speaks plain HTTP on loopback

    def __init__(self, key: str, secret: str) -> None:
        super().__init__()
        self.key, self.secret = key, secret

    @property
    def dummy_client(self) -> str:
        return "dummy-client"

    def check_client_key(self, client_key: str) -> bool:
        return True

    def check_nonce(self, nonce: str) -> bool:
        return True

    def validate_client_key(self, client_key: str, request: Any) -> bool:
        return client_key == self.key

    def get_client_secret(self, client_key: str, request: Any) -> str:
        return self.secret if client_key == self.key else "dummy-secret"

    def validate_timestamp_and_nonce(self, *args: Any, **kwargs: Any) -> bool:
        return True


def _where_signed(request: web.Request, form: dict[str, Any]) -> list[str]:
    """Where the oauth_* parameters arrived, so tests can check the placement (RFC 5849 3.5)."""
    places = []
    if request.headers.get("Authorization", "").startswith("OAuth "):
        places.append("header")
    if "oauth_signature" in request.query:
        places.append("query")
    if "oauth_signature" in form:
        places.append("body")
    return places


def oauth_app(key: str, secret: str) -> web.Application:
    """Answers ``{ok, params, signature_in}`` when the signature verifies, or a Moodle-style
    error (HTTP 200) when it does not; the signature may be in the header, query or form."""
    endpoint = SignatureOnlyEndpoint(Validator(key, secret))
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        headers = dict(request.headers)
        ok, _ = endpoint.validate_request(str(request.url), request.method, body or None, headers)
        if not ok:
            return web.json_response(
                {"exception": "oauth", "errorcode": "badsignature", "message": "signature invalid"}
            )
        params = dict(request.query)
        form: dict[str, Any] = {}
        if request.content_type == "application/x-www-form-urlencoded":
            form = dict((await request.post()).items())
            params.update(form)
        clean = {k: str(v) for k, v in params.items() if not k.startswith("oauth_")}
        answer = {"ok": True, "params": clean, "signature_in": _where_signed(request, form)}
        return web.Response(text=json.dumps(answer), content_type="application/json")

    app.router.add_route("*", "/api/{tail:.*}", handler)
    return app
