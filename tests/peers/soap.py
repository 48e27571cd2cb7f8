"""A small SOAP 1.1 endpoint that verifies the WS-Security UsernameToken it receives."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from defusedxml.ElementTree import fromstring

from peers import REQUESTS
from rpcd.codecs.soap import (
    PASSWORD_DIGEST,
    PASSWORD_TEXT,
    SOAP_ENV_NS,
    WSSE_NS,
    WSU_NS,
    verify_password_digest,
)

NS = "urn:test:calc"


def _fault(code: str, message: str) -> web.Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_ENV_NS}">'
        f"<soap:Body><soap:Fault><faultcode>{code}</faultcode><faultstring>{message}"
        "</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    )
    return web.Response(status=500, text=body, content_type="text/xml")


def _answer(operation: str, value: Any) -> web.Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_ENV_NS}">'
        f'<soap:Body><tns:{operation}Response xmlns:tns="{NS}"><tns:{operation}Result>{value}'
        f"</tns:{operation}Result></tns:{operation}Response></soap:Body></soap:Envelope>"
    )
    return web.Response(text=body, content_type="text/xml")


def _check_wsse(header: Any, username: str, password: str) -> bool:
    if header is None:
        return False
    token = header.find(f"{{{WSSE_NS}}}Security/{{{WSSE_NS}}}UsernameToken")
    if token is None or token.findtext(f"{{{WSSE_NS}}}Username") != username:
        return False
    pw = token.find(f"{{{WSSE_NS}}}Password")
    if pw is None:
        return False
    if pw.get("Type") == PASSWORD_TEXT:
        return pw.text == password
    if pw.get("Type") != PASSWORD_DIGEST:
        return False
    nonce = token.findtext(f"{{{WSSE_NS}}}Nonce") or ""
    created = token.findtext(f"{{{WSU_NS}}}Created") or ""
    return verify_password_digest(pw.text or "", nonce, created, password)


def soap_app(username: str, password: str) -> web.Application:
    app = web.Application()
    app[REQUESTS] = []

    async def handler(request: web.Request) -> web.Response:
        root = fromstring(await request.read())
        app[REQUESTS].append({"soapaction": request.headers.get("SOAPAction")})
        if not _check_wsse(root.find(f"{{{SOAP_ENV_NS}}}Header"), username, password):
            return _fault(
                "wsse:FailedAuthentication", "The security token could not be authenticated"
            )
        operation = root.find(f"{{{SOAP_ENV_NS}}}Body")[0]
        name = operation.tag.rpartition("}")[2]
        args = {child.tag.rpartition("}")[2]: child.text for child in operation}
        if name == "add":
            return _answer(name, int(args["a"]) + int(args["b"]))
        return _fault("soap:Client", f"unknown operation {name}")

    app.router.add_post("/soap", handler)
    return app
