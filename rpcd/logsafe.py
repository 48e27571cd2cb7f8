"""Log-safe text: every character that could end a log line or steer a terminal, escaped.

A method name, a path, a peer id, an exception message or a remote's text can hold a newline
followed by a made-up log line; a text log must still show one record per line, so the
formatters pass every field through ``one_line``. Escaped: the C0 controls (``\\n``, ``\\t``,
``\\x1b`` …), DEL, the C1 controls (``\\x85`` is NEL, a line break to Unicode), the line and
paragraph separators (``\\u2028``, ``\\u2029``) and the bidirectional overrides and isolates
(``\\u202e`` …), which reorder what a terminal shows. Nothing else changes: a backslash stays
a backslash (like Apache's error log, unlike nginx's ``escape=default``), so text that was
already escaped by its writer (a ``repr``) reads as before.
"""

from __future__ import annotations

__all__ = ["CONTROLS", "one_line"]


def _escape_of(code: int) -> str:
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    if code in named:
        return named[code]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


#: The code points ``one_line`` escapes.
CONTROLS = frozenset(
    [
        *range(0x00, 0x20),
        *range(0x7F, 0xA0),
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
)
_ESCAPES = {code: _escape_of(code) for code in CONTROLS}


def one_line(text: str) -> str:
    """``text`` with every character of ``CONTROLS`` written as an escape; linear in its
    length, and a single C-level check for the usual text that has none (every code point
    of ``CONTROLS`` is one that ``str.isprintable`` refuses)."""
    return text if text.isprintable() else text.translate(_ESCAPES)
