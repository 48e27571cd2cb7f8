"""TOML text → Python data, and key positions for findings.

The parser is ``tomli`` where it is installed (a dependency): the upstream project that
CPython's ``tomllib`` was copied from, same grammar and the same error messages, shipped as
mypyc-compiled wheels that parse faster (docs/performance.md). Without it, ``tomllib`` parses; the
findings are the same either way (tests/test_config_parse.py holds them to that).

The parser keeps no positions, so ``KeyIndex`` scans the source once, lazily (only for files
that have findings), and maps key paths such as ``("connection", 2, "credentials")`` to the
line and column where the key is written. Keys inside inline tables and elements of arrays
(also multi-line ones) are found by scanning forward from the nearest indexed key.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from rpcd.config.findings import Finding

Path_ = tuple[str | int, ...]


class TomlParser(NamedTuple):
    """A ``loads`` function and the error it raises on a document that is not TOML."""

    name: str
    loads: Callable[[str], dict[str, Any]]
    error: type[ValueError]


@functools.cache
def stdlib_parser() -> TomlParser:
    """``tomllib``, imported only when it parses (else ~6 million instructions per start-up)."""
    import tomllib

    return TomlParser("tomllib", tomllib.loads, tomllib.TOMLDecodeError)


TOMLI: TomlParser | None
try:
    import tomli
except ImportError:  # pragma: no cover - tomli is a dependency; tomllib is the fallback
    TOMLI = None
else:
    TOMLI = TomlParser("tomli", tomli.loads, tomli.TOMLDecodeError)
PARSER = TOMLI or stdlib_parser()

# Compiled tomli refuses a value inside more than this many arrays and inline tables (its C
# stack would not take more). Pure-Python tomllib runs out of Python stack near 500 levels; as
# the fallback it is given the stack to go on and is then held to tomli's limit, exactly.
# (tomli sets its limit to the recursion limit when it is imported: 1,000 unless raised.)
MAX_NESTING: int = getattr(sys.modules.get("tomli._parser"), "MAX_INLINE_NESTING", 1000)
_STDLIB_FRAMES_PER_LEVEL = 3  # an inline table: parse_inline_table, key/value pair, value

_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_EOF = re.compile(r"\s*\(at end of document\)\s*$")


def decode_text(rel: str, data: bytes) -> str | Finding:
    """UTF-8 text (a BOM is dropped) or a finding with the line and column of the first bad byte."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        line_start = before.rfind(b"\n") + 1
        column = len(before[line_start:].decode("utf-8", errors="replace")) + 1  # in characters
        return Finding(
            "file-encoding",
            f"byte 0x{data[exc.start]:02x} is not UTF-8: TOML files must be UTF-8 text "
            "(is this a binary file, or saved in another encoding such as Latin-1? "
            "re-save it as UTF-8)",
            file=rel,
            line=line,
            column=column,
        )


def parse_toml(rel: str, text: str, *, parser: TomlParser = PARSER) -> dict[str, Any] | Finding:
    """The document, or a ``toml-syntax`` finding with the parser's line and column.

    ``parser`` is for the tests, which hold both parsers to the same findings.
    """
    try:
        return parser.loads(text)
    except RecursionError:
        if parser.name == "tomllib":
            return _parse_deep(rel, text, parser)
        return _too_deep(rel, text)
    except parser.error as exc:
        return _syntax_finding(rel, text, str(exc))


def _parse_deep(rel: str, text: str, parser: TomlParser) -> dict[str, Any] | Finding:
    """tomllib again, with the stack for ``MAX_NESTING`` levels: the finding tomli gives.

    Only a document nested some 500 levels deep gets here. Python 3.11+ runs Python-to-Python
    calls without C recursion, so the higher limit is safe.
    """
    frames, frame = 0, sys._getframe()
    while frame is not None:
        frames, frame = frames + 1, frame.f_back  # type: ignore[assignment]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(frames + _STDLIB_FRAMES_PER_LEVEL * (MAX_NESTING + 2) + 50)
    try:
        document = parser.loads(text)
    except RecursionError:
        return _too_deep(rel, text)
    except parser.error as exc:
        # tomli stops at the first value too deep, before an error further on
        src = text.replace("\r\n", "\n")
        at = _TOML_POS.search(str(exc))
        end = len(src)
        if at is not None:
            line, column = int(at.group(1)), int(at.group(2))
            end = sum(len(row) + 1 for row in src.split("\n")[: line - 1]) + column - 1
        if _too_deep_before(src, end):
            return _too_deep(rel, text)
        return _syntax_finding(rel, text, str(exc))
    finally:
        sys.setrecursionlimit(limit)
    return _too_deep(rel, text) if _too_deep_before(text, len(text)) else document


_TOKENS = re.compile(
    r'"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*'
    r"|[\[{]|[\]}]|[^\s\[\]{}#\"',=]+|[\"']",
    re.DOTALL,
)


def _too_deep_before(text: str, end: int) -> bool:
    """Whether ``text[:end]`` has a value inside more than ``MAX_NESTING`` arrays or inline
    tables: where compiled tomli stops (a key in an inline table counts, its value follows)."""
    return _too_deep_at(text, end) is not None


def _too_deep_at(text: str, end: int) -> int | None:
    """The offset of the first value of ``text[:end]`` inside more than ``MAX_NESTING``
    arrays or inline tables, or None."""
    depth = 0
    for match in _TOKENS.finditer(text, 0, end):
        token = match.group()
        if token in ("]", "}"):
            depth = max(depth - 1, 0)
            continue
        if depth > MAX_NESTING:
            return match.start()
        if token in ("[", "{"):
            depth += 1
    return None


def _deep_line(text: str) -> int | None:
    """The line where nesting passes the parser's limit: the first value too deep, else the
    first line with a key of more than ``MAX_NESTING`` dotted parts (tomli's other limit)."""
    at = _too_deep_at(text, len(text))
    if at is not None:
        return text.count("\n", 0, at) + 1
    for number, line in enumerate(text.split("\n"), start=1):
        if line.count(".") >= MAX_NESTING:
            return number
    return None


def _syntax_finding(rel: str, text: str, message: str) -> Finding:
    line = column = None
    match = _TOML_POS.search(message)
    at_end = False
    if match:
        line, column = int(match.group(1)), int(match.group(2))
        message = message[: match.start()]
    elif _TOML_EOF.search(message):
        at_end = True
        line = text.count("\n") + 1
        message = _TOML_EOF.sub("", message)
    for pattern, explain in _SYNTAX_HINTS:
        found = pattern.match(message)
        if found:
            message, position = explain(found, text, line)
            if position is not None:
                line, column = position
            break
    else:
        message = f"{message}: fix the TOML syntax"
    if at_end:
        message += " (reached the end of the file)"
    return Finding("toml-syntax", message, file=rel, line=line, column=column)


def _too_deep(rel: str, text: str) -> Finding:
    return Finding(
        "toml-syntax",
        f"arrays, inline tables or dotted keys are nested more than {MAX_NESTING:,} levels "
        "deep: flatten the structure",
        file=rel,
        line=_deep_line(text.replace("\r\n", "\n")),
    )


Explain = Callable[[re.Match[str], str, int | None], tuple[str, tuple[int, int] | None]]


def _dotted(names: str) -> str:
    """``('a', 'b')`` as tomllib prints a key tuple → ``a.b``."""
    return ".".join(re.findall(r"'((?:[^'\\]|\\.)*)'", names)) or names


def _overwrite(
    found: re.Match[str], text: str, line: int | None
) -> tuple[str, tuple[int, int] | None]:
    lines = text.splitlines()
    if line is None or not 0 < line <= len(lines):
        return "a key is set twice: keep one", None
    index = KeyIndex(text)
    path = index.path_at_line(line)
    assign = _ASSIGN.match(lines[line - 1])
    if path is None or assign is None:
        return "a key is set twice: keep one", None
    where = (line, len(assign.group(1)) + 1)
    first = index.locate(path)
    earlier = f" (first set on line {first[0]})" if first and first[0] != line else ""
    return (
        f"`{format_path(path)}` is set twice{earlier}: a key may be set only once per "
        "table; keep one",
        where,
    )


_SYNTAX_HINTS: list[tuple[re.Pattern[str], Explain]] = [
    (re.compile(r"Cannot overwrite a value"), _overwrite),
    (
        re.compile(r"Cannot declare \((.*)\) twice"),
        lambda m, t, n: (
            f"table [{_dotted(m.group(1))}] is declared twice (or clashes with an array of tables "
            "or a key of the same name): merge the two sections into one",
            None,
        ),
    ),
    (
        re.compile(r"Cannot mutate immutable namespace \((.*)\)"),
        lambda m, t, n: (
            f"`{_dotted(m.group(1))}` was written as an inline table {{ … }}, which cannot "
            "be extended "
            "later: put every key inside its braces, or use a [table] section",
            None,
        ),
    ),
    (
        re.compile(r"Duplicate inline table key '(.*)'"),
        lambda m, t, n: (
            f"key `{m.group(1)}` is set twice in this inline table {{ … }}: keep one",
            None,
        ),
    ),
    (
        re.compile(r"Invalid value"),
        lambda m, t, n: (
            "invalid value: strings need quotes, tables need { } or a [header], booleans are "
            "lower-case true / false",
            None,
        ),
    ),
    (
        re.compile(r"Illegal character '\\n'"),
        lambda m, t, n: (
            "a string is not closed before the end of the line: add the closing quote "
            '(use """ … """ for a multi-line string)',
            None,
        ),
    ),
    (
        re.compile(r"Illegal character (.*)"),
        lambda m, t, n: (
            f"illegal character {m.group(1)}: control characters are not allowed in TOML "
            "(is this a binary file?)",
            None,
        ),
    ),
    (
        re.compile(r"Invalid statement"),
        lambda m, t, n: (
            "invalid statement: a line must be `key = value`, a [table] or [[array of tables]] "
            "header, or a # comment (is this a binary file?)",
            None,
        ),
    ),
    (
        re.compile(r"Expected '=' after a key in a key/value pair"),
        lambda m, t, n: ("a key has no value: write `key = value`", None),
    ),
    (
        re.compile(r"Expected newline or end of document after a statement"),
        lambda m, t, n: (
            "unexpected text after a value: put each `key = value` on its own line "
            "(and # before a comment)",
            None,
        ),
    ),
    (
        re.compile(r"Unclosed (array|inline table)"),
        lambda m, t, n: (
            f"an {m.group(1)} is not closed: add the closing "
            f"{']' if m.group(1) == 'array' else '}'}",
            None,
        ),
    ),
    (
        re.compile(r"Unterminated string"),
        lambda m, t, n: ("a string is not closed: add the closing quote(s)", None),
    ),
]


def format_path(path: Path_) -> str:
    """``("connection", 2, "credentials")`` → ``connection[2].credentials``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


# How many leading parts of one dotted key or header get a position of their own (a finding
# deeper than this points at the key's line; a 1,000-part key must not cost 1,000² steps).
_MAX_PREFIXES = 64
_BARE = r"[A-Za-z0-9_-]+"
_KEY_PART = rf'(?:{_BARE}|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"^(\s*)({_DOTTED})\s*=")
_PART = re.compile(_KEY_PART)


@functools.lru_cache(maxsize=4096)
def _split_key(dotted: str) -> tuple[tuple[str, int], ...]:
    """Parts of a dotted key with the offset of each within ``dotted`` (the same few keys
    recur on every item of a file: cached)."""
    parts = []
    for m in _PART.finditer(dotted):
        token = m.group(0)
        parts.append((token[1:-1] if token[0] in "\"'" else token, m.start()))
    return tuple(parts)


class KeyIndex:
    """Positions (1-based line, column) of keys in a TOML source, by key path."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines = text.splitlines()
        self._starts: list[int] = []
        offset = 0
        for line in text.splitlines(keepends=True):
            self._starts.append(offset)
            offset += len(line)
        self._pos: dict[Path_, tuple[int, int]] = {}
        self._line_path: dict[int, Path_] = {}
        self._elements: dict[int, list[int]] = {}  # array's key offset → element offsets
        self._scan()

    def _scan(self) -> None:
        prefix: Path_ = ()
        aot_count: dict[Path_, int] = {}
        in_multiline: str | None = None
        depth = 0
        for number, line in enumerate(self._lines, start=1):
            if in_multiline is not None:
                if in_multiline in line:
                    in_multiline = None
                continue
            if depth > 0:
                depth += _bracket_delta(line)
                continue
            header = _HEADER.match(line)
            if header:
                names = [name for name, _ in _split_key(header.group(2))]
                if header.group(1) == "[[":
                    resolved = [*self._resolve(names[:-1], aot_count), names[-1]]
                    count = aot_count.get(tuple(resolved), 0)
                    aot_count[tuple(resolved)] = count + 1
                    resolved = [*resolved, count]
                else:
                    resolved = self._resolve(names, aot_count)
                prefix = tuple(resolved)
                column = header.start(2) + 1
                for cut in range(1, min(len(prefix), _MAX_PREFIXES) + 1):
                    self._pos.setdefault(prefix[:cut], (number, column))
                self._pos.setdefault(prefix, (number, column))
                continue
            assign = _ASSIGN.match(line)
            if assign:
                parts = _split_key(assign.group(2))
                start = assign.start(2) + 1
                if len(parts) == 1:  # the usual `key = value`
                    name, offset = parts[0]
                    path = (*prefix, name)
                    self._pos.setdefault(path, (number, start + offset))
                else:
                    names = [name for name, _ in parts]
                    # a 1,000-part key: positions for its first parts and the whole key only
                    for i, (_, offset) in enumerate(parts[:_MAX_PREFIXES]):
                        self._pos.setdefault((*prefix, *names[: i + 1]), (number, start + offset))
                    path = (*prefix, *names)
                    self._pos.setdefault(path, (number, start + parts[-1][1]))
                self._line_path[number] = path
                rest = line[assign.end() :]
                if '"""' in rest or "'''" in rest:
                    for quote in ('"""', "'''"):
                        if rest.count(quote) == 1:
                            in_multiline = quote
                if in_multiline is None:
                    depth = _bracket_delta(rest)

    def _resolve(self, names: list[str], aot_count: dict[Path_, int]) -> list[str | int]:
        resolved: list[str | int] = []
        for name in names:
            resolved.append(name)
            count = aot_count.get(tuple(resolved))
            if count:
                resolved.append(count - 1)
        return resolved

    def path_at_line(self, line: int) -> Path_ | None:
        """The full key path of the ``key = value`` that starts on ``line``."""
        return self._line_path.get(line)

    def locate(self, path: Path_) -> tuple[int, int] | None:
        """Where ``path`` is written; keys inside inline tables and array elements are searched
        for after the nearest ancestor that is written as a key or header."""
        if path in self._pos:
            return self._pos[path]
        for cut in range(len(path) - 1, 0, -1):
            anchor = self._pos.get(path[:cut])
            if anchor is None:
                continue
            position = anchor
            for part in path[cut:]:
                step = (
                    self._element(position, part)
                    if isinstance(part, int)
                    else self._key(position, part)
                )
                if step is None:
                    break
                position = step
            return position
        return None

    def _offset(self, position: tuple[int, int]) -> int:
        line, column = position
        return self._starts[line - 1] + column - 1

    def _position(self, offset: int) -> tuple[int, int]:
        lo, hi = 0, len(self._starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, offset - self._starts[lo] + 1

    def _key(self, anchor: tuple[int, int], name: str) -> tuple[int, int] | None:
        """The next ``name =`` after ``anchor`` (within 50 lines), outside strings and comments."""
        line, column = anchor
        pattern = re.compile(rf"(?<![A-Za-z0-9_\"'-])[\"']?{re.escape(name)}[\"']?\s*=(?!=)")
        for number in range(line, min(line + 50, len(self._lines) + 1)):
            text = self._lines[number - 1]
            start = column if number == line else 0
            for m in pattern.finditer(text, start):
                if not _in_string_or_comment(text, m.start()):
                    return number, m.start() + 1
        return None

    def _element(self, anchor: tuple[int, int], index: int) -> tuple[int, int] | None:
        """Start of element ``index`` of the array that is the value of the key at ``anchor``.

        The array is scanned once, for all its elements: a file with a finding on each of
        20,000 elements is located in one pass, not 20,000 ever longer ones."""
        offset = self._offset(anchor)
        starts = self._elements.get(offset)
        if starts is None:
            starts = self._elements[offset] = self._element_starts(offset)
        return self._position(starts[index]) if 0 <= index < len(starts) else None

    def _element_starts(self, i: int) -> list[int]:
        """Offsets of the elements of the array that is the value of the key at offset ``i``."""
        text = self._text
        end = len(text)
        starts: list[int] = []
        # the `=` after the key, then the opening bracket
        while i < end and text[i] not in "=\n":
            i += 1
        if i >= end or text[i] != "=":
            return starts
        i += 1
        while i < end and text[i] in " \t":
            i += 1
        if i >= end or text[i] != "[":
            return starts
        i += 1
        depth, expecting = 0, True
        while i < end:
            ch = text[i]
            if ch == "#":
                while i < end and text[i] != "\n":
                    i += 1
                continue
            if ch in " \t\r\n":
                i += 1
                continue
            if depth == 0 and ch == "]":
                return starts
            if depth == 0 and ch == ",":
                expecting = True
                i += 1
                continue
            if expecting and depth == 0:
                starts.append(i)
                expecting = False
            if ch in "\"'":
                i = _skip_string(text, i)
                continue
            if ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
            i += 1
        return starts


def _skip_string(text: str, i: int) -> int:
    """Offset just after the string starting at ``i`` (basic, literal or multi-line)."""
    quote = text[i]
    delim = quote * 3 if text.startswith(quote * 3, i) else quote
    j = i + len(delim)
    while j < len(text):
        if quote == '"' and text[j] == "\\":
            j += 2
            continue
        if text.startswith(delim, j):
            return j + len(delim)
        if len(delim) == 1 and text[j] == "\n":
            return j
        j += 1
    return j


def _in_string_or_comment(line: str, index: int) -> bool:
    quote: str | None = None
    escaped = False
    for ch in line[:index]:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return True
    return quote is not None


_LINE_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')
_BRACKETS = re.compile(r"[\[\]{}]")
_STRING_OR_COMMENT_START = re.compile(r"[\"'#]")


def _bracket_delta(text: str) -> int:
    """Net open brackets on a line, ignoring those inside strings and comments.

    The strings that close on the line are cut out, then the rest from a comment or from a
    string that does not close (it runs past the line): the same as ``_bracket_delta_slow``,
    walking the line from the left, in C.
    """
    if _BRACKETS.search(text) is None:
        return 0
    text = _LINE_STRING.sub("", text)
    cut = _STRING_OR_COMMENT_START.search(text)
    if cut is not None:
        text = text[: cut.start()]
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")


def _bracket_delta_slow(text: str) -> int:
    """``_bracket_delta`` character by character (the reference the tests compare it to)."""
    delta = 0
    quote: str | None = None
    escaped = False
    for ch in text:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            delta += 1
        elif ch in "]}":
            delta -= 1
    return delta
