"""One budget of calls per request, counted before any call runs.

A request can carry many calls: a JSON-RPC batch, a ``system.multicall``, a batch of
multicalls. Each bound alone (``max_multicall`` entries per batch and per multicall) still
lets a batch of 100 multicalls of 100 calls run 10,000 calls from one request. So every
request is also held to ``max_calls_per_request`` calls in all: a batch entry counts one, a
``system.multicall`` counts its entries (nested multicalls are refused, so nothing deeper
can hide more). The count needs only the parsed request, so an oversized request is refused
whole, before anything runs: never a half-done batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rpcd.errors import INVALID_REQUEST, Fault
from rpcd.server.core.calls import canonical

__all__ = ["MULTICALL", "calls_in", "check_budget"]

MULTICALL = "system.multicall"


def calls_in(method: str, params: Any) -> int:
    """How many calls running ``method(params)`` costs: a multicall its entries, else 1."""
    if canonical(method) != MULTICALL:
        return 1
    if type(params) is list and len(params) == 1 and type(params[0]) is list:
        return max(1, len(params[0]))
    return 1  # a malformed multicall: refused without running anything


def check_budget(costs: Iterable[int], limit: int) -> None:
    """-32600 naming the count and the setting when ``costs`` add up to more than ``limit``."""
    total = sum(costs)
    if total > limit:
        raise Fault(
            INVALID_REQUEST,
            f"this request holds {total} calls (batch entries, and the entries of each "
            f"system.multicall, counted one by one); at most {limit} run per request "
            f"(max_calls_per_request): split it into several requests",
        )
