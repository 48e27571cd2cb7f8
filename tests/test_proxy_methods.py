"""Proxy methods and ``POST /v1/call/{class}`` on a real daemon, against a Moodle-shaped peer.

The tree is the example tree (plus test peers) with ``moodle_users/uni-a`` pointed at the
in-process Moodle peer, so ``hello.findUser`` — a proxy method with no code behind it — is
served by a real outbound REST call for the calling peer's institutions. Two more classes
show the runner's order through a proxy method: a failing first connection falls through to
the next, unless it is marked ``fatal``.
"""

from __future__ import annotations

import json
import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from peers import REQUESTS, AiohttpPeer, serve
from peers.moodle import PATH, moodle_app
from server_helpers import LOOPBACK_TOKEN, Daemon, make_tree, running

from rpcd.errors import APPLICATION_ERROR, INTERNAL_ERROR, TRANSPORT_ERROR
from rpcd.secrets_hash import token_sha256

MOODLE_TOKEN = "moodle-uni-a-token-7f3e9c0d"
WRONG_MOODLE_TOKEN = "moodle-wrong-token-00000000"
UNI_A_APP = "uni-a-app-token-0123456789abcdef"  # non-admin peer of uni-a
COLLEGE_APP = "college-app-token-0123456789abcd"  # peer of college-c, which has no Moodle
TWO_APP = "two-app-token-0123456789abcdef01"  # peer of uni-a and uni-b
FIND_ADA = {"field": "username", "values": ["ada"]}
ADA = {"id": 2, "username": "ada", "email": "ada@uni-a.example", "suspended": None}

PEERS = f"""\
version = 1

[[peer]]
id = "uni-a-app"
institutions = ["uni-a"]
auth = "token"
token_sha256 = "{token_sha256(UNI_A_APP)}"

[[peer]]
id = "college-app"
institutions = ["college-c"]
auth = "token"
token_sha256 = "{token_sha256(COLLEGE_APP)}"

[[peer]]
id = "two-app"
institutions = ["uni-a", "uni-b"]
auth = "token"
token_sha256 = "{token_sha256(TWO_APP)}"
"""

SERVICE = """\
version = 1

[service]
name = "proxytest"
apiversion = 1
grant = { institutions = ["uni-a"] }

[[service.method]]
name = "fallThrough"
proxy = { class = "moodle_ft", function = "core_user_get_users_by_field" }

[[service.method]]
name = "fatalStop"
proxy = { class = "moodle_fs", function = "core_user_get_users_by_field" }
"""


def runner_class(class_id: str, endpoint: str, *, first_fatal: bool) -> str:
    """Two connections to the same Moodle: uni-a's at priority 1 with a wrong token, then
    uni-b's with the right one. The rules allow an institution in one instance of a class only
    (and a global instance alone), so a fallback is seen by a peer of both institutions."""
    head = f"""\
version = 1

[class]
id = "{class_id}"
plugin = "moodle"
name = "Runner test {class_id}"
function_param = "wsfunction"
fixed = {{ type = "REST", payload = "url" }}
"""
    conn = """
[[connection]]
id = "{id}"
enabled = true
priority = {priority}
fatal = {fatal}
{scope}
auth = "token"
endpoint = "{endpoint}"
credentials = {{ token = {{ env = "{env}" }} }}
parameters = {{ moodlewsrestformat = "json" }}
http_method = "POST"
"""
    return (
        head
        + conn.format(
            id="first",
            priority=1,
            fatal=str(first_fatal).lower(),
            scope='institutions = ["uni-a"]',
            endpoint=endpoint,
            env="WRONG_MOODLE_TOKEN",
        )
        + conn.format(
            id="second",
            priority=2,
            fatal="false",
            scope='institutions = ["uni-b"]',
            endpoint=endpoint,
            env="MOODLE_UNI_A_TOKEN",
        )
    )


@dataclass
class Setup:
    daemon: Daemon
    moodle: AiohttpPeer

    def proxy(self, token: str) -> xmlrpc.client.ServerProxy:
        return self.daemon.token_proxy(token)

    def requests(self) -> list[dict[str, Any]]:
        return self.moodle.app[REQUESTS]

    def api_call(
        self, class_id: str, body: dict[str, Any], token: str | None = LOOPBACK_TOKEN
    ) -> tuple[int, Any]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        status, got, raw = self.daemon.post(
            f"/v1/call/{class_id}", json.dumps(body).encode(), "application/json", headers
        )
        is_json = got.get("Content-Type", "").startswith("application/json")
        return status, json.loads(raw) if is_json else raw.decode()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("proxy")
    with serve(moodle_app(MOODLE_TOKEN)) as moodle:
        root = make_tree(base / "tree")
        endpoint = moodle.url + PATH
        uni_a = root / "connections.d" / "uni-a" / "moodle_users.toml"
        text = uni_a.read_text(encoding="utf-8")
        old = 'endpoint = "https://moodle.uni-a.example/webservice/rest/server.php"'
        assert old in text
        uni_a.write_text(text.replace(old, f'endpoint = "{endpoint}"'), encoding="utf-8")
        hello = root / "services.d" / "hello.toml"
        text = hello.read_text(encoding="utf-8")
        old = 'peers = ["loopback", "mahara-prod"]'
        assert old in text
        new = 'peers = ["loopback", "mahara-prod", "college-app"]'
        hello.write_text(text.replace(old, new), encoding="utf-8")
        (root / "services.d" / "zz-proxy-peers.toml").write_text(PEERS, encoding="utf-8")
        (root / "services.d" / "zz-proxytest.toml").write_text(SERVICE, encoding="utf-8")
        for class_id, fatal in (("moodle_ft", False), ("moodle_fs", True)):
            (root / "connections.d" / f"zz_{class_id}.toml").write_text(
                runner_class(class_id, endpoint, first_fatal=fatal), encoding="utf-8"
            )
        env = {"MOODLE_UNI_A_TOKEN": MOODLE_TOKEN, "WRONG_MOODLE_TOKEN": WRONG_MOODLE_TOKEN}
        with running(root, base / "rpcd.log", env) as daemon:
            yield Setup(daemon, moodle)
            logs = daemon.logs()
        for value in (
            MOODLE_TOKEN,
            WRONG_MOODLE_TOKEN,
            UNI_A_APP,
            COLLEGE_APP,
            TWO_APP,
            LOOPBACK_TOKEN,
        ):
            assert value not in logs, "a secret reached the daemon's log"


def fault_of(call: Any, *args: Any) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as info:
        call(*args)
    return info.value


# ------------------------------------------------------------------------- proxy methods


@pytest.mark.parametrize("token", [LOOPBACK_TOKEN, UNI_A_APP], ids=["admin", "non-admin"])
def test_find_user_is_answered_by_the_callers_moodle(setup: Setup, token: str) -> None:
    before = len(setup.requests())
    assert setup.proxy(token).hello.findUser(FIND_ADA) == [ADA]
    (sent,) = setup.requests()[before:]
    assert sent["method"] == "POST"
    assert sent["form"]["wstoken"] == MOODLE_TOKEN
    assert sent["form"]["wsfunction"] == "core_user_get_users_by_field"
    assert sent["form"]["values[0]"] == "ada" and sent["form"]["field"] == "username"


def test_several_users_and_none(setup: Setup) -> None:
    proxy = setup.proxy(LOOPBACK_TOKEN)
    found = proxy.hello.findUser({"field": "username", "values": ["ada", "alan", "nobody"]})
    assert [u["username"] for u in found] == ["ada", "alan"]
    assert proxy.hello.findUser({"field": "username", "values": ["nobody"]}) == []


def test_institution_without_a_connection_gets_a_clean_fault(setup: Setup) -> None:
    before = len(setup.requests())
    error = fault_of(setup.proxy(COLLEGE_APP).hello.findUser, FIND_ADA)
    assert error.faultCode == TRANSPORT_ERROR
    assert "no enabled connection of class moodle_users applies to college-c" in error.faultString
    assert "Traceback" not in error.faultString
    assert len(setup.requests()) == before  # nothing was sent anywhere


def test_remote_moodle_exception_is_a_fault_with_its_message(setup: Setup) -> None:
    error = fault_of(
        setup.proxy(LOOPBACK_TOKEN).hello.findUser, {"field": "email", "values": ["x"]}
    )
    assert error.faultCode == APPLICATION_ERROR
    # The remote's message, under the connection that sent it (issue 14: attempts listed).
    assert error.faultString == (
        "hello.findUser failed: tried moodle_users/uni-a: Invalid parameter value detected"
    )


def test_wrong_parameter_shape_is_a_fault_not_an_internal_error(setup: Setup) -> None:
    error = fault_of(setup.proxy(LOOPBACK_TOKEN).hello.findUser, "ada", "bob")
    assert error.faultCode != INTERNAL_ERROR
    assert "Traceback" not in error.faultString


def test_a_failing_connection_falls_through_to_the_next(setup: Setup) -> None:
    before = len(setup.requests())
    assert setup.proxy(TWO_APP).proxytest.fallThrough(FIND_ADA) == [ADA]
    sent = setup.requests()[before:]
    assert [r["form"]["wstoken"] for r in sent] == [WRONG_MOODLE_TOKEN, MOODLE_TOKEN]


def test_an_error_on_a_fatal_connection_stops_there(setup: Setup) -> None:
    before = len(setup.requests())
    error = fault_of(setup.proxy(TWO_APP).proxytest.fatalStop, FIND_ADA)
    assert error.faultCode == APPLICATION_ERROR
    assert error.faultString == (
        "proxytest.fatalStop failed: tried moodle_fs/first: Invalid token - token not found"
    )
    sent = setup.requests()[before:]
    assert [r["form"]["wstoken"] for r in sent] == [WRONG_MOODLE_TOKEN]  # never the second


# ------------------------------------------------------------------------ POST /v1/call


def test_api_call_for_an_admin(setup: Setup) -> None:
    status, data = setup.api_call(
        "moodle_users",
        {"function": "core_user_get_users_by_field", "params": FIND_ADA, "institutions": ["uni-a"]},
    )
    assert status == 200, data
    assert data["ok"] is True and data["result"] == [ADA]
    assert data["connection"] == "moodle_users/uni-a"
    assert [(a["connection"], a["ok"]) for a in data["attempts"]] == [("moodle_users/uni-a", True)]


def test_api_call_reports_every_attempt(setup: Setup) -> None:
    body = {"function": "core_user_get_users_by_field", "params": FIND_ADA}
    status, data = setup.api_call("moodle_ft", body, TWO_APP)
    assert status == 200 and data["ok"] is True and data["connection"] == "moodle_ft/second"
    first, second = data["attempts"]
    assert first["connection"] == "moodle_ft/first" and first["ok"] is False
    assert first["error"]["errorcode"] == "invalidtoken" and first["fatal"] is False
    assert second["ok"] is True and second["result"] == [ADA]
    status, data = setup.api_call("moodle_fs", body, TWO_APP)
    assert status == 200 and data["ok"] is False
    assert [a["connection"] for a in data["attempts"]] == ["moodle_fs/first"]
    assert data["attempts"][0]["fatal"] is True
    assert data["error"]["message"] == "Invalid token - token not found"


def test_api_admin_may_call_for_any_institution(setup: Setup) -> None:
    status, data = setup.api_call(
        "moodle_users", {"function": "core_webservice_get_site_info", "institutions": ["uni-b"]}
    )
    assert status == 200  # allowed; uni-b's credential is not on this machine, so it fails
    assert data["ok"] is False and data["attempts"][0]["connection"] == "moodle_users/uni-b"


def test_api_non_admin_only_for_its_own_institutions(setup: Setup) -> None:
    body = {"function": "core_user_get_users_by_field", "params": FIND_ADA}
    status, data = setup.api_call("moodle_users", {**body, "institutions": ["uni-b"]}, UNI_A_APP)
    assert status == 403 and "own institutions" in data["error"]
    status, data = setup.api_call(
        "moodle_users", {**body, "institutions": ["uni-a", "uni-b"]}, UNI_A_APP
    )
    assert status == 403
    status, data = setup.api_call("moodle_users", body, UNI_A_APP)  # defaults to its own
    assert status == 200 and data["ok"] is True and data["result"] == [ADA]
    status, data = setup.api_call("moodle_users", body, COLLEGE_APP)
    assert status == 200 and data["ok"] is False
    assert data["error"]["errorcode"] == "no-connection"


def test_api_refuses_anonymous_and_bad_bodies(setup: Setup) -> None:
    status, _ = setup.api_call("moodle_users", {"function": "f"}, token=None)
    assert status == 401
    status, _ = setup.api_call("moodle_users", {"params": {}})
    assert status == 400
    status, _ = setup.api_call("no_such_class", {"function": "f"})
    assert status == 404
