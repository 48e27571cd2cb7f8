"""The dispatcher's thread-pool bridge answers as ``loop.run_in_executor`` would.

``core/dispatch._PoolBridge`` hands a sync handler's result back to the loop its own way (one
queue, one wake-up per batch; docs/performance.md); this holds it to the slow path it replaces:
the same values and the same exceptions, in the same order, for a mix of calls finishing
concurrently.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rpcd.server.core.auth import Authenticator
from rpcd.server.core.dispatch import Dispatcher
from rpcd.server.core.sessions import SessionManager
from rpcd.settings import Settings


def _work(n: int) -> int:
    time.sleep((n % 3) / 1000)  # finish out of order
    if n % 5 == 0:
        raise ValueError(f"bad {n}")
    return n * n


async def _outcomes(run: Any, count: int) -> list[tuple[str, Any]]:
    results = await asyncio.gather(*(run(_work, [n]) for n in range(count)), return_exceptions=True)
    return [
        ("error", (type(r).__name__, str(r))) if isinstance(r, BaseException) else ("ok", r)
        for r in results
    ]


def test_pool_bridge_answers_as_run_in_executor() -> None:
    async def main() -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        with ThreadPoolExecutor(4) as pool:
            authenticator = Authenticator(SessionManager(SessionManager.random_key(), 60), 0)
            dispatcher = Dispatcher(Settings(), authenticator, pool)
            loop = asyncio.get_running_loop()
            fast = await _outcomes(dispatcher._in_pool, 60)
            slow = await _outcomes(lambda f, p: loop.run_in_executor(pool, f, *p), 60)
            return fast, slow

    fast, slow = asyncio.run(main())
    assert fast == slow
    assert ("ok", 1) in fast and ("error", ("ValueError", "bad 5")) in fast
