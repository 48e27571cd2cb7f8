"""TOML text → Python data, and key positions for findings.

``tomllib`` keeps no positions, so ``KeyIndex`` scans the source once, lazily (only for files
that have findings), and maps key paths such as ``("connection", 2, "credentials")`` to the
line and column where the key is written. Keys inside inline tables and elements of arrays
(also multi-line ones) are found by scanning forward from the nearest indexed key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from typing import Any

from rpcd.config.findings import Finding

Path_ = tuple[str | int, ...]

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


def parse_toml(rel: str, text: str) -> dict[str, Any] | Finding:
    """The document, or a ``toml-syntax`` finding with tomllib's line and column."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
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


_BARE = r"[A-Za-z0-9_-]+"
_KEY_PART = rf'(?:{_BARE}|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"^(\s*)({_DOTTED})\s*=")
_PART = re.compile(_KEY_PART)


def _split_key(dotted: str) -> list[tuple[str, int]]:
    """Parts of a dotted key with the offset of each within ``dotted``."""
    parts = []
    for m in _PART.finditer(dotted):
        token = m.group(0)
        parts.append((token[1:-1] if token[0] in "\"'" else token, m.start()))
    return parts


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
        self._scan()

    def _scan(self) -> None:
        prefix: list[str | int] = []
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
                prefix = resolved
                self._pos.setdefault(tuple(prefix), (number, header.start(2) + 1))
                continue
            assign = _ASSIGN.match(line)
            if assign:
                parts = _split_key(assign.group(2))
                names = [name for name, _ in parts]
                for i, (_, offset) in enumerate(parts, start=1):
                    column = assign.start(2) + offset + 1
                    self._pos.setdefault((*prefix, *names[:i]), (number, column))
                self._line_path[number] = (*prefix, *names)
                rest = line[assign.end() :]
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
        """Start of element ``index`` of the array that is the value of the key at ``anchor``."""
        text, i = self._text, self._offset(anchor)
        end = len(text)
        # the `=` after the key, then the opening bracket
        while i < end and text[i] not in "=\n":
            i += 1
        if i >= end or text[i] != "=":
            return None
        i += 1
        while i < end and text[i] in " \t":
            i += 1
        if i >= end or text[i] != "[":
            return None
        i += 1
        count, depth, expecting = 0, 0, True
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
                return None
            if depth == 0 and ch == ",":
                expecting = True
                i += 1
                continue
            if expecting and depth == 0:
                if count == index:
                    return self._position(i)
                count += 1
                expecting = False
            if ch in "\"'":
                i = _skip_string(text, i)
                continue
            if ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
            i += 1
        return None


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


def _bracket_delta(text: str) -> int:
    """Net open brackets on a line, ignoring those inside strings and comments."""
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
