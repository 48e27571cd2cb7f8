"""Fallback load generator for ``bench/serve.py`` when wrk cannot be installed.

Run: ``python bench/serve_alternatives/loadgen.py URL CONNECTIONS SECONDS`` with the body file in
``$BENCH_BODY`` and the token in ``$BENCH_TOKEN``. CONNECTIONS keep-alive connections post the
body in a closed loop for SECONDS; prints the same ``BENCH-JSON`` line as wrk_report.lua.
It is far slower than wrk (Python on one core), so it understates the fast servers; the bench
labels its output accordingly.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp


async def run(url: str, connections: int, seconds: float) -> dict[str, int]:
    body = Path(os.environ["BENCH_BODY"]).read_bytes()
    headers = {
        "Content-Type": "text/xml",
        "Authorization": "Bearer " + os.environ.get("BENCH_TOKEN", ""),
    }
    latencies: list[float] = []
    errors = {"connect": 0, "read": 0, "status": 0, "timeout": 0}
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=10)
    start = time.perf_counter()
    end = start + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as reply:
                    await reply.read()
                    if reply.status >= 300:
                        errors["status"] += 1
                        continue
            except TimeoutError:
                errors["timeout"] += 1
                continue
            except aiohttp.ClientConnectionError:
                errors["connect"] += 1
                continue
            except aiohttp.ClientError:
                errors["read"] += 1
                continue
            latencies.append(time.perf_counter() - t0)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    duration = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> int:
        if not latencies:
            return 0
        return int(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6)

    return {
        "requests": len(latencies),
        "duration_us": int(duration * 1e6),
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "max_us": int(latencies[-1] * 1e6) if latencies else 0,
        "connect_errors": errors["connect"],
        "read_errors": errors["read"],
        "write_errors": 0,
        "status_errors": errors["status"],
        "timeouts": errors["timeout"],
    }


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write(__doc__ or "")
        return 2
    result = asyncio.run(run(argv[0], int(argv[1]), float(argv[2])))
    print("BENCH-JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
