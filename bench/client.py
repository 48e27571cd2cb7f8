"""Outbound client benchmark: rpcd's XML-RPC client against the alternatives, in one run.

Run: ``.venv/bin/python bench/client.py`` (about 130 s; ``--quick`` about 25 s).

A fast fixed-response server (raw asyncio protocol, one pre-built ``methodResponse`` per
request, keep-alive) runs in a subprocess pinned to CPU 0; this process, the clients, is pinned
to CPU 1 (``os.sched_setaffinity``). Each client makes ``add(2, 3)`` calls for a fixed time at
concurrency 1 and 32; rounds are interleaved (every client on every loop at both concurrencies
per round, the client order rotating from round to round) so a noisy moment hits all alike.
Reported: median calls/s over the rounds (min-max), the ratio of the medians to the bare
aiohttp client on the same event loop, the median over rounds of p50 / p99 latency, and the
client's CPU time per call (this process, all threads, lowest round): on a shared machine
wall-clock rates swing with other load, the CPU cost of a call much less.

Event loops: every asyncio client runs on uvloop and on asyncio's default loop, one table per
loop, so each is compared with the bare clients on the same loop (uvloop is an rpcd
dependency, for the daemon's loop; the asyncio table is what a caller on the default loop
gets). The standard library client runs threads, not a loop: its one set of samples appears
in both tables.
Clients:

- ``rpcd``: ``call_class`` (``connections_for`` + the runner) on a one-class tree whose XML-RPC
  connection uses token auth (``Authorization: Bearer``), over rpcd's pooled ``Transport``;
- ``stdlib``: ``xmlrpc.client.ServerProxy``; at concurrency 32 one proxy per thread of a
  32-thread ``ThreadPoolExecutor`` (the GIL and one core: this is what a threaded app gets);
- ``aiohttp-xmlrpc``: its ``ServerProxy`` (1.5.0; pip-installed when missing);
- ``bare aiohttp``: a default ``ClientSession`` posting a fixed body and reading the answer
  without decoding: the ceiling the issue names (aiohttp's client was rpcd's HTTP stack until
  it proved slower per call than the blocking standard library; see rpcd/connections/http1.py);
- ``rpcd transport``: rpcd's own ``Transport`` (the keep-alive pool of ``http1``) posting the
  same fixed body, no decoding: the ceiling of the HTTP stack rpcd uses now, so ``rpcd`` over
  it is what the codec, auth and runner cost.

Then the Python function calls per request of each asyncio client on each loop (cProfile: a
repeatable count where timings are not), and cProfile of rpcd's client path
(``--profile-calls``, default 3000, concurrency 1, on the first loop): the top functions by own
time, and own time summed by area (rpcd, aiohttp, asyncio, ...).

Options: ``--quick`` (1 round of 1 s), ``--rounds N`` (3), ``--duration S`` (3, or the
environment variable ``BENCH_CLIENT_DURATION``), ``--clients a,b``, ``--loops uvloop,asyncio``,
``--no-profile``, ``--json FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TOKEN = "bench-client-token-0123456789abcdef"
CALL_BODY = (
    b'<?xml version="1.0"?>\n<methodCall><methodName>add</methodName><params>'
    b"<param><value><int>2</int></value></param><param><value><int>3</int></value></param>"
    b"</params></methodCall>\n"
)
RESPONSE_BODY = (
    b'<?xml version="1.0"?>\n<methodResponse><params><param><value><int>5</int></value>'
    b"</param></params></methodResponse>\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n"
    b"Server: bench-fixed\r\n\r\n%s" % (len(RESPONSE_BODY), RESPONSE_BODY)
)
CONCURRENCIES = (1, 32)
CLIENTS = ("bare aiohttp", "rpcd transport", "rpcd", "stdlib", "aiohttp-xmlrpc")
LOOPS = ("uvloop", "asyncio")
THREADS = "threads"  # the stdlib client's "loop"
SERVER_CPU, CLIENT_CPU = 0, 1


# ------------------------------------------------------------------- the fixed server


class _Fixed(asyncio.Protocol):
    """HTTP/1.1 keep-alive; each request (head + Content-Length body) gets RESPONSE."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            at = head.find(b"content-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                break
            buffer = buffer[total:]
            self.transport.write(RESPONSE)
        self.buffer = buffer


def serve_fixed() -> None:
    """``bench/client.py --serve``: print the port, serve until stdin closes."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {SERVER_CPU})

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Fixed, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)  # EOF: the parent is done
        server.close()

    asyncio.run(main())


@contextlib.contextmanager
def fixed_server() -> Any:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}/RPC2"
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------ the clients

Call = Callable[[], Awaitable[Any]]
T = TypeVar("T")


@dataclass
class Sample:
    calls: int
    seconds: float
    latencies: list[float]
    cpu: float  # this process's CPU time (all threads) over the measurement

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.calls * 1e6

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


async def drive(call: Call, concurrency: int, duration: float, warmup: int = 50) -> Sample:
    for _ in range(warmup):
        await call()
    latencies: list[float] = []
    clock = time.perf_counter
    deadline = clock() + duration

    async def worker() -> None:
        while True:
            started = clock()
            if started >= deadline:
                return
            await call()
            latencies.append(clock() - started)

    cpu = time.process_time()
    started = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = clock() - started
    return Sample(len(latencies), elapsed, latencies, time.process_time() - cpu)


def bench_tree(url: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix="rpcd-bench-client-"))
    (root / "rpcd.toml").write_text(
        'version = 1\n[connections]\nenabled = true\n[[institution]]\nid = "uni-a"\n'
        'name = "University A"\n'
    )
    (root / "connections.d").mkdir()
    (root / "connections.d" / "bench.toml").write_text(
        f"""version = 1
[class]
id = "bench_calc"
plugin = "bench"
name = "Bench calculator"

[[connection]]
id = "fixed"
enabled = true
global = true
type = "XML-RPC"
auth = "token"
token_header = "Authorization"
endpoint = "{url}"
timeout = 10
credentials = {{ token = {{ env = "BENCH_CLIENT_TOKEN" }} }}
"""
    )
    return root


@contextlib.asynccontextmanager
async def rpcd_client(url: str) -> AsyncIterator[Call]:
    from rpcd.config import build
    from rpcd.connections import Transport, call_class
    from rpcd.secrets import resolve_catalog

    os.environ["BENCH_CLIENT_TOKEN"] = TOKEN
    result = build(bench_tree(url))
    assert result.catalog is not None, [f.as_text() for f in result.report]
    catalog = result.catalog
    store, _ = resolve_catalog(catalog)
    institutions = ("uni-a",)
    async with Transport.open() as transport:

        async def call() -> Any:
            outcome = await call_class(
                catalog,
                "bench_calc",
                "add",
                [2, 3],
                institutions,
                secrets=store,
                transport=transport,
            )
            if not outcome.ok:
                raise RuntimeError(f"rpcd call failed: {outcome.to_dict()}")
            return outcome.result

        assert await call() == 5
        yield call


@contextlib.asynccontextmanager
async def bare_client(url: str) -> AsyncIterator[Call]:
    import aiohttp

    headers = {"Content-Type": "text/xml", "Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:

        async def call() -> bytes:
            async with session.post(url, data=CALL_BODY, headers=headers) as resp:
                return await resp.read()

        assert await call() == RESPONSE_BODY
        yield call


@contextlib.asynccontextmanager
async def transport_client(url: str) -> AsyncIterator[Call]:
    from rpcd.connections import Transport
    from rpcd.connections.request import OutboundRequest

    headers = {"Content-Type": "text/xml", "Authorization": f"Bearer {TOKEN}"}
    async with Transport.open() as transport:
        prepared = transport.prepare(OutboundRequest("POST", url, headers=headers))

        async def call() -> bytes:
            response = await transport.send(prepared, CALL_BODY, timeout=10)
            return response.body

        assert await call() == RESPONSE_BODY
        yield call


@contextlib.asynccontextmanager
async def aiohttp_xmlrpc_client(url: str) -> AsyncIterator[Call]:
    from aiohttp_xmlrpc.client import ServerProxy  # type: ignore[import-untyped]

    proxy = ServerProxy(url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:

        async def call() -> Any:
            return await proxy.add(2, 3)

        assert await call() == 5
        yield call
    finally:
        await proxy.close()


def stdlib_proxy(url: str) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(url, headers=[("Authorization", f"Bearer {TOKEN}")])


def run_stdlib(url: str, concurrency: int, duration: float) -> Sample:
    latencies: list[float] = []  # list.append is atomic under the GIL
    clock = time.perf_counter
    barrier = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def worker() -> None:
        proxy = stdlib_proxy(url)
        for _ in range(max(1, 50 // concurrency)):
            proxy.add(2, 3)
        barrier.wait()
        while True:
            started = clock()
            if started >= deadline[0]:
                break
            proxy.add(2, 3)
            latencies.append(clock() - started)
        proxy("close")()

    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(worker) for _ in range(concurrency)]
        deadline[0] = clock() + 3600
        barrier.wait()
        cpu = time.process_time()
        started = clock()
        deadline[0] = started + duration
        for f in futures:
            f.result()
        elapsed = clock() - started
        cpu = time.process_time() - cpu
    return Sample(len(latencies), elapsed, latencies, cpu)


ASYNC_CLIENTS: dict[str, Callable[[str], contextlib.AbstractAsyncContextManager[Call]]] = {
    "bare aiohttp": bare_client,
    "rpcd transport": transport_client,
    "rpcd": rpcd_client,
    "aiohttp-xmlrpc": aiohttp_xmlrpc_client,
}


def run_on(loop: str, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a fresh event loop of the named kind (``uvloop`` or ``asyncio``)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def available_loops(wanted: list[str]) -> tuple[list[str], list[str]]:
    """The loops that can run here, and a note for each one left out."""
    loops, notes = [], []
    for loop in wanted:
        if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            notes.append("uvloop is not installed: its table is left out")
            continue
        loops.append(loop)
    return loops, notes


def measure(client: str, loop: str, url: str, concurrency: int, duration: float) -> Sample:
    if client == "stdlib":
        return run_stdlib(url, concurrency, duration)

    async def go() -> Sample:
        async with ASYNC_CLIENTS[client](url) as call:
            return await drive(call, concurrency, duration)

    return run_on(loop, go())


# ---------------------------------------------------------------------------- profile


def profile_rpcd(url: str, loop: str, calls: int, top: int) -> str:
    async def go(profiler: cProfile.Profile) -> None:
        async with rpcd_client(url) as call:
            for _ in range(100):
                await call()
            profiler.enable()
            for _ in range(calls):
                await call()
            profiler.disable()

    profiler = cProfile.Profile()
    started = time.perf_counter()
    run_on(loop, go(profiler))
    wall = time.perf_counter() - started
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    out.write(
        f"cProfile, {calls} sequential rpcd calls on {loop} ({wall:.1f} s wall incl. setup; "
        f"profiled "
        f"own time {total * 1e6 / calls:.0f} µs a call, inflated by the profiler)\n\n"
    )
    areas: dict[str, float] = defaultdict(float)
    for (filename, _, _), value in stats.stats.items():  # type: ignore[attr-defined]
        areas[_area(filename)] += value[2]
    out.write("| area | own time per call (µs) | share |\n| --- | ---: | ---: |\n")
    for area, spent in sorted(areas.items(), key=lambda kv: -kv[1]):
        out.write(f"| {area} | {spent * 1e6 / calls:.1f} | {spent / total:.0%} |\n")
    out.write("\n")
    stats.sort_stats("tottime").print_stats(top)
    return _trim_pstats(out.getvalue())


def count_calls(client: str, loop: str, url: str, calls: int = 500) -> float:
    """Python function calls per request (cProfile, sequential): repeatable, unlike timings."""

    async def go(profiler: cProfile.Profile) -> None:
        async with ASYNC_CLIENTS[client](url) as call:
            for _ in range(50):
                await call()
            profiler.enable()
            for _ in range(calls):
                await call()
            profiler.disable()

    profiler = cProfile.Profile()
    run_on(loop, go(profiler))
    return pstats.Stats(profiler).total_calls / calls  # type: ignore[attr-defined,no-any-return]


def _area(filename: str) -> str:
    path = filename.replace("\\", "/")
    for marker, name in (
        ("/rpcd/connections/", "rpcd.connections"),
        ("/rpcd/codecs/", "rpcd.codecs"),
        ("/rpcd/", "rpcd (other)"),
        ("/aiohttp/", "aiohttp"),
        ("/yarl/", "yarl"),
        ("/multidict/", "multidict"),
        ("/asyncio/", "asyncio"),
        ("/logging/", "logging"),
        ("/lxml/", "lxml"),
        ("/defusedxml/", "defusedxml"),
    ):
        if marker in path:
            return name
    if path.startswith("~") or path.startswith("<"):
        return "builtins / C"
    return "other Python"


def _trim_pstats(text: str) -> str:
    keep, prefix = [], str(REPO) + "/"
    site = next((p for p in sys.path if p.endswith("site-packages")), None)
    for line in text.splitlines():
        line = line.replace(prefix, "")
        if site:
            line = line.replace(site + "/", "")
        keep.append(line.rstrip())
    return "\n".join(keep).strip() + "\n"


# ----------------------------------------------------------------------------- report


@dataclass
class Cell:
    samples: list[Sample] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(s.rate for s in self.samples)


Key = tuple[str, str, int]  # client, loop (THREADS for stdlib), concurrency


def loop_of(client: str, loop: str) -> str:
    return THREADS if client == "stdlib" else loop


def table(results: dict[Key, Cell], clients: list[str], loop: str) -> str:
    """One loop's table: its asyncio clients, and the stdlib's (loop-less) samples."""
    lines = [
        f"Event loop: {loop} (stdlib: {THREADS}, the same samples in every table)",
        "",
        "| client | concurrency | calls/s (median, min–max) | × bare aiohttp | × rpcd transport "
        "| p50 ms | p99 ms | client CPU µs/call |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for concurrency in CONCURRENCIES:
        bases = [
            results.get((base, loop, concurrency)) for base in ("bare aiohttp", "rpcd transport")
        ]
        for client in clients:
            cell = results[(client, loop_of(client, loop), concurrency)]
            rates = [s.rate for s in cell.samples]
            ratio = " | ".join(f"{cell.median() / b.median():.2f}" if b else "–" for b in bases)
            p50 = statistics.median(s.pct(0.50) for s in cell.samples)
            p99 = statistics.median(s.pct(0.99) for s in cell.samples)
            cpu = min(s.cpu_us for s in cell.samples)
            lines.append(
                f"| {client} | {concurrency} | {cell.median():,.0f} "
                f"({min(rates):,.0f}–{max(rates):,.0f}) | {ratio} | {p50:.3f} | {p99:.3f} "
                f"| {cpu:.0f} |"
            )
    return "\n".join(lines) + "\n"


def ensure_aiohttp_xmlrpc() -> str | None:
    """The installed version, installing 1.5.0 when missing; None if that fails."""
    try:
        return importlib.metadata.version("aiohttp-xmlrpc")
    except importlib.metadata.PackageNotFoundError:
        pass
    print("aiohttp-xmlrpc is missing: pip install aiohttp-xmlrpc==1.5.0", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "aiohttp-xmlrpc==1.5.0"], check=False
    )
    if done.returncode != 0:
        return None
    importlib.invalidate_caches()
    return importlib.metadata.version("aiohttp-xmlrpc")


def pin_client() -> str:
    try:
        cpus = os.sched_getaffinity(0)
        if {SERVER_CPU, CLIENT_CPU} <= cpus:
            os.sched_setaffinity(0, {CLIENT_CPU})
            return f"client pinned to CPU {CLIENT_CPU}, server to CPU {SERVER_CPU}"
        return f"not pinned (CPUs available: {sorted(cpus)})"
    except (AttributeError, OSError) as exc:
        return f"not pinned ({exc})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--duration", type=float, default=float(os.environ.get("BENCH_CLIENT_DURATION", "3"))
    )
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--loops", default=",".join(LOOPS), help="uvloop,asyncio")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile-calls", type=int, default=3000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    if args.serve:
        serve_fixed()
        return 0
    if args.quick:
        args.rounds, args.duration = 1, 1.0
        args.profile_calls = min(args.profile_calls, 1000)
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    wanted = [x.strip() for x in args.loops.split(",") if x.strip()]
    if not wanted or set(wanted) - set(LOOPS):
        parser.error(f"--loops takes one or more of {', '.join(LOOPS)}")
    notes = [pin_client()]
    loops, loop_notes = available_loops(wanted)
    notes += loop_notes
    if not loops:
        parser.error("no event loop to run the asyncio clients on")
    if "aiohttp-xmlrpc" in clients:
        version = ensure_aiohttp_xmlrpc()
        if version is None:
            clients.remove("aiohttp-xmlrpc")
            notes.append("aiohttp-xmlrpc could not be installed: left out")
        else:
            notes.append(f"aiohttp-xmlrpc {version}")
    import aiohttp

    notes.append(f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}")
    notes.append(f"event loops: {', '.join(loops)}")
    notes.append(f"{args.rounds} round(s) × {args.duration:g} s per client, loop and concurrency")
    print("; ".join(notes) + "\n", flush=True)

    runs = [(c, loop_of(c, lp)) for c in clients for lp in loops]
    runs = list(dict.fromkeys(runs))  # stdlib once, whatever the number of loops
    results: dict[Key, Cell] = {(c, lp, n): Cell() for c, lp in runs for n in CONCURRENCIES}
    with fixed_server() as url:
        for round_no in range(args.rounds):
            order = runs[round_no % len(runs) :] + runs[: round_no % len(runs)]
            for concurrency in CONCURRENCIES:
                for client, loop in order:
                    sample = measure(client, loop, url, concurrency, args.duration)
                    results[(client, loop, concurrency)].samples.append(sample)
                    print(
                        f"round {round_no + 1}: {client:<15} {loop:<8} c={concurrency:<3} "
                        f"{sample.rate:8,.0f} calls/s",
                        file=sys.stderr,
                        flush=True,
                    )
        for loop in loops:
            print(table(results, clients, loop))
        for loop in loops:
            counted = {c: count_calls(c, loop, url) for c in clients if c in ASYNC_CLIENTS}
            if counted:
                print(
                    f"Python calls per request on {loop} (cProfile, concurrency 1; repeatable): "
                    + ", ".join(f"{c} {n:.0f}" for c, n in counted.items()),
                    flush=True,
                )
        print()
        if not args.no_profile and "rpcd" in clients:
            print(profile_rpcd(url, loops[0], args.profile_calls, args.top))
    if args.json:
        data = {
            "notes": notes,
            "results": [
                {
                    "client": c,
                    "loop": lp,
                    "concurrency": n,
                    "calls_per_s": [round(s.rate, 1) for s in cell.samples],
                    "p50_ms": [round(s.pct(0.5), 4) for s in cell.samples],
                    "p99_ms": [round(s.pct(0.99), 4) for s in cell.samples],
                    "cpu_us_per_call": [round(s.cpu_us, 1) for s in cell.samples],
                }
                for (c, lp, n), cell in results.items()
            ],
        }
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
