"""The XML-RPC codec: round trips (ours and the stdlib's), edge values, hostile input."""

from __future__ import annotations

import contextlib
import enum
import socket
import xmlrpc.client as xc
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcd.codecs import _xmlrpc_fast, xmlrpc
from rpcd.codecs.xmlrpc import dumps_call, dumps_fault, dumps_response, loads_call, loads_response
from rpcd.errors import (
    APPLICATION_ERROR,
    CodecError,
    InvalidRequest,
    LimitExceeded,
    ParseError,
    RemoteFault,
)
from tests.codec_helpers import same

# ---------------------------------------------------------------------------------------------
# helpers


def _miss(data: bytes, max_depth: int) -> object:
    return _xmlrpc_fast.MISS


@pytest.fixture(autouse=True, scope="module", params=["fast path", "lxml only"])
def decode_path(request: pytest.FixtureRequest) -> Any:
    """Every test runs twice: as shipped (documents in the fast grammar skip lxml), and with
    the fast path off, so the general lxml path keeps all of its coverage."""
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "lxml only":
            mp.setattr(_xmlrpc_fast, "loads_call", _miss)
            mp.setattr(_xmlrpc_fast, "loads_response", _miss)
        yield request.param


def call_doc(value_xml: str, method: str = "m") -> bytes:
    return (
        f"<?xml version='1.0'?><methodCall><methodName>{method}</methodName>"
        f"<params><param><value>{value_xml}</value></param></params></methodCall>"
    ).encode()


def one(value_xml: str, **kw: Any) -> Any:
    method, params = loads_call(call_doc(value_xml), **kw)
    assert method == "m"
    assert len(params) == 1
    return params[0]


def stdlib_loads(data: bytes) -> tuple[Any, ...]:
    params, _method = xc.loads(data, use_builtin_types=True)
    return params


NAIVE = datetime(1998, 7, 17, 14, 8, 55)
PLUS1 = timezone(timedelta(hours=1))

EVERY_TYPE: list[Any] = [
    0,
    -1,
    2**31 - 1,
    -(2**31),
    2**31,
    2**63 - 1,
    -(2**63),
    True,
    False,
    1.5,
    -0.25,
    1e300,
    "",
    " ",
    "  lead and trail  ",
    "\n\tx\n",
    "a\r\nb\rc",
    "<&>\"' ]]>",
    "unicode: é ✓ 𝄞",
    b"",
    b"\x00\x01\xff" * 40,
    NAIVE,
    None,
    [],
    {},
    [1, "two", [3.0, {"four": [None]}]],
    {"a": 1, "": "empty key", "sp ace": {"nested": []}},
]


# ---------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("value", EVERY_TYPE, ids=lambda v: type(v).__name__)
def test_response_round_trip_ours(value: Any) -> None:
    assert same(loads_response(dumps_response(value)), value)


def test_call_round_trip_ours() -> None:
    method, params = loads_call(dumps_call("svc.method", EVERY_TYPE))
    assert method == "svc.method"
    assert same(params, EVERY_TYPE)


def test_tuple_and_bytearray_become_list_and_bytes() -> None:
    assert same(loads_response(dumps_response((1, bytearray(b"x")))), [1, b"x"])


@pytest.mark.parametrize("value", EVERY_TYPE, ids=lambda v: type(v).__name__)
def test_our_output_parses_with_stdlib(value: Any) -> None:
    (got,) = stdlib_loads(dumps_response(value))
    assert same(got, value)
    (params, method) = xc.loads(dumps_call("a.b", [value, 1]), use_builtin_types=True)
    assert method == "a.b"
    assert same(list(params), [value, 1])


STDLIB_CAN_SEND = [
    v
    for v in EVERY_TYPE
    # the stdlib has no i8 and writes "\r" raw (the XML parser folds it into "\n")
    if not (isinstance(v, int) and not isinstance(v, bool) and not -(2**31) <= v < 2**31)
    and not (isinstance(v, str) and "\r" in v)
]


@pytest.mark.parametrize("value", STDLIB_CAN_SEND, ids=lambda v: type(v).__name__)
def test_stdlib_output_parses_with_ours(value: Any) -> None:
    data = xc.dumps((value, "x"), "svc.m", allow_none=True).encode()
    assert same(loads_call(data), ("svc.m", [value, "x"]))
    data = xc.dumps((value,), methodresponse=True, allow_none=True).encode()
    assert same(loads_response(data), value)


def test_stdlib_fault_parses_with_ours() -> None:
    data = xc.dumps(xc.Fault(-32601, "no such method <x>"), methodresponse=True).encode()
    with pytest.raises(RemoteFault) as ei:
        loads_response(data)
    assert (ei.value.code, ei.value.message) == (-32601, "no such method <x>")


def test_our_fault_parses_with_stdlib_and_ours() -> None:
    data = dumps_fault(-32500, "boom & <bust>\r\n")
    with pytest.raises(xc.Fault) as ei:
        xc.loads(data)
    assert (ei.value.faultCode, ei.value.faultString) == (-32500, "boom & <bust>\r\n")
    with pytest.raises(RemoteFault) as ei2:
        loads_response(data)
    assert ei2.value == RemoteFault(-32500, "boom & <bust>\r\n")


def test_fault_with_forbidden_characters_is_still_sent() -> None:
    with pytest.raises(RemoteFault) as ei:
        loads_response(dumps_fault(-32603, "nul\x00byte"))
    assert ei.value.message == "nul\ufffdbyte"


def test_fault_code_outside_i4() -> None:
    with pytest.raises(RemoteFault) as ei:
        loads_response(dumps_fault(2**40, "big"))
    assert ei.value.code == 2**40
    with pytest.raises(RemoteFault) as ei:
        loads_response(dumps_fault(2**70, "huge"))
    assert ei.value.code == APPLICATION_ERROR


def test_fault_with_symbolic_code() -> None:
    data = (
        b"<methodResponse><fault><value><struct>"
        b"<member><name>faultCode</name><value>Server</value></member>"
        b"<member><name>faultString</name><value>bad</value></member>"
        b"</struct></value></fault></methodResponse>"
    )
    with pytest.raises(RemoteFault) as ei:
        loads_response(data)
    assert (ei.value.code, ei.value.message, ei.value.errorcode) == (
        APPLICATION_ERROR,
        "bad",
        "Server",
    )


def test_output_header_and_encoding() -> None:
    data = dumps_response("é")
    assert data.startswith(b'<?xml version="1.0"?>')
    assert "é".encode() in data


def test_interop_types_from_stdlib_objects() -> None:
    value = [xc.Binary(b"\x00bin"), xc.DateTime(NAIVE)]
    assert same(loads_response(dumps_response(value)), [b"\x00bin", NAIVE])


class Colour(enum.IntEnum):
    RED = 1


class Name(str):
    pass


def test_subclasses_use_their_base_type() -> None:
    got = loads_response(dumps_response(OrderedDict(a=Colour.RED, b=Name("x"))))
    assert same(got, {"a": 1, "b": "x"})


# ---------------------------------------------------------------------------------------------
# hypothesis

XML_CHAR = st.characters(codec="utf-8").filter(
    lambda c: c in "\t\n\r" or (c >= " " and c not in "\ufffe\uffff")
)
TEXT = st.text(XML_CHAR, max_size=20)
SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    TEXT,
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.binary(max_size=30),
    st.datetimes(timezones=st.none()).map(lambda d: d.replace(microsecond=0)),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=25,
)


@pytest.mark.slow
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_property_response_round_trip(value: Any) -> None:
    assert same(loads_response(dumps_response(value)), value)


@pytest.mark.slow
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(VALUES, max_size=4), st.from_regex(r"[A-Za-z_][A-Za-z0-9_./:]{0,20}", fullmatch=True)
)
def test_property_call_round_trip(params: list[Any], method: str) -> None:
    assert same(loads_call(dumps_call(method, params)), (method, params))


@pytest.mark.slow
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_property_our_output_reads_with_stdlib(value: Any) -> None:
    (got,) = stdlib_loads(dumps_response(value))
    assert same(got, value)


STDLIB_SCALARS = st.one_of(
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.text(XML_CHAR.filter(lambda c: c != "\r"), max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.binary(max_size=100),
    st.datetimes(timezones=st.none(), min_value=datetime(1000, 1, 1)).map(
        lambda d: d.replace(microsecond=0)
    ),
)
STDLIB_VALUES = st.recursive(
    STDLIB_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(XML_CHAR.filter(lambda c: c != "\r"), max_size=10), inner)
    ),
    max_leaves=25,
)


@pytest.mark.slow
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(STDLIB_VALUES)
def test_property_stdlib_output_reads_with_ours(value: Any) -> None:
    data = xc.dumps((value,), "m", allow_none=True).encode()
    assert same(loads_call(data), ("m", [value]))


# ---------------------------------------------------------------------------------------------
# edge values


def test_i4_boundary_output() -> None:
    assert b"<int>2147483647</int>" in dumps_response(2**31 - 1)
    assert b"<int>-2147483648</int>" in dumps_response(-(2**31))
    assert b"<i8>2147483648</i8>" in dumps_response(2**31)
    assert b"<i8>-2147483649</i8>" in dumps_response(-(2**31) - 1)
    assert b"<i8>-9223372036854775808</i8>" in dumps_response(-(2**63))


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
def test_beyond_64_bits_refused_on_output(value: int) -> None:
    with pytest.raises(LimitExceeded):
        dumps_response(value)
    with pytest.raises(LimitExceeded):
        dumps_call("m", [[{"x": value}]])


@pytest.mark.parametrize("tag", ["int", "i4", "i8", "i1", "i2"])
def test_int_tags(tag: str) -> None:
    assert same(one(f"<{tag}> 42 </{tag}>"), 42)
    assert same(one(f"<{tag}>-9223372036854775808</{tag}>"), -(2**63))


@pytest.mark.parametrize("text", ["9223372036854775808", "-9223372036854775809", "9" * 30])
def test_beyond_64_bits_refused_on_input(text: str) -> None:
    with pytest.raises(LimitExceeded):
        one(f"<i8>{text}</i8>")


def test_huge_integer_text() -> None:
    with pytest.raises(LimitExceeded) as ei:
        one("<int>" + "9" * 100_000 + "</int>")
    assert len(str(ei.value)) < 200


@pytest.mark.parametrize(
    "xml",
    [
        "<int></int>",
        "<int>1.0</int>",
        "<int>1_000</int>",
        "<int>\u0661</int>",
        "<int>0x10</int>",
        "<boolean>2</boolean>",
        "<boolean>true</boolean>",
        "<boolean></boolean>",
        "<double>nan</double>",
        "<double>inf</double>",
        "<double>1e999</double>",
        "<double>abc</double>",
        "<double>1_0</double>",
        "<base64>!!!!</base64>",
        "<base64>QQ</base64>",
        "<dateTime.iso8601>yesterday</dateTime.iso8601>",
        "<dateTime.iso8601>19981317T14:08:55</dateTime.iso8601>",
        "<dateTime.iso8601>19980717T14:08:55+25:00</dateTime.iso8601>",
        "<struct><member><name>a</name></member></struct>",
        "<struct><value>1</value></struct>",
        "<array><value>1</value></array>",
        "<array><data><int>1</int></data></array>",
        "<bogus>1</bogus>",
        "<int>1</int><int>2</int>",
        "<string>a<b/>c</string>",
        "<nil>x</nil>",
    ],
)
def test_bad_value_text_is_invalid_request(xml: str) -> None:
    with pytest.raises(InvalidRequest) as ei:
        one(xml)
    assert type(ei.value) is InvalidRequest
    assert len(str(ei.value)) < 200


def test_strings_keep_whitespace_exactly() -> None:
    assert one("<string>   </string>") == "   "
    assert one("   ") == "   "
    assert one("\n  x  \n") == "\n  x  \n"
    assert one("<string> a </string>") == " a "
    assert one("<string>a&#13;&#10;b</string>") == "a\r\nb"
    assert one("<string><![CDATA[<x> & y]]></string>") == "<x> & y"
    assert one("<string>a<!-- c -->b</string>") == "ab"


def test_empty_values() -> None:
    assert same(one(""), "")
    assert same(one("<string/>"), "")
    assert same(one("<string></string>"), "")
    assert same(one("<array><data/></array>"), [])
    assert same(one("<array/>"), [])
    assert same(one("<struct/>"), {})
    assert same(one("<nil/>"), None)
    assert same(one("<base64/>"), b"")


def test_value_with_pretty_printing_whitespace() -> None:
    assert same(one("\n  <int>5</int>\n"), 5)
    doc = b"""<?xml version="1.0"?>
<methodCall>
  <methodName> a.b </methodName>
  <params>
    <param>
      <value>
        <struct>
          <member>
            <name>k</name>
            <value><array><data>
              <value><boolean>1</boolean></value>
              <value>s</value>
            </data></array></value>
          </member>
        </struct>
      </value>
    </param>
  </params>
</methodCall>
"""
    assert same(loads_call(doc), ("a.b", [{"k": [True, "s"]}]))


def test_no_params_element() -> None:
    assert loads_call(b"<methodCall><methodName>x</methodName></methodCall>") == ("x", [])
    assert loads_call(b"<methodCall><methodName>x</methodName><params/></methodCall>") == ("x", [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("19980717T14:08:55", NAIVE),
        ("1998-07-17T14:08:55", NAIVE),
        (" 19980717T140855 ", NAIVE),
        ("1998-07-17T14:08:55Z", NAIVE.replace(tzinfo=UTC)),
        ("1998-07-17T14:08:55+01:00", NAIVE.replace(tzinfo=PLUS1)),
        ("19980717T14:08:55+0100", NAIVE.replace(tzinfo=PLUS1)),
        ("1998-07-17T14:08:55.25", NAIVE.replace(microsecond=250000)),
    ],
)
def test_datetime_forms(text: str, expected: datetime) -> None:
    assert same(one(f"<dateTime.iso8601>{text}</dateTime.iso8601>"), expected)


def test_datetime_output_forms() -> None:
    assert b"<dateTime.iso8601>19980717T14:08:55</dateTime.iso8601>" in dumps_response(NAIVE)
    aware = NAIVE.replace(tzinfo=PLUS1)
    assert b"<dateTime.iso8601>1998-07-17T14:08:55+01:00</dateTime.iso8601>" in dumps_response(
        aware
    )
    assert same(loads_response(dumps_response(aware)), aware)
    assert same(
        loads_response(dumps_response(datetime(5, 1, 2, 3, 4, 5))), datetime(5, 1, 2, 3, 4, 5)
    )


def test_apache_extension_namespace() -> None:
    ns = 'xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions"'
    doc = (
        f"<methodResponse {ns}><params><param><value><array><data>"
        "<value><ex:i8>9000000000</ex:i8></value><value><ex:nil/></value>"
        "</data></array></value></param></params></methodResponse>"
    ).encode()
    assert same(loads_response(doc), [9000000000, None])
    with pytest.raises(InvalidRequest):
        one('<x:int xmlns:x="urn:other">1</x:int>')


def test_carriage_return_escaped() -> None:
    data = dumps_response("a\rb")
    assert b"&#13;" in data
    assert b"\r" not in data


@pytest.mark.parametrize("bad", ["\x00", "a\x01b", "\x0b", "\ufffe", "\ud800"])
def test_forbidden_characters_refused_on_output(bad: str) -> None:
    with pytest.raises(ValueError, match=r"XML 1\.0"):
        dumps_response(bad)
    with pytest.raises(ValueError, match=r"XML 1\.0"):
        dumps_response({bad: 1})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_refused(value: float) -> None:
    with pytest.raises(ValueError, match="NaN or infinity"):
        dumps_response([value])


class Secretive:
    def __init__(self) -> None:
        self.password = "hunter2"

    def __repr__(self) -> str:
        return "Secretive(password='hunter2')"


@pytest.mark.parametrize("value", [Secretive(), {1, 2}, 1j, object(), {1: "a"}])
def test_unsupported_types_refused_without_repr(value: Any) -> None:
    with pytest.raises(TypeError) as ei:
        dumps_response(value)
    assert "hunter2" not in str(ei.value)
    assert type(value).__name__ in str(ei.value) or "keys" in str(ei.value)


def test_recursive_value_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested too deeply"):
        dumps_response(loop)


def test_bad_method_arguments() -> None:
    with pytest.raises(ValueError):
        dumps_call("", [])
    with pytest.raises(TypeError):
        dumps_call("m", "abc")


# ---------------------------------------------------------------------------------------------
# structure


@pytest.mark.parametrize(
    "doc",
    [
        b"<methodResponse/>",
        b"<foo/>",
        b"<methodCall/>",
        b"<methodCall><methodName></methodName></methodCall>",
        b"<methodCall><methodName>  </methodName></methodCall>",
        b"<methodCall><methodName>a<b/></methodName></methodCall>",
        b"<methodCall><methodName>m</methodName><extra/></methodCall>",
        b"<methodCall><methodName>m</methodName><params><value>1</value></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param/></params></methodCall>",
    ],
)
def test_wrong_call_structure(doc: bytes) -> None:
    with pytest.raises(InvalidRequest):
        loads_call(doc)


@pytest.mark.parametrize(
    "doc",
    [
        b"<methodCall><methodName>m</methodName></methodCall>",
        b"<methodResponse/>",
        b"<methodResponse><params/><fault/></methodResponse>",
        b"<methodResponse><fault><value>x</value></fault></methodResponse>",
        b"<methodResponse><params><param><value>1</value></param>"
        b"<param><value>2</value></param></params></methodResponse>",
    ],
)
def test_wrong_response_structure(doc: bytes) -> None:
    with pytest.raises(InvalidRequest):
        loads_response(doc)


def test_void_response_is_none() -> None:
    assert loads_response(b"<methodResponse><params/></methodResponse>") is None


def test_max_depth_counts_struct_and_array_nesting() -> None:
    def nested(n: int) -> str:
        return "<array><data><value>" * n + "<int>1</int>" + "</value></data></array>" * n

    assert one(nested(3), max_depth=3) == [[[1]]]
    with pytest.raises(LimitExceeded):
        one(nested(4), max_depth=3)
    assert one(
        "<struct><member><name>a</name><value>" * 2 + "x" + "</value></member></struct>" * 2,
        max_depth=2,
    ) == {"a": {"a": "x"}}
    with pytest.raises(LimitExceeded):
        one(
            "<struct><member><name>a</name><value>" * 3 + "x" + "</value></member></struct>" * 3,
            max_depth=2,
        )
    assert one(nested(64)) is not None
    with pytest.raises(LimitExceeded):
        one(nested(65))
    with pytest.raises(LimitExceeded):
        loads_response(dumps_response(eval("[" * 10 + "]" * 10)), max_depth=9)


# ---------------------------------------------------------------------------------------------
# hostile input

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<methodCall><methodName>&lol9;</methodName></methodCall>"""

QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "'
    + b"A" * 100_000
    + b'">]><methodCall><methodName>m</methodName><params><param><value>'
    + b"&a;" * 10_000
    + b"</value></param></params></methodCall>"
)


def xxe(system_id: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "{system_id}">]>'
        "<methodCall><methodName>m</methodName><params><param><value>&x;"
        "</value></param></params></methodCall>"
    ).encode()


HOSTILE_PARSE_ERRORS = {
    "billion_laughs": BILLION_LAUGHS,
    "quadratic": QUADRATIC,
    "xxe_file": xxe("file:///etc/passwd"),
    "xxe_http": xxe("http://127.0.0.1:9/x"),
    "doctype_only": b"<!DOCTYPE methodCall><methodCall><methodName>m</methodName></methodCall>",
    "doctype_system": b'<!DOCTYPE methodCall SYSTEM "http://127.0.0.1:9/x.dtd">'
    b"<methodCall><methodName>m</methodName></methodCall>",
    "parameter_entities": b'<!DOCTYPE m [<!ENTITY % pe SYSTEM "http://127.0.0.1:9/x"> %pe;'
    b"<!ENTITY % a \"<!ENTITY b 'x'>\"> %a;]><methodCall><methodName>&b;</methodName>"
    b"</methodCall>",
    "undeclared_entity": b"<methodCall><methodName>&foo;</methodName></methodCall>",
    "garbage": bytes(range(1, 256)) * 4,
    "png": b"\x89PNG\r\n\x1a\n" + b"\xff" * 100,
    "json": b'{"jsonrpc": "2.0"}',
    "empty": b"",
    "blank": b"  \r\n ",
    "truncated": dumps_call("a.b", [1, "two", {"x": [3]}])[:-40],
    "unclosed": b"<methodCall><methodName>m</methodName>",
    "mismatched": b"<methodCall><methodName>m</methodCall></methodName>",
    "utf16_bom": '<?xml version="1.0" encoding="UTF-16"?><methodCall/>'.encode("utf-16"),
    "utf16_no_bom": '<?xml version="1.0" encoding="UTF-16"?><methodCall/>'.encode("utf-16-le"),
    "utf7_declared": b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE m+AD4-<methodCall/>',
    "nul_byte": b"<methodCall><methodName>m\x00</methodName></methodCall>",
    "two_roots": b"<methodCall/><methodCall/>",
}


@pytest.mark.parametrize("doc", HOSTILE_PARSE_ERRORS.values(), ids=HOSTILE_PARSE_ERRORS.keys())
def test_hostile_input_is_parse_error(doc: bytes) -> None:
    for loads in (loads_call, loads_response):
        with pytest.raises(ParseError) as ei:
            loads(doc)
        assert type(ei.value) is ParseError
        assert len(str(ei.value)) < 250


def test_deep_nesting_is_limit_exceeded() -> None:
    deep = call_doc("<array><data><value>" * 100_000 + "</value></data></array>" * 100_000)
    with pytest.raises(LimitExceeded):
        loads_call(deep)
    # Unbalanced (truncated) deep nesting too: the depth guard fires before the end is missed.
    with pytest.raises(LimitExceeded):
        loads_call(b"<methodCall>" + b"<x>" * 100_000)


def test_deep_nesting_beyond_libxml2_limit_with_large_max_depth() -> None:
    doc = call_doc("<array><data><value>" * 200 + "</value></data></array>" * 200)
    with pytest.raises(LimitExceeded):
        loads_call(doc, max_depth=10_000)


def test_no_network_access_for_external_entities() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(0.2)
        port = srv.getsockname()[1]
        for doc in (
            xxe(f"http://127.0.0.1:{port}/x"),
            f'<!DOCTYPE m SYSTEM "http://127.0.0.1:{port}/d"><methodCall/>'.encode(),
        ):
            with pytest.raises(ParseError):
                loads_call(doc)
        with pytest.raises(TimeoutError):
            srv.accept()


def test_parser_layer_alone_does_not_expand_entities() -> None:
    """Defence in depth: even if the DOCTYPE pre-check were bypassed, nothing expands."""
    from lxml import etree

    doc = b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd"><!ENTITY y "yyy">]><a>&x;&y;</a>'
    root = etree.fromstring(doc, xmlrpc._parser())
    assert "root:" not in etree.tostring(root, encoding="unicode")
    assert (root.text or "") == ""
    assert all(not isinstance(c.tag, str) for c in root)  # only unexpanded entity nodes


def test_latin1_declared_encoding_accepted() -> None:
    doc = (
        '<?xml version="1.0" encoding="ISO-8859-1"?><methodCall><methodName>m</methodName>'
        "<params><param><value>caf\xe9</value></param></params></methodCall>"
    ).encode("latin-1")
    assert loads_call(doc) == ("m", ["caf\xe9"])


def test_utf8_bom_accepted() -> None:
    assert loads_call(b"\xef\xbb\xbf" + dumps_call("m", [1])) == ("m", [1])


@pytest.mark.parametrize("doc", [*HOSTILE_PARSE_ERRORS.values(), b"<a>" * 300])
def test_every_error_is_a_codec_error(doc: bytes) -> None:
    with pytest.raises(CodecError):
        loads_call(doc)


def test_error_messages_do_not_echo_huge_input() -> None:
    long = "x" * 10_000
    for xml in (f"<int>{long}</int>", f"<{long}/>", f"<double>{long}</double>"):
        with pytest.raises(CodecError) as ei:
            one(xml)
        assert len(str(ei.value)) < 250


SAMPLE_CALL = dumps_call(
    "svc.m", [1, 2**40, "s", 1.5, True, b"b", NAIVE, None, [1, {"k": ["v"]}], {"a": {}}]
)


@pytest.mark.slow
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_property_mutated_input_is_a_value_or_a_codec_error(data: st.DataObject) -> None:
    """Cut, splice and overwrite a valid call: never any exception but a CodecError."""
    doc = bytearray(SAMPLE_CALL)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(doc)))
        j = data.draw(st.integers(i, min(len(doc), i + 12)))
        doc[i:j] = data.draw(
            st.binary(max_size=8)
            | st.sampled_from([b"<", b">", b"</value>", b"<value>", b"&", b"<int>", b"<!", b"\xff"])
        )
    with contextlib.suppress(CodecError):
        loads_call(bytes(doc))


# ---------------------------------------------------------------------------------------------
# parser reuse (one parser per thread, checked out while in use)

GOOD_CALL = dumps_call("m", [1, "two", {"x": [3]}])


@pytest.mark.parametrize(
    "bad",
    [
        b"<methodCall><methodName>m</methodName><params><param><value><int>1",  # truncated
        b"<methodCall><methodName>m</methodName></oops>",  # fails inside feed
        b"<methodCall>" + b"<a>" * 300,  # depth limit
        b"<methodCall><methodName>&foo;</methodName></methodCall>",
        b"<a/><b/>",
    ],
)
def test_failed_parse_does_not_poison_the_next(bad: bytes) -> None:
    for _ in range(3):
        with pytest.raises(CodecError):
            loads_call(bad)
        assert loads_call(GOOD_CALL) == ("m", [1, "two", {"x": [3]}])
    # and a failure right after a success
    assert loads_call(GOOD_CALL)[0] == "m"
    with pytest.raises(CodecError):
        loads_call(bad)
    assert loads_response(dumps_response([1, 2])) == [1, 2]


def test_parser_is_reused_within_a_thread() -> None:
    loads_call(GOOD_CALL)
    first = xmlrpc._tls.parser
    loads_call(GOOD_CALL)
    assert xmlrpc._tls.parser is first
    with pytest.raises(CodecError):
        loads_call(b"<methodCall><methodName>m</methodName></oops>")
    loads_call(GOOD_CALL)
    assert xmlrpc._tls.parser is not first  # the failed parser was dropped, not returned


def test_parser_is_checked_out_while_in_use() -> None:
    """A parse running in this thread while another is under way gets a parser of its own."""
    loads_call(GOOD_CALL)
    outer = xmlrpc._tls.parser
    xmlrpc._tls.parser = None  # what ``_parse`` leaves while it holds the parser
    try:
        assert loads_call(GOOD_CALL)[0] == "m"
        assert xmlrpc._tls.parser is not outer
    finally:
        xmlrpc._tls.parser = outer


def test_parsers_are_per_thread_and_threads_agree() -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    docs = [dumps_call(f"m{i}", [i, "s" * i, list(range(i * 7))]) for i in range(40)]
    bad = b"<methodCall><methodName>m</methodName></oops>"
    seen: dict[int, list[Any]] = {}  # thread -> its parsers, kept alive so ids stay unique
    lock = threading.Lock()

    def work(k: int) -> list[Any]:
        got = []
        for j, doc in enumerate(docs):
            if (j + k) % 5 == 0:
                with pytest.raises(CodecError):
                    loads_call(bad)
            got.append(loads_call(doc))
            parser = getattr(xmlrpc._tls, "parser", None)  # None: no lxml parse yet here
            if parser is not None:
                with lock:
                    seen.setdefault(threading.get_ident(), []).append(parser)
        return got

    expected = [(f"m{i}", [i, "s" * i, list(range(i * 7))]) for i in range(40)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(16)))
    assert all(r == expected for r in results)
    owner: dict[int, int] = {}
    for thread, parsers in seen.items():
        for parser in parsers:
            assert owner.setdefault(id(parser), thread) == thread  # never in two threads


def test_feed_parser_layer_alone_does_not_expand_entities() -> None:
    """The same defence-in-depth check as above, through the feed interface ``_parse`` uses."""
    parser = xmlrpc._parser()
    parser.feed(b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd"><!ENTITY y "yyy">]>')
    parser.feed(b"<a>&x;&y;</a>")
    root = parser.close()
    assert (root.text or "") == ""
    assert all(not isinstance(c.tag, str) for c in root)
    assert root.getroottree().docinfo.internalDTD is not None  # what layer 3 refuses


# ---------------------------------------------------------------------------------------------
# bulk paths (big arrays, flat structs): same results and same errors as the item-wise ones


def array_doc(members: list[str]) -> bytes:
    return call_doc("<array><data>" + "".join(members) + "</data></array>")


@pytest.mark.parametrize("n", [1, 15, 16, 17, 500])
def test_int_arrays_of_every_size(n: int) -> None:
    values = [(-1) ** i * i * 7919 for i in range(n)]
    assert same(loads_response(dumps_response(values)), values)
    assert same(loads_call(dumps_call("m", [tuple(values)])), ("m", [values]))
    (got,) = stdlib_loads(dumps_response(values))
    assert same(got, values)


@pytest.mark.parametrize(
    "values",
    [
        [1] * 20 + [2**31] + [3] * 5,  # an i8 among ints
        [1] * 20 + [True],
        [1] * 20 + ["x"],
        ["a"] * 20 + [1],
        [1] * 20 + [None, 1.5, b"b", NAIVE, [1], {"k": 1}],
    ],
)
def test_mixed_big_arrays(values: list[Any]) -> None:
    assert same(loads_response(dumps_response(values)), values)
    (got,) = stdlib_loads(dumps_response(values))
    assert same(got, values)


@pytest.mark.parametrize(
    "strings",
    [
        ["plain"] * 20,
        ["a & b", "<tag>", "x > y", "a\r\nb", "\t", "", " "] * 3,
        ["é ✓ 𝄞", "ascii"] * 10,
        [""] * 20,
    ],
)
def test_string_arrays_round_trip(strings: list[str]) -> None:
    assert same(loads_response(dumps_response(strings)), strings)
    assert same(loads_response(dumps_response(tuple(strings))), strings)


@pytest.mark.parametrize("bad", ["\x00", "a\x00b", "\x01", "\ufffe"])
def test_string_array_with_forbidden_character(bad: str) -> None:
    """A NUL (or any forbidden character) in one string cannot turn into markup."""
    for pos in (0, 10, 19):
        strings = ["s"] * 20
        strings[pos] = bad
        with pytest.raises(ValueError, match=r"XML 1\.0"):
            dumps_response(strings)


def test_big_array_keeps_item_errors_and_their_order() -> None:
    ints = [f"<value><int>{i}</int></value>" for i in range(30)]
    cases: list[tuple[list[str], type[Exception], str]] = [
        ([*ints, "<value><int>x</int></value>"], InvalidRequest, "bad integer"),
        ([*ints, "<value><int></int></value>"], InvalidRequest, "empty"),
        ([*ints, "<value><int>99999999999999999999</int></value>"], LimitExceeded, "64 bits"),
        ([*ints, "<value><int>9223372036854775808</int></value>"], LimitExceeded, "64 bits"),
        ([*ints, "<value><int>1_0</int></value>"], InvalidRequest, "bad integer"),
        ([*ints, "<value><int>\u0661</int></value>"], InvalidRequest, "bad integer"),
        ([*ints, "<value><int>1<b/></int></value>"], InvalidRequest, "must not contain"),
        ([*ints, "<value><int>1</int><int>2</int></value>"], InvalidRequest, "one element"),
        ([*ints, "<int>1</int>"], InvalidRequest, "only <value>"),
        (
            [*ints[:5], "<value><int>x</int></value>", *ints, "<value><bogus/></value>"],
            InvalidRequest,
            "bad integer",
        ),
    ]
    for members, exc, text in cases:
        with pytest.raises(exc, match=text):
            one("<array><data>" + "".join(members) + "</data></array>")


def test_big_int_array_text_forms() -> None:
    texts = [" 7 ", "+7", "-0", "007", "\n7\t", "-9223372036854775808", "9223372036854775807"]
    members = [f"<value><int>{t}</int></value>" for t in texts * 4]
    assert same(
        one("<array><data>" + "".join(members) + "</data></array>"), [int(t) for t in texts * 4]
    )
    long_text = " " * 30 + "7"  # longer than the bulk bound: the item-wise path decides
    members.append(f"<value><int>{long_text}</int></value>")
    assert one("<array><data>" + "".join(members) + "</data></array>")[-1] == 7


def test_struct_keys_needing_escapes() -> None:
    value = {"plain": 1, "a&b": 2, "<k>": "v", "tab\tkey": "x", "cr\rkey": "y", "é": 3}
    assert same(loads_response(dumps_response(value)), value)
    (got,) = stdlib_loads(dumps_response({k: v for k, v in value.items() if "\r" not in k}))
    assert same(got, {k: v for k, v in value.items() if "\r" not in k})
    with pytest.raises(ValueError, match=r"XML 1\.0"):
        dumps_response({"ok": 1, "bad\x00": 2})


class TrickyList(list):  # type: ignore[type-arg]
    """Answers differently on each iteration: the bulk path must not trust two passes."""

    def __init__(self) -> None:
        super().__init__(["ok"] * 20)
        self.calls = 0

    def __iter__(self) -> Any:
        self.calls += 1
        return iter(["ok"] * 20 if self.calls <= 2 else ["</string><evil/>"] * 20)


def test_list_subclass_is_not_bulk_written() -> None:
    data = dumps_response(TrickyList())
    assert b"<evil/>" not in data
