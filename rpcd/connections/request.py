"""One outbound HTTP request as plain data: protocol clients build it, auth signs it."""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDictProxy
from yarl import URL

from rpcd.errors import TRANSPORT_ERROR, RemoteFault, RpcdError
from rpcd.secrets import MASK


@dataclass(slots=True)
class Response:
    """An HTTP answer, body read in full (within the size limit).

    Not ``frozen``: one is built on every call, and a frozen dataclass sets every field
    through ``object.__setattr__``.
    """

    status: int
    reason: str
    content_type: str | None
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass(slots=True)
class ClientCert:
    """Where the TLS client certificate and key come from (read by the transport)."""

    certificate: str
    private_key: str
    cert_path: str | None = None  # a readable file: loaded in place, never copied
    key_path: str | None = None


@dataclass(slots=True, repr=False)
class OutboundRequest:
    """``url`` is the endpoint (already percent-encoded); ``query`` pairs are appended to it.

    ``form`` (pairs, sent as ``application/x-www-form-urlencoded``) and ``body`` are exclusive.
    """

    method: str
    url: str
    query: list[tuple[str, str]] = field(default_factory=list)
    form: list[tuple[str, str]] | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def full_url(self) -> str:
        if not self.query:
            return self.url
        sep = "&" if urllib.parse.urlsplit(self.url).query else "?"
        return self.url + sep + urllib.parse.urlencode(self.query)

    def target(self) -> URL:
        """``full_url()`` as an (encoded) ``yarl.URL``, parsed once per endpoint when there is no
        query at all (a query may carry a token or an OAuth nonce: those are never cached)."""
        if not self.query and "?" not in self.url:
            return _encoded_url(self.url)
        return URL(self.full_url(), encoded=True)

    def payload(self) -> bytes | None:
        if self.form is not None:
            return urllib.parse.urlencode(self.form).encode("ascii")
        return self.body

    def __repr__(self) -> str:  # may carry a token in query/form/headers: show names only
        return f"OutboundRequest({self.method} {self.url.split('?', 1)[0]} query={MASK})"


class ParameterError(RpcdError, TypeError):
    """Parameters of the wrong shape or type for the protocol: raised before any request."""


def named_params(params: Any, protocol: str) -> Mapping[str, Any]:
    """REST and SOAP take named parameters: a mapping (None = none); anything else is refused
    before a request is built."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ParameterError(
            f"{protocol} takes named parameters (a mapping), not a {type(params).__name__}"
        )
    return params


@functools.lru_cache(maxsize=512)
def _encoded_url(url: str) -> URL:
    return URL(url, encoded=True)


def endpoint_url(endpoint: str, function: str | None = None) -> str:
    """The endpoint percent-encoded, with ``{function}`` (if any) filled in."""
    if function is not None and "{function}" in endpoint:
        endpoint = endpoint.replace("{function}", urllib.parse.quote(function, safe=""))
    return _encoded_endpoint(endpoint)


@functools.lru_cache(maxsize=1024)
def _encoded_endpoint(endpoint: str) -> str:
    """Parsed once per endpoint (yarl's parse is the costly part), not on every call.

    An endpoint with a control character is returned as written: the URL parser would drop a
    tab, CR or LF and keep a NUL for the resolver, and the request builder
    (``Transport.prepare``) refuses it, naming the connection."""
    if _CONTROL.search(endpoint):
        return endpoint
    return str(URL(endpoint))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def decoded(
    response: Response,
    errors: type[Exception] | tuple[type[Exception], ...],
    decode: Callable[..., Any],
    *args: Any,
) -> Any:
    """``decode(*args)``, judged with the HTTP status: a fault the body carries wins over the
    status; a body that does not decode (``errors``) on an error status is reported as that
    status; a decoded body on an error status is still a failure."""
    try:
        value = decode(*args)
    except RemoteFault:
        raise
    except errors:
        if response.status >= 300:
            raise http_failure(response) from None
        raise
    if response.status >= 300:
        raise http_failure(response)
    return value


def http_failure(response: Response) -> RemoteFault:
    """A non-2xx answer that carried no decodable fault of its own."""
    return RemoteFault(
        TRANSPORT_ERROR,
        f"HTTP {response.status} {response.reason}".strip(),
        errorcode=f"http-{response.status}",
    )
