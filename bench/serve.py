"""HTTP benchmark of ``rpcd serve`` against the named alternatives, in one run.

Run: ``.venv/bin/python bench/serve.py`` (about 5 minutes; ``--quick`` about 1 minute).

Every server runs as its own process pinned to CPU 0 (``taskset -c 0``); wrk runs pinned to CPU 1
with 32 connections and one thread, and prints its own percentiles through a Lua ``done()`` hook
(``bench/serve_alternatives/wrk_report.lua``). Rounds are interleaved: each round runs every
payload against every server (the server order rotates from round to round), so a noisy moment
on the machine hits all servers alike instead of one. Reported: the median requests/s over the
rounds with min-max, the ratio of the medians to the ceiling, and the median p99 latency.
Also reported: each server's CPU time per request (user + system of the whole process, read
from /proc before and after each measurement). On a shared machine the servers get only part
of CPU 0, and a server with many runnable threads (rpcd's thread pool, the stdlib's thread per
connection) gets a bigger part than a one-thread event loop; requests/s then mixes efficiency
with that share, while the CPU time per request does not.

Payloads (``bench/serve_alternatives/payloads.py``): ``hello.add(2, 3)``, ``hello.echo`` of a
50-member struct and ``hello.sum`` of a 10,000-int array. Servers:

- rpcd: ``python -m rpcd serve`` on the example tree at the repository root, called as the
  ``loopback`` peer with its bearer token, so authentication, access control, metrics and
  logging run as the daemon ships them (default settings; ``RPCD_STRICT_SECRETS=false`` because
  the example tree's outbound secrets are not on this machine, as in ``make run``). The tree
  declares ``add`` and ``echo`` ``run = "inline"`` (called on the event loop) and ``sum`` in
  the thread pool, as shipped;
- rpcd, pooled: the same on a copy of the tree without ``run = "inline"``: every sync handler
  in the thread pool (the hand-off a blocking handler needs), so both are shown;
- ``bench/serve_alternatives/servers.py``: the stdlib SimpleXMLRPCServer single-threaded and
  threaded with keep-alive, aiohttp-xmlrpc 1.5.0, the floor (bare aiohttp + stdlib
  loads/dumps on defusedxml's parser) and the ceiling (bare aiohttp, pre-built response).

Event loops: rpcd runs on uvloop by default, so the aiohttp-based alternatives (ceiling,
floor, aiohttp-xmlrpc) run on uvloop too in the main columns; ``rpcd (asyncio)`` and
``floor (asyncio)`` are both again on the standard asyncio loop (labelled so).

Then a short profile of rpcd on the add payload: py-spy samples the daemon (all threads) while
wrk loads it, and the samples are summed by area and by function.

The bench sets itself up: it installs wrk (``apt-get``, as root), aiohttp-xmlrpc 1.5.0 and
py-spy (``pip``, into this interpreter's environment) when they are missing, and says plainly
what it could not get and what it does instead (without wrk: a small aiohttp load generator,
labelled as such in the output; without aiohttp-xmlrpc: that column is left out).

Options: ``--quick`` (1 round of 2 s), ``--rounds N``, ``--duration S`` (or the environment
variable ``BENCH_SERVE_DURATION``), ``--connections N``, ``--servers a,b``, ``--payloads a,b``,
``--no-profile``, ``--json FILE`` (default ``bench/out/serve.json``), ``--baseline DIR`` (another
checkout, e.g. ``git worktree add /tmp/before <commit>``, served as ``rpcd (baseline)`` in the
same interleaved rounds: a before/after in one run).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xmlrpc.client as xc
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "serve_alternatives"
sys.path.insert(0, str(REPO))

from bench.serve_alternatives.payloads import PAYLOADS, TOKEN, Payload  # noqa: E402

AIOHTTP_XMLRPC = "aiohttp-xmlrpc==1.5.0"
X = "\u00d7"  # multiplication sign, as in "0.54x"
DASH = "\u2013"  # en dash, as in "min-max"

#: name → (column label, kind for servers.py or "rpcd", event loop or None for stdlib servers).
#: The aiohttp-based servers run on the same loop as rpcd (uvloop, rpcd's default); the
#: ``-asyncio`` ones are rpcd and the floor again on the standard loop.
SERVERS: dict[str, tuple[str, str, str | None]] = {
    "ceiling": ("ceiling (bare aiohttp, fixed response; uvloop)", "ceiling", "uvloop"),
    "floor": ("floor (aiohttp + stdlib loads/dumps, defusedxml; uvloop)", "floor", "uvloop"),
    "rpcd": ("rpcd (token auth, ACL, metrics, logging; uvloop)", "rpcd", "uvloop"),
    "rpcd-pooled": (
        "rpcd, every handler in the thread pool (no run = inline; uvloop)",
        "rpcd-pooled",
        "uvloop",
    ),
    "stdlib-threaded": (
        "stdlib SimpleXMLRPCServer, threaded, keep-alive",
        "stdlib-threaded",
        None,
    ),
    "stdlib-single": ("stdlib SimpleXMLRPCServer, single thread", "stdlib-single", None),
    "aiohttp-xmlrpc": ("aiohttp-xmlrpc 1.5.0 (uvloop)", "aiohttp-xmlrpc", "uvloop"),
    "rpcd-asyncio": ("rpcd on the asyncio loop", "rpcd", "asyncio"),
    "floor-asyncio": ("floor on the asyncio loop", "floor", "asyncio"),
}
SHORT = {
    "ceiling": "ceiling",
    "floor": "floor (defused)",
    "rpcd": "rpcd",
    "rpcd-pooled": "rpcd, pooled",
    "stdlib-threaded": "stdlib threaded keep-alive",
    "stdlib-single": "stdlib single",
    "aiohttp-xmlrpc": "aiohttp-xmlrpc",
    "rpcd-asyncio": "rpcd (asyncio)",
    "floor-asyncio": "floor (asyncio)",
}
#: Not alternatives: rpcd itself, in its variants (``rpcd-baseline``: another checkout, from
#: ``--baseline``), and the two reference points.
OURS = ("rpcd", "rpcd-pooled", "rpcd-asyncio", "rpcd-baseline")
#: ``--baseline DIR``: a checkout of rpcd to serve beside this one, interleaved in the same
#: rounds (its own code and its own example tree), for a before/after in one run.
BASELINE: Path | None = None
REFERENCES = ("ceiling", "floor", "floor-asyncio")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Tools


@dataclass
class Tools:
    wrk: str | None = None
    taskset: str | None = None
    py_spy: str | None = None
    aiohttp_xmlrpc: bool = False
    notes: list[str] = field(default_factory=list)

    def pin(self, cpu: int) -> list[str]:
        return [self.taskset, "-c", str(cpu)] if self.taskset else []


def _run_quiet(cmd: Sequence[str], timeout: float = 300) -> bool:
    try:
        return (
            subprocess.run(
                cmd, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _apt_install(package: str) -> bool:
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return False
    env_cmd = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", package]
    if _run_quiet(env_cmd):
        return True
    return _run_quiet(["apt-get", "update", "-q"]) and _run_quiet(env_cmd)


def _pip_install(requirement: str) -> bool:
    return _run_quiet([sys.executable, "-m", "pip", "install", "--quiet", requirement])


def _venv_tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else shutil.which(name)


def check_tools(*, want_profile: bool, want_aiohttp_xmlrpc: bool) -> Tools:
    tools = Tools()
    tools.wrk = shutil.which("wrk")
    if tools.wrk is None:
        say("bench: wrk is missing; installing it (apt-get install -y wrk) ...")
        if _apt_install("wrk"):
            tools.wrk = shutil.which("wrk")
    if tools.wrk is None:
        tools.notes.append(
            "wrk is not installed and could not be installed (needs root and Debian's apt: "
            "`apt-get install wrk`); the load comes from bench/serve_alternatives/loadgen.py, a "
            "small aiohttp load generator, which is much slower than wrk: the numbers are not "
            "comparable with wrk's and understate the fast servers."
        )
    tools.taskset = shutil.which("taskset")
    if tools.taskset is None or (os.cpu_count() or 1) < 2:
        tools.taskset = None
        tools.notes.append(
            "not pinned: taskset (util-linux) is missing or the machine has fewer than 2 CPUs; "
            "server and load generator share the CPUs."
        )
    if want_aiohttp_xmlrpc:
        tools.aiohttp_xmlrpc = _have_aiohttp_xmlrpc()
        if not tools.aiohttp_xmlrpc:
            say(f"bench: installing {AIOHTTP_XMLRPC} into {sys.prefix} (for the bench only) ...")
            tools.aiohttp_xmlrpc = _pip_install(AIOHTTP_XMLRPC) and _have_aiohttp_xmlrpc()
        if not tools.aiohttp_xmlrpc:
            tools.notes.append(
                f"{AIOHTTP_XMLRPC} is not installable here (`pip install {AIOHTTP_XMLRPC}` "
                "failed); its column is left out."
            )
    if want_profile:
        tools.py_spy = _venv_tool("py-spy")
        if tools.py_spy is None:
            say("bench: installing py-spy (for the profile) ...")
            if _pip_install("py-spy"):
                tools.py_spy = _venv_tool("py-spy")
        if tools.py_spy is None:
            tools.notes.append("py-spy is not installable; the profile falls back to cProfile.")
    return tools


def _have_aiohttp_xmlrpc() -> bool:
    try:
        version = importlib.metadata.version("aiohttp-xmlrpc")
    except importlib.metadata.PackageNotFoundError:
        return False
    return version == AIOHTTP_XMLRPC.split("==")[1]


# --------------------------------------------------------------------------------------------
# Servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/RPC2"


def pooled_tree(workdir: Path) -> Path:
    """The example tree with every ``run = "inline"`` removed: all sync handlers in the pool."""
    tree = workdir / "tree-pooled"
    if not tree.exists():
        tree.mkdir()
        for part in ("rpcd.toml", "services.d", "connections.d"):
            src = REPO / part
            if src.is_dir():
                shutil.copytree(src, tree / part)
            else:
                shutil.copy2(src, tree / part)
        for toml in (tree / "services.d").rglob("*.toml"):
            text = toml.read_text(encoding="utf-8")
            kept = [line for line in text.splitlines() if line.strip() != 'run = "inline"']
            toml.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return tree


def server_command(
    kind: str,
    port: int,
    *,
    loop: str | None = None,
    workdir: Path | None = None,
    profile_to: Path | None = None,
) -> list[str]:
    if kind == "rpcd-baseline" and BASELINE is not None:
        return [
            sys.executable,
            "-m",
            "rpcd",
            "serve",
            str(BASELINE),
            "--listen",
            f"127.0.0.1:{port}",
        ]
    if kind in ("rpcd", "rpcd-pooled"):
        root = REPO if kind == "rpcd" else pooled_tree(workdir or Path(tempfile.mkdtemp()))
        serve = ["-m", "rpcd", "serve", str(root), "--listen", f"127.0.0.1:{port}"]
        if profile_to is not None:
            return [sys.executable, "-m", "cProfile", "-o", str(profile_to), *serve]
        return [sys.executable, *serve]
    return [sys.executable, str(HERE / "servers.py"), kind, str(port), *([loop] if loop else [])]


def server_env(loop: str | None = None, code: Path = REPO) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")])),
        "RPCD_STRICT_SECRETS": "false",
        "RPCD_LOOPBACK_TOKEN": TOKEN,
        "RPCD_EVENT_LOOP": loop or "uvloop",
        "PYTHONUNBUFFERED": "1",
    }


def call(url: str, payload: Payload, timeout: float = 10) -> Any:
    request = urllib.request.Request(
        url,
        data=payload.body,
        headers={"Content-Type": "text/xml", "Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        (value,), _ = xc.loads(reply.read(), use_builtin_types=True)
    return value


def start_server(
    name: str,
    kind: str,
    tools: Tools,
    logdir: Path,
    *,
    loop: str | None = "uvloop",
    profile_to: Path | None = None,
) -> Server:
    port = free_port()
    log = logdir / f"{name}.log"
    command = server_command(kind, port, loop=loop, workdir=logdir, profile_to=profile_to)
    code = BASELINE if kind == "rpcd-baseline" and BASELINE is not None else REPO
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*tools.pin(0), *command],
            cwd=code,
            env=server_env(loop, code),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = Server(name, port, proc, log)
    deadline = time.monotonic() + 30
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            call(server.url, PAYLOADS[0], timeout=2)
            return server
        except (OSError, urllib.error.URLError, xc.Error, ValueError) as exc:
            last = exc
            time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"{name} did not answer within 30 s ({last}):\n{log.read_text()[-2000:]}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


def check_answers(server: Server) -> None:
    """Every payload must get the right answer before its speed means anything."""
    for payload in PAYLOADS:
        value = call(server.url, payload)
        if value != payload.expected or type(value) is not type(payload.expected):
            raise RuntimeError(
                f"{server.name} answered {payload.method} wrongly: {str(value)[:200]!r}"
            )


# --------------------------------------------------------------------------------------------
# Load


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    #: The server's CPU time (user + system, all its threads) per request, in microseconds.
    cpu_us: float | None = None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far, exited threads included (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    tools: Tools, server: Server, body_file: Path, seconds: float, connections: int
) -> Sample:
    """``load`` on ``server``, with the server's CPU time per request."""
    before = cpu_seconds(server.proc.pid)
    sample = load(tools, server.url, body_file, seconds, connections)
    after = cpu_seconds(server.proc.pid)
    if before is not None and after is not None and sample.requests:
        sample.cpu_us = (after - before) * 1e6 / sample.requests
    return sample


def load(tools: Tools, url: str, body_file: Path, seconds: float, connections: int) -> Sample:
    env = {**os.environ, "BENCH_BODY": str(body_file), "BENCH_TOKEN": TOKEN}
    if tools.wrk:
        cmd = [
            *tools.pin(1),
            tools.wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(HERE / "wrk_report.lua"),
            url,
        ]
    else:
        cmd = [
            *tools.pin(1),
            sys.executable,
            str(HERE / "loadgen.py"),
            url,
            str(connections),
            str(seconds),
        ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            r = json.loads(line.removeprefix("BENCH-JSON "))
            errors = (
                sum(
                    r[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors")
                )
                + r["timeouts"]
            )
            return Sample(
                rps=r["requests"] / (r["duration_us"] / 1e6),
                p50_ms=r["p50_us"] / 1000,
                p99_ms=r["p99_us"] / 1000,
                errors=errors,
                requests=int(r["requests"]),
            )
    raise RuntimeError(f"no result from the load generator:\n{done.stdout}\n{done.stderr}")


# --------------------------------------------------------------------------------------------
# Report


def fmt_rps(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}{X}" if value >= 0.1 else f"{value:.3f}{X}"


def fmt_ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


Stats = dict[tuple[str, str], dict[str, Any]]


def summarize(results: dict[tuple[str, str], list[Sample]]) -> Stats:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key, samples in results.items():
        rps = [s.rps for s in samples]
        p99 = [s.p99_ms for s in samples]
        cpu = [s.cpu_us for s in samples if s.cpu_us is not None]
        out[key] = {
            "cpu_us_median": statistics.median(cpu) if cpu else None,
            "cpu_us_min": min(cpu) if cpu else None,
            "cpu_us_max": max(cpu) if cpu else None,
            "rps_median": statistics.median(rps),
            "rps_min": min(rps),
            "rps_max": max(rps),
            "p99_ms_median": statistics.median(p99),
            "p99_ms_min": min(p99),
            "p99_ms_max": max(p99),
            "errors": sum(s.errors for s in samples),
            "rounds": len(samples),
        }
    return out


def _grid(
    title: str,
    servers: list[str],
    payloads: list[Payload],
    cell: Callable[[str, Payload], str],
) -> list[str]:
    """A payload x server table: its title, then one row per payload."""
    lines = [title, "", "| payload | " + " | ".join(SHORT[s] for s in servers) + " |"]
    lines.append("| --- |" + " ---: |" * len(servers))
    for p in payloads:
        lines.append(f"| {p.label} | " + " | ".join(cell(s, p) for s in servers) + " |")
    lines.append("")
    return lines


def tables(
    stats: dict[tuple[str, str], dict[str, Any]], servers: list[str], payloads: list[Payload]
) -> str:
    cols = [s for s in servers if s != "ceiling"]

    def rps(s: str, p: Payload) -> str:
        st, ceiling = stats.get((s, p.key)), stats.get(("ceiling", p.key))
        if st is None:
            return "n/a"
        if s == "ceiling" or ceiling is None:
            return fmt_rps(st["rps_median"])
        ratio = st["rps_median"] / ceiling["rps_median"]
        return f"{fmt_rps(st['rps_median'])} ({fmt_ratio(ratio)})"

    def p99(s: str, p: Payload) -> str:
        st = stats.get((s, p.key))
        return "n/a" if st is None else fmt_ms(st["p99_ms_median"])

    def cpu(s: str, p: Payload) -> str:
        st = stats.get((s, p.key))
        if st is None or st["cpu_us_median"] is None:
            return "n/a"
        return f"{st['cpu_us_median']:,.0f} ({st['cpu_us_min']:,.0f}{DASH}{st['cpu_us_max']:,.0f})"

    lines = _grid(
        "Requests/s, median of the rounds (ratio to the ceiling):", servers, payloads, rps
    )
    lines += _grid("p99 latency in ms, median of the rounds:", servers, payloads, p99)
    lines += _grid(
        "Server CPU time per request in microseconds (user + system, all threads, from "
        f"/proc; median of the rounds, min{DASH}max): what a request costs, whatever share of "
        "CPU 0 the server got. On a shared machine requests/s also measures that share: a "
        "server with more runnable threads (the thread pool, a thread per connection) gets "
        "more of a contended CPU than a one-thread event loop.",
        servers,
        payloads,
        cpu,
    )
    lines.append(
        f"Every measurement (min{DASH}max over the rounds; errors = socket errors, non-2xx, "
        "timeouts, summed over the rounds):"
    )
    lines.append("")
    lines.append(
        f"| payload | server | req/s median | req/s min{DASH}max | {X} ceiling "
        f"| p99 ms median | p99 ms min{DASH}max | errors |"
    )
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for p in payloads:
        ceiling = stats.get(("ceiling", p.key))
        for s in servers:
            st = stats.get((s, p.key))
            if st is None:
                continue
            ratio = fmt_ratio(st["rps_median"] / ceiling["rps_median"]) if ceiling else "n/a"
            lines.append(
                f"| {p.label} | {SERVERS[s][0]} | {fmt_rps(st['rps_median'])} "
                f"| {fmt_rps(st['rps_min'])}{DASH}{fmt_rps(st['rps_max'])} | {ratio} "
                f"| {fmt_ms(st['p99_ms_median'])} "
                f"| {fmt_ms(st['p99_ms_min'])}{DASH}{fmt_ms(st['p99_ms_max'])} | {st['errors']} |"
            )
    if "rpcd" in cols:
        lines.append("")
        lines.extend(goals(stats, servers, payloads))
    return "\n".join(lines)


def goals(
    stats: dict[tuple[str, str], dict[str, Any]], servers: list[str], payloads: list[Payload]
) -> list[str]:
    """The issue's goals, checked against this run's medians."""
    out = ["Goals (issue 3), on this run's medians:", ""]

    def rps(server: str, key: str) -> float | None:
        st = stats.get((server, key))
        return None if st is None else float(st["rps_median"])

    alternatives = [s for s in servers if s not in OURS and s not in REFERENCES]
    for p in payloads:
        mine = rps("rpcd", p.key)
        if mine is None:
            continue
        behind = [SHORT[s] for s in alternatives if (rps(s, p.key) or 0) >= mine]
        verdict = "met" if not behind else "NOT met (behind " + ", ".join(behind) + ")"
        out.append(f"- {p.label}: rpcd ahead of every alternative: {verdict}")
        need = 1.0 if p.key == "add" else 2.0
        for ours, floor_name, how in (
            ("rpcd", "floor", "both on uvloop"),
            ("rpcd-pooled", "floor", "rpcd's handlers in the thread pool, both on uvloop"),
            ("rpcd-asyncio", "floor-asyncio", "both on asyncio"),
            ("rpcd-baseline", "floor", "the --baseline checkout, both on uvloop"),
        ):
            value, floor = rps(ours, p.key), rps(floor_name, p.key)
            if value is None or not floor:
                continue
            ok = value >= need * floor
            out.append(
                f"- {p.label}: {SHORT[ours]} / {SHORT[floor_name]} = {value / floor:.2f}{X} "
                f"({how}; goal >= {need:g}{X}): " + ("met" if ok else "NOT met")
            )
        cost = stats.get(("rpcd", p.key), {}).get("cpu_us_median")
        cheaper = [
            f"{SHORT[s]} {stats[(s, p.key)]['cpu_us_median']:,.0f} us"
            for s in alternatives
            if (s, p.key) in stats
            and stats[(s, p.key)]["cpu_us_median"] is not None
            and cost is not None
            and stats[(s, p.key)]["cpu_us_median"] <= cost
        ]
        if cost is not None:
            out.append(
                f"- {p.label}: rpcd's CPU time per request ({cost:,.0f} us) below every "
                "alternative's: " + ("yes" if not cheaper else "no (" + ", ".join(cheaper) + ")")
            )
    return out


# --------------------------------------------------------------------------------------------
# Profile


HANDOFF = "thread-pool hand-off (sync handler)"
HTTP = "aiohttp (HTTP parsing, request/response objects)"
#: (substring of a py-spy frame "func (path:line)", area); the first match wins, per frame.
AREAS: tuple[tuple[str, str], ...] = (
    ("examples/hello.py", "the handler itself"),
    ("run_in_executor ", HANDOFF),
    ("_chain_future", HANDOFF),
    ("wrap_future", HANDOFF),
    ("call_soon_threadsafe", HANDOFF),
    ("_write_to_self", HANDOFF),
    ("concurrent/futures", HANDOFF),
    ("(threading.py", HANDOFF),
    ("(queue.py", HANDOFF),
    ("rpcd/codecs/", "rpcd XML-RPC codec (parse + serialize)"),
    ("rpcd/server/core/auth", "rpcd authentication"),
    ("rpcd/server/ops/metrics", "rpcd metrics"),
    ("rpcd/server/ops/call_metrics", "rpcd metrics"),
    ("(prometheus_client/", "rpcd metrics"),
    ("(logging/", "logging"),
    ("rpcd/server/ops/logs", "logging"),
    ("rpcd/server/core/", "rpcd dispatch + access control"),
    ("rpcd/server/", "rpcd HTTP edge (request skeleton, endpoints, app)"),
    ("rpcd/", "rpcd, other"),
    ("(aiohttp/", HTTP),
    ("(multidict/", HTTP),
    ("(yarl/", HTTP),
    ("(asyncio/", "asyncio event loop, sockets"),
    ("(selectors.py", "asyncio event loop, sockets"),
)


def _area(stack: list[str]) -> str:
    for frame in reversed(stack):  # from the innermost frame outwards
        for needle, area in AREAS:
            if needle in frame:
                return area
    return "other"


ENTRY_POINTS = ("rpcd/__main__.py", "rpcd/cli.py", "rpcd/server/cli.py", "rpcd/server/run.py")


def _rpcd_frame(frame: str) -> bool:
    """A frame of rpcd's own request path (not the entry points that hold every sample)."""
    return ("(rpcd/" in frame or "/rpcd/" in frame) and not any(e in frame for e in ENTRY_POINTS)


def _short_frame(frame: str) -> str:
    # "func (/path/to/pkg/mod.py:12)" -> "func (pkg/mod.py:12)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    parts = where.split("/")
    return f"{name} ({'/'.join(parts[-2:])})" if where else name


def profile_rpcd(
    tools: Tools, logdir: Path, body_file: Path, seconds: float, connections: int
) -> str:
    seconds = max(3.0, seconds)
    why = "py-spy is not installed"
    if tools.py_spy:
        server = start_server("rpcd-profiled", "rpcd", tools, logdir)
        raw = logdir / "rpcd-py-spy.txt"
        try:
            spy = subprocess.Popen(
                [
                    *tools.pin(1),
                    tools.py_spy,
                    "record",
                    "--pid",
                    str(server.proc.pid),
                    "--format",
                    "raw",
                    "--function",
                    "--gil",
                    "--rate",
                    "100",
                    "--duration",
                    str(round(seconds)),
                    "--output",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(0.3)
            sample = load(tools, server.url, body_file, seconds, connections)
            _, err = spy.communicate(timeout=seconds + 30)
        finally:
            stop_server(server)
        if raw.is_file() and raw.stat().st_size > 0:
            return _py_spy_report(raw, sample, seconds)
        why = f"py-spy recorded nothing (no ptrace permission?): {err.strip()[-300:]}"
    # Fallback: cProfile in the daemon process (main thread only: sync handlers run in the pool).
    out = logdir / "rpcd.pstats"
    server = start_server("rpcd-cprofile", "rpcd", tools, logdir, profile_to=out)
    try:
        load(tools, server.url, body_file, seconds, connections)
    finally:
        stop_server(server)
    if not out.is_file():
        return "cProfile wrote no statistics"
    import io
    import pstats

    buf = io.StringIO()
    pstats.Stats(str(out), stream=buf).sort_stats("tottime").print_stats(15)
    head = f"{why}; cProfile instead (main thread only; cProfile slows the daemon):"
    return f"{head}\n\n```\n{buf.getvalue()}```"


def _py_spy_report(raw: Path, sample: Sample, seconds: float) -> str:
    areas: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        stack = stack_text.split(";")
        total += count
        areas[_area(stack)] += count
        own[_short_frame(stack[-1])] += count
        for frame in {f for f in stack if _rpcd_frame(f)}:
            inclusive[_short_frame(frame)] += count
    if total == 0:
        return "py-spy recorded no samples"
    lines = [
        f"Where the time goes: py-spy samples of the rpcd thread holding the GIL (`--gil`: the "
        f"daemon runs on one CPU, so that is its CPU time), {seconds:g} s of the add payload "
        f"under load ({fmt_rps(sample.rps)} req/s while sampled: py-spy pauses the process to "
        f"read each stack; {total} samples). A sample counts toward the area of its innermost "
        "recognised frame:",
        "",
        "| area | share of samples |",
        "| --- | ---: |",
    ]
    for area, count in areas.most_common():
        lines.append(f"| {area} | {100 * count / total:.1f} % |")
    lines += ["", "Top functions by own time:", "", "| function | own |", "| --- | ---: |"]
    for frame, count in own.most_common(15):
        lines.append(f"| `{frame or '(no Python frame)'}` | {100 * count / total:.1f} % |")
    lines += [
        "",
        "rpcd functions, inclusive (own time plus what they call):",
        "",
        "| function | inclusive |",
        "| --- | ---: |",
    ]
    for frame, count in inclusive.most_common(15):
        lines.append(f"| `{frame}` | {100 * count / total:.1f} % |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main


def machine_notes(tools: Tools, rounds: int, seconds: float, connections: int) -> list[str]:
    import aiohttp

    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk_version = "none"
    if tools.wrk:
        done = subprocess.run([tools.wrk, "--version"], capture_output=True, text=True, check=False)
        wrk_version = (done.stdout or done.stderr).split("[")[0].strip()
    loadavg = os.getloadavg()
    generator = (
        f"{wrk_version}, 1 thread" if tools.wrk else "bench/serve_alternatives/loadgen.py (aiohttp)"
    )
    return [
        f"Machine: {cpu}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}; load: {generator}, {connections} connections; "
        f"{rounds} interleaved round(s) of {seconds:g} s per server and payload; server on CPU 0,"
        f" load generator on CPU 1 ({'taskset' if tools.taskset else 'NOT pinned'}); "
        f"load average at start {loadavg[0]:.2f}.",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s (a smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per measurement (default 5, or BENCH_SERVE_DURATION)",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument("--payloads", default=",".join(p.key for p in PAYLOADS))
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "serve.json")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="another rpcd checkout (e.g. a git worktree of an older commit) served beside this "
        "one in the same interleaved rounds, as server rpcd-baseline",
    )
    args = parser.parse_args(argv)
    if args.baseline is not None:
        global BASELINE
        BASELINE = args.baseline.resolve()
        if not (BASELINE / "rpcd" / "__init__.py").is_file():
            parser.error(f"--baseline {args.baseline}: not an rpcd checkout (no rpcd/__init__.py)")
        SERVERS["rpcd-baseline"] = (f"rpcd at {BASELINE} (uvloop)", "rpcd-baseline", "uvloop")
        SHORT["rpcd-baseline"] = "rpcd (baseline)"
        if "rpcd-baseline" not in args.servers.split(","):
            args.servers += ",rpcd-baseline"

    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.duration or float(
        os.environ.get("BENCH_SERVE_DURATION") or (2 if args.quick else 5)
    )
    servers = [s for s in args.servers.split(",") if s]
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s) {unknown}; choose from {list(SERVERS)}")
    payloads = [p for p in PAYLOADS if p.key in args.payloads.split(",")]

    tools = check_tools(
        want_profile=not args.no_profile and "rpcd" in servers,
        want_aiohttp_xmlrpc="aiohttp-xmlrpc" in servers,
    )
    if "aiohttp-xmlrpc" in servers and not tools.aiohttp_xmlrpc:
        servers.remove("aiohttp-xmlrpc")

    notes = machine_notes(tools, rounds, seconds, args.connections) + tools.notes
    with tempfile.TemporaryDirectory(prefix="rpcd-bench-") as tmp:
        workdir = Path(tmp)
        bodies: dict[str, Path] = {}
        for p in payloads:
            bodies[p.key] = workdir / f"{p.key}.xml"
            bodies[p.key].write_bytes(p.body)
        running: dict[str, Server] = {}
        try:
            for name in list(servers):
                say(f"bench: starting {name} ...")
                try:
                    _, kind, loop = SERVERS[name]
                    running[name] = start_server(name, kind, tools, workdir, loop=loop)
                    check_answers(running[name])
                except RuntimeError as exc:
                    notes.append(f"{name} left out: {str(exc).splitlines()[0]}")
                    say(f"bench: {exc}")
                    if name in running:
                        stop_server(running.pop(name))
                    servers.remove(name)
            say("bench: warming up ...")
            for name in servers:
                for p in payloads:
                    load(tools, running[name].url, bodies[p.key], 1, args.connections)
            results: dict[tuple[str, str], list[Sample]] = {}
            for r in range(rounds):
                order = servers[r % len(servers) :] + servers[: r % len(servers)]
                for p in payloads:
                    for name in order:
                        say(f"bench: round {r + 1}/{rounds}: {p.key} on {name} ...")
                        sample = measure(
                            tools, running[name], bodies[p.key], seconds, args.connections
                        )
                        results.setdefault((name, p.key), []).append(sample)
        finally:
            for server in running.values():
                stop_server(server)

        stats = summarize(results)
        report = tables(stats, servers, payloads)
        profile = ""
        if "rpcd" in servers and not args.no_profile and "add" in bodies:
            say("bench: profiling rpcd on the add payload ...")
            try:
                profile = profile_rpcd(tools, workdir, bodies["add"], seconds, args.connections)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                profile = f"profile failed: {exc}"

    notes.append(
        f"load average at the end {os.getloadavg()[0]:.2f}: the machine is shared, so other "
        "processes' CPU time shows up as noise in every column (the interleaved rounds spread "
        "it; compare the min-max spans before reading much into a difference)."
    )
    print("## rpcd serve: requests/s and p99 beside the alternatives\n")
    for note in notes:
        print(f"- {note}")
    print()
    print(report)
    if profile:
        print()
        print(profile)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "notes": notes,
                "rounds": rounds,
                "seconds": seconds,
                "connections": args.connections,
                "results": [
                    {"server": s, "payload": p, **st} for (s, p), st in sorted(stats.items())
                ],
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
