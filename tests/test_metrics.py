"""``GET /metrics`` parsed with prometheus-client's own parser counts exactly what the test did."""

from __future__ import annotations

import asyncio
import base64
import xmlrpc.client
from pathlib import Path
from typing import Any

from ops_helpers import Ops, served
from prometheus_client.parser import text_string_to_metric_families
from server_helpers import MOODLE_PASSWORD, MOODLE_USER, make_tree

from rpcd.connections.runner import Attempt, CallError, CallOutcome
from rpcd.server import metrics as m

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(ops: Ops) -> tuple[str, Samples]:
    response = await ops.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = await response.text()
    return text, parse(text)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def exercise(ops: Ops) -> None:
    for i in range(3):
        assert await ops.xmlrpc("hello.add", i, 1) == i + 1
    for _ in range(2):
        answer = await ops.jsonrpc("hello.helloWorld", ["Ada", "Lovelace"])
        assert answer["result"] == "Hello, Ada Lovelace!"
    bad = await ops.xmlrpc("hello.add", "one", 2)
    assert isinstance(bad, xmlrpc.client.Fault) and bad.faultCode == -32602
    for _ in range(2):  # a caller-chosen name must never become a label value
        unknown = await ops.xmlrpc("evil.attackerChosenName")
        assert isinstance(unknown, xmlrpc.client.Fault) and unknown.faultCode == -32601
    calls = [{"methodName": "hello.add", "params": [1, 2]}] * 2
    assert await ops.xmlrpc("system.multicall", calls) == [[3], [3]]
    # Sessions: a good login, a failed one (HTTP 401), a logout with the session.
    login = await ops.xmlrpc("system.login", MOODLE_USER, MOODLE_PASSWORD, headers={})
    assert isinstance(login, dict) and "sessionid" in login
    failed = await ops.xmlrpc("system.login", MOODLE_USER, "wrong-password", headers={})
    assert failed == 401
    _, samples = await scrape(ops)
    assert value(samples, "rpcd_sessions_active") == 1
    session = basic(login["sessionid"], login["kp3"])
    assert await ops.xmlrpc("system.logout", headers=session) == {"GOODBYE": "XOXO"}


def test_metrics_count_what_was_done(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")

    async def run() -> tuple[str, Samples, str]:
        async with served(root) as ops:
            await exercise(ops)
            result = await ops.reloader.reload()
            assert result.ok
            (root / "services.d" / "broken.toml").write_text("version = 1\n[service\n")
            assert not (await ops.reloader.reload()).ok
            text, samples = await scrape(ops)
            return text, samples, ops.holder.current.catalog.content_hash

    text, samples, live_hash = asyncio.run(run())
    req = "rpcd_requests_total"
    assert value(samples, req, protocol="xmlrpc", method="hello.add") == 3 + 1 + 2
    assert value(samples, req, protocol="jsonrpc", method="hello.helloWorld") == 2
    assert value(samples, req, protocol="xmlrpc", method="unknown") == 2
    assert value(samples, req, protocol="xmlrpc", method="system.multicall") == 1
    assert value(samples, req, protocol="xmlrpc", method="system.login") == 2
    assert value(samples, req, protocol="xmlrpc", method="system.logout") == 1
    assert "attackerChosenName" not in text
    assert value(samples, "rpcd_faults_total", code="-32602") == 1
    assert value(samples, "rpcd_faults_total", code="-32601") == 2
    hist = "rpcd_request_duration_seconds_count"
    assert value(samples, hist, method="hello.add") == 6
    assert (
        value(samples, "rpcd_request_duration_seconds_bucket", method="hello.add", le="+Inf") == 6
    )
    assert value(samples, "rpcd_logins_total", result="ok") == 1
    assert value(samples, "rpcd_logins_total", result="failed") == 1
    assert value(samples, "rpcd_sessions_active") == 0  # logged out
    assert value(samples, "rpcd_reloads_total", result="ok") == 1
    assert value(samples, "rpcd_reloads_total", result="failed") == 1
    info = [k for k in samples if k[0] == "rpcd_catalog_info"]
    assert info == [("rpcd_catalog_info", frozenset({("content_hash", live_hash)}))]


def test_outbound_and_bounded_fault_codes() -> None:
    metrics = m.Metrics()
    outcome = CallOutcome(
        ok=True,
        result=1,
        connection="moodle_users/uni-b",
        attempts=[
            Attempt("moodle_users/uni-a", False, error=CallError("down", -32300), latency_ms=20.0),
            Attempt("moodle_users/uni-b", True, 1, latency_ms=5.0),
        ],
    )
    m.record_outbound(outcome)  # outside a request: no metrics to count on, a no-op
    token = m._current.set(metrics)
    try:
        m.record_outbound(outcome)
    finally:
        m._current.reset(token)
    for code in range(m.MAX_FAULT_CODES + 10):  # a remote can send any code
        metrics.observe_call("xmlrpc", "hello.findUser", 0.01, 10_000 + code)
    samples = parse(metrics.exposition().decode())
    out = "rpcd_outbound_calls_total"
    assert value(samples, out, connection="moodle_users/uni-a", result="error") == 1
    assert value(samples, out, connection="moodle_users/uni-b", result="ok") == 1
    dur = "rpcd_outbound_duration_seconds_sum"
    assert abs(value(samples, dur, connection="moodle_users/uni-a") - 0.020) < 1e-9
    codes = {dict(k[1])["code"] for k in samples if k[0] == "rpcd_faults_total"}
    assert len(codes) == m.MAX_FAULT_CODES + 1 and "other" in codes
    assert value(samples, "rpcd_faults_total", code="other") == 10


def test_each_app_has_its_own_registry() -> None:
    a, b = m.Metrics(), m.Metrics()
    a.reload(True)
    sa: Any = parse(a.exposition().decode())
    sb: Any = parse(b.exposition().decode())
    assert value(sa, "rpcd_reloads_total", result="ok") == 1
    assert value(sb, "rpcd_reloads_total", result="ok") == 0
