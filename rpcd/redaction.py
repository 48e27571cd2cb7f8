"""Secret values masked in log records and lines: every value, in every form, in one pass.

A resolved secret can reach a log record as written (a message, an exception text, an extra
field such as a remote's answer) or already escaped by whoever wrote the text: JSON-escaped,
``repr``-escaped, percent-encoded, XML-escaped, or escaped for one log line by
``rpcd.logsafe``. ``Redactor`` finds all of those forms of all the values at once with one
Aho-Corasick automaton (``ahocorasick_rs``: Rust's ``aho-corasick`` crate, leftmost-longest
matches), so the cost per text hardly grows with the number of secrets; it is built when the
set of values changes (a reload), never per record.

``redact_record`` masks a record's fields before any formatter escapes them (the value as
written); ``Redactor.line`` masks a finished line again (the escaped forms; the daemon's
handler does this for every line it writes, the batched access lines included).

A value shorter than ``MIN_SECRET_LENGTH`` is never masked: masking ``"a"`` would turn every
``a`` in the logs into stars and so show where the secret was. The daemon refuses such a
secret by default (``rpcd.secrets.short_secret_findings``).
"""

from __future__ import annotations

import html
import json
import logging
import urllib.parse
from collections.abc import Iterable
from typing import Any, TypeVar

from ahocorasick_rs import AhoCorasick, BytesAhoCorasick, MatchKind

from rpcd.logsafe import one_line

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "Redactor",
    "SecretRedactingFilter",
    "forms",
    "redact_record",
]

MASK = "**********"
MIN_SECRET_LENGTH = 8
"""Secrets shorter than this are weak and cannot be masked in logs without damaging them."""

_MASK_BYTES = MASK.encode()


def forms(value: str) -> set[str]:
    """The ways ``value`` is written in a log record or line: as it is; escaped for one log
    line (``logsafe.one_line``); JSON-escaped (ASCII-only, UTF-8, and with PHP's escaped
    slash); Python's ``repr`` of it and of its UTF-8 bytes; percent-encoded (``quote`` with
    and without ``/`` kept, ``quote_plus``); XML-escaped (text and attribute)."""
    raw = value.encode("utf-8", "surrogatepass")
    found = {
        value,
        one_line(value),
        repr(value)[1:-1],
        repr(raw)[2:-1],
        urllib.parse.quote(raw, safe=""),
        urllib.parse.quote(raw, safe="/"),
        urllib.parse.quote_plus(raw, safe=""),
        html.escape(value, quote=False),
        html.escape(value, quote=True),
    }
    for ascii_only in (True, False):
        escaped = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        found.update((escaped, escaped.replace("/", "\\/")))
    found.discard("")
    return found


class _Matcher:
    """Leftmost-longest search for a fixed set of strings, replaced by ``MASK``."""

    __slots__ = ("_bytes", "_patterns", "_str")

    def __init__(self, patterns: Iterable[str]) -> None:
        self._patterns = sorted(set(patterns))
        # A pattern with a lone surrogate cannot be UTF-8: it is found by the bytes matcher,
        # which is what a text with one (from surrogateescape) is searched with anyway.
        encodable = [p for p in self._patterns if _utf8(p)]
        self._str = (
            AhoCorasick(encodable, matchkind=MatchKind.LeftmostLongest) if encodable else None
        )
        self._bytes: BytesAhoCorasick | None = None

    def __len__(self) -> int:
        return len(self._patterns)

    def sub(self, text: str) -> str:
        matcher = self._str
        if matcher is None and not self._patterns:
            return text
        try:
            found = matcher.find_matches_as_indexes(text) if matcher is not None else None
        except UnicodeEncodeError:  # a lone surrogate in the text: search its bytes
            found = None
        if found is None:
            return self._sub_bytes(text)
        return _spliced(text, found, MASK) if found else text

    def _sub_bytes(self, text: str) -> str:
        if self._bytes is None:
            encoded = [p.encode("utf-8", "surrogatepass") for p in self._patterns]
            self._bytes = BytesAhoCorasick(encoded, matchkind=MatchKind.LeftmostLongest)
        data = text.encode("utf-8", "surrogatepass")
        found = self._bytes.find_matches_as_indexes(data)
        if not found:
            return text
        return _spliced(data, found, _MASK_BYTES).decode("utf-8", "surrogatepass")


_Text = TypeVar("_Text", str, bytes)


def _spliced(data: _Text, found: list[tuple[int, int, int]], mask: _Text) -> _Text:
    """``data`` with each found ``(pattern, start, end)`` span replaced by ``mask``."""
    parts: list[_Text] = []
    at = 0
    for _, start, end in found:
        parts.append(data[at:start])
        parts.append(mask)
        at = end
    parts.append(data[at:])
    return data[:0].join(parts)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Redactor:
    """Masks a fixed set of secret values, in every form of ``forms``, in any text.

    Holds the values, so it prints as counts and cannot be pickled.
    """

    __slots__ = ("_all", "_line", "_values")

    def __init__(self, values: Iterable[str] = ()) -> None:
        kept = {v for v in values if len(v) >= MIN_SECRET_LENGTH}
        written = set().union(*(forms(v) for v in kept))
        self._values = len(kept)
        self._all = _Matcher(written)
        # A finished line has its control characters escaped: a form that still holds one
        # cannot be in it, and searching for it could only join two lines of a batch.
        self._line = _Matcher(f for f in written if one_line(f) == f)

    def __bool__(self) -> bool:
        return self._values > 0

    def text(self, text: str) -> str:
        """``text`` with every form of every value replaced by ``MASK``."""
        return self._all.sub(text)

    def line(self, text: str) -> str:
        """A formatted log line (or lines joined by newlines) with every form of every value
        that can appear in one replaced by ``MASK``."""
        return self._line.sub(text)

    def __repr__(self) -> str:
        return f"<Redactor: {self._values} values, {len(self._all)} forms>"

    def __reduce__(self) -> Any:  # a pickle would carry the secrets
        raise TypeError("Redactor objects cannot be pickled")


#: The attributes every LogRecord has: not extra fields (``msg``, ``args``, ``exc_text`` and
#: ``stack_info`` are masked on their own).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}
_exceptions = logging.Formatter()


def redact_record(record: logging.LogRecord, redactor: Redactor) -> None:
    """Mask ``redactor``'s values in the fields of ``record`` as written, before a formatter
    escapes them: the message (with its arguments), every extra field, the exception text
    and the stack."""
    if not redactor:
        return
    mask = redactor.text
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the format: logging would print them raw
        message = f"{record.msg} (with arguments that do not fit)"
    # The message as text from now on: formatters need not apply the arguments again.
    record.msg, record.args = mask(message), None
    attrs = vars(record)
    for key in attrs.keys() - _STANDARD:
        value = attrs[key]
        if value is None or isinstance(value, int | float):
            continue
        text = value if isinstance(value, str) else str(value)
        clean = mask(text)
        if clean != text:
            attrs[key] = clean
    if record.exc_info and not record.exc_text:
        record.exc_text = _exceptions.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask(record.exc_text)
    if record.stack_info:
        record.stack_info = mask(record.stack_info)


class SecretRedactingFilter(logging.Filter):
    """Masks resolved secret values in log records (``redact_record``).

    Give it a ``SecretStore`` (its ``redaction_values``) or the values. Attach it to
    *handlers*: a logger's filters do not see records from child loggers.
    """

    def __init__(self, store: Any) -> None:
        super().__init__()
        values = store.redaction_values() if hasattr(store, "redaction_values") else store
        self.redactor = Redactor(values)

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, self.redactor)
        return True
