"""REST client: Moodle-style form/query calls, JSON and XML bodies.

``url`` payload: everything (function name, the connection's ``parameters``, the call's
params, in PHP bracket notation) goes in the query string for GET, in the form body for POST.
``json``/``xml`` payloads carry the call's params in the body, so they are always POSTed; the
function name (``function_param``) and the connection's ``parameters`` go in the query string,
where Moodle-like servers read them. Responses are decoded by content type; a Moodle error
(HTTP 200 ``{exception, errorcode, message}`` or ``<EXCEPTION>``) raises ``RemoteFault``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rpcd.codecs.rest import decode_response, json_body, php_form_pairs, xml_body
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

_ACCEPT = {
    "url": "application/json, application/xml;q=0.9",
    "json": "application/json",
    "xml": "application/xml",
}


def check_params(params: Any) -> Mapping[str, Any]:
    return named_params(params, "REST")


def build(
    conn: ResolvedConnection, function: str, params: Mapping[str, Any], auth: Auth
) -> OutboundRequest:
    """The whole request: the call's parameters are in its query or body, so nothing of it
    can be reused from call to call (``auth`` is unused: REST signs the built request)."""
    clash = sorted(set(params) & set(conn.parameters))
    if clash:
        raise ParameterError(
            f"parameter(s) {', '.join(clash)} are fixed by connection {conn.full_id}"
        )
    in_endpoint = "{function}" in conn.endpoint
    if conn.function_param is None and not in_endpoint and conn.payload != "xml":
        raise ParameterError(
            f"class {conn.class_id} names no function_param and the endpoint has no "
            "{function} placeholder: there is nowhere to send the function name"
        )
    head: dict[str, Any] = {}
    if conn.function_param is not None and not in_endpoint:
        head[conn.function_param] = function
    head.update(conn.parameters)
    request = OutboundRequest(conn.http_method, endpoint_url(conn.endpoint, function))
    request.headers["Accept"] = _ACCEPT.get(conn.payload, "*/*")
    try:
        if conn.payload == "url":
            pairs = php_form_pairs({**head, **params})
            if conn.http_method == "POST":
                request.form = pairs
            else:
                request.query = pairs
            return request
        request.method = "POST"
        request.query = php_form_pairs(head)
        if conn.payload == "json":
            request.body = json_body(dict(params))
            request.headers["Content-Type"] = "application/json"
        else:
            request.body = xml_body(function, params)
            request.headers["Content-Type"] = "application/xml; charset=utf-8"
    except (TypeError, ValueError) as exc:
        raise ParameterError(str(exc)) from None
    return request


def decode(conn: ResolvedConnection, response: Response) -> Any:
    return decoded(response, Exception, decode_response, response.content_type, response.body)
