"""Helpers for the codec tests: value comparison (equal *and* of the same types all the way
down), the fast path against the lxml path, and a deadline for work that must not hang."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from datetime import datetime
from types import FrameType
from typing import Any

from rpcd.codecs import _xmlrpc_fast as fast
from rpcd.codecs import xmlrpc
from rpcd.errors import RemoteFault


def same(a: Any, b: Any, *, ordered: bool = False) -> bool:
    """``a == b`` with types checked at every level (True == 1 would hide a bug), dateTime
    offsets compared, NaN equal to NaN, and with ``ordered`` struct members in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(
            same(x, y, ordered=ordered) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, dict):
        keys_match = list(a) == list(b) if ordered else a.keys() == b.keys()
        return keys_match and all(same(a[k], b[k], ordered=ordered) for k in a)
    if isinstance(a, datetime):
        return bool(a == b and a.utcoffset() == b.utcoffset())
    if isinstance(a, float) and a != a:
        return b != b
    return bool(a == b)


def outcome(fn: Any, doc: bytes, max_depth: int) -> tuple[Any, ...]:
    """("value", v) or ("error", class, message[, code]) of one decode."""
    try:
        return ("value", fn(doc, max_depth=max_depth))
    except RemoteFault as exc:
        return ("error", type(exc), str(exc), exc.code)
    except Exception as exc:
        return ("error", type(exc), str(exc))


def agree(doc: bytes, max_depth: int = 64) -> tuple[Any, Any]:
    """Both XML-RPC paths on a call and on a response document: assert they agree (the same
    value, types included, or the same error class and message), return the fast path's own
    answers (``MISS`` or a value) for the two."""
    for public, general in (
        (xmlrpc.loads_call, xmlrpc._loads_call_tree),
        (xmlrpc.loads_response, xmlrpc._loads_response_tree),
    ):
        got = outcome(public, doc, max_depth)
        want = outcome(lambda d, max_depth, g=general: g(d, max_depth), doc, max_depth)
        assert got[0] == want[0], (doc, got, want)
        if got[0] == "value":
            assert same(got[1], want[1], ordered=True), (doc, got, want)
        else:
            assert got[1:] == want[1:], (doc, got, want)
    return fast.loads_call(doc, max_depth), fast.loads_response(doc, max_depth)


class Overrun(Exception):
    """Raised by ``deadline`` when the work inside it ran past its time."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Interrupt the block with ``Overrun`` after ``seconds`` (SIGALRM, main thread only).

    The regex engine and blocking system calls (``open`` of a FIFO) both give way to it, so a
    test of a hang or of quadratic work fails in bounded time instead of hanging the suite.
    The signal repeats every 0.2 s until the block ends: a raise that lands where Python
    ignores exceptions (a garbage collector callback) is followed by another.
    """

    def expired(signum: int, frame: FrameType | None) -> None:
        raise Overrun(f"still running after {seconds:.2f} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.2)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
