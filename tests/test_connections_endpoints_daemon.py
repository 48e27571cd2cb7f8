"""The issue's "done when" on a real daemon: with uni-a's primary endpoint down, a call for
uni-a (``POST /v1/call``) is answered by its standby with no error, the answer names the
endpoint, ``GET /v1/connections`` lists the endpoints in order, and ``/metrics`` shows each
endpoint's health."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from peers import AiohttpPeer, serve
from peers.tinyproxy import free_port
from server_helpers import LOOPBACK_TOKEN, Daemon, make_tree, running

from rpcd.codecs.xmlrpc import dumps_response, loads_call

TOKEN = "standby-test-token-0123456789"

CONNECTIONS = """\
version = 1
[class]
id = "mnet_standby"
plugin = "mnet"
name = "MNet with a standby"

[[connection]]
id = "uni-a"
enabled = true
institutions = ["uni-a"]
type = "XML-RPC"
auth = "token"
endpoints = ["{down}/RPC2", "{standby}/RPC2"]
credentials = {{ token = {{ env = "STANDBY_TEST_TOKEN" }} }}
timeout = 5

[[connection]]
id = "uni-b"
enabled = true
institutions = ["uni-b"]
type = "XML-RPC"
auth = "token"
endpoint = "{other}/RPC2"
credentials = {{ token = {{ env = "STANDBY_TEST_TOKEN" }} }}
"""


def _app(name: str, hits: list[str]) -> web.Application:
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        method, _ = loads_call(await request.read())
        hits.append(method)
        return web.Response(body=dumps_response(f"{name}: {method}"), content_type="text/xml")

    app.router.add_post("/RPC2", handler)
    return app


@dataclass
class Setup:
    daemon: Daemon
    down: str
    standby: AiohttpPeer
    other_hits: list[str]

    def call(self, institutions: list[str]) -> tuple[int, Any]:
        body = {"function": "whoami", "params": ["x"], "institutions": institutions}
        status, _, raw = self.daemon.post(
            "/v1/call/mnet_standby",
            json.dumps(body).encode(),
            "application/json",
            {"Authorization": f"Bearer {LOOPBACK_TOKEN}"},
        )
        return status, json.loads(raw)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("standby")
    other_hits: list[str] = []
    with serve(_app("standby", [])) as standby, serve(_app("uni-b", other_hits)) as other:
        root = make_tree(base / "tree")
        down = f"http://127.0.0.1:{free_port()}"
        text = CONNECTIONS.format(down=down, standby=standby.url, other=other.url)
        (root / "connections.d" / "zz-standby.toml").write_text(text, encoding="utf-8")
        with running(root, base / "rpcd.log", {"STANDBY_TEST_TOKEN": TOKEN}) as daemon:
            yield Setup(daemon, down, standby, other_hits)
            assert TOKEN not in daemon.logs()


def test_the_standby_answers_for_uni_a(setup: Setup) -> None:
    status, outcome = setup.call(["uni-a"])
    assert status == 200 and outcome["ok"] is True, outcome
    assert outcome["result"] == "standby: whoami"
    assert outcome["connection"] == "mnet_standby/uni-a"
    assert outcome["endpoint"] == f"{setup.standby.url}/RPC2"
    assert [(a["endpoint"], a["ok"]) for a in outcome["attempts"]] == [
        (f"{setup.down}/RPC2", False),
        (f"{setup.standby.url}/RPC2", True),
    ]
    assert setup.other_hits == []  # uni-b's server never saw uni-a's call


def test_connections_list_the_endpoint_order(setup: Setup) -> None:
    status, _, raw = setup.daemon.get(
        "/v1/connections?class=mnet_standby",
        headers={"Authorization": f"Bearer {LOOPBACK_TOKEN}"},
    )
    assert status == 200
    (uni_a,) = [c for c in json.loads(raw)["connections"] if c["id"] == "uni-a"]
    assert uni_a["endpoints"] == [f"{setup.down}/RPC2", f"{setup.standby.url}/RPC2"]


def test_metrics_show_each_endpoints_health(setup: Setup) -> None:
    setup.call(["uni-a"])
    status, _, raw = setup.daemon.get("/metrics")
    assert status == 200
    text = raw.decode()
    down = (
        f'rpcd_outbound_endpoint_up{{connection="mnet_standby/uni-a",'
        f'endpoint="{setup.down}/RPC2"}} 0.0'
    )
    up = (
        f'rpcd_outbound_endpoint_up{{connection="mnet_standby/uni-a",'
        f'endpoint="{setup.standby.url}/RPC2"}} 1.0'
    )
    assert down in text and up in text
