"""Slowloris: request-head and body deadlines, and a cap on open connections, against real
daemons over raw sockets.

A connection that does not complete its request head within ``header_timeout`` is closed; a
body that does not arrive within ``body_timeout`` is answered 408; at ``max_connections`` a
new caller closes the connection that has waited longest without a request in progress, so
a flood of half-open sockets cannot lock real callers out, even under a low open-file limit.
"""

from __future__ import annotations

import http.client
import socket
import sys
import time
import urllib.request
import xmlrpc.client
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from server_helpers import LOOPBACK_TOKEN, Daemon, example_daemon, make_tree, running, start_daemon

#: Seconds a test waits for the daemon to close a connection whose deadline (1 s) passed:
#: generous, the property checked is "closed", not how fast.
CLOSE_WAIT = 5.0


def address(daemon: Daemon) -> tuple[str, int]:
    url = urlsplit(daemon.url)
    assert url.hostname is not None and url.port is not None
    return url.hostname, url.port


def connect(daemon: Daemon, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(address(daemon), timeout=10)
    if first:
        sock.sendall(first)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the daemon closes ``sock`` within ``seconds``, and what it sent before."""
    sock.settimeout(seconds)
    received = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return True, received
            received += chunk
    except (ConnectionResetError, BrokenPipeError):
        return True, received
    except TimeoutError:
        pass
    return False, received


def still_open(sock: socket.socket) -> bool:
    return not closed_within(sock, 0.3)[0]


def get(sock: socket.socket, path: str = "/healthz") -> tuple[int, bytes]:
    """A keep-alive GET on an open socket, and its answer."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: rpcd\r\n\r\n".encode())
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read()


def healthz(daemon: Daemon, timeout: float = 10) -> int:
    with urllib.request.urlopen(daemon.url + "/healthz", timeout=timeout) as response:
        status: int = response.status
        return status


def closed_counts(daemon: Daemon) -> dict[str, float]:
    return {
        s.labels["reason"]: s.value
        for s in daemon.metric_samples()
        if s.name == "rpcd_connections_closed_total"
    }


PARTIAL_HEAD = b"POST /RPC2 HTTP/1.1\r\nHost: rpcd\r\nContent-Type: text/xml\r\n"


# -- deadlines ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with one-second head and body deadlines."""
    base = tmp_path_factory.mktemp("deadlines")
    env = {
        "RPCD_HEADER_TIMEOUT": "1",
        "RPCD_BODY_TIMEOUT": "1",
        "RPCD_SEND_TIMEOUT": "1",
        "RPCD_MAX_BODY_BYTES": str(16 * 1024 * 1024),
    }
    with example_daemon(base, env) as d:
        yield d


@pytest.mark.parametrize(
    "first", [b"", b"P", PARTIAL_HEAD], ids=["silent", "one-byte", "partial-head"]
)
def test_a_stalled_request_head_is_closed(quick: Daemon, first: bytes) -> None:
    with connect(quick, first) as sock:
        closed, sent = closed_within(sock, CLOSE_WAIT)
    assert closed and sent == b""
    assert quick.alive()


def test_a_kept_alive_connection_idles_but_its_next_head_has_the_deadline(quick: Daemon) -> None:
    with connect(quick) as sock:
        assert get(sock) == (200, b"ok\n")
        time.sleep(2.5)  # idle between requests: aiohttp's keep-alive timer, not the head's
        assert get(sock) == (200, b"ok\n")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next head, never finished
        closed, sent = closed_within(sock, CLOSE_WAIT)
    assert closed and sent == b""


def test_a_busy_kept_alive_connection_outlives_its_first_heads_deadline(quick: Daemon) -> None:
    """Heads that each complete in time keep the connection open for many deadlines' worth
    of time (the deadline follows the current head, not the first); the stalled one closes."""
    with connect(quick) as sock:
        started = time.monotonic()
        while time.monotonic() - started < 2.5:  # 2.5 head deadlines of one second
            sock.sendall(b"GET /hea")
            time.sleep(0.1)  # each head is split, so it is in progress when a timer is due
            sock.sendall(b"lthz HTTP/1.1\r\nHost: rpcd\r\n\r\n")
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert (response.status, response.read()) == (200, b"ok\n")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        closed, sent = closed_within(sock, CLOSE_WAIT)
    assert closed and sent == b""


def test_a_slowly_sent_head_is_closed_at_its_deadline(quick: Daemon) -> None:
    """The deadline runs from the head's start: trickling a byte at a time does not extend it."""
    with connect(quick, b"GET /healthz HTTP/1.1\r\n") as sock:
        started = time.monotonic()
        closed = False
        try:
            while time.monotonic() - started < CLOSE_WAIT:
                sock.sendall(b"X")
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        if not closed:
            closed = closed_within(sock, 1)[0]
    assert closed


def test_a_stalled_body_is_answered_408(quick: Daemon) -> None:
    head = PARTIAL_HEAD + (
        f"Authorization: Bearer {LOOPBACK_TOKEN}\r\nContent-Length: 1000\r\n\r\n".encode()
    )
    with connect(quick, head + b"<?xml version") as sock:
        sock.settimeout(CLOSE_WAIT)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 408
        assert response.getheader("Connection") == "close"
        assert b"body_timeout" in response.read()


@pytest.mark.slow
def test_a_client_that_stops_reading_is_cut_off(quick: Daemon) -> None:
    """A response larger than the socket buffers, never read: after ``send_timeout`` the
    daemon drops the connection instead of holding it (and the response) forever."""
    text = "x" * (8 * 1024 * 1024)
    body = xmlrpc.client.dumps((text,), "hello.echo").encode()
    head = (
        f"POST /RPC2 HTTP/1.1\r\nHost: rpcd\r\nContent-Type: text/xml\r\n"
        f"Authorization: Bearer {LOOPBACK_TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: it fills
    with sock:
        sock.settimeout(10)
        sock.connect(address(quick))
        sock.sendall(head + body)
        time.sleep(4)  # not reading, well past send_timeout (1 s)
        closed, received = closed_within(sock, CLOSE_WAIT * 4)
    assert closed
    assert len(received) < len(text), "the whole answer was kept for a client that did not read"
    assert quick.alive()


# -- the cap -----------------------------------------------------------------------------


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[Daemon]:
    env = {"RPCD_MAX_CONNECTIONS": "4"}
    with running(make_tree(tmp_path / "tree"), tmp_path / "rpcd.log", env) as d:
        yield d


def test_at_the_cap_the_longest_waiting_connection_makes_room(capped: Daemon) -> None:
    before = closed_counts(capped)
    with ExitStack() as stack:
        idle = []
        for first in (b"", b"GET / HTTP/1.1\r\n", b"", b""):
            idle.append(stack.enter_context(connect(capped, first)))
            time.sleep(0.2)  # accepted in this order
        assert healthz(capped) == 200  # a fifth caller is served...
        assert closed_within(idle[0], CLOSE_WAIT)[0]  # ...in the place of the stalest
        assert all(still_open(sock) for sock in idle[1:])
        assert get(idle[2]) == (200, b"ok\n")  # the others still usable
    time.sleep(0.3)
    after = closed_counts(capped)
    assert after["evicted"] - before.get("evicted", 0) == 1


def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused(capped: Daemon) -> None:
    head = PARTIAL_HEAD + (
        f"Authorization: Bearer {LOOPBACK_TOKEN}\r\nContent-Length: 100\r\n\r\n<".encode()
    )
    with ExitStack() as stack:
        busy = [stack.enter_context(connect(capped, head)) for _ in range(4)]
        time.sleep(0.5)  # heads complete, bodies pending: four requests in progress
        with connect(capped, b"GET /healthz HTTP/1.1\r\nHost: rpcd\r\n\r\n") as extra:
            closed, sent = closed_within(extra, CLOSE_WAIT)
        assert closed and sent == b""
        assert all(still_open(sock) for sock in busy)
    deadline = time.monotonic() + CLOSE_WAIT  # the busy ones gone, callers are served again
    while True:
        try:
            assert healthz(capped) == 200
            break
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert closed_counts(capped)["refused"] >= 1


NOFILE_EXEC = """\
import os, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_half_open_flood_under_a_low_descriptor_limit(tmp_path: Path) -> None:
    """The issue's case: 300 half-open connections against a daemon limited to 256 open
    files (default deadlines, so only the cap can save it). /healthz still answers."""
    wrapper = tmp_path / "nofile_exec.py"
    wrapper.write_text(NOFILE_EXEC)
    prefix = [sys.executable, str(wrapper), sys.executable]
    daemon = start_daemon(make_tree(tmp_path / "tree"), tmp_path / "rpcd.log", prefix=prefix)
    try:
        with ExitStack() as stack:
            for _ in range(300):
                with suppress(OSError):  # one cut off already: what matters is below
                    stack.enter_context(connect(daemon, b"GET / HTTP/1.1\r\nHost: x\r\n"))
            assert healthz(daemon) == 200
            assert daemon.get("/readyz")[0] == 200
        assert closed_counts(daemon)["evicted"] > 0
        assert "max_connections 512 lowered to 128" in daemon.logs()
    finally:
        rc = daemon.stop()
    assert rc == 0, daemon.logs()
