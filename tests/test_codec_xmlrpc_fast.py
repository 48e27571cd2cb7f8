"""The XML-RPC decoder's fast path (``rpcd/codecs/_xmlrpc_fast.py``) against the lxml path.

For any document the two paths must agree: the same value (same types all the way down) or
the same error (same class, same message). The fast path may only ever *decline* (``MISS``).
"""

from __future__ import annotations

import re
import xmlrpc.client as xc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcd.codecs import _xmlrpc_fast as fast
from rpcd.codecs import xmlrpc
from tests.codec_helpers import agree, same

STRUCT_50 = {f"field_{i}": (i if i % 3 else f"value {i} & <more>") for i in range(50)}


def call(params_xml: str, decl: str = "<?xml version='1.0'?>", method: str = "m") -> bytes:
    return (
        f"{decl}<methodCall><methodName>{method}</methodName>"
        f"<params>{params_xml}</params></methodCall>"
    ).encode()


def response(param_xml: str, decl: str = "<?xml version='1.0'?>") -> bytes:
    return f"{decl}<methodResponse><params>{param_xml}</params></methodResponse>".encode()


def param(value_xml: str) -> str:
    return f"<param><value>{value_xml}</value></param>"


# ---------------------------------------------------------------------------------------------
# the fast path is taken where it should be (else the comparisons below prove little)

FAST_CALLS: list[tuple[str, list[Any]]] = [
    ("calc.add", [2, 3]),
    ("echo", [STRUCT_50]),
    ("sum", [list(range(10_000))]),
    ("mixed", [[1, "a & b", True, 2.5, "", " x\n", -(2**63), 2**63 - 1]]),
    ("flat", ["s", 1.5, False, None, {}, [], {"": ""}, {"k": [1][0]}]),
]


def stdlib_dumps(params: tuple[Any, ...], method: str | None) -> bytes:
    """The stdlib's layout (newlines between tags), with i8 written as ``<i8>`` (it refuses)."""
    big = [p for p in params if isinstance(p, list) and any(type(x) is int for x in p)]
    for p in big:
        p[:] = [f"I8:{x}" if type(x) is int and not -(2**31) <= x < 2**31 else x for x in p]
    try:
        text = xc.dumps(params, method, methodresponse=method is None, allow_none=True)
    finally:
        for p in big:
            p[:] = [int(x[3:]) if isinstance(x, str) and x.startswith("I8:") else x for x in p]
    return re.sub(r"<string>I8:(-?\d+)</string>", r"<i8>\1</i8>", text).encode()


@pytest.mark.parametrize(("method", "params"), FAST_CALLS)
def test_common_documents_take_the_fast_path(method: str, params: list[Any]) -> None:
    for doc in (stdlib_dumps(tuple(params), method), xmlrpc.dumps_call(method, params)):
        got_call, _ = agree(doc)
        assert got_call is not fast.MISS
        assert same(got_call, (method, params), ordered=True)
    for value in params:
        for doc in (stdlib_dumps((value,), None), xmlrpc.dumps_response(value)):
            _, got_response = agree(doc)
            assert got_response is not fast.MISS
            assert same(got_response, value, ordered=True)


@pytest.mark.parametrize(
    "doc",
    [
        # fine XML, kept for lxml: nested values, attributes, comments, CDATA, references
        call(param("<array><data><value><array><data/></array></value></data></array>")),
        call(param("<struct><member><name>a</name><value><struct/></value></member></struct>")),
        call(param("<int a='1'>5</int>")),
        call(param("<string><!-- c -->x</string>")),
        call(param("<string><![CDATA[<x>]]></string>")),
        call(param("<string>&#13;&#x41;</string>")),
        call(param("<string>a\r\nb</string>")),
        call(param("<dateTime.iso8601>19980717T14:08:55</dateTime.iso8601>")),
        call(param("<base64>aGk=</base64>")),
        call(param("<value/>".replace("<value/>", "<string/>"))),
        call("<param><value/></param>"),
        call(param("<int>0000000000000000000001</int>")),
        call(param("<boolean>1</boolean>"), decl="<?xml version='1.0' encoding='latin-1'?>"),
        b"\xef\xbb\xbf" + call(param("<int>1</int>")),
        # errors: the lxml path names them
        call(param("<int></int>")),
        call(param("<int>1_0</int>")),
        call(param("<int>99999999999999999999</int>")),
        call(param("<i8>9223372036854775808</i8>")),
        call(param("<array><data><value><int>-9223372036854775809</int></value></data></array>")),
        call(
            param("<array><data><value/><value><i4>9223372036854775808</i4></value></data></array>")
        ),
        call(
            param(
                "<array><data><value>x</value><value><i4>9999999999999999999</i4></value></data></array>"
            )
        ),
        call(
            param(
                "<struct><member><name>a</name><value><i8>-9999999999999999999</i8></value></member></struct>"
            )
        ),
        call(param("<double>1e999</double>")),
        call(param("<boolean>2</boolean>")),
        call(param("<string>]]></string>")),
        call(param("<string>\x01</string>")),
        call(param("<string>&bogus;</string>")),
        call(param("<int>1</int>"), method=" "),
        call(param("<int>1</int>"), decl=" <?xml version='1.0'?>"),
        call(param("<struct><member><name>a</name></member></struct>")),
        call(param("<array><data><value><int>1</int></value>junk</data></array>")),
        b"<?xml version='1.0'?><!DOCTYPE x><methodCall/>",
    ],
)
def test_other_documents_are_left_to_lxml(doc: bytes) -> None:
    got_call, _ = agree(doc)
    assert got_call is fast.MISS


def test_depth_limit_is_the_general_one() -> None:
    doc = call(param("<array><data><value><int>1</int></value></data></array>"))
    assert agree(doc, max_depth=0)[0] is fast.MISS
    assert agree(doc, max_depth=1)[0] == ("m", [[1]])


def test_the_comparison_catches_a_wrong_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agreement check is not vacuous: a fast path that forgot to unescape fails it."""
    monkeypatch.setattr(fast, "_unescape", lambda s: s)
    with pytest.raises(AssertionError):
        agree(call(param("<string>a &amp; b</string>")))


# ---------------------------------------------------------------------------------------------
# generated documents: inside the grammar, then one edit away from it, then anything near it

CLEAN_WS = st.sampled_from(["", "", " ", "\n", "\t", "\r\n", "  \n  "])
NOISY_WS = st.one_of(CLEAN_WS, st.sampled_from(["\r", "\x0b", "\x0c", "\xa0", "x"]))
CLEAN_INT = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.integers(-1000, 1000).map(str),
    st.sampled_from([" 7 ", "+3", "-0", "007", "9" * 18, " \n5\t"]),
)
NOISY_INT = st.one_of(
    CLEAN_INT,
    st.integers(-(2**64), 2**64).map(str),
    st.sampled_from(["", "1_000", "\u0663", "0x10", "1.0", "9" * 19, "0" * 30 + "1", "5\r"]),
    st.sampled_from(["\x0b5", "- 5", "&#49;", "1&amp;", "1 2", "--1"]),
)
CLEAN_PIECES = st.sampled_from(
    [
        *"ab \t\n\x7f\x85\xe9\u20ac\U0001f600]'\"",
        "&amp;",
        "&lt;",
        "&gt;",
        "&quot;",
        "&apos;",
        "&amp;lt;",
        "]]",
    ]
)
NOISY_PIECES = st.one_of(
    CLEAN_PIECES,
    st.sampled_from(
        [
            "<",
            ">",
            "&",
            "\r",
            "\x01",
            "&#13;",
            "&#x41;",
            "]]>",
            "&bogus;",
            "<![CDATA[x]]>",
            "<!-- c -->",
            "<?pi x?>",
            "\ufffe",
            "\ud800",
            "<b/>",
        ]
    ),
)
CLEAN_DOUBLE = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from([".5", "5.", "1e5", " 2.5 ", "-0.0", "1E-3"]),
)
NOISY_DOUBLE = st.one_of(
    CLEAN_DOUBLE, st.sampled_from(["", "1e999", "-1e999", "nan", "inf", "1_0.0", "0x1p3", "1e"])
)
CLEAN_BOOL = st.sampled_from(["0", "1", " 1 ", "\n0\n"])
NOISY_BOOL = st.one_of(CLEAN_BOOL, st.sampled_from(["2", "", "true", "01", "\r1"]))
CLEAN_ODD = st.sampled_from(["<nil/>"])
NOISY_ODD = st.sampled_from(
    [
        "<nil/>",
        "<nil></nil>",
        "<nil> </nil>",
        "<string/>",
        "<int/>",
        "<i1>1</i1>",
        "<x>1</x>",
        "<ex:i8 xmlns:ex='http://ws.apache.org/xmlrpc/namespaces/extensions'>1</ex:i8>",
    ]
)


@st.composite
def documents(draw: st.DrawFn, noisy: bool) -> bytes:
    ws = NOISY_WS if noisy else CLEAN_WS
    ints = NOISY_INT if noisy else CLEAN_INT
    text = st.lists(NOISY_PIECES if noisy else CLEAN_PIECES, max_size=6).map("".join)
    scalar = st.one_of(
        st.tuples(st.sampled_from(["int", "i4", "i8"]), ints).map(
            lambda t: f"<{t[0]}>{t[1]}</{t[0]}>"
        ),
        text.map(lambda s: f"<string>{s}</string>"),
        text,  # an untyped value
        (NOISY_DOUBLE if noisy else CLEAN_DOUBLE).map(lambda s: f"<double>{s}</double>"),
        (NOISY_BOOL if noisy else CLEAN_BOOL).map(lambda s: f"<boolean>{s}</boolean>"),
        NOISY_ODD if noisy else CLEAN_ODD,
    )

    def value_of(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        wrapped = st.tuples(ws, inner, ws).map(lambda t: f"<value>{t[0]}{t[1]}{t[2]}</value>")
        if not noisy:
            return wrapped
        return st.one_of(
            wrapped, st.sampled_from(["<value/>", "<value><int>1</int><int>2</int></value>"])
        )

    def array_of(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.tuples(st.lists(st.tuples(ws, values), max_size=8), ws).map(
            lambda t: "<array><data>" + "".join(w + v for w, v in t[0]) + t[1] + "</data></array>"
        )

    def struct_of(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        member = st.tuples(ws, text, ws, values, ws).map(
            lambda t: f"{t[0]}<member>{t[0]}<name>{t[1]}</name>{t[2]}{t[3]}{t[4]}</member>"
        )
        return st.tuples(st.lists(member, max_size=8), ws).map(
            lambda t: "<struct>" + "".join(t[0]) + t[1] + "</struct>"
        )

    int_array = st.lists(st.tuples(ws, ints, ws), max_size=12).map(
        lambda items: (
            "<array><data>"
            + "".join(f"{a}<value>{b}<int>{n}</int>{b}</value>" for a, n, b in items)
            + "</data></array>"
        )
    )
    scalar_value = value_of(scalar)
    container = st.one_of(array_of(scalar_value), struct_of(scalar_value), int_array)
    nested = st.one_of(array_of(value_of(container)), struct_of(value_of(container)))
    value = value_of(st.one_of(scalar, container, container, nested))

    decls = ["", "<?xml version='1.0'?>", '<?xml version="1.0" encoding="UTF-8"?>\n']
    decls += ["<?xml version = '1.0' encoding = 'utf-8' ?>"]
    if noisy:
        decls += ["<?xml version='1.1'?>", "<?xml version='1.0' encoding='latin-1'?>", "\ufeff"]
        decls += [" <?xml version='1.0'?>", "<?xml version='1.0' standalone='yes'?>"]
        decls += ["<!DOCTYPE x>", "<?xml version='1.0' encoding='utf-16'?>"]
    decl, w = draw(st.sampled_from(decls)), draw(ws)
    params = "".join(
        f"{a}<param>{b}{v}{c}</param>"
        for a, b, v, c in draw(st.lists(st.tuples(ws, ws, value, ws), max_size=3))
    )
    tail = draw(st.sampled_from(["", "\n", " \r\n"] + (["<!-- c -->", "x"] if noisy else [])))
    if draw(st.booleans()):
        names = ["m", " hello.sum ", "a&amp;b", "\u20ac"] + (["", "a<b", " "] if noisy else [])
        name = draw(st.sampled_from(names))
        body = f"<methodCall>{w}<methodName>{name}</methodName>{w}<params>{params}{w}</params>"
        doc = f"{decl}{w}{body}{w}</methodCall>{tail}"
    else:
        doc = f"{decl}{w}<methodResponse>{w}<params>{params}</params>{w}</methodResponse>{tail}"
    return doc.encode("utf-8", "surrogatepass")


EDITS = st.sampled_from(
    [
        "",
        "<",
        ">",
        "&",
        "/",
        "\r",
        "\x00",
        "\x01",
        " ",
        "\n",
        "x",
        "1",
        "-",
        "]]>",
        "&amp;",
        "&#13;",
        "\ufffe",
        "<!--c-->",
        "<![CDATA[y]]>",
        "<!DOCTYPE a>",
        "<b/>",
        "\u20ac",
        "\xff",
    ]
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(noisy=False), st.sampled_from([0, 1, 2, 64]))
def test_documents_in_the_grammar_agree(doc: bytes, max_depth: int) -> None:
    agree(doc, max_depth)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(noisy=False), st.data())
def test_documents_one_edit_away_agree(doc: bytes, data: st.DataObject) -> None:
    """One byte string cut out of, put into or written over a document of the grammar."""
    at = data.draw(st.integers(0, len(doc)))
    cut = data.draw(st.integers(0, 2))
    edit = data.draw(EDITS).encode("utf-8", "surrogatepass")
    agree(doc[:at] + edit + doc[at + cut :])


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(noisy=True), st.sampled_from([0, 1, 64]))
def test_documents_near_the_grammar_agree(doc: bytes, max_depth: int) -> None:
    agree(doc, max_depth)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(CLEAN_WS, NOISY_INT, CLEAN_WS), min_size=1, max_size=40),
    st.integers(0, 39),
)
def test_int_arrays_agree(items: list[tuple[str, str, str]], k: int) -> None:
    """The bulk int path: one odd member anywhere (a bad int, an i4, a string) is caught."""
    members = [f"{a}<value>{b}<int>{n}</int>{b}</value>" for a, n, b in items]
    agree(call(param("<array><data>" + "".join(members) + "</data></array>")))
    members[k % len(members)] = "<value><i4>7</i4></value>"
    agree(call(param("<array><data>" + "".join(members) + "</data></array>")))
    members[k % len(members)] = "<value>7</value>"
    agree(call(param("<array><data>" + "".join(members) + "</data></array>")))


# ---------------------------------------------------------------------------------------------
# dumps_call keeps each method's document head


def test_dumps_call_head_cache_changes_nothing() -> None:
    class Name(str):
        pass

    fresh = xc.loads(xmlrpc.dumps_call("a<b&c", [1, "x"]))
    again = xc.loads(xmlrpc.dumps_call("a<b&c", [1, "x"]))  # from the cache
    sub = xc.loads(xmlrpc.dumps_call(Name("a<b&c"), [1, "x"]))  # a subclass is not cached
    assert fresh == again == sub == ((1, "x"), "a<b&c")
    assert "a<b&c" in xmlrpc._CALL_HEADS and Name("a<b&c") in xmlrpc._CALL_HEADS
    assert not any(type(k) is not str for k in xmlrpc._CALL_HEADS)
    for bad in ("", "bad\x00name"):
        with pytest.raises(ValueError):
            xmlrpc.dumps_call(bad, [])
        assert bad not in xmlrpc._CALL_HEADS
    with pytest.raises(TypeError):
        xmlrpc.dumps_call("a<b&c", "not a sequence")  # checked on a cached name too


def test_dumps_call_head_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xmlrpc, "_CALL_HEADS", {})
    for i in range(xmlrpc._CALL_HEADS_MAX + 50):
        assert xc.loads(xmlrpc.dumps_call(f"m{i}", [i]))[1] == f"m{i}"
    assert len(xmlrpc._CALL_HEADS) == xmlrpc._CALL_HEADS_MAX
