"""One budget of calls per request (``max_calls_per_request``), whatever the nesting.

A real daemon with ``RPCD_MAX_CALLS_PER_REQUEST=60``, ``RPCD_MAX_MULTICALL=100``: batches of
multicalls and multicalls alone are counted before anything runs; over the budget nothing
runs (the daemon's own call counter, ``rpcd_requests_total``, shows no call was made).
"""

from __future__ import annotations

import json
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import pytest
from server_helpers import Daemon, example_daemon

from rpcd.errors import INVALID_REQUEST
from rpcd.settings import Settings

BEARER = {"Authorization": "Bearer rpcd-dev-loopback-token"}
BUDGET = 60


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("budget")
    env = {"RPCD_MAX_CALLS_PER_REQUEST": str(BUDGET), "RPCD_MAX_MULTICALL": "100"}
    with example_daemon(base, env) as d:
        yield d


def jsonrpc(daemon: Daemon, payload: Any) -> Any:
    status, _, body = daemon.post(
        "/jsonrpc", json.dumps(payload).encode(), "application/json", BEARER
    )
    assert status == 200, body
    return json.loads(body)


def multicall_entry(calls: int, rid: int, method: str = "system.multicall") -> dict[str, Any]:
    inner = [{"methodName": "hello.add", "params": [i, 1]} for i in range(calls)]
    return {"jsonrpc": "2.0", "method": method, "params": [inner], "id": rid}


def adds_run(daemon: Daemon) -> float:
    """How many hello.add calls the daemon has run so far (all protocols)."""
    return sum(
        s.value
        for s in daemon.metric_samples()
        if s.name == "rpcd_requests_total" and s.labels["method"] == "hello.add"
    )


def test_the_default_budget_is_max_multicall() -> None:
    defaults = Settings()
    assert defaults.max_calls_per_request == defaults.max_multicall == 100


def test_a_batch_of_multicalls_over_the_budget_runs_nothing(daemon: Daemon) -> None:
    """The amplification of the issue: a batch of 100 multicalls of 100 calls each."""
    before = adds_run(daemon)
    answer = jsonrpc(daemon, [multicall_entry(100, i) for i in range(100)])
    assert isinstance(answer, dict), "one error for the whole batch, not one answer per entry"
    assert answer["error"]["code"] == INVALID_REQUEST
    message = answer["error"]["message"]
    assert "10000 calls" in message and "max_calls_per_request" in message
    assert adds_run(daemon) == before


@pytest.mark.parametrize("alias", ["system.multicall", "system/multicall"])
def test_the_budget_counts_each_multicall_entry(daemon: Daemon, alias: str) -> None:
    before = adds_run(daemon)
    at_budget = jsonrpc(daemon, [multicall_entry(30, 1, alias), multicall_entry(30, 2, alias)])
    assert [len(r["result"]) for r in at_budget] == [30, 30]
    assert adds_run(daemon) == before + BUDGET
    over = jsonrpc(daemon, [multicall_entry(30, 1, alias), multicall_entry(31, 2, alias)])
    assert over["error"]["code"] == INVALID_REQUEST and "61 calls" in over["error"]["message"]
    plain = [
        {"jsonrpc": "2.0", "method": "hello.add", "params": [1, 2], "id": i} for i in range(59)
    ]
    over = jsonrpc(daemon, [*plain, multicall_entry(2, 99, alias)])
    assert over["error"]["code"] == INVALID_REQUEST and "61 calls" in over["error"]["message"]
    assert adds_run(daemon) == before + BUDGET


def test_one_multicall_is_held_to_the_budget_too(daemon: Daemon) -> None:
    """``max_multicall`` (100) allows 61 entries; the budget (60) does not, in either protocol."""
    proxy = xmlrpc.client.ServerProxy(
        daemon.rpc, headers=[("Authorization", BEARER["Authorization"])]
    )
    calls = [{"methodName": "hello.add", "params": [i, 1]} for i in range(BUDGET)]
    assert len(proxy.system.multicall(calls)) == BUDGET
    before = adds_run(daemon)
    with pytest.raises(xmlrpc.client.Fault) as fault:
        proxy.system.multicall([*calls, calls[0]])
    assert fault.value.faultCode == INVALID_REQUEST
    assert "max_calls_per_request" in fault.value.faultString
    single = jsonrpc(daemon, multicall_entry(BUDGET + 1, 7))
    assert single["error"]["code"] == INVALID_REQUEST
    assert adds_run(daemon) == before


def test_multicall_inside_multicall_is_refused(daemon: Daemon) -> None:
    """Nesting cannot hide calls from the count: a nested multicall is refused, not run."""
    inner = [{"methodName": "hello.add", "params": [1, 1]}]
    for name in ("system.multicall", "system/multicall"):
        entry = {"methodName": name, "params": [inner]}
        answer = jsonrpc(daemon, multicall_entry(0, 1) | {"params": [[entry]]})
        assert answer["result"][0]["faultCode"] == INVALID_REQUEST
        assert "cannot be nested" in answer["result"][0]["faultString"]
