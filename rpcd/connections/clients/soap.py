"""SOAP 1.1 client: envelope from function and named params, WS-Security for ``wsse``.

``SOAPAction`` is ``soap_action`` with ``{function}`` filled in (quoted, as SOAP 1.1 wants),
or empty. A SOAP Fault (usually HTTP 500) raises ``RemoteFault``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rpcd.codecs.rest import php_form_pairs
from rpcd.codecs.soap import build_envelope, parse_response
from rpcd.config import ResolvedConnection
from rpcd.connections.auth import Auth
from rpcd.connections.request import (
    OutboundRequest,
    ParameterError,
    Response,
    decoded,
    endpoint_url,
    named_params,
)
from rpcd.errors import CodecError


def check_params(params: Any) -> Mapping[str, Any]:
    return named_params(params, "SOAP")


def target(conn: ResolvedConnection, function: str) -> OutboundRequest:
    """The request without its body: the same for every call of ``function``."""
    request = OutboundRequest("POST", endpoint_url(conn.endpoint, function))
    request.query = php_form_pairs(conn.parameters) if conn.parameters else []
    action = (conn.soap_action or "").replace("{function}", function)
    request.headers["Content-Type"] = "text/xml; charset=utf-8"
    request.headers["SOAPAction"] = f'"{action}"'
    return request


def body(
    conn: ResolvedConnection,
    function: str,
    params: Mapping[str, Any],
    auth: Auth,
) -> bytes:
    """The envelope (with a fresh UsernameToken for ``wsse``: built on every call)."""
    # Document/literal services with elementFormDefault="qualified" (spyne, .NET, Java) want
    # the parameters in the namespace too; PHP's SoapServer and Moodle want them bare.
    qualified = bool(getattr(conn, "soap_qualified", False))
    try:
        return build_envelope(
            function,
            params,
            namespace=conn.soap_namespace,
            security=auth.wsse_token(),
            qualified=qualified,
        )
    except (TypeError, ValueError) as exc:
        raise ParameterError(str(exc)) from None


def build(
    conn: ResolvedConnection,
    function: str,
    params: Mapping[str, Any],
    auth: Auth,
) -> OutboundRequest:
    request = target(conn, function)
    request.body = body(conn, function, params, auth)
    return request


def decode(conn: ResolvedConnection, response: Response) -> Any:
    return decoded(response, CodecError, parse_response, response.body)
