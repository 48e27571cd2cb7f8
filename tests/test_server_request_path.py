"""The request path's own behaviour: event loops, inline handlers, batched access lines, and
the bookkeeping every answer gets (parse errors counted, JSON 401s, request ids on 404/405)."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path

import pytest
from ops_helpers import AUTH, served
from server_helpers import LOOPBACK_TOKEN, make_tree, running
from test_server_metrics import Samples, parse, scrape, value

from rpcd.errors import INTERNAL_ERROR, SYSTEM_ERROR
from rpcd.server.core.loading import Loaded, load
from rpcd.server.ops.logs import JsonFormatter, LineHandler, TextFormatter, access_item_record

HANDLERS = """\
import time


def nap(seconds):
    time.sleep(seconds)
    return "awake"


def broken():
    raise RuntimeError("secret detail")


def unencodable():
    return object()
"""

SERVICE = """\
version = 1

[service]
name = "naps"
grant = { peers = ["loopback"] }

[[service.method]]
name = "inline"
function = "rpcd_test_naps:nap"
run = "inline"

[[service.method]]
name = "pooled"
function = "rpcd_test_naps:nap"

[[service.method]]
name = "broken"
function = "rpcd_test_naps:broken"
run = "inline"

[[service.method]]
name = "unencodable"
function = "rpcd_test_naps:unencodable"
run = "inline"
"""


@pytest.fixture
def naps_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example tree plus a service whose handlers sleep, inline and in the pool."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "rpcd_test_naps.py").write_text(HANDLERS)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    root = make_tree(tmp_path / "tree")
    (root / "services.d" / "naps.toml").write_text(SERVICE)
    return root


def test_run_inline_marks_only_sync_functions(naps_tree: Path) -> None:
    loaded = load(naps_tree, strict_secrets=False)
    assert isinstance(loaded, Loaded)
    methods = loaded.methods
    assert methods["naps.inline"].inline and not methods["naps.pooled"].inline
    assert methods["hello.add"].inline  # the example tree runs add inline
    assert not methods["hello.sum"].inline and not methods["hello.slowEcho"].inline


def test_inline_handlers_run_on_the_loop_without_the_time_limit(naps_tree: Path) -> None:
    async def run() -> tuple[object, object, object]:
        async with served(naps_tree, handler_timeout=0.2) as ops:
            inline = await ops.xmlrpc("naps.inline", 0.4)
            pooled = await ops.xmlrpc("naps.pooled", 0.4)
            broken = await ops.xmlrpc("naps.broken")
            return inline, pooled, broken

    inline, pooled, broken = asyncio.run(run())
    assert inline == "awake"  # not interrupted: the documented price of run = "inline"
    assert isinstance(pooled, xmlrpc.client.Fault) and pooled.faultCode == SYSTEM_ERROR
    assert isinstance(broken, xmlrpc.client.Fault) and broken.faultCode == INTERNAL_ERROR
    assert "secret detail" not in broken.faultString and "request id" in broken.faultString


def test_a_result_no_codec_can_encode_is_an_internal_error(naps_tree: Path) -> None:
    async def run() -> tuple[object, dict[str, object]]:
        async with served(naps_tree) as ops:
            return await ops.xmlrpc("naps.unencodable"), await ops.jsonrpc("naps.unencodable", [])

    xml, json_rpc = asyncio.run(run())
    assert isinstance(xml, xmlrpc.client.Fault) and xml.faultCode == INTERNAL_ERROR
    assert "request id" in xml.faultString
    error = json_rpc["error"]
    assert isinstance(error, dict) and error["code"] == INTERNAL_ERROR
    assert "request id" in str(error["message"]) and json_rpc["id"] == 1


def test_parse_errors_are_counted_and_api_401_is_json(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")

    async def run() -> tuple[int, dict[str, str], dict[str, str], Samples]:
        async with served(root) as ops:
            garbage = await ops.client.post(
                "/RPC2", data=b"<methodCall><oops", headers={"Content-Type": "text/xml", **AUTH}
            )
            assert garbage.status == 200
            bad_json = await ops.client.post(
                "/jsonrpc", data=b"{nope", headers={"Content-Type": "application/json", **AUTH}
            )
            assert bad_json.status == 200
            denied = await ops.client.get("/v1/status")
            body = await denied.json()
            _, samples = await scrape(ops)
            return denied.status, dict(denied.headers), body, samples

    status, headers, body, samples = asyncio.run(run())
    assert status == 401 and headers["Content-Type"].startswith("application/json")
    assert "WWW-Authenticate" in headers and headers["X-Request-ID"]
    assert body == {"error": "authentication required"}
    assert value(samples, "rpcd_faults_total", code="-32700") == 2
    requests = "rpcd_requests_total"
    assert value(samples, requests, protocol="xmlrpc", method="unknown") == 1


def test_unrouted_requests_get_request_ids(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")

    async def run() -> list[tuple[int, str | None, str | None]]:
        async with served(root) as ops:
            out = []
            for method, path in (("GET", "/nowhere"), ("GET", "/RPC2"), ("PUT", "/metrics")):
                response = await ops.client.request(method, path, headers={"X-Request-ID": "r-1"})
                out.append(
                    (
                        response.status,
                        response.headers.get("X-Request-ID"),
                        response.headers.get("Allow"),
                    )
                )
            return out

    (nowhere, get_rpc2, put_metrics) = asyncio.run(run())
    assert nowhere == (404, "r-1", None)
    assert get_rpc2 == (405, "r-1", "POST")
    assert put_metrics[:2] == (405, "r-1") and "GET" in (put_metrics[2] or "")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_serve_on_either_event_loop(tmp_path: Path, loop: str) -> None:
    env = {"RPCD_EVENT_LOOP": loop}
    with running(make_tree(tmp_path / "tree"), tmp_path / "rpcd.log", env) as daemon:
        proxy = xmlrpc.client.ServerProxy(
            daemon.url + "/RPC2", headers=[("Authorization", f"Bearer {LOOPBACK_TOKEN}")]
        )
        assert proxy.hello.add(2, 3) == 5
        assert proxy.hello.sum([1, 2, 3.5]) == 6.5  # a pooled handler too
        logs = daemon.logs()
    assert f"event loop {loop}" in logs
    assert "POST /RPC2 200 [request_id=" in logs and "rpc_method=hello.sum" in logs
    assert LOOPBACK_TOKEN not in logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    yield io.StringIO()


ITEM = (1700000000.25, "POST", "/RPC2", 200, "r-1", "loopback", "hello.add", 0.00035)


def test_access_lines_are_batched_in_order(stream: io.StringIO) -> None:
    handler = LineHandler(stream, flush_interval=0.05)
    handler.setFormatter(TextFormatter())
    handler.mask = lambda text: text.replace("hello.add", "***")
    logger = logging.getLogger("rpcd.test.batched")
    logger.propagate = False
    logger.addHandler(handler)
    try:

        async def run() -> tuple[str, str, str]:
            handler.add_access(ITEM)
            handler.add_access((*ITEM[:4], "r-2", *ITEM[5:]))
            before = stream.getvalue()
            await asyncio.sleep(0.15)
            after_timer = stream.getvalue()
            handler.add_access((*ITEM[:4], "r-3", *ITEM[5:]))
            logger.warning("a record writes the pending lines first")
            return before, after_timer, stream.getvalue()

        before, after_timer, last = asyncio.run(run())
    finally:
        logger.removeHandler(handler)
    assert before == ""  # nothing formatted or written per request
    lines = after_timer.splitlines()
    assert [line.split("request_id=")[1][:3] for line in lines] == ["r-1", "r-2"]
    assert "hello.add" not in after_timer and "rpc_method=***" in after_timer  # masked
    last_lines = last.splitlines()
    assert "request_id=r-3" in last_lines[2] and "pending lines first" in last_lines[3]


def _access_record() -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": "rpcd.access",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "%s %s %s",
            "args": ("POST", "/RPC2", 200),
            "created": 1700000000.25,
            "msecs": 250.0,
            "request_id": "r-1",
            "peer": "loopback",
            "rpc_method": "hello.add",
            "status": 200,
            "duration_ms": 0.35,
        }
    )


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_batched_access_lines_match_the_formatter(
    formatter: TextFormatter | JsonFormatter,
) -> None:
    assert formatter.access_lines([ITEM]) == [formatter.format(_access_record())]
    # and what a handler with any other formatter writes is that formatter's record text
    assert logging.Formatter().format(access_item_record(ITEM)) == "POST /RPC2 200"


def test_metrics_families_parse() -> None:
    from rpcd.server.ops.metrics import Metrics

    metrics = Metrics()
    metrics.observe_call("xmlrpc", "hello.add", 0.0004)
    metrics.observe_call("xmlrpc", "hello.add", 0.02, -32602)
    samples = parse(metrics.exposition().decode())
    bucket = "rpcd_request_duration_seconds_bucket"
    assert value(samples, bucket, method="hello.add", le="0.001") == 1
    assert value(samples, bucket, method="hello.add", le="0.025") == 2
    assert value(samples, "rpcd_faults_total", code="-32602") == 1


def test_uvloop_missing_falls_back_to_asyncio(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from rpcd.server.ops import loops

    assert loops.loop_factory("asyncio") is None
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    with caplog.at_level(logging.WARNING, logger="rpcd.server"):
        assert loops.loop_factory("uvloop") is None

    async def which() -> str:
        return loops.loop_name()

    assert loops.run(which(), "uvloop") == "asyncio"
    assert "running on asyncio" in caplog.text
