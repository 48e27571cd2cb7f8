"""REST wire codec: PHP form encoding, JSON/XML bodies, Moodle JSON/XML responses."""

from __future__ import annotations

import json
import re
import urllib.parse
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcd.codecs.rest import (
    decode_response,
    json_body,
    php_form_pairs,
    php_urlencode,
    xml_body,
)
from rpcd.errors import APPLICATION_ERROR, LimitExceeded, ParseError, RemoteFault

# ----------------------------------------------------------------------- form encoding


def test_moodle_get_users_by_field_pairs() -> None:
    params = {"field": "id", "values": [1, 2]}
    pairs = php_form_pairs(params)
    assert pairs == [("field", "id"), ("values[0]", "1"), ("values[1]", "2")]
    encoded = php_urlencode(params)
    assert encoded == "field=id&values%5B0%5D=1&values%5B1%5D=2"
    assert urllib.parse.parse_qsl(encoded, strict_parsing=True) == pairs


def test_nested_list_of_dicts() -> None:
    params = {
        "criteria": [{"key": "id", "value": 5}, {"key": "email", "value": "a@b.c"}],
        "values": ["x"],
    }
    pairs = php_form_pairs(params)
    assert pairs == [
        ("criteria[0][key]", "id"),
        ("criteria[0][value]", "5"),
        ("criteria[1][key]", "email"),
        ("criteria[1][value]", "a@b.c"),
        ("values[0]", "x"),
    ]
    assert urllib.parse.parse_qsl(php_urlencode(params)) == pairs


def test_dict_of_lists_and_deeper() -> None:
    params = {"options": {"ids": [3, 4], "filter": {"names": ["a b", "c&d=e"]}}}
    pairs = php_form_pairs(params)
    assert pairs == [
        ("options[ids][0]", "3"),
        ("options[ids][1]", "4"),
        ("options[filter][names][0]", "a b"),
        ("options[filter][names][1]", "c&d=e"),
    ]
    # The reserved characters survive the round trip through a form parser.
    assert urllib.parse.parse_qsl(php_urlencode(params)) == pairs


def test_scalars() -> None:
    pairs = php_form_pairs(
        {
            "t": True,
            "f": False,
            "n": None,
            "i": -7,
            "x": 1.5,
            "d": Decimal("1E+2"),
            "s": "é ü",
            "k": {1: "int key"},
        }
    )
    assert pairs == [
        ("t", "1"),
        ("f", "0"),
        ("n", ""),
        ("i", "-7"),
        ("x", "1.5"),
        ("d", "100"),
        ("s", "é ü"),
        ("k[1]", "int key"),
    ]
    assert urllib.parse.parse_qsl(
        php_urlencode({"s": "é ü", "n": None}), keep_blank_values=True
    ) == [
        ("s", "é ü"),
        ("n", ""),
    ]


def test_empty_containers_emit_nothing() -> None:
    assert php_form_pairs({"a": [], "b": {}, "c": "x", "d": [[]]}) == [("c", "x")]


def test_prefattened_top_level_names_pass() -> None:
    assert php_form_pairs({"values[0]": "x"}) == [("values[0]", "x")]


@pytest.mark.parametrize("value", [b"raw", bytearray(b"raw"), object(), {1, 2}])
def test_unsupported_types_are_refused(value: object) -> None:
    with pytest.raises(TypeError) as info:
        php_form_pairs({"p": [value]})
    assert "p[0]" in str(info.value)


def test_bytes_message_is_clear_and_does_not_echo_value() -> None:
    with pytest.raises(TypeError, match="decode it to str") as info:
        php_form_pairs({"token": b"supersecretvalue"})
    assert "supersecretvalue" not in str(info.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Decimal("NaN")])
def test_non_finite_numbers_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        php_form_pairs({"x": value})


@pytest.mark.parametrize("key", ["", "a]b", "a[b"])
def test_bad_nested_keys(key: str) -> None:
    with pytest.raises(ValueError):
        php_form_pairs({"x": {key: 1}})


def test_cyclic_input_hits_the_depth_bound() -> None:
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    with pytest.raises(LimitExceeded):
        php_form_pairs({"x": cyclic})


def test_non_mapping_params_refused() -> None:
    with pytest.raises(TypeError, match="mapping"):
        php_form_pairs([("a", 1)])  # type: ignore[arg-type]


_scalars = st.one_of(st.text(), st.integers(), st.booleans(), st.none())


@given(st.dictionaries(st.text(min_size=1), st.lists(_scalars, min_size=1)))
def test_lists_round_trip_through_parse_qsl(params: dict[str, list[object]]) -> None:
    pairs = php_form_pairs(params)
    assert len(pairs) == sum(len(v) for v in params.values())
    parsed = urllib.parse.parse_qsl(php_urlencode(params), keep_blank_values=True)
    assert parsed == pairs


# --------------------------------------------------------------------------- bodies


def test_json_body() -> None:
    body = json_body({"a": [1, True, None], "b": ("x",), "é": Decimal("1.5")})
    assert body == '{"a":[1,true,null],"b":["x"],"é":1.5}'.encode()
    with pytest.raises(TypeError, match="bytes"):
        json_body({"a": b"x"})
    with pytest.raises(ValueError):
        json_body({"a": float("nan")})
    with pytest.raises(ValueError):
        json_body({"a": "\ud800"})


def test_xml_body_shape() -> None:
    body = xml_body(
        "core_user_get_users",
        {"criteria": [{"key": "id", "value": 5}], "flag": True, "note": None, "s": "<a&b>\r"},
    )
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(body)
    assert root.tag == "request"
    assert root.findtext("function") == "core_user_get_users"
    params = root.find("params")
    assert params is not None
    assert [child.tag for child in params] == ["criteria", "flag", "note", "s"]
    items = params.findall("criteria/item")
    assert len(items) == 1
    assert items[0].findtext("key") == "id"
    assert items[0].findtext("value") == "5"
    assert params.findtext("flag") == "1"
    note = params.find("note")
    assert note is not None and note.get("null") == "true" and not note.text
    assert params.findtext("s") == "<a&b>\r"
    # Our own decoder reads the generic shape back.
    assert decode_response("application/xml", body) == {
        "function": "core_user_get_users",
        "params": {
            "criteria": {"item": {"key": "id", "value": "5"}},
            "flag": "1",
            "note": {"@null": "true"},
            "s": "<a&b>\r",  # written as &#13;, so the CR survives parsing
        },
    }


def test_xml_body_refuses_bad_names_and_characters() -> None:
    with pytest.raises(ValueError, match="not a valid XML name"):
        xml_body("f", {"1abc": 1})
    with pytest.raises(ValueError, match="cannot represent") as info:
        xml_body("f", {"a": "secret\x00value"})
    assert "secret" not in str(info.value)


# ------------------------------------------------------------------------ JSON decoding


def test_json_by_content_type() -> None:
    assert decode_response("application/json; charset=utf-8", b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert decode_response("text/json", b"[1]") == [1]
    assert decode_response("application/problem+json", b'{"x": null}') == {"x": None}
    assert decode_response("APPLICATION/JSON", b"\xef\xbb\xbf3") == 3


def test_moodle_json_exception() -> None:
    body = json.dumps(
        {
            "exception": "moodle_exception",
            "errorcode": "invalidtoken",
            "message": "Invalid token - token not found",
            "debuginfo": "SELECT * FROM mdl_external_tokens WHERE token = 'abc'",
        }
    ).encode()
    with pytest.raises(RemoteFault) as info:
        decode_response("application/json", body)
    fault = info.value
    assert fault.code == APPLICATION_ERROR
    assert fault.errorcode == "invalidtoken"
    assert fault.message == "Invalid token - token not found"
    assert "mdl_external_tokens" not in str(fault)


def test_ordinary_dict_is_not_an_exception() -> None:
    assert decode_response("application/json", b'{"message": "hi"}') == {"message": "hi"}


@pytest.mark.parametrize(
    "body", [b"{", b'{"a": }', b"\xff\xfe{", b"", b"nul", b'"unterminated' + b"x" * 500]
)
def test_bad_json_is_parse_error_with_short_message(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        decode_response("application/json", body)
    assert len(str(info.value)) < 160


def test_json_depth_limit() -> None:
    assert decode_response("application/json", b"[" * 5 + b"]" * 5, max_depth=5) == [[[[[]]]]]
    with pytest.raises(LimitExceeded):
        decode_response("application/json", b"[" * 6 + b"]" * 6, max_depth=5)
    with pytest.raises(LimitExceeded):
        decode_response("application/json", b"[" * 100_000 + b"]" * 100_000)


# ------------------------------------------------------------------------- sniffing


def test_sniffing_unknown_content_types() -> None:
    assert decode_response(None, b'  {"a": 1}') == {"a": 1}
    assert decode_response("text/plain", b"\n[1]") == [1]
    assert decode_response("application/octet-stream", b"<a>x</a>") == "x"
    assert decode_response("text/plain", "plain é".encode()) == "plain é"
    assert decode_response(None, b"") == ""
    with pytest.raises(ParseError):
        decode_response("text/plain", b"\xff\xfe\x00garbage")


def test_html_error_page_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        decode_response("text/html", b"<!DOCTYPE html><html><body>Login</body></html>")


# -------------------------------------------------------------------- Moodle XML format

MOODLE_USERS = b"""<?xml version="1.0" encoding="UTF-8" ?>
<RESPONSE>
<MULTIPLE>
<SINGLE>
<KEY name="id"><VALUE>2</VALUE>
</KEY>
<KEY name="username"><VALUE>admin &amp; co</VALUE>
</KEY>
<KEY name="description"><VALUE null="null"/>
</KEY>
<KEY name="empty"><VALUE></VALUE>
</KEY>
<KEY name="customfields"><MULTIPLE>
</MULTIPLE>
</KEY>
<KEY name="preferences"><MULTIPLE>
<SINGLE>
<KEY name="name"><VALUE>auth_forcepasswordchange</VALUE>
</KEY>
<KEY name="value"><VALUE>0</VALUE>
</KEY>
</SINGLE>
</MULTIPLE>
</KEY>
<KEY name="nothing"></KEY>
</SINGLE>
</MULTIPLE>
</RESPONSE>
"""


def test_moodle_xml_response() -> None:
    assert decode_response("application/xml", MOODLE_USERS) == [
        {
            "id": "2",
            "username": "admin & co",
            "description": None,
            "empty": "",
            "customfields": [],
            "preferences": [{"name": "auth_forcepasswordchange", "value": "0"}],
            "nothing": None,
        }
    ]


def test_moodle_xml_scalar_single_and_empty() -> None:
    scalar = (
        b'<?xml version="1.0" encoding="UTF-8" ?>\n<RESPONSE>\n<VALUE>42</VALUE>\n</RESPONSE>\n'
    )
    assert decode_response("application/xml", scalar) == "42"
    null = b'<RESPONSE><VALUE null="null"/></RESPONSE>'
    assert decode_response("text/xml", null) is None
    assert decode_response("application/xml", b"<RESPONSE>\n</RESPONSE>\n") is None
    single = b'<RESPONSE><SINGLE><KEY name="status"><VALUE>1</VALUE></KEY></SINGLE></RESPONSE>'
    assert decode_response("application/xml", single) == {"status": "1"}


def test_moodle_xml_malformed_structure() -> None:
    with pytest.raises(ParseError):
        decode_response("application/xml", b"<RESPONSE><SINGLE><OOPS/></SINGLE></RESPONSE>")
    with pytest.raises(ParseError):
        decode_response("application/xml", b"<RESPONSE><VALUE/><VALUE/></RESPONSE>")


def test_moodle_xml_exception() -> None:
    body = b"""<?xml version="1.0" encoding="UTF-8" ?>
<EXCEPTION class="invalid_parameter_exception">
<ERRORCODE>invalidparameter</ERRORCODE>
<MESSAGE>Invalid parameter value detected</MESSAGE>
<DEBUGINFO>values =&gt; Only arrays accepted.</DEBUGINFO>
</EXCEPTION>
"""
    with pytest.raises(RemoteFault) as info:
        decode_response("application/xml", body)
    assert info.value.code == APPLICATION_ERROR
    assert info.value.errorcode == "invalidparameter"
    assert info.value.message == "Invalid parameter value detected"
    assert "arrays" not in str(info.value)


# ---------------------------------------------------------------------- generic XML


def test_generic_xml() -> None:
    body = b"""<?xml version="1.0"?>
<result xmlns="urn:x" xmlns:y="urn:y" version="2">
  <name>rpcd</name>
  <tag>a</tag>
  <tag>b</tag>
  <y:nested id="7"><leaf>1</leaf></y:nested>
  <empty/>
  <!-- a comment -->
</result>"""
    assert decode_response("application/xml", body) == {
        "@version": "2",
        "name": "rpcd",
        "tag": ["a", "b"],
        "nested": {"@id": "7", "leaf": "1"},
        "empty": "",
    }
    assert decode_response("application/xml", b"<r>only text</r>") == "only text"
    assert decode_response("application/xml", b'<r a="1">text</r>') == {"@a": "1", "#text": "text"}
    assert decode_response("application/atom+xml", b"<r><a/></r>") == {"a": ""}


def test_xml_encodings() -> None:
    latin = '<?xml version="1.0" encoding="ISO-8859-1"?><r>café</r>'.encode("latin-1")
    assert decode_response("application/xml", latin) == "café"
    with pytest.raises(ParseError):
        decode_response("application/xml", b"<r>caf\xe9</r>")  # not UTF-8
    with pytest.raises(ParseError):
        decode_response("application/xml", b'<?xml version="1.0" encoding="x-nope"?><r/>')


# ---------------------------------------------------------------------- hostile XML

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<RESPONSE><VALUE>&lol3;</VALUE></RESPONSE>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<RESPONSE><VALUE>&xxe;</VALUE></RESPONSE>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd">
<r>x</r>"""

PLAIN_DTD = b"""<?xml version="1.0"?><!DOCTYPE r [<!ELEMENT r (#PCDATA)>]><r>x</r>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PLAIN_DTD])
@pytest.mark.parametrize("content_type", ["application/xml", None])
def test_hostile_xml_is_refused(body: bytes, content_type: str | None) -> None:
    with pytest.raises(ParseError) as info:
        decode_response(content_type, body)
    assert "root:" not in str(info.value)
    assert len(str(info.value)) < 160


def test_xml_depth_limit() -> None:
    ok = b"<a>" * 10 + b"</a>" * 10
    expected: object = ""
    for _ in range(9):  # the root element is dropped
        expected = {"a": expected}
    assert decode_response("application/xml", ok, max_depth=10) == expected
    with pytest.raises(LimitExceeded):
        decode_response("application/xml", ok, max_depth=9)
    deep = b"<a>" * 200_000 + b"</a>" * 200_000
    with pytest.raises(LimitExceeded):
        decode_response("application/xml", deep)


def test_garbage_xml_message_is_short() -> None:
    body = b"<a>" + b"z" * 10_000 + b"</b>"
    with pytest.raises(ParseError) as info:
        decode_response("application/xml", body)
    assert "z" * 61 not in str(info.value)
    assert len(str(info.value)) < 160


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"grade": 1e999}', "a number out of range (1e999)"),
        (b'{"grade": -1e400}', "a number out of range (-1e400)"),
        (b'{"grade": NaN}', "the literal NaN"),
        (b"[Infinity]", "the literal Infinity"),
        (b"[-Infinity]", "the literal -Infinity"),
    ],
)
def test_a_remote_json_number_that_is_not_finite_is_refused(body: bytes, said: str) -> None:
    """A REST remote's answer never hands a caller ``inf`` or ``nan`` (JSON has neither)."""
    with pytest.raises(ParseError, match=re.escape(said)):
        decode_response("application/json", body)
    assert decode_response("application/json", b'{"grade": 1.5e300}') == {"grade": 1.5e300}
