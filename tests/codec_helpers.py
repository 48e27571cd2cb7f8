"""Value comparison for the codec tests: equal *and* of the same types all the way down."""

from __future__ import annotations

from datetime import datetime
from typing import Any


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
