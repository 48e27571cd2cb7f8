"""SOAP 1.1 wire codec: envelopes, WS-Security UsernameToken, responses. Pure, no I/O.

Requests (``build_envelope``)
-----------------------------
::

    <?xml version="1.0" encoding="UTF-8"?>
    <soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
                      xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
      <soapenv:Header><wsse:Security ...>...</wsse:Security></soapenv:Header>  (with a token)
      <soapenv:Body>
        <ns:function xmlns:ns="NAMESPACE"><param>value</param>...</ns:function>
      </soapenv:Body>
    </soapenv:Envelope>

(shown indented; the bytes carry no whitespace between elements). Without a namespace the
operation element is unqualified (``<function>``). Parameter elements are unqualified
(``elementFormDefault="unqualified"``, as PHP's SoapServer and JAX-WS expect) unless
``qualified=True``, which puts them in the operation's namespace (.NET, spyne with schema
validation). Values: a mapping -> nested elements; a list/tuple -> the element repeated
once per item (an empty list emits nothing; a list directly inside a list is refused);
``bool`` -> ``true``/``false``; ``None`` -> ``xsi:nil="true"``; ``int`` -> decimal;
``float`` -> shortest decimal, ``INF``/``-INF``/``NaN``; ``Decimal`` -> plain decimal;
``datetime``/``date``/``time`` -> ISO 8601 (``isoformat()``); ``bytes`` -> base64; ``str``
escaped (``\\r`` as ``&#13;``). Names must be XML NCNames; other types are a ``TypeError``;
errors name the parameter path, never its value.

WS-Security (``UsernameToken``, ``security_header``)
----------------------------------------------------
OASIS WSS 1.0 UsernameToken profile. ``digest`` (default): ``Password`` of type
``...#PasswordDigest`` = base64(sha1(nonce + created + password)), with ``Nonce`` (base64)
and ``wsu:Created`` (UTC, ``YYYY-MM-DDTHH:MM:SSZ``). ``text``: the password as
``...#PasswordText``, without nonce or timestamp. A token's ``nonce``/``created`` are for
deterministic tests only: left unset, each header gets a fresh 16-byte nonce and the
current time, as replay protection on the server requires. The password never appears in
``repr``/``str`` of a token or in any exception this module raises.

Responses (``parse_response``)
------------------------------
Parsed by ``rest.parse_xml``: ``xmlguard`` decides the encoding (UTF-8, UTF-16 with a BOM,
or an allowed single-byte one) and refuses any DTD with one fault text, then defusedxml
(DTDs, entities, external references -> ``ParseError``); deeper than ``max_depth``
elements -> ``LimitExceeded``; a root other than a SOAP 1.1 Envelope, or no Body ->
``ParseError``. A ``Fault`` raises ``RemoteFault(APPLICATION_ERROR,
faultstring, errorcode=faultcode)`` (``faultcode`` as sent, e.g. ``"soap:Client"``; the
converted ``detail``, if any, is on the exception's ``detail`` attribute). Otherwise the
first element of Body (e.g. ``fooResponse``) is converted; when it has exactly one child
element (e.g. ``fooResult``) that child's value is returned; an empty Body or empty
response element gives ``None``. Conversion: ``xsi:nil="true"`` -> ``None``; an element
with only text -> that text (``""`` when empty; values stay strings, ``xsi:type`` is not
interpreted); an element with children -> ``dict`` of child local name -> value, a
repeated name -> ``list`` (so one occurrence is a scalar). Namespaces are dropped, other
attributes and text between children ignored; SOAP-encoded ``href``/``multiRef`` graphs
are not resolved.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from rpcd.codecs.rest import (
    MAX_DEPTH,
    add_child,
    check_ncname,
    local_name,
    parse_xml,
    xml_attr,
    xml_text,
)
from rpcd.errors import APPLICATION_ERROR, LimitExceeded, ParseError, RemoteFault

__all__ = [
    "SOAP_ENV_NS",
    "WSSE_NS",
    "WSU_NS",
    "XSI_NS",
    "UsernameToken",
    "build_envelope",
    "parse_response",
    "password_digest",
    "security_header",
    "verify_password_digest",
]

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV_NS = "http://www.w3.org/2003/05/soap-envelope"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_UT_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_DIGEST = _UT_PROFILE + "#PasswordDigest"
PASSWORD_TEXT = _UT_PROFILE + "#PasswordText"
BASE64_BINARY = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
_MASK = "**********"


@runtime_checkable
class SecretLike(Protocol):
    """A secret holder that prints masked (pydantic ``SecretStr`` and alike)."""

    def get_secret_value(self) -> str: ...


def _reveal(secret: str | SecretLike) -> str:
    return secret if isinstance(secret, str) else secret.get_secret_value()


# ------------------------------------------------------------------------- WS-Security


@dataclass(frozen=True, repr=False)
class UsernameToken:
    """WS-Security UsernameToken credentials; ``repr``/``str`` mask the password."""

    username: str
    password: str | SecretLike
    password_type: Literal["digest", "text"] = "digest"
    nonce: bytes | None = None
    created: dt.datetime | None = None
    must_understand: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.username, str):
            raise TypeError("UsernameToken.username must be str")
        if not isinstance(self.password, str | SecretLike):
            raise TypeError("UsernameToken.password must be str or a secret holder")
        if self.password_type not in ("digest", "text"):
            raise ValueError(
                f"UsernameToken.password_type must be 'digest' or 'text', "
                f"not {str(self.password_type)[:20]!r}"
            )
        if self.nonce is not None and not isinstance(self.nonce, bytes):
            raise TypeError("UsernameToken.nonce must be bytes")
        if self.created is not None and (
            not isinstance(self.created, dt.datetime) or self.created.utcoffset() is None
        ):
            raise ValueError("UsernameToken.created must be a timezone-aware datetime")

    def __repr__(self) -> str:
        return (
            f"UsernameToken(username={self.username!r}, password={_MASK!r}, "
            f"password_type={self.password_type!r})"
        )

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pickling would carry the password: refuse it
        raise TypeError("UsernameToken cannot be pickled")


def _utf8_or_none(text: str) -> bytes | None:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # its text and .object would carry the secret
        return None


def _xml_text_or_none(text: str) -> str | None:
    try:
        return xml_text(text)
    except ValueError:
        return None


def format_created(created: dt.datetime) -> str:
    """``wsu:Created`` text: UTC, second precision, ``YYYY-MM-DDTHH:MM:SSZ``."""
    if created.utcoffset() is None:
        raise ValueError("created must be a timezone-aware datetime")
    return created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def password_digest(nonce: bytes, created: str, password: str | SecretLike) -> str:
    """base64(sha1(nonce + created + password)), the PasswordDigest value."""
    secret = _utf8_or_none(_reveal(password))
    if secret is None:  # raised outside the except block: no __context__ holding the password
        raise ValueError("the WS-Security password is not valid Unicode")
    raw = nonce + created.encode("utf-8") + secret
    return base64.b64encode(hashlib.sha1(raw).digest()).decode("ascii")


def verify_password_digest(
    digest_b64: str, nonce_b64: str, created: str | dt.datetime, password: str | SecretLike
) -> bool:
    """True when ``digest_b64`` is the PasswordDigest of the password (constant-time).

    ``created`` is the ``wsu:Created`` text exactly as received (or a datetime, formatted as
    :func:`format_created` does). A malformed nonce is simply ``False``. Freshness of
    ``created`` and nonce replay are the server's business, not checked here.
    """
    try:
        nonce = base64.b64decode(nonce_b64.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False
    created_text = created if isinstance(created, str) else format_created(created)
    expected = password_digest(nonce, created_text, password).encode("ascii")
    try:
        given = digest_b64.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, given)


def security_header(token: UsernameToken) -> str:
    """The ``<wsse:Security>`` header block (a self-contained XML fragment)."""
    must = ' soapenv:mustUnderstand="1"' if token.must_understand else ""
    out = [
        f'<wsse:Security xmlns:wsse="{WSSE_NS}" xmlns:wsu="{WSU_NS}" '
        f'xmlns:soapenv="{SOAP_ENV_NS}"{must}>'
        "<wsse:UsernameToken>"
        f"<wsse:Username>{xml_text(token.username, 'username')}</wsse:Username>"
    ]
    if token.password_type == "digest":
        nonce = token.nonce if token.nonce is not None else os.urandom(16)
        created = format_created(token.created or dt.datetime.now(dt.UTC))
        digest = password_digest(nonce, created, token.password)
        out.append(
            f'<wsse:Password Type="{PASSWORD_DIGEST}">{digest}</wsse:Password>'
            f'<wsse:Nonce EncodingType="{BASE64_BINARY}">'
            f"{base64.b64encode(nonce).decode('ascii')}</wsse:Nonce>"
            f"<wsu:Created>{created}</wsu:Created>"
        )
    else:
        password = _xml_text_or_none(_reveal(token.password))
        if password is None:  # raised outside the except block: no __context__
            raise ValueError("the WS-Security password contains a character XML cannot carry")
        out.append(f'<wsse:Password Type="{PASSWORD_TEXT}">{password}</wsse:Password>')
    out.append("</wsse:UsernameToken></wsse:Security>")
    return "".join(out)


# ---------------------------------------------------------------------------- envelope


def build_envelope(
    function: str,
    params: Mapping[str, Any],
    *,
    namespace: str | None,
    security: UsernameToken | None = None,
    qualified: bool = False,
    max_depth: int = MAX_DEPTH,
) -> bytes:
    """A SOAP 1.1 request envelope calling ``function`` with named ``params``."""
    check_ncname(function, "SOAP operation name")
    if not isinstance(params, Mapping):
        raise TypeError(f"SOAP parameters must be a mapping, not {type(params).__name__}")
    if namespace is not None and not isinstance(namespace, str):
        raise TypeError("SOAP namespace must be str or None")
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}" xmlns:xsi="{XSI_NS}">'
    ]
    if security is not None:
        if not isinstance(security, UsernameToken):
            raise TypeError("security must be a UsernameToken")
        out.append(f"<soapenv:Header>{security_header(security)}</soapenv:Header>")
    out.append("<soapenv:Body>")
    if namespace:
        out.append(f'<ns:{function} xmlns:ns="{xml_attr(namespace, "namespace")}">')
        prefix = "ns:" if qualified else ""
    else:
        out.append(f"<{function}>")
        prefix = ""
    for key, value in params.items():
        name = check_ncname(key, f"parameter name {str(key)[:40]!r}")
        _element(out, prefix, name, value, name, 1, max_depth)
    out.append(f"</ns:{function}>" if namespace else f"</{function}>")
    out.append("</soapenv:Body></soapenv:Envelope>")
    return "".join(out).encode("utf-8")


def _element(
    out: list[str], prefix: str, name: str, value: Any, path: str, depth: int, limit: int
) -> None:
    tag = prefix + name
    if value is None:
        out.append(f'<{tag} xsi:nil="true"/>')
    elif isinstance(value, Mapping):
        if depth > limit:
            raise LimitExceeded(f"parameter {path!r} is nested deeper than {limit} levels")
        out.append(f"<{tag}>")
        for key, item in value.items():
            child = check_ncname(key, f"parameter name in {path!r}")
            _element(out, prefix, child, item, f"{path}.{child}", depth + 1, limit)
        out.append(f"</{tag}>")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if isinstance(item, list | tuple):
                raise TypeError(
                    f"parameter {path!r}: a list directly inside a list has no SOAP form"
                )
            _element(out, prefix, name, item, f"{path}[{index}]", depth, limit)
    else:
        out.append(f"<{tag}>{xml_text(_soap_text(value, path), path)}</{tag}>")


def _soap_text(value: Any, path: str) -> str:
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "INF" if value > 0 else "-INF"
        return repr(float(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"parameter {path!r}: a non-finite Decimal has no xsd:decimal form")
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"parameter {path!r}: cannot encode a {type(value).__name__}")


# ---------------------------------------------------------------------------- response

_NIL = f"{{{XSI_NS}}}nil"


def parse_response(body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode a SOAP 1.1 response; a Fault raises ``RemoteFault``."""
    root = parse_xml(body, max_depth=max_depth)
    if root.tag != f"{{{SOAP_ENV_NS}}}Envelope":
        if root.tag == f"{{{SOAP12_ENV_NS}}}Envelope":
            raise ParseError("a SOAP 1.2 envelope; only SOAP 1.1 is supported")
        raise ParseError(f"not a SOAP 1.1 envelope (root <{local_name(root.tag)[:40]}>)")
    body_el = root.find(f"{{{SOAP_ENV_NS}}}Body")
    if body_el is None:
        raise ParseError("SOAP envelope without a Body")
    first = next(iter(body_el), None)
    if first is None:
        return None
    if first.tag == f"{{{SOAP_ENV_NS}}}Fault":
        raise _fault(first)
    if _is_nil(first):
        return None
    children = list(first)
    if len(children) == 1:
        return element_to_python(children[0])
    if not children:
        text = first.text or ""
        return text if text.strip() else None
    return element_to_python(first)


def _fault(element: ET.Element) -> RemoteFault:
    parts: dict[str, ET.Element] = {}
    for child in element:
        parts.setdefault(local_name(child.tag), child)
    code_el, string_el, detail_el = (parts.get(k) for k in ("faultcode", "faultstring", "detail"))
    faultcode = (code_el.text or "").strip() if code_el is not None else ""
    faultstring = (string_el.text or "").strip() if string_el is not None else ""
    fault = RemoteFault(
        APPLICATION_ERROR, faultstring or faultcode or "SOAP Fault", errorcode=faultcode or None
    )
    fault.detail = None if detail_el is None else element_to_python(detail_el)
    return fault


def _is_nil(element: ET.Element) -> bool:
    return element.get(_NIL, "").strip() in ("true", "1")


def element_to_python(element: ET.Element) -> Any:
    """The conversion described in the module docstring."""
    if _is_nil(element):
        return None
    children = list(element)
    if not children:
        return element.text or ""
    result: dict[str, Any] = {}
    for child in children:
        add_child(result, local_name(child.tag), element_to_python(child))
    return result
