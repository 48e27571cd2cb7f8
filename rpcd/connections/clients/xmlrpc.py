"""XML-RPC client over the project's one codec (``rpcd.codecs.xmlrpc``).

Parameters are positional (a list); a mapping is sent as one struct. The connection's
``parameters`` and a token parameter go in the query string (Moodle's XML-RPC server reads
``wstoken`` there); a ``<fault>`` raises ``RemoteFault``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rpcd.codecs.rest import php_form_pairs
from rpcd.codecs.xmlrpc import dumps_call, loads_response
from rpcd.config import ResolvedConnection
from rpcd.connections.auth import Auth
from rpcd.connections.request import (
    OutboundRequest,
    ParameterError,
    Response,
    endpoint_url,
    http_failure,
)


def check_params(params: Any) -> list[Any]:
    if type(params) is list:  # the common case, without the ABC checks below
        return params
    if params is None:
        return []
    if isinstance(params, Mapping):
        return [params]
    if isinstance(params, str | bytes) or not isinstance(params, Sequence):
        raise ParameterError(
            f"XML-RPC takes positional parameters (a list), not a {type(params).__name__}"
        )
    return list(params)


def target(conn: ResolvedConnection, function: str) -> OutboundRequest:
    """The request without its body: the same for every call of ``function``."""
    return OutboundRequest(
        "POST",
        endpoint_url(conn.endpoint, function),
        php_form_pairs(conn.parameters) if conn.parameters else [],
        headers={"Content-Type": "text/xml"},
    )


def body(conn: ResolvedConnection, function: str, params: list[Any], auth: Auth) -> bytes:
    try:
        return dumps_call(function, params)
    except (TypeError, ValueError) as exc:
        raise ParameterError(str(exc)) from None


def build(
    conn: ResolvedConnection, function: str, params: list[Any], auth: Auth
) -> OutboundRequest:
    request = target(conn, function)
    request.body = body(conn, function, params, auth)
    return request


def decode(conn: ResolvedConnection, response: Response) -> Any:
    if response.status != 200:
        raise http_failure(response)
    return loads_response(response.body)
