"""Password checks: the same work for an unknown user name, failures limited per client
address and per user name (429 with Retry-After), counted in /metrics.

The work is counted, not timed: every scrypt the daemon runs goes through ``hashlib.scrypt``,
wrapped here to record its cost parameters (the real function still does the work). The
limits run against a real daemon; connections come from several loopback addresses
(127.0.0.x), which is how the per-address and per-user keys are told apart.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from ops_helpers import served
from server_helpers import (
    BASIC_PASSWORD,
    BASIC_USER,
    MOODLE_PASSWORD,
    MOODLE_USER,
    Daemon,
    example_daemon,
    make_tree,
)

from rpcd.secrets_hash import scrypt_hash, scrypt_params, unmatchable_like
from rpcd.server.core.throttle import PasswordThrottle

LIMIT = 3
TRUSTED_PROXY = "127.0.0.3"
BASIC_CREDS = (BASIC_USER, BASIC_PASSWORD)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# -- the same work for a user name that does not exist ---------------------------------------


def test_unmatchable_hash_takes_the_cost_most_peers_have() -> None:
    hashes = [scrypt_hash("a", n=2**10), scrypt_hash("b", n=2**10), scrypt_hash("c", n=2**11)]
    dummy = unmatchable_like(hashes)
    assert scrypt_params(dummy) == (2**10, 8, 1, 16, 32)
    assert dummy not in hashes and unmatchable_like(hashes) != dummy  # random every time
    assert scrypt_params(unmatchable_like([])) == (2**14, 8, 1, 16, 32)  # the defaults


def test_an_unknown_user_costs_the_same_scrypt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_tree(tmp_path / "tree")
    runs: list[tuple[int, int, int, int]] = []
    real = hashlib.scrypt

    def counting(password: bytes, *, salt: bytes, n: int, r: int, p: int, **kw: Any) -> bytes:
        runs.append((n, r, p, len(salt)))
        return real(password, salt=salt, n=n, r=r, p=p, **kw)

    monkeypatch.setattr(hashlib, "scrypt", counting)

    async def run() -> dict[str, list[tuple[int, int, int, int]]]:
        seen: dict[str, list[tuple[int, int, int, int]]] = {}
        async with served(root) as ops:
            tries = {
                "basic, known user": basic(BASIC_USER, "wrong-password"),
                "basic, unknown user": basic("no-such-user", "wrong-password"),
            }
            for what, headers in tries.items():
                runs.clear()
                assert await ops.xmlrpc("hello.add", 1, 2, headers=headers) == 401
                seen[what] = list(runs)
            for what, user in (("login, known user", MOODLE_USER), ("login, unknown", "nobody")):
                runs.clear()
                assert await ops.xmlrpc("system.login", user, "wrong", headers={}) == 401
                seen[what] = list(runs)
        return seen

    seen = asyncio.run(run())
    peers_costs = {(2**10, 8, 1, 16), (2**14, 8, 1, 16)}  # basic-user's, moodle-uni-b's
    for what, costs in seen.items():
        assert len(costs) == 1, (what, costs)
        assert costs[0] in peers_costs, (what, costs)
    # The unknown name is checked with the cost the index chose: one of the peers' own.
    assert seen["basic, unknown user"] == seen["login, unknown"]


# -- the throttle, unit by unit ----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_sliding_window() -> None:
    clock = Clock()
    throttle = PasswordThrottle(3, 60.0, 100, clock=clock)
    keys = throttle.keys(None, "someone")
    for _ in range(3):
        assert throttle.retry_after(keys) == 0
        throttle.failed(keys)
        clock.now += 10
    assert throttle.retry_after(keys) == pytest.approx(
        30.0
    )  # the first failure, at 1000, ages out at 1060
    clock.now = 1060.0
    assert throttle.retry_after(keys) == 0
    throttle.failed(keys)
    assert throttle.retry_after(keys) == pytest.approx(10.0)  # now 1010, 1020, 1060
    assert throttle.keys(None, "other") != keys


def test_throttle_table_is_bounded() -> None:
    clock = Clock()
    throttle = PasswordThrottle(2, 60.0, 16, clock=clock)
    for i in range(10_000):  # an attacker rotating user names (or addresses)
        throttle.failed(throttle.keys(None, f"user-{i}"))
    assert len(throttle) == 16
    recent = throttle.keys(None, "user-9999")
    throttle.failed(recent)
    assert throttle.retry_after(recent) > 0  # the most recent keys are the ones kept
    assert throttle.retry_after(throttle.keys(None, "user-0")) == 0  # the stalest forgotten


# -- the throttle in the daemon ----------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("throttle")
    env = {
        "RPCD_AUTH_FAIL_LIMIT": str(LIMIT),
        "RPCD_AUTH_FAIL_WINDOW": "600",
        "RPCD_TRUSTED_PROXIES": json.dumps([TRUSTED_PROXY]),
    }
    with example_daemon(base, env) as d:
        yield d


def request(
    daemon: Daemon,
    source: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request from the loopback address ``source`` (a fresh connection)."""
    url = urlsplit(daemon.url)
    assert url.hostname is not None and url.port is not None
    conn = http.client.HTTPConnection(
        url.hostname, url.port, timeout=30, source_address=(source, 0)
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        conn.close()


def xml(
    daemon: Daemon, source: str, method: str, *params: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    body = xmlrpc.client.dumps(params, method).encode()
    return request(
        daemon, source, "POST", "/RPC2", body, {"Content-Type": "text/xml", **(headers or {})}
    )


def add_as(daemon: Daemon, source: str, user: str, password: str, **extra: str) -> int:
    return xml(daemon, source, "hello.add", 1, 2, headers={**basic(user, password), **extra})[0]


def assert_throttled(answer: tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = answer
    assert status == 429, (status, body)
    assert 1 <= int(headers["Retry-After"]) <= 600
    assert b"too many failed password attempts" in body


def counters(daemon: Daemon) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in daemon.metric_samples():
        if s.name == "rpcd_auth_failures_total":
            out[s.labels["reason"]] = s.value
        elif s.name == "rpcd_auth_throttled_total":
            out["throttled"] = s.value
    return out


def test_failures_are_limited_per_client_address(daemon: Daemon) -> None:
    before = counters(daemon)
    for i in range(LIMIT):  # a different (unknown) name each time: only the address repeats
        assert add_as(daemon, "127.0.0.2", f"guess-{i}", "wrong") == 401
    assert_throttled(xml(daemon, "127.0.0.2", "hello.add", 1, 2, headers=basic("x", "y")))
    # Throttled means no check at all: the right password is refused too, from there only.
    assert_throttled(xml(daemon, "127.0.0.2", "hello.add", 1, 2, headers=basic(*BASIC_CREDS)))
    assert add_as(daemon, "127.0.0.1", *BASIC_CREDS) == 200
    # Tokens and sessions are not password checks: the address still uses them.
    bearer = {"Authorization": "Bearer rpcd-dev-loopback-token"}
    assert xml(daemon, "127.0.0.2", "hello.add", 1, 2, headers=bearer)[0] == 200
    after = counters(daemon)
    assert after["password"] - before.get("password", 0) == LIMIT
    assert after["throttled"] - before.get("throttled", 0) == 2


def test_failures_are_limited_per_user_name(daemon: Daemon) -> None:
    for i in range(LIMIT):  # one failure from each of several addresses, one name
        assert add_as(daemon, f"127.0.0.{10 + i}", BASIC_USER, "wrong") == 401
    assert_throttled(xml(daemon, "127.0.0.20", "hello.add", 1, 2, headers=basic(*BASIC_CREDS)))
    # system.login goes through the same check, over XML-RPC and JSON-RPC alike.
    assert_throttled(xml(daemon, "127.0.0.21", "system.login", BASIC_USER, BASIC_PASSWORD))
    payload = {"jsonrpc": "2.0", "id": 1, "method": "system.login", "params": [BASIC_USER, "x"]}
    assert_throttled(
        request(
            daemon,
            "127.0.0.22",
            "POST",
            "/jsonrpc",
            json.dumps(payload).encode(),
            {"Content-Type": "application/json"},
        )
    )
    logins = [{"methodName": "system.login", "params": [BASIC_USER, BASIC_PASSWORD]}]
    bearer = {"Authorization": "Bearer rpcd-dev-loopback-token"}
    assert_throttled(xml(daemon, "127.0.0.24", "system.multicall", logins, headers=bearer))
    status, headers, body = request(
        daemon, "127.0.0.23", "GET", "/v1/status", headers=basic(*BASIC_CREDS)
    )
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert "too many failed" in json.loads(body)["error"]
    # Another user from the same addresses is not held back.
    status, _, body = xml(daemon, "127.0.0.20", "system.login", MOODLE_USER, MOODLE_PASSWORD)
    assert status == 200 and b"sessionid" in body


def test_a_user_name_that_does_not_exist_is_limited_alike(daemon: Daemon) -> None:
    """Were only known names limited, the 429 would tell which names exist."""
    for i in range(LIMIT):
        assert add_as(daemon, f"127.0.0.{30 + i}", "no-such-user", "wrong") == 401
    assert_throttled(
        xml(daemon, "127.0.0.40", "hello.add", 1, 2, headers=basic("no-such-user", "x"))
    )


def test_behind_a_trusted_proxy_the_forwarded_address_counts(daemon: Daemon) -> None:
    def via_proxy(forwarded: str, user: str) -> int:
        return add_as(daemon, TRUSTED_PROXY, user, "wrong", **{"X-Forwarded-For": forwarded})

    for i in range(LIMIT):
        assert via_proxy("198.51.100.1", f"proxied-{i}") == 401
    assert via_proxy("198.51.100.1", "proxied-x") == 429
    assert via_proxy("203.0.113.9, 198.51.100.1", "proxied-y") == 429  # the rightmost counts
    assert via_proxy("198.51.100.2", "proxied-z") == 401  # another client behind the proxy
    assert via_proxy(f"198.51.100.1, {TRUSTED_PROXY}", "proxied-w") == 429  # proxies skipped
    # An untrusted peer's X-Forwarded-For is ignored: it cannot pose as someone else.
    forged = {"X-Forwarded-For": "198.51.100.1"}
    assert add_as(daemon, "127.0.0.50", "proxied-v", "wrong", **forged) == 401


def test_every_failed_authentication_is_counted(daemon: Daemon) -> None:
    before = counters(daemon)
    wrong_token = {"Authorization": "Bearer not-a-token-of-anyone-0123456789"}
    assert xml(daemon, "127.0.0.60", "hello.add", 1, 2, headers=wrong_token)[0] == 401
    malformed = {"Authorization": "Basic !!!not-base64"}
    assert xml(daemon, "127.0.0.60", "hello.add", 1, 2, headers=malformed)[0] == 401
    session = basic("x" * 41 + ".y", "kp3")  # looks like a session, is not one
    assert xml(daemon, "127.0.0.60", "hello.add", 1, 2, headers=session)[0] == 401
    after = counters(daemon)
    for reason in ("token", "malformed", "session"):
        assert after[reason] - before.get(reason, 0) == 1, reason
