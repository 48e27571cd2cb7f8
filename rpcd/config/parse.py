"""TOML text → Python data, and key positions for findings.

``tomllib`` keeps no positions, so ``KeyIndex`` scans the source once, lazily (only for files
that have findings), and maps key paths such as ``("connection", 2, "credentials")`` to the
line and column where the key is written.
"""

from __future__ import annotations

import re
import tomllib
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
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        return Finding(
            "file-encoding",
            f"byte 0x{data[exc.start]:02x} is not UTF-8: TOML files must be UTF-8 text "
            "(is this a binary file, or saved in another encoding?)",
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
        if match:
            line, column = int(match.group(1)), int(match.group(2))
            message = message[: match.start()]
        elif _TOML_EOF.search(message):
            line = text.count("\n") + 1
            message = _TOML_EOF.sub("", message) + " at the end of the file"
        hint = _SYNTAX_HINTS.get(message.split(" (")[0], "fix the TOML syntax")
        return Finding("toml-syntax", f"{message}: {hint}", file=rel, line=line, column=column)


_SYNTAX_HINTS = {
    "Cannot overwrite a value": "a key is set twice; keep one",
    "Cannot declare": "a table is declared twice; merge them",
    "Invalid value": "strings need quotes, tables need { } or a [header]",
    "Expected '=' after a key in a key/value pair": "write `key = value`",
    "Illegal character": "control characters are not allowed in TOML; is this a binary file?",
}


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


def _split_key(dotted: str) -> list[str]:
    parts = []
    for m in _PART.finditer(dotted):
        token = m.group(0)
        parts.append(token[1:-1] if token[0] in "\"'" else token)
    return parts


class KeyIndex:
    """Positions (1-based line, column) of keys in a TOML source, by key path."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines = text.splitlines()
        self._pos: dict[Path_, tuple[int, int]] = {}
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
                names = _split_key(header.group(2))
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
                names = _split_key(assign.group(2))
                column = len(assign.group(1)) + 1
                for i in range(1, len(names) + 1):
                    self._pos.setdefault((*prefix, *names[:i]), (number, column))
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

    def locate(self, path: Path_) -> tuple[int, int] | None:
        """Where ``path`` is written; for keys inside inline tables, searched after the ancestor."""
        if path in self._pos:
            return self._pos[path]
        for cut in range(len(path) - 1, 0, -1):
            anchor = self._pos.get(path[:cut])
            if anchor is None:
                continue
            rest = [p for p in path[cut:] if isinstance(p, str)]
            return self._search_after(anchor, rest) or anchor
        return None

    def _search_after(self, anchor: tuple[int, int], names: list[str]) -> tuple[int, int] | None:
        line, column = anchor
        found = None
        for name in names:
            pattern = re.compile(rf"(?<![A-Za-z0-9_-]){re.escape(name)}\s*=")
            for number in range(line, min(line + 50, len(self._lines) + 1)):
                text = self._lines[number - 1]
                start = column if number == line else 0
                m = pattern.search(text, start)
                if m:
                    line, column = number, m.start() + 1
                    found = (line, column)
                    break
            else:
                return found
        return found


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
