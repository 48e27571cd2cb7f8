"""sd_notify against a real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET.

Unit level: the datagrams of start, reload (RELOADING=1 with MONOTONIC_USEC in the SAME
datagram), stop and watchdog, the abstract '@' socket, and the no-op without a socket.
Daemon level: a real ``rpcd serve`` subprocess sends READY=1 after start, RELOADING=1 +
MONOTONIC_USEC then READY=1 on SIGHUP, STOPPING=1 on SIGTERM, pings WATCHDOG=1 when
WATCHDOG_USEC is set, and exits 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import make_tree, start_daemon

from rpcd.server.ops.sdnotify import Notifier, monotonic_usec, watchdog_interval


class FakeSystemd:
    """A bound datagram socket; ``next()`` returns one datagram as an ordered list of fields."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(10)

    def next(self, timeout: float = 10) -> list[tuple[str, str]]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        assert data.endswith("\n"), data
        return [tuple(line.split("=", 1)) for line in data.splitlines()]  # type: ignore[misc]

    def until(self, key: str, timeout: float = 20) -> list[list[tuple[str, str]]]:
        """Every datagram up to and including the first that carries ``key``."""
        seen: list[list[tuple[str, str]]] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {key} within {timeout} s; got {seen}"
            fields = self.next(remaining)
            seen.append(fields)
            if key in dict(fields):
                return seen

    def empty(self, wait: float = 0.2) -> bool:
        self.sock.settimeout(wait)
        try:
            self.sock.recv(4096)
        except TimeoutError:
            return True
        return False

    def drain(self) -> list[list[tuple[str, str]]]:
        """Every datagram already queued."""
        out = []
        while True:
            try:
                out.append(self.next(0.05))
            except TimeoutError:
                return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[FakeSystemd, str]]:
    path = str(tmp_path / "notify.sock")
    fake = FakeSystemd(path)
    yield fake, path
    fake.close()


def test_start_reload_stop_datagrams(systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = systemd
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("serving abc")
    assert fake.next() == [("READY", "1"), ("STATUS", "serving abc")]

    before = monotonic_usec()
    assert n.reloading()
    fields = fake.next()
    after = monotonic_usec()
    # One datagram carries both: systemd ignores a RELOADING=1 without MONOTONIC_USEC.
    assert [k for k, _ in fields] == ["RELOADING", "MONOTONIC_USEC"]
    assert fields[0] == ("RELOADING", "1")
    assert before <= int(fields[1][1]) <= after

    assert n.stopping()
    assert fake.next() == [("STOPPING", "1")]
    assert n.status("two\nlines")
    assert fake.next() == [("STATUS", "two lines")]  # a value is one line
    assert fake.empty()


def test_abstract_socket() -> None:
    name = f"rpcd-test-{os.getpid()}-{time.monotonic_ns()}"
    fake = FakeSystemd(b"\0" + name.encode())
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert fake.next() == [("READY", "1")]
    finally:
        fake.close()


def test_no_socket_is_a_no_op(tmp_path: Path) -> None:
    n = Notifier({})
    assert not n.enabled
    assert not n.ready() and not n.reloading() and not n.stopping() and not n.watchdog()
    assert n.watchdog_interval is None
    # A socket nobody listens on: logged, never raised.
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).ready()


def test_watchdog_interval_rules() -> None:
    pid = str(os.getpid())
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None


def test_watchdog_task_pings_at_half_the_interval(systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = systemd
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})  # 0.2 s -> ping every 0.1
    assert n.watchdog_interval == pytest.approx(0.1)

    async def run() -> None:
        task = n.start_watchdog()
        assert task is not None
        assert n.start_watchdog() is task  # idempotent
        await asyncio.sleep(0.35)
        await n.stop_watchdog()
        assert task.cancelled()

    asyncio.run(run())
    pings = fake.drain()
    # The first ping at once, then every 0.1 s: 4 in 0.35 s; allow scheduling slack.
    assert all(p == [("WATCHDOG", "1")] for p in pings), pings
    assert 3 <= len(pings) <= 6, pings


def test_watchdog_off_for_another_pid(systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = systemd
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})

    async def run() -> None:
        assert n.start_watchdog() is None
        await asyncio.sleep(0.15)

    asyncio.run(run())
    assert fake.empty()


# -- a real daemon ------------------------------------------------------------------------------


def test_daemon_notifies_start_reload_watchdog_stop(
    systemd: tuple[FakeSystemd, str], tmp_path: Path
) -> None:
    fake, path = systemd
    root = make_tree(tmp_path / "tree")
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}  # ping every 0.2 s
    daemon = start_daemon(root, tmp_path / "rpcd.log", env)
    try:
        started = fake.until("READY")
        ready = dict(started[-1])
        assert ready["READY"] == "1"
        assert "serving" in ready.get("STATUS", ""), ready

        fake.until("WATCHDOG")  # the watchdog task pings from the loop

        daemon.proc.send_signal(signal.SIGHUP)
        before = monotonic_usec()
        seen = fake.until("RELOADING")
        reloading = dict(seen[-1])
        assert int(reloading["MONOTONIC_USEC"]) >= before - 5_000_000  # same clock, same boot
        again = dict(fake.until("READY")[-1])
        assert "serving" in again.get("STATUS", ""), again
    finally:
        rc = daemon.stop()
    assert dict(fake.until("STOPPING")[-1])["STOPPING"] == "1"
    assert rc == 0, daemon.logs()


def test_sigterm_drains_in_flight_calls_refuses_new_ones_and_exits_0(
    systemd: tuple[FakeSystemd, str], tmp_path: Path
) -> None:
    fake, path = systemd
    daemon = start_daemon(
        make_tree(tmp_path / "tree"), tmp_path / "rpcd.log", {"NOTIFY_SOCKET": path}
    )
    fake.until("READY")
    results: dict[int, object] = {}

    def slow(i: int) -> None:
        try:
            results[i] = daemon.token_proxy().hello.slowEcho(2.5, f"done-{i}")
        except Exception as exc:  # recorded, asserted below
            results[i] = exc

    threads = [threading.Thread(target=slow, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # the three calls are in flight
    daemon.proc.send_signal(signal.SIGTERM)
    assert dict(fake.until("STOPPING")[-1])["STOPPING"] == "1"
    host, port = daemon.url.removeprefix("http://").rsplit(":", 1)
    deadline = time.monotonic() + 1.5
    refused = False
    while time.monotonic() < deadline and not refused:
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
            time.sleep(0.05)
        except ConnectionRefusedError:
            refused = True
    assert refused, "still accepting connections after SIGTERM"
    assert all(t.is_alive() for t in threads)  # refused while the old calls still run
    for t in threads:
        t.join(15)
    assert results == {i: f"done-{i}" for i in range(3)}, results
    assert daemon.proc.wait(15) == 0, daemon.logs()
    daemon.stopped = True
