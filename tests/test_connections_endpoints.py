"""Standby endpoints, failover and retries against real peers on 127.0.0.1.

A connection's ``endpoints`` are tried in order within the connection before the runner moves
on; a primary that is down, times out or answers 5xx hands the call to its standby; a POST
whose connection broke after it was sent is never sent again, a GET is; a remote fault stops.
A call for one institution never reaches a connection of an institution the caller is not in.
Health per endpoint shows in the transport's board, the metrics and ``rpcd check``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from peers import AiohttpPeer, serve
from peers.tinyproxy import free_port
from peers.tree import load_with_secrets, make_tree, no_secret_in_logs, secret
from tree_helpers import run_cli

from rpcd.codecs.xmlrpc import dumps_fault, dumps_response, loads_call
from rpcd.connections import Transport
from rpcd.connections.runner import CallOutcome, call_class
from rpcd.server.ops.metrics import Metrics

__all__ = ["no_secret_in_logs"]

pytestmark = pytest.mark.usefixtures("no_secret_in_logs")

TOKEN = secret("endpoint-test-token-0123")


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNI_A_TOKEN", TOKEN)
    monkeypatch.setenv("UNI_B_TOKEN", TOKEN)


# ------------------------------------------------------------------------------ peers


def _xmlrpc_app(name: str, hits: list[str], status: int = 200) -> web.Application:
    """XML-RPC ``whoami`` → ``name``; ``fail`` → a fault; any other status answers a page."""
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        method, _ = loads_call(await request.read())
        hits.append(method)
        if status != 200:
            return web.Response(status=status, text="upstream unavailable")
        if method == "fail":
            return web.Response(body=dumps_fault(4, "no such user"), content_type="text/xml")
        return web.Response(body=dumps_response(name), content_type="text/xml")

    app.router.add_post("/RPC2", handler)
    return app


def _rest_app(name: str, hits: list[str]) -> web.Application:
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.method)
        return web.json_response({"server": name})

    app.router.add_route("*", "/api/{function}", handler)
    return app


class BrokenPeer:
    """Reads a whole request, then closes without answering (``close``) or never answers
    (``stall``); counts the requests it received."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            self.requests += 1
            if self.mode == "close":
                conn.close()
            else:
                self._held.append(conn)

    def close(self) -> None:
        self._sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def broken_close() -> Iterator[BrokenPeer]:
    peer = BrokenPeer("close")
    yield peer
    peer.close()


@pytest.fixture
def broken_stall() -> Iterator[BrokenPeer]:
    peer = BrokenPeer("stall")
    yield peer
    peer.close()


class Served:
    """An XML-RPC peer and the methods it was called with."""

    def __init__(self, name: str, status: int = 200, rest: bool = False) -> None:
        self.hits: list[str] = []
        app = _rest_app(name, self.hits) if rest else _xmlrpc_app(name, self.hits, status)
        self._cm = serve(app)
        self.peer: AiohttpPeer = self._cm.__enter__()

    @property
    def url(self) -> str:
        return self.peer.url

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


@pytest.fixture
def peers() -> Iterator[dict[str, Served]]:
    made: dict[str, Served] = {}

    class Factory(dict[str, Served]):
        def __missing__(self, key: str) -> Served:
            status = 503 if key.startswith("503") else 200
            made[key] = value = Served(key, status, rest=key.startswith("rest"))
            return value

    yield Factory()
    for served in made.values():
        served.close()


# ------------------------------------------------------------------------------ trees


def _conn(cid: str, institution: str, urls: list[str], priority: int = 1, extra: str = "") -> str:
    listed = ", ".join(f'"{u}/RPC2"' for u in urls)
    env = institution.upper().replace("-", "_") + "_TOKEN"
    return f"""
    [[connection]]
    id = "{cid}"
    enabled = true
    priority = {priority}
    institutions = ["{institution}"]
    type = "XML-RPC"
    auth = "token"
    endpoints = [{listed}]
    credentials = {{ token = {{ env = "{env}" }} }}
    timeout = 1
    {extra}
    """


def _tree(tmp_path: Path, *connections: str, probe: bool = False) -> Path:
    head = '[class]\nid = "mnet_peer"\nplugin = "mnet"\nname = "MNet peer"\n'
    if probe:
        head += '[class.probe]\nfunction = "whoami"\n'
    return make_tree(tmp_path, {"mnet.toml": head + "".join(connections)})


def _run(root: Path, institutions: list[str], function: str = "whoami") -> CallOutcome:
    catalog, store = load_with_secrets(root)

    async def go() -> CallOutcome:
        async with Transport.open() as transport:
            return await call_class(
                catalog, "mnet_peer", function, ["x"], institutions,
                secrets=store, transport=transport,
            )  # fmt: skip

    return asyncio.run(go())


def _tried(outcome: CallOutcome) -> list[tuple[str, str | None, bool]]:
    return [(a.connection, a.endpoint, a.ok) for a in outcome.attempts]


# ------------------------------------------------------------------------------ standby


def test_primary_down_the_standby_answers(tmp_path: Path, peers: dict[str, Served]) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    standby = peers["standby"]
    root = _tree(tmp_path, _conn("a", "uni-a", [down, standby.url]))
    outcome = _run(root, ["uni-a"])
    assert outcome.ok and outcome.result == "standby"
    assert outcome.endpoint == f"{standby.url}/RPC2"
    assert _tried(outcome) == [
        ("mnet_peer/a", f"{down}/RPC2", False),
        ("mnet_peer/a", f"{standby.url}/RPC2", True),
    ]
    assert "cannot connect" in (outcome.attempts[0].error.message or "")  # type: ignore[union-attr]
    assert outcome.to_dict()["endpoint"] == f"{standby.url}/RPC2"


def test_a_5xx_without_a_fault_moves_on(tmp_path: Path, peers: dict[str, Served]) -> None:
    root = _tree(tmp_path, _conn("a", "uni-a", [peers["503-primary"].url, peers["standby"].url]))
    outcome = _run(root, ["uni-a"])
    assert outcome.ok and outcome.result == "standby"
    assert outcome.attempts[0].error is not None
    assert outcome.attempts[0].error.errorcode == "http-503"


def test_a_timeout_moves_on(
    tmp_path: Path, peers: dict[str, Served], broken_stall: BrokenPeer
) -> None:
    root = _tree(tmp_path, _conn("a", "uni-a", [broken_stall.url, peers["standby"].url]))
    outcome = _run(root, ["uni-a"])
    assert outcome.ok and outcome.result == "standby"
    assert "no answer within 1 s" in outcome.attempts[0].error.message  # type: ignore[union-attr]


def test_a_remote_fault_stops_at_the_primary(tmp_path: Path, peers: dict[str, Served]) -> None:
    primary, standby = peers["primary"], peers["standby"]
    root = _tree(tmp_path, _conn("a", "uni-a", [primary.url, standby.url]))
    outcome = _run(root, ["uni-a"], "fail")
    assert not outcome.ok
    assert outcome.error is not None and outcome.error.message == "no such user"
    assert primary.hits == ["fail"] and standby.hits == []


def test_a_post_that_may_have_arrived_is_never_sent_again(
    tmp_path: Path, peers: dict[str, Served], broken_close: BrokenPeer
) -> None:
    """XML-RPC is a POST: the primary read it and closed. Not resent, not to the standby."""
    standby = peers["standby"]
    root = _tree(tmp_path, _conn("a", "uni-a", [broken_close.url, standby.url]))
    outcome = _run(root, ["uni-a"])
    assert not outcome.ok
    assert broken_close.requests == 1 and standby.hits == []
    assert "closed the connection" in (outcome.error.message if outcome.error else "")


def test_a_broken_get_moves_on(
    tmp_path: Path, peers: dict[str, Served], broken_close: BrokenPeer
) -> None:
    rest = peers["rest-standby"]
    conn = f"""
    [[connection]]
    id = "a"
    enabled = true
    institutions = ["uni-a"]
    auth = "token"
    payload = "url"
    http_method = "GET"
    endpoints = ["{broken_close.url}/api/{{function}}", "{rest.url}/api/{{function}}"]
    credentials = {{ token = {{ env = "UNI_A_TOKEN" }} }}
    timeout = 2
    """
    root = _tree(tmp_path, conn)
    catalog, store = load_with_secrets(root)

    async def go() -> CallOutcome:
        async with Transport.open() as transport:
            return await call_class(
                catalog, "mnet_peer", "whoami", {}, ["uni-a"], secrets=store, transport=transport
            )

    outcome = asyncio.run(go())
    assert outcome.ok, outcome.to_dict()
    assert outcome.result == {"server": "rest-standby"}
    assert broken_close.requests == 1 and rest.hits == ["GET"]


# ------------------------------------------------------------------------------ failover


def test_never_falls_through_to_another_institution(
    tmp_path: Path, peers: dict[str, Served]
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    other = peers["uni-b-server"]
    standby = peers["uni-a-standby"]
    with_standby = _tree(
        tmp_path / "one",
        _conn("a", "uni-a", [down, standby.url]),
        _conn("b", "uni-b", [other.url]),
    )
    outcome = _run(with_standby, ["uni-a"])
    assert outcome.ok and outcome.result == "uni-a-standby"
    assert {a.connection for a in outcome.attempts} == {"mnet_peer/a"}
    both_down = _tree(
        tmp_path / "two",
        _conn("a", "uni-a", [down, f"http://127.0.0.1:{free_port()}"]),
        _conn("b", "uni-b", [other.url]),
    )
    failed = _run(both_down, ["uni-a"])
    assert not failed.ok
    assert {a.connection for a in failed.attempts} == {"mnet_peer/a"}
    assert other.hits == []  # uni-b's server never saw uni-a's call


# ------------------------------------------------------------------------------ health


def test_health_per_endpoint_in_metrics_and_check(tmp_path: Path, peers: dict[str, Served]) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    standby = peers["standby"]
    root = _tree(tmp_path, _conn("a", "uni-a", [down, standby.url]), probe=True)
    outcome = _run(root, ["uni-a"])
    metrics = Metrics()
    metrics.observe_outbound(outcome)
    text = metrics.exposition().decode()
    assert (
        f'rpcd_outbound_endpoint_up{{connection="mnet_peer/a",endpoint="{down}/RPC2"}} 0.0' in text
    )
    assert (
        f'rpcd_outbound_endpoint_up{{connection="mnet_peer/a",endpoint="{standby.url}/RPC2"}} 1.0'
        in text
    )
    out = run_cli("check", "--root", str(root))
    assert out.returncode == 1  # the primary is down: check says so, though calls work
    lines = out.stdout.splitlines()
    assert any(line.startswith("mnet_peer/a [1/2]") and "FAIL" in line for line in lines)
    assert any(line.startswith("mnet_peer/a [2/2]") and " ok " in line for line in lines)
    as_json = json.loads(run_cli("check", "--root", str(root), "--format", "json").stdout)
    assert [(r["endpoint"], r["ok"]) for r in as_json["results"]] == [
        (f"{down}/RPC2", False),
        (f"{standby.url}/RPC2", True),
    ]


def test_board_records_up_and_down(tmp_path: Path, peers: dict[str, Served]) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    standby = peers["standby"]
    root = _tree(tmp_path, _conn("a", "uni-a", [down, standby.url]))
    catalog, store = load_with_secrets(root)

    async def go() -> tuple[Any, Any]:
        async with Transport.open() as transport:
            await call_class(
                catalog, "mnet_peer", "whoami", ["x"], ["uni-a"], secrets=store, transport=transport
            )
            board = transport.health
            return board.get("mnet_peer/a", f"{down}/RPC2"), board.get(
                "mnet_peer/a", f"{standby.url}/RPC2"
            )

    primary, second = asyncio.run(go())
    assert primary is not None and not primary.up and primary.failures == 1
    assert second is not None and second.up


# ------------------------------------------------------------------------------ review


def test_diff_shows_the_endpoint_order(tmp_path: Path) -> None:
    from rpcd.diff.compute import diff_catalogs
    from rpcd.diff.render import SideInfo, render_text

    first, second = "http://primary.uni-a.example", "http://standby.uni-a.example"
    base, _ = load_with_secrets(_tree(tmp_path / "base", _conn("a", "uni-a", [first, second])))
    head, _ = load_with_secrets(_tree(tmp_path / "head", _conn("a", "uni-a", [second, first])))
    text = render_text(diff_catalogs(base, head), SideInfo("base"), SideInfo("head"))
    order = f'["{first}/RPC2", "{second}/RPC2"] → ["{second}/RPC2", "{first}/RPC2"]'
    assert "endpoints" in text and order in text, text


def test_every_standby_is_validated_like_the_primary(tmp_path: Path) -> None:
    """endpoint-host and plaintext-secret look at each endpoint, and point at it."""
    from tree_helpers import findings

    (tmp_path / "connections.d" / "uni-b").mkdir(parents=True)
    (tmp_path / "rpcd.toml").write_text(
        'version = 1\n[[institution]]\nid = "uni-b"\nname = "University B"\n'
        'endpoint_hosts = ["*.uni-b.example"]\n'
    )
    (tmp_path / "connections.d" / "mnet.toml").write_text(
        'version = 1\n[class]\nid = "mnet_peer"\nplugin = "mnet"\nname = "MNet peer"\n'
    )
    (tmp_path / "connections.d" / "uni-b" / "mnet.toml").write_text(
        """version = 1
[[connection]]
class = "mnet_peer"
id = "uni-b"
institutions = ["uni-b"]
type = "XML-RPC"
auth = "token"
credentials = { token = { env = "UNI_B_TOKEN" } }
endpoints = [
    "https://mahara.uni-b.example/RPC2",
    "https://standby.elsewhere.example/RPC2",
    "https://standby2.uni-b.example/RPC2?wstoken=literal-token-value",
]
"""
    )
    found = {(f.rule, f.path) for f in findings(tmp_path)}
    assert ("endpoint-host", "connection[0].endpoints[1]") in found, found
    assert ("plaintext-secret", "connection[0].endpoints[2]") in found, found
    assert not any(path == "connection[0].endpoints[0]" for _, path in found), found
