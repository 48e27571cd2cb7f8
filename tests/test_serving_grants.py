"""Item 5 of issue 14: a grant per method, and an explicit anonymous grant validate warns about.

``ctx.uniBOnly`` has a grant of its own (uni-b only) inside a service granted to uni-a and
uni-b; ``ctx.register`` is granted ``anonymous = true`` (Drupal's ``user.register``).
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import MOODLE_PASSWORD, MOODLE_USER, OUTSIDER_TOKEN
from serving_helpers import EGW_PASSWORD, EGW_USER, Served, served, serving_tree
from tree_helpers import run_cli

from rpcd.config.models import Grant, Method, Peer, Service
from rpcd.errors import METHOD_NOT_FOUND
from rpcd.server.core.grants import may_call


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("grants")) as s:
        yield s


def test_a_method_grant_replaces_the_service_grant(setup: Served) -> None:
    daemon = setup.daemon
    loopback = daemon.token_proxy()  # uni-a: the service's grant, not the method's
    with pytest.raises(xmlrpc.client.Fault) as info:
        loopback.ctx.uniBOnly()
    assert info.value.faultCode == METHOD_NOT_FOUND
    assert "ctx.uniBOnly" not in loopback.system.listMethods()
    assert "ctx.whoami" in loopback.system.listMethods()
    uni_b = daemon.basic_proxy(MOODLE_USER, MOODLE_PASSWORD)  # uni-b: both grants
    assert uni_b.ctx.uniBOnly()["peer"] == "moodle-uni-b"
    assert "ctx.uniBOnly" in uni_b.system.listMethods()
    outsider = daemon.token_proxy(OUTSIDER_TOKEN)  # the service grants it by peer id
    assert outsider.ctx.whoami()["peer"] == "outsider"
    (service,) = [s for s in outsider.system.listServices() if s["name"] == "ctx"]
    assert "ctx.uniBOnly" not in service["methods"] and "ctx.greet" in service["methods"]


def test_a_login_domain_narrows_the_grants_to_that_institution(setup: Served) -> None:
    daemon = setup.daemon
    for domain, allowed in (("uni-a", False), ("uni-b", True)):
        session = daemon.proxy().system.login(
            {"domain": domain, "username": EGW_USER, "password": EGW_PASSWORD}
        )
        proxy = daemon.basic_proxy(session["sessionid"], session["kp3"])
        assert ("ctx.uniBOnly" in proxy.system.listMethods()) is allowed
        if allowed:
            assert proxy.ctx.uniBOnly()["institutions"] == ["uni-b"]
        else:
            with pytest.raises(xmlrpc.client.Fault):
                proxy.ctx.uniBOnly()


def test_an_anonymous_method_needs_no_credentials(setup: Served) -> None:
    daemon = setup.daemon
    anonymous = daemon.proxy()
    assert anonymous.ctx.register("ada@example.org") == {
        "email": "ada@example.org",
        "peer": "",
        "protocol": "xmlrpc",
    }
    assert "ctx.register" in anonymous.system.listMethods()
    assert "ctx.whoami" not in anonymous.system.listMethods()
    status, _, body = daemon.post(
        "/jsonrpc",
        b'{"jsonrpc": "2.0", "method": "ctx.register", "params": {"email": "a@b"}, "id": 1}',
        "application/json",
    )
    assert status == 200 and b'"peer":""' in body
    assert daemon.token_proxy().ctx.register("x")["peer"] == "loopback"
    status, _, _ = daemon.post("/RPC2", xmlrpc.client.dumps((), "ctx.whoami").encode())
    assert status == 401  # the other methods still want credentials


def test_validate_warns_naming_each_anonymous_method(tmp_path: Path) -> None:
    root = serving_tree(tmp_path / "tree", "http://127.0.0.1:9/moodle")
    done = run_cli("validate", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if "anonymous-grant" in line]
    assert len(lines) == 1 and "`ctx.register` may be called by anyone" in lines[0]
    assert "zz-ctx.toml" in lines[0]


def test_may_call_answers_in_one_place() -> None:
    peer = Peer(id="p", institutions=("uni-a",), auth="token", token_sha256="0" * 64)
    service = Service(name="s", grant=Grant(institutions=("uni-a",)))
    own = Method(name="m", function="a:b", grant=Grant(peers=("q",)))
    anyone = Method(name="r", function="a:b", grant=Grant(anonymous=True))
    assert may_call(peer, service) and may_call(peer, service, Method(name="n", function="a:b"))
    assert not may_call(peer, service, own)
    assert may_call(None, service, anyone) and not may_call(None, service)
    assert not may_call(peer, service, institutions=("uni-b",))
