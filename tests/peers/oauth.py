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


def oauth_app(key: str, secret: str) -> web.Application:
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
        if request.content_type == "application/x-www-form-urlencoded":
            params.update((await request.post()).items())
        clean = {k: str(v) for k, v in params.items() if not k.startswith("oauth_")}
        return web.Response(
            text=json.dumps({"ok": True, "params": clean}), content_type="application/json"
        )

    app.router.add_route("*", "/api/{tail:.*}", handler)
    return app
