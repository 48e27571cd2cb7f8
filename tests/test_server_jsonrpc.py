"""JSON-RPC 2.0 (single, batch, notification) and the /v1 API against a real daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from server_helpers import OUTSIDER_TOKEN, Daemon, example_daemon

from rpcd.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SYSTEM_ERROR,
)

BEARER = {"Authorization": "Bearer rpcd-dev-loopback-token"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("jsonrpc")
    env = {"RPCD_HANDLER_TIMEOUT": "1", "RPCD_MAX_MULTICALL": "5"}
    with example_daemon(base, env) as d:
        yield d


def rpc(daemon: Daemon, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, _, body = daemon.post(
        "/jsonrpc", raw, "application/json", headers if headers is not None else BEARER
    )
    return status, (json.loads(body) if body and status == 200 else None)


def call(method: str, params: Any = (), id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": list(params), "id": id}


def test_single_call(daemon: Daemon) -> None:
    assert rpc(daemon, call("hello.add", [2, 3])) == (200, {"jsonrpc": "2.0", "result": 5, "id": 1})
    assert rpc(daemon, call("hello.echo", [{"s": "  x \r\n", "big": 2**40}]))[1]["result"] == {
        "s": "  x \r\n",
        "big": 2**40,
    }


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", PARSE_ERROR),
        ({"jsonrpc": "1.0", "method": "x", "id": 1}, INVALID_REQUEST),
        (call("hello.nope"), METHOD_NOT_FOUND),
        (call("hello.add", [1]), INVALID_PARAMS),
        (call("hello.slowEcho", ["x"]), INTERNAL_ERROR),
        (call("hello.slowEcho", [3, "late"]), SYSTEM_ERROR),
        (call("hello.sum", [["x"]]), 4001),
        (call("system.multicall", [[]]), INVALID_REQUEST),  # a list, but the batch is the JSON way
    ],
)
def test_error_codes(daemon: Daemon, payload: Any, code: int) -> None:
    status, body = rpc(daemon, payload)
    assert status == 200
    if code == INVALID_REQUEST and "params" in payload:
        assert body["result"] == []  # an empty multicall is fine
        return
    assert body["error"]["code"] == code
    assert "Traceback" not in body["error"]["message"]


def test_batch_and_notifications(daemon: Daemon) -> None:
    batch = [
        call("hello.add", [1, 2], id="a"),
        {"jsonrpc": "2.0", "method": "hello.add", "params": [1, 1]},  # notification
        call("hello.nope", id="b"),
        {"jsonrpc": "2.0", "id": "c"},
    ]
    status, body = rpc(daemon, batch)
    assert status == 200
    assert body[0] == {"jsonrpc": "2.0", "result": 3, "id": "a"}
    assert body[1]["error"]["code"] == METHOD_NOT_FOUND and body[1]["id"] == "b"
    assert body[2]["error"]["code"] == INVALID_REQUEST and body[2]["id"] == "c"
    assert len(body) == 3


def test_only_notifications_is_204(daemon: Daemon) -> None:
    status, body = rpc(daemon, [{"jsonrpc": "2.0", "method": "hello.add", "params": [1, 1]}])
    assert (status, body) == (204, None)


def test_batch_over_the_limit(daemon: Daemon) -> None:
    status, body = rpc(daemon, [call("hello.add", [1, 1], id=i) for i in range(6)])
    assert status == 200 and body["error"]["code"] == INVALID_REQUEST


def test_login_with_named_params_and_401(daemon: Daemon) -> None:
    status, _ = rpc(daemon, call("hello.add", [1, 2]), headers={})
    assert status == 401
    payload = {
        "jsonrpc": "2.0",
        "method": "system.login",
        "params": {"username": "moodle-uni-b", "password": "bad"},
        "id": 1,
    }
    status, _ = rpc(daemon, payload, headers={})
    assert status == 401
    payload["params"] = {"username": "moodle-uni-b", "password": "example-password-uni-b"}
    status, body = rpc(daemon, payload, headers={})
    assert status == 200 and set(body["result"]) == {"sessionid", "kp3"}


def test_named_params_elsewhere_are_invalid(daemon: Daemon) -> None:
    payload = {"jsonrpc": "2.0", "method": "hello.add", "params": {"a": 1, "b": 2}, "id": 1}
    assert rpc(daemon, payload)[1]["error"]["code"] == INVALID_PARAMS


# --- /v1 --------------------------------------------------------------------------------------


def test_connections_api_redacts_and_scopes(daemon: Daemon) -> None:
    status, _, body = daemon.get("/v1/connections?class=moodle_users", headers=BEARER)
    assert status == 200
    data = json.loads(body)
    ids = {c["full_id"] for c in data["connections"]}
    assert "moodle_users/uni-a" in ids
    for conn in data["connections"]:
        for ref in conn["credentials"].values():
            assert ref.split(":", 1)[0] in ("env", "file", "credential")
    outsider = {"Authorization": f"Bearer {OUTSIDER_TOKEN}"}
    status, _, body = daemon.get("/v1/connections", headers=outsider)
    for conn in json.loads(body)["connections"]:
        assert conn["is_global"] or "college-c" in conn["institutions"]
    assert daemon.get("/v1/connections?institution=uni-a", headers=outsider)[0] == 403
    assert daemon.get("/v1/connections")[0] == 401


def test_call_api_scopes_institutions(daemon: Daemon) -> None:
    outsider = {"Authorization": f"Bearer {OUTSIDER_TOKEN}", "Content-Type": "application/json"}
    body = json.dumps({"function": "f", "params": {}, "institutions": ["uni-a"]}).encode()
    status, _, _ = daemon.post("/v1/call/moodle_users", body, "application/json", outsider)
    assert status == 403
    status, _, _ = daemon.post(
        "/v1/call/no_such_class", json.dumps({"function": "f"}).encode(), "application/json", BEARER
    )
    assert status == 404
