"""Bounds on an HTTP answer's head, checked on the raw bytes before the parser buffers them.

httptools gathers a header's name and value across reads by concatenation and hands the
header over only once its line has ended, so a peer that never ends a line (or never ends
the head) would grow that buffer, and the list of headers, without bound. ``HeadScanner``
looks at the bytes of the head as they arrive, before they reach the parser: it counts the
head's bytes, its header lines and the length of each line, and refuses the answer as soon as
one of ``HeadLimits`` is passed, so the parser never holds more than the limits allow. The
scan is one ``bytes.find`` per line: linear in the size of the head.

The limits follow aiohttp's client (``max_line_size`` and ``max_field_size`` 8190 bytes,
``max_headers`` 128 lines) with, on top, a total like nginx's ``proxy_buffer_size`` (the
whole head of an upstream's answer must fit one buffer), larger here because the lines may be.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_LINE_BYTES",
    "AnswerOverLimit",
    "HeadLimits",
    "HeadScanner",
]

DEFAULT_MAX_HEADER_BYTES = 65536
DEFAULT_MAX_HEADERS = 128
DEFAULT_MAX_LINE_BYTES = 8190


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """The bounds on an answer's head; each is a ``TransportSettings`` field of the same name."""

    #: All of the answer's head: status line, header lines, the blank line; interim ``1xx``
    #: heads count towards it too.
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    #: Header lines of one head (trailer fields of a chunked answer are counted the same way).
    max_headers: int = DEFAULT_MAX_HEADERS
    #: One line: the status line (so the reason phrase), each header line, a chunk-size line.
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_headers", "max_line_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


class AnswerOverLimit(Exception):
    """The answer passed a limit; the message says which and names its setting."""

    def __init__(self, what: str, setting: str) -> None:
        super().__init__(f"{what} (outbound setting {setting})")
        self.setting = setting


class HeadScanner:
    """Checks the bytes of an answer's head against ``HeadLimits`` as they arrive.

    ``scan(data, start)`` reads ``data[start:]`` as head bytes and returns the index just past
    the blank line that ends the head, or -1 when the head goes on past the end of ``data``;
    it raises ``AnswerOverLimit`` at the first limit passed. The caller feeds the parser the
    bytes up to that index and calls ``next_head`` when another head follows (an interim
    ``1xx`` answer, or blank lines before the status line, which the parser skips).
    """

    __slots__ = ("_cr", "_line", "_lines", "_total", "limits")

    def __init__(self, limits: HeadLimits) -> None:
        self.limits = limits
        self.reset()

    def reset(self) -> None:
        """A new exchange: no head bytes seen yet."""
        self._total = 0  # head bytes of this exchange, every head together
        self.next_head()

    def next_head(self) -> None:
        self._line = 0  # bytes of the current line seen so far, newline not included
        self._lines = 0  # complete lines of the current head
        self._cr = False  # the bytes seen of the current line end with CR

    def scan(self, data: bytes, start: int) -> int:
        limits = self.limits
        size = len(data)
        pos = start
        while pos < size:
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._line += size - pos
                self._cr = data[size - 1] == 13
                self._check_line(self._line - 1)  # a CR may still come to end the line
                self._add(size - pos)
                return -1
            length = self._line + newline - pos
            ends_cr = data[newline - 1] == 13 if newline > pos else self._cr
            if ends_cr:
                length -= 1
            self._line, self._cr = 0, False
            self._check_line(length)
            self._add(newline + 1 - pos)
            if length == 0:  # the blank line: the head ends here
                return newline + 1
            self._lines += 1
            if self._lines > limits.max_headers + 1:  # the status line is not a header
                raise AnswerOverLimit(
                    f"the answer has more than {limits.max_headers} header lines", "max_headers"
                )
            pos = newline + 1
        return -1

    def _add(self, count: int) -> None:
        self._total += count
        if self._total > self.limits.max_header_bytes:
            raise AnswerOverLimit(
                f"the answer's header block is over the {self.limits.max_header_bytes}-byte limit",
                "max_header_bytes",
            )

    def _check_line(self, length: int) -> None:
        if length > self.limits.max_line_bytes:
            what = "the status line" if self._lines == 0 else "a header line"
            raise AnswerOverLimit(
                f"{what} of the answer is over the {self.limits.max_line_bytes}-byte limit",
                "max_line_bytes",
            )
