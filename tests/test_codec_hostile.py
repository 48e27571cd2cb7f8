"""Hostile input for the codecs themselves (issue 12, points 1, 2 and 18), without a daemon.

Number texts: accepting or refusing one costs time linear in its length (no regex that splits
a digit run two ways), a text over ``max_number_chars`` is refused unconverted, and the fast
path agrees with the lxml path on adversarial texts. XML: rpcd decides the encoding, refuses
every DTD with one text, and its lxml parser never opens a file. JSON-RPC: no non-finite
number and no integer beyond 64 bits gets through, and nothing but the codec's errors comes out.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcd.codecs import jsonrpc, numtext, rest, soap, xmlguard, xmlrpc
from rpcd.errors import (
    INVALID_REQUEST,
    CodecError,
    InvalidRequest,
    LimitExceeded,
    ParseError,
    RemoteFault,
)
from tests.codec_helpers import agree, deadline

#: A limit far above every text below: the scanners themselves run over the whole text.
NO_LIMIT = 10**6


def call_doc(value_xml: str) -> bytes:
    return (
        "<?xml version='1.0'?><methodCall><methodName>m</methodName><params>"
        f"<param><value>{value_xml}</value></param></params></methodCall>"
    ).encode()


def response_doc(value_xml: str) -> bytes:
    return (
        "<?xml version='1.0'?><methodResponse><params>"
        f"<param><value>{value_xml}</value></param></params></methodResponse>"
    ).encode()


def in_array(value_xml: str) -> str:
    return f"<array><data><value><int>1</int></value><value>{value_xml}</value></data></array>"


def in_struct(value_xml: str) -> str:
    return f"<struct><member><name>a</name><value>{value_xml}</value></member></struct>"


# ---------------------------------------------------------------------------------------------
# point 1: the reported attack, on both paths and both directions


@pytest.mark.parametrize("tag", ["double", "int", "i4", "i8"])
@pytest.mark.parametrize("wrap", [str, in_array, in_struct], ids=["param", "array", "struct"])
@pytest.mark.parametrize("doc", [call_doc, response_doc], ids=["call", "response"])
def test_long_digit_run_then_junk_is_refused_at_once(
    tag: str, wrap: Callable[[str], str], doc: Callable[[str], bytes]
) -> None:
    """The issue's attack: 12,000 digits then ``x`` (7 s of regex backtracking before). The
    deadline is generous (the work is well under a millisecond) and bounds the failure."""
    loads = xmlrpc.loads_call if doc is call_doc else xmlrpc.loads_response
    for digits in ("1" * 12_000, "0" * 12_000):
        body = doc(wrap(f"<{tag}>{digits}x</{tag}>"))
        for limit in ({}, {"max_number_chars": NO_LIMIT}):
            with deadline(5), pytest.raises(CodecError) as info:
                loads(body, **limit)
            assert info.value.code == INVALID_REQUEST
            assert len(str(info.value)) < 250


def test_a_number_over_the_limit_is_refused_unconverted() -> None:
    long_double = "0." + "1" * 5000
    with pytest.raises(LimitExceeded, match="max_number_chars"):
        xmlrpc.loads_call(call_doc(f"<double>{long_double}</double>"))
    assert xmlrpc.loads_call(call_doc(f"<double>{long_double}</double>"), max_number_chars=5002)[
        1
    ] == [float(long_double)]
    # surrounding whitespace is not counted; leading zeros are, as CPython's int() counts them
    padded = " \n" * 3000 + "0" * 30 + "42" + "\t" * 3000
    assert xmlrpc.loads_call(call_doc(f"<i8>{padded}</i8>"))[1] == [42]
    with pytest.raises(LimitExceeded, match="max_number_chars"):
        xmlrpc.loads_call(call_doc(f"<int>{'0' * 4300}1</int>"))
    zeros = "0" * 10_000 + "7"  # beyond CPython's own int() digit limit, still a 64-bit int
    assert xmlrpc.loads_call(call_doc(f"<int>{zeros}</int>"), max_number_chars=NO_LIMIT)[1] == [7]
    with pytest.raises(LimitExceeded, match="max_number_chars"):
        xmlrpc.loads_call(
            call_doc(f"<dateTime.iso8601>19980717T14:08:55.{'1' * 4300}</dateTime.iso8601>")
        )
    with pytest.raises(ValueError, match="at least"):
        xmlrpc.loads_call(call_doc("<int>1</int>"), max_number_chars=99)


def test_the_fast_path_takes_no_number_the_floor_would_refuse() -> None:
    """The fast grammar's longest double is under the setting's floor, so the fast path never
    accepts a text that the lxml path, at the lowest allowed limit, refuses for its length."""
    longest = "-" + "9" * 32 + "." + "9" * 32 + "e-1234"
    assert len(longest) <= numtext.MIN_MAX_NUMBER_CHARS
    got, _ = agree(call_doc(f"<double>{longest}</double>"))
    assert got is not xmlrpc._xmlrpc_fast.MISS
    got, _ = agree(call_doc(f"<double>{'9' * 33}</double>"))
    assert got is xmlrpc._xmlrpc_fast.MISS


# ---------------------------------------------------------------------------------------------
# fuzz (a): the fast path against the lxml path on adversarial number texts

SPACE = st.sampled_from(["", "", " ", "\n", "\t", "  \n\t ", "\r\n", "&#13;"])
SIGN = st.sampled_from(["", "", "+", "-", "--", "+-"])
ENDING = st.one_of(
    st.sampled_from(["", "", "x", ".", "e", "E", "e+", "e-", "+", "-", " ", "_", "\u0663", "0"]),
    st.characters(codec="utf-8", exclude_characters="<&"),
)


@st.composite
def number_texts(draw: st.DrawFn) -> str:
    """Digit runs of every length up to a few thousand, with signs, dots, exponents,
    whitespace and any ending character."""

    def run() -> str:
        return draw(st.sampled_from(["1", "0", "9", "5"])) * draw(
            st.one_of(st.integers(0, 25), st.integers(0, 3000))
        )

    text = draw(SIGN) + run()
    if draw(st.booleans()):
        text += "." + run()
    if draw(st.booleans()):
        text += draw(st.sampled_from(["e", "E"])) + draw(SIGN) + run()[:8]
    return draw(SPACE) + text + draw(ENDING) + draw(SPACE)


@pytest.mark.fuzz
@given(
    number_texts(),
    st.sampled_from(["double", "int", "i4", "i8", "boolean", None]),
    st.sampled_from([str, in_array, in_struct]),
)
def test_fuzz_number_texts_agree_on_both_paths(
    text: str, tag: str | None, wrap: Callable[[str], str]
) -> None:
    """Same value (types included) or the same refusal (class and message) on both paths,
    for calls and responses; ``None`` is an untyped value (a string)."""
    inner = f"<{tag}>{text}</{tag}>" if tag else text
    for doc in (call_doc(wrap(inner)), response_doc(wrap(inner))):
        with deadline(10):
            agree(doc)


@pytest.mark.fuzz
@given(
    st.tuples(st.sampled_from(["19980717T14:08:55", "1998-07-17T14:08:55"]), SPACE),
    st.sampled_from(["", ".", ",", ".5", ".123456789"]),
    st.integers(0, 3000),
    st.sampled_from(["", "Z", "+01", "-0130", "+01:30", "+01:", "x", "Zx"]),
)
def test_fuzz_datetime_texts_are_values_or_codec_errors(
    head: tuple[str, str], dot: str, n: int, zone: str
) -> None:
    text = head[1] + head[0] + dot + "1" * n + zone + head[1]
    with deadline(10):
        try:
            value = xmlrpc.loads_call(call_doc(f"<dateTime.iso8601>{text}</dateTime.iso8601>"))
        except CodecError:
            return
    assert value[1][0].year == 1998


# ---------------------------------------------------------------------------------------------
# fuzz (b): accepting or refusing a number text is linear in its length

SMALL, BIG = 4_000, 200_000


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    with contextlib.suppress(CodecError):
        fn()
    return time.perf_counter() - start


@pytest.mark.fuzz
@given(
    st.text("0123456789.+-eE \t\n", min_size=1, max_size=6),
    st.sampled_from(["", "+", "-", ".", "1.", "1e", " "]),
    st.one_of(st.sampled_from(["x", ".", "e", "-", "", "<", " x"]), st.characters(codec="utf-8")),
    st.sampled_from(["double", "int", "i8", "dateTime.iso8601"]),
    st.sampled_from([call_doc, response_doc]),
    st.sampled_from([str, in_array]),
)
def test_fuzz_number_checks_are_linear(
    motif: str,
    prefix: str,
    ending: str,
    tag: str,
    doc: Callable[[str], bytes],
    wrap: Callable[[str], str],
) -> None:
    """200,000 characters may not take more than 50x the time of 4,000 plus a 50 ms floor
    (linear work gives about 50x; the quadratic checks this replaces gave 2,500x). The best
    of three tries counts, against a busy machine; a hard deadline of 10 s a try makes a
    quadratic check fail here instead of hanging the suite."""
    if tag == "dateTime.iso8601":
        prefix = "19980717T14:08:55." + prefix
    ending = ending.replace("\x00", "")  # a NUL is refused before any parse: nothing to time

    def body(size: int) -> bytes:
        text = prefix + motif * (size // len(motif)) + ending
        return doc(wrap(f"<{tag}>{text}</{tag}>".replace("&", "&amp;")))

    loads = xmlrpc.loads_call if doc is call_doc else xmlrpc.loads_response
    small, big = body(SMALL), body(BIG)
    with deadline(10):
        small_time = min(_seconds(lambda: loads(small, max_number_chars=NO_LIMIT)) for _ in "abc")
    bound = 50 * small_time + 0.05
    tries = []
    for _ in range(3):
        with deadline(10):
            tries.append(_seconds(lambda: loads(big, max_number_chars=NO_LIMIT)))
        if tries[-1] <= bound:
            return
    pytest.fail(f"{BIG:,} characters took {min(tries):.3f} s, over {bound:.3f} s")


# ---------------------------------------------------------------------------------------------
# point 2: the encoding guard and the parser


def utf7_probe(target: str, pad: int = 300) -> bytes:
    """The issue's attack: a declaration padded past the old 200-byte scan declares UTF-7,
    and ``+ADwAIQ-`` (``<!`` in UTF-7) starts a DOCTYPE naming ``target``."""
    return (
        f"<?xml version='1.0'{' ' * pad}encoding='UTF-7'?>"
        f'+ADwAIQ-DOCTYPE methodCall SYSTEM "file://{target}"+AD4-'
        "<methodCall><methodName>m</methodName><params/></methodCall>"
    ).encode()


def doctype_probe(target: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE methodCall SYSTEM "file://{target}">'
        "<methodCall><methodName>m</methodName><params/></methodCall>"
    ).encode()


@pytest.fixture
def targets(tmp_path: Path) -> dict[str, Path]:
    """An existing file, a directory, a missing path and a FIFO nobody writes to."""
    (tmp_path / "file").write_text("secret: 42\n")
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    return {
        "file": tmp_path / "file",
        "dir": tmp_path / "dir",
        "missing": tmp_path / "missing",
        "fifo": tmp_path / "fifo",
    }


@pytest.mark.parametrize("probe", [utf7_probe, doctype_probe])
def test_a_dtd_probe_gets_one_answer_whatever_it_names(
    targets: dict[str, Path], probe: Callable[[str], bytes]
) -> None:
    answers = set()
    for path in targets.values():
        for loads in (xmlrpc.loads_call, xmlrpc.loads_response):
            with deadline(5), pytest.raises(ParseError) as info:
                loads(probe(str(path)))
            answers.add(str(info.value))
    assert len(answers) == 1, answers
    assert "secret" not in answers.pop()


@pytest.mark.parametrize("pad", [0, 150, 300, 100_000])
def test_the_whole_declaration_decides_the_encoding(pad: int) -> None:
    for name in ("UTF-7", "utf-16", "IBM037", "x-nope"):
        doc = f"<?xml version='1.0' {' ' * pad}encoding='{name}'?><methodCall/>".encode()
        with deadline(5), pytest.raises(ParseError, match="unsupported encoding"):
            xmlrpc.loads_call(doc)
    latin = f"<?xml version='1.0' {' ' * pad}encoding='ISO-8859-1'?><methodCall>"
    latin += "<methodName>caf\xe9</methodName></methodCall>"
    assert xmlrpc.loads_call(latin.encode("latin-1")) == ("caf\xe9", [])


@pytest.mark.parametrize(
    "doc",
    [
        b"<?xml version='1.0' encoding='UTF-8'?>",  # nothing after the declaration
        b"<?xml version='1.0' encoding='UTF-8' standalone='maybe'?><methodCall/>",
        b"<?xml version='1.0' encoding='UTF-8'><methodCall/>",
        b"<?xml encoding='UTF-8' version='1.0'?><methodCall/>",
        b"<?xml version='1.0' encoding=UTF-7?><methodCall/>",
        b"<?xml version='1.0' encoding='UTF-8'" + b" " * 100_000 + b"x?><methodCall/>",
        b"\xef\xbb\xbf<?xml version='1.0' encoding='ISO-8859-1'?><methodCall/>",
        "<?xml version='1.0' encoding='windows-1252'?><methodCall/>\x81".encode("latin-1"),
        b"<methodCall><!ELEMENT x ANY></methodCall>",
        b"<methodCall><methodName>m</methodName></methodCall><!ENTITY a 'b'>",
    ],
)
def test_malformed_declarations_and_stray_declarations_are_parse_errors(doc: bytes) -> None:
    with deadline(5), pytest.raises(ParseError):
        xmlrpc.loads_call(doc)


def test_comments_and_cdata_still_pass_the_guard() -> None:
    doc = (
        b"<?xml version='1.0' encoding='windows-1252' standalone='yes'?><!-- hi -->"
        b"<methodCall><methodName>m</methodName><params><param><value><string>"
        b"<![CDATA[<b>\x80</b>]]></string></value></param></params></methodCall>"
    )
    assert xmlrpc.loads_call(doc) == ("m", ["<b>\u20ac</b>"])


def test_the_parser_never_opens_an_external_subset(targets: dict[str, Path]) -> None:
    """Layer 2 alone, past the guard: lxml's ``collect_ids=False`` made libxml2 load the
    external subset a DOCTYPE names (a FIFO there hung the daemon); the parser rpcd builds
    neither loads it nor lets its resolver hand out anything."""
    for path in targets.values():
        parser = xmlrpc._parser()
        with deadline(5):
            parser.feed(f'<!DOCTYPE a SYSTEM "file://{path}"><a>x</a>'.encode())
            root = parser.close()
        assert root.text == "x"
        info: Any = root.getroottree().docinfo
        assert info.externalDTD is None
    with pytest.raises(xmlrpc._Refused):
        xmlrpc._parser().resolvers.resolve(f"file://{targets['file']}", None, None)


def test_rest_and_soap_get_the_same_guard(targets: dict[str, Path]) -> None:
    answers = set()
    for path in targets.values():
        for probe in (utf7_probe, doctype_probe):
            for parse in (rest.parse_xml, soap.parse_response):
                with deadline(5), pytest.raises(ParseError) as info:
                    parse(probe(str(path)))
                answers.add(str(info.value))
    assert answers == {xmlguard.REFUSED, "unsupported encoding 'utf-7': send UTF-8"}
    envelope = (
        '<?xml version="1.0" encoding="UTF-16"?><soapenv:Envelope xmlns:soapenv='
        '"http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><r><v>caf\xe9</v></r>'
        "</soapenv:Body></soapenv:Envelope>"
    )
    assert soap.parse_response(envelope.encode("utf-16")) == "caf\xe9"
    with pytest.raises(ParseError, match="unsupported encoding"):
        xmlrpc.loads_response(envelope.encode("utf-16"))  # XML-RPC stays UTF-8 only
    cp1252 = '<?xml version="1.0" encoding="windows-1252"?><r>\u20ac</r>'.encode("cp1252")
    assert rest.decode_response("text/xml", cp1252) == "\u20ac"


# ---------------------------------------------------------------------------------------------
# point 18: JSON-RPC numbers


def request(params_json: str) -> bytes:
    return f'{{"jsonrpc":"2.0","method":"hello.echo","params":{params_json},"id":7}}'.encode()


@pytest.mark.parametrize(
    "params",
    ["[1e999]", "[-1e999]", '{"a":[{"b":1E+400}]}', "[1" + "0" * 400 + ".0]", "[0.5e0000999]"],
)
def test_json_numbers_that_overflow_are_invalid_requests(params: str) -> None:
    with pytest.raises(InvalidRequest, match="out of range") as info:
        jsonrpc.loads_request(request(params))
    assert info.value.code == INVALID_REQUEST
    with pytest.raises(InvalidRequest, match="out of range"):
        jsonrpc.loads_response(f'{{"jsonrpc":"2.0","result":{params},"id":1}}'.encode())


@pytest.mark.parametrize("params", ["[NaN]", "[Infinity]", "[-Infinity]", '{"a":NaN}'])
def test_json_nan_and_infinity_literals_are_parse_errors(params: str) -> None:
    with pytest.raises(ParseError, match="not valid JSON"):
        jsonrpc.loads_request(request(params))


def test_json_numbers_are_bounded_and_utf16_is_refused() -> None:
    assert jsonrpc.loads_request(request("[1e-999, 1.5e300, 123456789012345678]")).params == [
        0.0,
        1.5e300,
        123456789012345678,
    ]
    with pytest.raises(LimitExceeded, match="max_number_chars"):
        jsonrpc.loads_request(request("[0." + "1" * 5000 + "]"))
    with pytest.raises(LimitExceeded, match="64 bits"):
        jsonrpc.loads_request(request("[" + "9" * 100_000 + "]"))
    with pytest.raises(ParseError, match="UTF-8"):  # json.loads would decode it, 1e999 and all
        jsonrpc.loads_request(request("[1e999]").decode().encode("utf-16"))


# ---------------------------------------------------------------------------------------------
# fuzz (c): the JSON-RPC decoder on bytes and near-JSON

#: Number tokens json.dumps never writes, put in place of their placeholder strings.
RAW_NUMBERS = [
    "1e999",
    "-1E+400",
    "0.5e0000999",
    "1" + "0" * 400 + ".0",
    "1e-999",
    "9" * 25,
    "-" + "9" * 19,
    "0." + "3" * 5000,
    "12345678901234567.5e-3",
]
JSON_VALUES = st.recursive(
    st.one_of(  # half the leaves a raw number token
        st.sampled_from(range(len(RAW_NUMBERS))).map(lambda i: f"@raw{i}@"),
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8),
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
SPLICES = st.sampled_from(
    [
        b"1e999",
        b"-1E+400",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"1" * 30,
        b"0." + b"1" * 400,
        b"\x00",
        b"\xff",
        b"\xef\xbb\xbf",
        b"[",
        b"]",
        b"{",
        b"}",
        b'"',
        b"\\u",
        b"\\ud800",
        b",",
        b":",
        b"[" * 200,
        b'{"jsonrpc":"2.0"',
        b'"id":',
        b'"params":',
        b'"result":',
        b'"error":{"code":',
    ]
)


@st.composite
def near_json(draw: st.DrawFn) -> bytes:
    value = draw(JSON_VALUES)
    envelope: dict[str, Any] = draw(
        st.sampled_from(
            [
                {"jsonrpc": "2.0", "method": "m", "params": [value], "id": 1},
                {"jsonrpc": "2.0", "result": value, "id": 1},
                {"jsonrpc": "2.0", "error": {"code": value, "message": value}, "id": 1},
            ]
        )
    )
    text = json.dumps([envelope] if draw(st.booleans()) else envelope)
    for i, token in enumerate(RAW_NUMBERS):
        text = text.replace(f'"@raw{i}@"', token)
    data = text.encode()
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 3))
        data = data[:at] + draw(SPLICES) + data[at + cut :]
    return data


def _strict(value: Any) -> None:
    """No non-finite float and no int beyond 64 bits anywhere in a decoded value."""
    if isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        assert -(2**63) <= value < 2**63
    elif isinstance(value, list):
        for item in value:
            _strict(item)
    elif isinstance(value, dict):
        for item in value.values():
            _strict(item)


@pytest.mark.fuzz
@given(
    st.lists(st.sampled_from([b"1", b"0", b"9", b"e", b"E", b"+", b"-", b".", b"x"]), max_size=40)
)
def test_fuzz_the_cheap_number_screen_is_the_regex_it_replaces(pieces: list[bytes]) -> None:
    """``_suspect`` (a byte fold and three ``find``) answers as the regex below would."""
    data = b"".join(pieces)
    regex = re.compile(rb"[0-9]{17}|[eE][-+]?[0-9]{3}")
    assert jsonrpc._suspect(data) == (regex.search(data) is not None)


@pytest.mark.fuzz
@given(st.one_of(st.binary(max_size=200), near_json()))
def test_fuzz_json_rpc_decoder_raises_only_codec_errors(data: bytes) -> None:
    try:
        parsed = jsonrpc.loads_request(data)
    except CodecError:
        pass
    else:
        for item in parsed if isinstance(parsed, list) else [parsed]:
            if isinstance(item, jsonrpc.JsonRpcRequest):
                _strict(item.params)
                _strict(item.id)
    with contextlib.suppress(CodecError, RemoteFault):
        _strict(jsonrpc.loads_response(data))
