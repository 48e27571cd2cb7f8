"""The TOML parser: compiled tomli where installed, stdlib tomllib otherwise, same findings.

tomli is the upstream of CPython's tomllib (same grammar, same error messages) and ships
mypyc-compiled wheels; rpcd parses with it for speed. These tests hold the two to the same
``toml-syntax`` finding, byte for byte, on every syntax-error fixture of the suite, on
hand-written broken TOML, and on generated and mutated documents (hypothesis).
"""

from __future__ import annotations

import datetime
import functools
import math
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tree_helpers import REPO, copy_example

from rpcd.config import build
from rpcd.config.findings import Finding
from rpcd.config.parse import (
    MAX_NESTING,
    PARSER,
    TOMLI,
    TomlParser,
    _bracket_delta,
    _bracket_delta_slow,
    decode_text,
    parse_toml,
    stdlib_parser,
)
from tests import test_rules

TOMLLIB = stdlib_parser()

pytestmark = pytest.mark.skipif(TOMLI is None, reason="tomli is not installed")

EXAMPLE_FILES = sorted(
    p
    for part in ("rpcd.toml", "connections.d", "services.d")
    for p in ([REPO / part] if part.endswith(".toml") else (REPO / part).rglob("*.toml"))
)
EXAMPLE_TEXTS = [p.read_text(encoding="utf-8") for p in EXAMPLE_FILES]
HELLO = (REPO / "services.d" / "hello.toml").read_text(encoding="utf-8")
PEERS = (REPO / "services.d" / "peers.toml").read_text(encoding="utf-8")

# Syntax errors written elsewhere in the suite (test_bad_input, test_catalog, test_reload,
# test_rules), then hand-written ones: every message tomllib has, and its positions.
SUITE = [
    ("nul bytes", "version = 1\n\x00\x00\n"),
    (
        "duplicate key",
        'version = 1\n\n[[connection]]\nclass = "moodle_users"\nid = "a"\nid = "b"\n',
    ),
    ("duplicate table", 'version = 1\n[class]\nid = "a_b"\n[class]\nname = "x"\n'),
    ("no value", "version = 1\nx = \n"),
    ("unclosed array-of-tables header", PEERS + "\n[[peer]\n"),
    ("duplicate key (reload)", HELLO.replace('name = "add"', 'name = "add"\nname = "again"', 1)),
    *(
        (f"test_rules {case.rule}", case.bad.replace(test_rules.MARK, ""))
        for case in test_rules.CASES
        if case.rule == "toml-syntax"
    ),
]
HAND_WRITTEN = [
    ("duplicate key, dotted", "a.b = 1\na.b = 2\n"),
    ("duplicate key in inline table", "a = { b = 1, b = 2 }\n"),
    ("duplicate key, quoted and bare", 'a = 1\n"a" = 2\n'),
    ("table redefines a key", "a = 1\n[a]\nb = 2\n"),
    ("table after array of tables", "[[a]]\n[a]\n"),
    ("array of tables after static array", "a = []\n[[a]]\n"),
    ("table declared twice, dotted", "[a.b]\nx = 1\n[a.b]\ny = 2\n"),
    ("inline table extended by a dotted key", "a = { b = 1 }\na.c = 2\n"),
    ("inline table extended by a header", "a = { b = 1 }\n[a.c]\n"),
    ("inline table extended inside", "a = { b = { c = 1 }, b.d = 2 }\n"),
    ("dotted key redefines a table", "[a.b]\nc = 1\n[a]\nb.d = 2\n"),
    ("bad escape", 'a = "\\q"\n'),
    ("bad unicode escape", 'a = "\\uZZZZ"\n'),
    ("surrogate escape", 'a = "\\uD800"\n'),
    ("escape past unicode", 'a = "\\U00110000"\n'),
    ("backslash at end", 'a = "abc\\'),
    ("unterminated basic string", 'a = "abc\nb = 1\n'),
    ("unterminated literal string", "a = 'abc\nb = 1\n"),
    ("unterminated multi-line string", 'a = """abc\nb = 1\n'),
    ("unterminated multi-line literal", "a = '''abc\n"),
    ("string at end of file", 'a = "abc'),
    ("invalid month", "a = 1979-13-01\n"),
    ("invalid day", "a = 1979-02-30\n"),
    ("invalid hour", "a = 1979-05-27T25:00:00\n"),
    ("invalid second", "a = 07:32:60\n"),
    ("invalid offset", "a = 1979-05-27T07:32:00+25:00\n"),
    ("date with bad separator", "a = 1979/05/27\n"),
    ("unclosed array", "a = [1, 2\n"),
    ("unclosed array at end", "a = [1, 2"),
    ("unclosed inline table", "a = { b = 1\n"),
    ("newline in inline table", "a = { b = 1,\nc = 2 }\n"),
    ("trailing comma in inline table", "a = { b = 1, }\n"),
    ("missing comma in array", "a = [1 2]\n"),
    ("value without key", "= 1\n"),
    ("key without equals", "a\n"),
    ("two values on a line", "a = 1 b = 2\n"),
    ("bare word value", "a = yes\n"),
    ("capitalised boolean", "a = True\n"),
    ("leading zero", "a = 007\n"),
    ("double underscore in number", "a = 1__0\n"),
    ("plus on hex", "a = +0x10\n"),
    ("control character in string", 'a = "x\x01y"\n'),
    ("control character in comment", "a = 1 # x\x7fy\n"),
    ("tab in bare key", "a\tb = 1\n"),
    ("empty bare key", ". = 1\n"),
    ("unclosed header", "[a\nb = 1\n"),
    ("header with trailing text", "[a] b = 1\n"),
    ("lone carriage return", "a = 1\rb = 2\n"),
    ("crlf then error", "a = 1\r\nb = 1\r\nb = 2\r\n"),
    ("error on the first line", "a == 1\n"),
    ("empty document, one bracket", "["),
    ("deep nesting, then an error", "a = " + "[" * 600 + "]" * 600 + "\nb = = 1\n"),
    ("error inside deep nesting", "a = " + "[" * 700 + "x" + "]" * 700 + "\n"),
    ("nested past the limit", "a = " + "[" * 1005 + "]" * 1005 + "\n"),
    ("nested past the limit, then an error", "a = " + "[1," * 1005 + "]" * 1005 + "\n= 1\n"),
    ("inline tables past the limit", "a = " + "{ b = " * 1005 + "1" + " }" * 1005 + "\n"),
    ("far past the limit", "a = " + "[" * 5000 + "]" * 5000 + "\n"),
]


def _finding(parser: TomlParser, text: str) -> Finding | None:
    """The parse finding, or ``None`` for a document that parses."""
    result = parse_toml("connections.d/x.toml", text, parser=parser)
    return result if isinstance(result, Finding) else None


def test_tomli_is_the_parser() -> None:
    assert PARSER is TOMLI
    assert TOMLI is not None and TOMLI.name == "tomli"


def test_tomllib_is_the_fallback_without_tomli() -> None:
    code = (
        "import sys; sys.modules['tomli'] = None\n"
        "from rpcd.config import parse\n"
        "assert parse.TOMLI is None and parse.PARSER is parse.stdlib_parser(), parse.PARSER\n"
        "print(parse.parse_toml('connections.d/x.toml', 'a = 1\\na = 2\\n'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert TOMLI is not None
    assert str(_finding(TOMLI, "a = 1\na = 2\n")) in proc.stdout


@pytest.mark.parametrize(("name", "text"), SUITE + HAND_WRITTEN, ids=lambda v: str(v)[:40])
def test_same_finding_from_both_parsers(name: str, text: str) -> None:
    assert TOMLI is not None
    fast, stdlib = _finding(TOMLI, text), _finding(TOMLLIB, text)
    assert stdlib is not None, f"{name}: not a syntax error at all"
    assert fast == stdlib
    assert fast.rule == "toml-syntax"


DEEP_SHAPES = {
    "empty arrays": lambda k: "a = " + "[" * k + "]" * k,
    "arrays around a string": lambda k: "a = " + "[" * k + '"x\\u0041"' + "]" * k,
    "inline tables": lambda k: "a = " + "{b=" * k + "1" + "}" * k,
    "mixed": lambda k: "a = " + "[{b=" * (k // 2) + "1" + "}]" * (k // 2),
    "after headers": lambda k: "[x.y]\n[[w]]\na = " + "[" * k + "1979-05-27" + "]" * k,
    "then an error": lambda k: "a = " + "[" * k + "1" + "]" * k + "\nb = c\n",
}


@pytest.mark.parametrize("shape", DEEP_SHAPES)
def test_same_nesting_limit_from_both_parsers(shape: str) -> None:
    """tomllib runs out of stack near 500 levels, compiled tomli refuses past 1,000; rpcd gives
    the same finding (or the same document) on either side of the limit, whichever parses."""
    assert TOMLI is not None
    outcomes = set()
    for k in [400, 600, *range(MAX_NESTING - 3, MAX_NESTING + 4)]:
        text = DEEP_SHAPES[shape](k)
        fast, stdlib = _finding(TOMLI, text), _finding(TOMLLIB, text)
        assert fast == stdlib, k
        outcomes.add(fast)
    assert len(outcomes) == 2  # the limit is within the range


def test_the_suite_fixtures_were_found() -> None:
    assert sum(name.startswith("test_rules") for name, _ in SUITE) >= 1


def test_non_utf8_is_refused_before_either_parser() -> None:
    data = 'version = 1\nname = "Universit\xe4t"\n'.encode("latin-1")
    found = decode_text("connections.d/x.toml", data)
    assert isinstance(found, Finding) and found.rule == "file-encoding"
    assert TOMLI is not None
    # and what a parser would have made of the same bytes as Latin-1 text is the same anyway
    text = data.decode("latin-1")
    assert _outcome(TOMLI, text) == _outcome(TOMLLIB, text)


def test_whole_tree_findings_are_the_same(tmp_path: Path) -> None:
    """Through ``build``: the same report, whichever parser the files go through."""
    root = copy_example(tmp_path / "tree")
    for i, (_, text) in enumerate(SUITE + HAND_WRITTEN):
        (root / "connections.d" / f"broken{i:02d}.toml").write_text(text, encoding="utf-8")
    with_tomli = [f.as_text() for f in build(root).report]
    stdlib = functools.partial(parse_toml, parser=TOMLLIB)
    with mock.patch("rpcd.config.document.parse_toml", stdlib):
        with_tomllib = [f.as_text() for f in build(root).report]
    assert with_tomli == with_tomllib
    assert sum("toml-syntax" in line for line in with_tomli) == len(SUITE + HAND_WRITTEN)


# --- property: the two parsers agree on anything -----------------------------------------------


def _outcome(parser: TomlParser, text: str) -> tuple[Any, ...]:
    """What a parser makes of ``text``: the value (as its repr: nan == nan), the error and its
    position, or running out of stack; and rpcd's finding for it."""
    try:
        raw: tuple[Any, ...] = ("value", repr(parser.loads(text)))
    except RecursionError:
        raw = ("too deep",)
    except parser.error as exc:
        raw = ("error", str(exc))
    return raw, _finding(parser, text)


def assert_agree(text: str) -> None:
    assert TOMLI is not None
    fast, stdlib = _outcome(TOMLI, text), _outcome(TOMLLIB, text)
    if stdlib[0] == ("too deep",):  # tomllib's stack ends first; the finding must not differ
        assert fast[1] == stdlib[1]
    else:
        assert fast == stdlib


# Characters that matter to TOML, so that a mutation often changes the meaning.
SIGNIFICANT = [*"\"'[]{}=.,#\\\n\r\t -+:_0123456789eEnTZ", "\x00", "\x7f", "é", '"""']


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """``base`` with a few characters (or a line) deleted, inserted or duplicated."""
    text = draw(base)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["delete", "insert", "duplicate", "duplicate line"]))
        if how == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 3)) :]
        elif how == "insert":
            char = draw(st.sampled_from(SIGNIFICANT) | st.characters(codec="utf-8"))
            text = text[:at] + char + text[at:]
        elif how == "duplicate":
            text = text[:at] + text[at : at + draw(st.integers(1, 8))] + text[at:]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                line = draw(st.sampled_from(lines))
                where = draw(st.integers(0, len(lines)))
                text = "".join([*lines[:where], line, *lines[where:]])
    return text


keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6) | (
    st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True)
)
scalars = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True)
    | st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10)
    | st.dates()
    | st.times()
    | st.datetimes(timezones=st.none() | st.timezones())
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
documents = st.dictionaries(keys, values, max_size=6).map(tomli_w.dumps)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(st.sampled_from(EXAMPLE_TEXTS)))
def test_parsers_agree_on_mutated_example_files(text: str) -> None:
    assert_agree(text)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents | mutated(documents))
def test_parsers_agree_on_generated_documents(text: str) -> None:
    assert_agree(text)


def test_the_property_can_fail() -> None:
    """A parser that is off by one column, or reads one value differently, is caught."""

    def shifted(text: str) -> dict[str, Any]:
        try:
            return TOMLLIB.loads(text)
        except TOMLLIB.error as exc:
            message = str(exc).replace("column ", "column 1")
            raise TOMLLIB.error(message) from None

    def rounded(text: str) -> dict[str, Any]:
        document = TOMLLIB.loads(text)
        return {
            k: round(v) if isinstance(v, float) and math.isfinite(v) else v
            for k, v in document.items()
        }

    broken = "a = 1\na = 2\n"
    assert _outcome(TomlParser("x", shifted, TOMLLIB.error), broken) != _outcome(TOMLLIB, broken)
    assert _outcome(TomlParser("x", rounded, TOMLLIB.error), "a = 1.5\n") != _outcome(
        TOMLLIB, "a = 1.5\n"
    )
    with (
        mock.patch(f"{__name__}.TOMLI", TomlParser("x", shifted, TOMLLIB.error)),
        pytest.raises(AssertionError),
    ):
        assert_agree(broken)


def test_values_are_the_same_on_the_example_tree() -> None:
    assert TOMLI is not None
    for text in EXAMPLE_TEXTS:
        assert TOMLI.loads(text) == TOMLLIB.loads(text)
    assert isinstance(TOMLI.loads("a = 1979-05-27")["a"], datetime.date)


# --- key positions: the line scanner's bracket count ---------------------------------------------


@settings(max_examples=2000, deadline=None)
@given(st.text(st.sampled_from(list("[]{}\"'#\\ ab=,.\t")), max_size=30))
def test_bracket_delta_matches_the_character_walk(line: str) -> None:
    assert _bracket_delta(line) == _bracket_delta_slow(line)


@pytest.mark.parametrize(
    "text",
    [
        "version = 1\n\na = " + "[" * 1005 + "]" * 1005 + "\n",
        "version = 1\n\na = " + "{ b = " * 1005 + "1" + " }" * 1005 + "\n",
        "version = 1\n\n" + ".".join(["a"] * 1005) + " = 1\n",
    ],
    ids=["arrays", "inline tables", "dotted key"],
)
def test_past_the_parser_limit_the_finding_has_a_line(text: str) -> None:
    """Past tomli's own limits (1,000 levels, 1,000 key parts) the finding still says where."""
    assert TOMLI is not None
    found = _finding(TOMLI, text)
    assert found is not None and found.rule == "toml-syntax"
    assert (found.file, found.line) == ("connections.d/x.toml", 3)
    assert "nested more than 1,000 levels" in found.message
