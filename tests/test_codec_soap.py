"""SOAP 1.1 wire codec: envelopes, WS-Security UsernameToken, responses, spyne interop."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import pickle
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

from rpcd.codecs.soap import (
    SOAP_ENV_NS,
    WSSE_NS,
    WSU_NS,
    XSI_NS,
    UsernameToken,
    build_envelope,
    parse_response,
    security_header,
    verify_password_digest,
)
from rpcd.errors import APPLICATION_ERROR, LimitExceeded, ParseError, RemoteFault

PASSWORD = "pa&ss<wörd>-7f3a9"
NONCE = bytes(range(16))
CREATED = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
DIGEST_TYPE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)
TEXT_TYPE = DIGEST_TYPE.replace("#PasswordDigest", "#PasswordText")
B64_TYPE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
NS = {"soapenv": SOAP_ENV_NS, "wsse": WSSE_NS, "wsu": WSU_NS, "xsi": XSI_NS, "t": "urn:test"}


def _parse(body: bytes) -> Any:
    return etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))


# ---------------------------------------------------------------------------- envelope


def test_envelope_structure() -> None:
    body = build_envelope(
        "getUser",
        {
            "id": 5,
            "name": "a<b>&c\r\n",
            "active": True,
            "deleted": False,
            "note": None,
            "when": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            "day": dt.date(2024, 1, 2),
            "blob": b"\x00\xffbin",
            "price": Decimal("1E+2"),
            "ratio": 0.25,
            "address": {"city": "Wellington", "zip": None},
            "tags": ["x", "y"],
            "none": [],
        },
        namespace="urn:test",
    )
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = _parse(body)
    assert root.tag == f"{{{SOAP_ENV_NS}}}Envelope"
    assert root.find("soapenv:Header", NS) is None
    body_el = root.find("soapenv:Body", NS)
    assert body_el is not None and len(body_el) == 1
    op = body_el[0]
    assert op.tag == "{urn:test}getUser"
    names = [child.tag for child in op]
    assert names == [
        "id",
        "name",
        "active",
        "deleted",
        "note",
        "when",
        "day",
        "blob",
        "price",
        "ratio",
        "address",
        "tags",
        "tags",
    ]
    assert op.findtext("id") == "5"
    assert op.findtext("name") == "a<b>&c\r\n"
    assert op.findtext("active") == "true"
    assert op.findtext("deleted") == "false"
    note = op.find("note")
    assert note.get(f"{{{XSI_NS}}}nil") == "true" and not note.text and len(note) == 0
    assert op.findtext("when") == "2024-01-02T03:04:05+00:00"
    assert op.findtext("day") == "2024-01-02"
    assert base64.b64decode(op.findtext("blob")) == b"\x00\xffbin"
    assert op.findtext("price") == "100"
    assert op.findtext("ratio") == "0.25"
    assert op.findtext("address/city") == "Wellington"
    assert op.find("address/zip").get(f"{{{XSI_NS}}}nil") == "true"
    assert [el.text for el in op.findall("tags")] == ["x", "y"]


def test_envelope_qualified_and_unqualified() -> None:
    qualified = _parse(build_envelope("f", {"a": {"b": 1}}, namespace="urn:q", qualified=True))
    op = qualified.find("soapenv:Body", NS)[0]
    assert op.tag == "{urn:q}f"
    assert op[0].tag == "{urn:q}a" and op[0][0].tag == "{urn:q}b"
    bare = _parse(build_envelope("f", {"a": 1}, namespace=None))
    op = bare.find("soapenv:Body", NS)[0]
    assert op.tag == "f" and op[0].tag == "a" and op[0].text == "1"


def test_envelope_namespace_is_escaped() -> None:
    root = _parse(build_envelope("f", {}, namespace="http://example.com/ws?a=1&b=2"))
    assert root.find("soapenv:Body", NS)[0].tag == "{http://example.com/ws?a=1&b=2}f"
    quoted = ET.fromstring(build_envelope("f", {}, namespace='urn:a"b'))
    assert quoted[0][0].tag == '{urn:a"b}f'


@pytest.mark.parametrize(
    ("function", "params", "error"),
    [
        ("bad name", {}, ValueError),
        ("f", {"1x": 1}, ValueError),
        ("f", {"a:b": 1}, ValueError),
        ("f", {"a": object()}, TypeError),
        ("f", {"a": [[1]]}, TypeError),
        ("f", {"a": "x\x01y"}, ValueError),
        ("f", {"a": Decimal("NaN")}, ValueError),
        ("f", [("a", 1)], TypeError),
    ],
)
def test_envelope_refuses(function: str, params: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        build_envelope(function, params, namespace="urn:x")


def test_envelope_depth_bound() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["me"] = cyclic
    with pytest.raises(LimitExceeded):
        build_envelope("f", {"c": cyclic}, namespace=None)


def test_envelope_special_floats() -> None:
    op = _parse(
        build_envelope(
            "f", {"a": float("inf"), "b": float("-inf"), "c": float("nan")}, namespace=None
        )
    ).find("soapenv:Body", NS)[0]
    assert [el.text for el in op] == ["INF", "-INF", "NaN"]


# -------------------------------------------------------------------------- WS-Security


def _expected_digest(nonce: bytes, created: str, password: str) -> str:
    raw = nonce + created.encode() + password.encode()
    return base64.b64encode(hashlib.sha1(raw).digest()).decode()


def test_password_digest_header() -> None:
    token = UsernameToken("bob", PASSWORD, nonce=NONCE, created=CREATED)
    root = _parse(build_envelope("f", {}, namespace="urn:test", security=token))
    security = root.find("soapenv:Header/wsse:Security", NS)
    assert security is not None
    assert security.get(f"{{{SOAP_ENV_NS}}}mustUnderstand") == "1"
    ut = security.find("wsse:UsernameToken", NS)
    assert ut.findtext("wsse:Username", namespaces=NS) == "bob"
    password = ut.find("wsse:Password", NS)
    assert password.get("Type") == DIGEST_TYPE
    nonce = ut.find("wsse:Nonce", NS)
    assert nonce.get("EncodingType") == B64_TYPE
    assert base64.b64decode(nonce.text) == NONCE
    created = ut.findtext("wsu:Created", namespaces=NS)
    assert created == "2024-05-06T07:08:09Z"
    assert password.text == _expected_digest(NONCE, created, PASSWORD)
    assert verify_password_digest(password.text, nonce.text, created, PASSWORD)
    assert verify_password_digest(password.text, nonce.text, CREATED, PASSWORD)
    assert not verify_password_digest(password.text, nonce.text, created, PASSWORD + "x")
    assert not verify_password_digest(password.text, nonce.text, "2024-05-06T07:08:10Z", PASSWORD)
    assert not verify_password_digest(password.text, "!!not base64!!", created, PASSWORD)
    assert PASSWORD.encode() not in etree.tostring(root)


def test_created_is_converted_to_utc() -> None:
    plus13 = dt.timezone(dt.timedelta(hours=13))
    token = UsernameToken("bob", PASSWORD, nonce=NONCE, created=CREATED.astimezone(plus13))
    assert "<wsu:Created>2024-05-06T07:08:09Z</wsu:Created>" in security_header(token)


def test_fresh_nonce_and_time_per_header() -> None:
    token = UsernameToken("bob", PASSWORD)
    headers = [_parse(security_header(token).encode()) for _ in range(2)]
    nonces = [h.findtext("wsse:UsernameToken/wsse:Nonce", namespaces=NS) for h in headers]
    assert nonces[0] != nonces[1]
    assert len(base64.b64decode(nonces[0])) == 16
    for header in headers:
        ut = header.find("wsse:UsernameToken", NS)
        created = ut.findtext("wsu:Created", namespaces=NS)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)
        stamp = dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 60
        assert verify_password_digest(
            ut.findtext("wsse:Password", namespaces=NS),
            ut.findtext("wsse:Nonce", namespaces=NS),
            created,
            PASSWORD,
        )


def test_password_text_header() -> None:
    token = UsernameToken("bob", PASSWORD, password_type="text", must_understand=False)
    root = _parse(build_envelope("f", {}, namespace=None, security=token))
    ut = root.find("soapenv:Header/wsse:Security/wsse:UsernameToken", NS)
    password = ut.find("wsse:Password", NS)
    assert password.get("Type") == TEXT_TYPE
    assert password.text == PASSWORD
    assert ut.find("wsse:Nonce", NS) is None
    assert (
        root.find("soapenv:Header/wsse:Security", NS).get(f"{{{SOAP_ENV_NS}}}mustUnderstand")
        is None
    )


class _Secret:
    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "_Secret('**********')"


def test_secret_holder_password() -> None:
    token = UsernameToken("bob", _Secret(PASSWORD), nonce=NONCE, created=CREATED)
    header = _parse(security_header(token).encode())
    digest = header.findtext("wsse:UsernameToken/wsse:Password", namespaces=NS)
    assert digest == _expected_digest(NONCE, "2024-05-06T07:08:09Z", PASSWORD)
    assert verify_password_digest(
        digest, base64.b64encode(NONCE).decode(), CREATED, _Secret(PASSWORD)
    )


def test_password_never_in_repr_or_str() -> None:
    for token in (
        UsernameToken("bob", PASSWORD),
        UsernameToken("bob", PASSWORD, password_type="text", nonce=NONCE, created=CREATED),
    ):
        for text in (repr(token), str(token), f"{token}", repr([token])):
            assert PASSWORD not in text
            assert "**********" in text
    with pytest.raises(TypeError):
        pickle.dumps(UsernameToken("bob", PASSWORD))


def _all_text(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), *map(str, exc.args)]
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None:
            parts.append(_all_text(linked))
    return "\n".join(parts)


@pytest.mark.parametrize(
    "make",
    [
        lambda: UsernameToken("bob", "sekrit-\x00-" + PASSWORD, password_type="text"),
        lambda: UsernameToken("bob", "sekrit-\ud800-" + PASSWORD),
        lambda: UsernameToken("bob", "sekrit-" + PASSWORD, password_type="plain"),  # type: ignore[arg-type]
        lambda: UsernameToken("bob", "sekrit-" + PASSWORD, created=dt.datetime(2024, 1, 1)),
        lambda: UsernameToken("bob", "sekrit-" + PASSWORD, nonce="str"),  # type: ignore[arg-type]
    ],
)
def test_password_never_in_exceptions(make: Callable[[], UsernameToken]) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        build_envelope("f", {"p": 1}, namespace=None, security=make())
    assert "sekrit" not in _all_text(info.value)
    assert info.value.__suppress_context__ or info.value.__context__ is None


def test_password_not_in_errors_while_building_params() -> None:
    token = UsernameToken("bob", "sekrit-" + PASSWORD)
    with pytest.raises(TypeError) as info:
        build_envelope("f", {"p": object()}, namespace=None, security=token)
    assert "sekrit" not in _all_text(info.value)


# ----------------------------------------------------------------------------- responses

ENV = f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="{XSI_NS}">'


def _env(inner: str) -> bytes:
    return f'<?xml version="1.0"?>{ENV}<s:Header/><s:Body>{inner}</s:Body></s:Envelope>'.encode()


def test_parse_single_result() -> None:
    body = _env('<t:addResponse xmlns:t="urn:t"><t:addResult>3</t:addResult></t:addResponse>')
    assert parse_response(body) == "3"


def test_parse_structures() -> None:
    body = _env(
        '<t:getResponse xmlns:t="urn:t"><t:getResult>'
        "<t:user><t:id>1</t:id><t:name>a &amp; b</t:name>"
        '<t:email xsi:nil="true"/><t:bio/></t:user>'
        "<t:tag>x</t:tag><t:tag>y</t:tag>"
        "</t:getResult></t:getResponse>"
    )
    assert parse_response(body) == {
        "user": {"id": "1", "name": "a & b", "email": None, "bio": ""},
        "tag": ["x", "y"],
    }


def test_parse_multiple_parts_and_empty() -> None:
    two = _env("<r><a>1</a><b>2</b></r>")
    assert parse_response(two) == {"a": "1", "b": "2"}
    assert parse_response(_env("<r/>")) is None
    assert parse_response(_env("")) is None
    assert parse_response(_env('<r xsi:nil="true"/>')) is None
    assert parse_response(_env("<r>bare</r>")) == "bare"


def test_parse_fault() -> None:
    body = _env(
        "<s:Fault><faultcode>s:Client</faultcode>"
        "<faultstring>Invalid user id</faultstring>"
        "<detail><code>42</code></detail></s:Fault>"
    )
    with pytest.raises(RemoteFault) as info:
        parse_response(body)
    assert info.value.code == APPLICATION_ERROR
    assert info.value.message == "Invalid user id"
    assert info.value.errorcode == "s:Client"
    assert info.value.detail == {"code": "42"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body",
    [
        b"<notsoap/>",
        b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>',
        f"{ENV}</s:Envelope>".encode(),
        b"<s:Envelope",
        b"\xff\xfe garbage",
        b"""<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>"""
        + _env("<r>&b;</r>").split(b"?>", 1)[1],
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + _env("<r>&x;</r>").split(b"?>", 1)[1],
    ],
)
def test_parse_rejects(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_response(body)
    assert len(str(info.value)) < 160


def test_parse_depth_limit() -> None:
    deep = _env("<a>" * 100 + "</a>" * 100)
    with pytest.raises(LimitExceeded):
        parse_response(deep)
    assert parse_response(deep, max_depth=200) is not None


# ---------------------------------------------------------------------------- spyne


@pytest.fixture(scope="module")
def spyne_call() -> Iterator[Callable[[bytes, bool], tuple[str, bytes]]]:
    """Call a spyne Soap11 application in-process through its WSGI entry point."""
    try:
        with warnings.catch_warnings():  # spyne 2.14: deprecated cgi, six importer
            warnings.simplefilter("ignore")
            from spyne import Application, ComplexModel, Fault, Integer, ServiceBase, Unicode, rpc
            from spyne.model.complex import Array
            from spyne.protocol.soap import Soap11
            from spyne.server.wsgi import WsgiApplication
    except Exception as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"spyne cannot run under this Python: {type(exc).__name__}: {exc}")

    class Point(ComplexModel):  # type: ignore[misc]
        __namespace__ = "urn:test"
        x = Integer
        label = Unicode

    def _security_ok(ctx: Any) -> bool:
        for header in ctx.in_header_doc or ():
            ut = header.find("wsse:UsernameToken", NS)
            if ut is None:
                continue
            return verify_password_digest(
                ut.findtext("wsse:Password", namespaces=NS),
                ut.findtext("wsse:Nonce", namespaces=NS),
                ut.findtext("wsu:Created", namespaces=NS),
                PASSWORD,
            )
        return False

    class Service(ServiceBase):  # type: ignore[misc]
        @rpc(Unicode, Integer, _returns=Unicode)  # type: ignore[untyped-decorator]
        def hello(ctx: Any, name: str, times: int) -> str:
            return f"{name}|{times}"

        @rpc(Unicode, _returns=Array(Unicode))  # type: ignore[untyped-decorator]
        def echo_list(ctx: Any, name: str) -> list[str]:
            return [name, name.upper()]

        @rpc(Integer, Unicode, _returns=Point)  # type: ignore[untyped-decorator]
        def point(ctx: Any, x: int, label: str | None) -> Any:
            return Point(x=x, label=label)

        @rpc(_returns=Unicode)  # type: ignore[untyped-decorator]
        def secured(ctx: Any) -> str:
            if not _security_ok(ctx):
                raise Fault("Client.Authentication", "bad credentials")
            return "welcome"

    apps = {}
    for validated in (False, True):
        app = Application(
            [Service],
            "urn:test",
            in_protocol=Soap11(validator="lxml" if validated else None),
            out_protocol=Soap11(),
        )
        apps[validated] = WsgiApplication(app)

    def call(request: bytes, validated: bool = True) -> tuple[str, bytes]:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "CONTENT_TYPE": "text/xml; charset=utf-8",
            "CONTENT_LENGTH": str(len(request)),
            "wsgi.input": io.BytesIO(request),
        }
        statuses: list[str] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
            statuses.append(status)

        body = b"".join(apps[validated](environ, start_response))
        return statuses[0], body

    yield call


def test_spyne_round_trip_schema_validated(spyne_call: Callable[..., tuple[str, bytes]]) -> None:
    request = build_envelope(
        "hello", {"name": "a<&>\u00e9", "times": 3}, namespace="urn:test", qualified=True
    )
    status, body = spyne_call(request, True)
    assert status.startswith("200")
    assert parse_response(body) == "a<&>\u00e9|3"


def test_spyne_unqualified_params_soft_validation(
    spyne_call: Callable[..., tuple[str, bytes]],
) -> None:
    status, body = spyne_call(
        build_envelope("hello", {"name": "x", "times": 1}, namespace="urn:test"), False
    )
    assert status.startswith("200")
    assert parse_response(body) == "x|1"


def test_spyne_array_and_complex(spyne_call: Callable[..., tuple[str, bytes]]) -> None:
    _, body = spyne_call(
        build_envelope("echo_list", {"name": "ab"}, namespace="urn:test", qualified=True)
    )
    assert parse_response(body) == {"string": ["ab", "AB"]}
    _, body = spyne_call(
        build_envelope("point", {"x": 7, "label": None}, namespace="urn:test", qualified=True)
    )
    assert parse_response(body) == {"x": "7"}


def test_spyne_schema_fault(spyne_call: Callable[..., tuple[str, bytes]]) -> None:
    # Unqualified parameters fail spyne's schema validation: a real SOAP Fault.
    status, body = spyne_call(build_envelope("hello", {"name": "x"}, namespace="urn:test"), True)
    assert status.startswith("500")
    with pytest.raises(RemoteFault) as info:
        parse_response(body)
    assert info.value.errorcode is not None
    assert info.value.errorcode.endswith("Client.SchemaValidationError")
    assert info.value.code == APPLICATION_ERROR


def test_spyne_wsse_digest_verified_server_side(
    spyne_call: Callable[..., tuple[str, bytes]],
) -> None:
    good = UsernameToken("bob", PASSWORD)
    _, body = spyne_call(build_envelope("secured", {}, namespace="urn:test", security=good))
    assert parse_response(body) == "welcome"
    bad = UsernameToken("bob", PASSWORD + "!")
    status, body = spyne_call(build_envelope("secured", {}, namespace="urn:test", security=bad))
    assert status.startswith("500")
    with pytest.raises(RemoteFault) as info:
        parse_response(body)
    assert info.value.message == "bad credentials"
    assert info.value.errorcode is not None and info.value.errorcode.endswith(
        "Client.Authentication"
    )
