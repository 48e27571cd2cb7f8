"""Which connections apply (institutions, enabled, master switch) and the fallback runner."""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from peers import AiohttpPeer, serve
from peers.tree import load, make_tree, no_secret_in_logs, secret

from rpcd.connections import CallOutcome, Transport, call_class, connections_for
from rpcd.secrets import MASK, resolve_catalog

__all__ = ["no_secret_in_logs"]

TOKEN = secret("runner-token-64e2d1")


def demo_app() -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"from": request.match_info["name"], "q": dict(request.query)})

    async def err(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.json_response(
            {"exception": "x", "errorcode": f"down-{name}", "message": f"{name} is down"}
        )

    app = web.Application()
    app.router.add_get("/ok/{name}", ok)
    app.router.add_get("/err/{name}", err)
    return app


@pytest.fixture(scope="module")
def peer() -> Iterator[AiohttpPeer]:
    with serve(demo_app()) as p:
        yield p


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_TOKEN", TOKEN)
    monkeypatch.delenv("MISSING_TOKEN", raising=False)


def conn(
    cid: str,
    path: str,
    *,
    institutions: str,
    priority: int = 1,
    fatal: bool = False,
    enabled: bool = True,
    token: str = "DEMO_TOKEN",
) -> str:
    return f"""
    [[connection]]
    id = "{cid}"
    enabled = {str(enabled).lower()}
    priority = {priority}
    fatal = {str(fatal).lower()}
    institutions = [{institutions}]
    auth = "token"
    endpoint = "{path}"
    credentials = {{ token = {{ env = "{token}" }} }}
    """


CLASS = """
[class]
id = "demo_svc"
plugin = "demo"
name = "Demo"
"""


def tree(tmp_path: Path, *conns: str, enabled: bool = True) -> Path:
    return make_tree(tmp_path, {"demo.toml": CLASS + "".join(conns)}, enabled=enabled)


def run(root: Path, institutions: list[str], function: str = "f") -> CallOutcome:
    catalog = load(root)
    store, _ = resolve_catalog(catalog)

    async def go() -> CallOutcome:
        async with Transport.open() as transport:
            return await call_class(
                catalog, "demo_svc", function, {}, institutions, secrets=store, transport=transport
            )

    return asyncio.run(go())


def ids(root: Path, institutions: list[str]) -> list[str]:
    catalog = load(root)
    store, _ = resolve_catalog(catalog)

    async def go() -> list[str]:
        async with Transport.open() as transport:
            found = connections_for(
                catalog, "demo_svc", institutions, secrets=store, transport=transport
            )
            return [c.id for c in found]

    return asyncio.run(go())


def test_institutions_priority_enabled_and_master_switch(tmp_path: Path, peer: AiohttpPeer) -> None:
    u = peer.url
    parts = (
        conn("b-first", u + "/ok/{function}", institutions='"uni-b"', priority=1),
        conn("a-second", u + "/ok/{function}", institutions='"uni-a"', priority=2),
        conn("c-off", u + "/ok/{function}", institutions='"college-c"', enabled=False),
    )
    root = tree(tmp_path / "on", *parts)
    assert ids(root, ["uni-a"]) == ["a-second"]
    assert ids(root, ["uni-a", "uni-b"]) == ["b-first", "a-second"]
    assert ids(root, ["college-c"]) == [] and ids(root, []) == []
    off = tree(tmp_path / "off", *parts, enabled=False)
    assert ids(off, ["uni-a", "uni-b"]) == []
    outcome = run(off, ["uni-a"])
    assert not outcome.ok and outcome.attempts == []
    assert outcome.error is not None and "master switch" in outcome.error.message


def test_ties_break_by_id_and_errors_fall_through(tmp_path: Path, peer: AiohttpPeer) -> None:
    u = peer.url
    root = tree(
        tmp_path,
        conn("zz", u + "/ok/{function}", institutions='"uni-b"'),
        conn("aa", u + "/err/{function}", institutions='"uni-a"'),
    )
    outcome = run(root, ["uni-b", "uni-a"], "aa")
    assert outcome.ok and outcome.connection == "demo_svc/zz"
    # The peer echoes the query it got: the token was sent, and its echo comes back masked.
    assert outcome.result == {"from": "aa", "q": {"wstoken": MASK}}
    data = outcome.to_dict()
    assert [a["connection"] for a in data["attempts"]] == ["demo_svc/aa", "demo_svc/zz"]
    first = data["attempts"][0]
    assert first["ok"] is False and first["error"] == {
        "message": "aa is down",
        "code": -32500,
        "errorcode": "down-aa",
    }
    json.dumps(data)  # plain data all the way down


def test_an_error_on_a_fatal_connection_stops_there(tmp_path: Path, peer: AiohttpPeer) -> None:
    u = peer.url
    root = tree(
        tmp_path,
        conn("aa", u + "/err/{function}", institutions='"uni-a"', fatal=True),
        conn("bb", u + "/ok/{function}", institutions='"uni-b"'),
    )
    outcome = run(root, ["uni-a", "uni-b"], "aa")
    assert not outcome.ok and [a.connection for a in outcome.attempts] == ["demo_svc/aa"]
    assert outcome.attempts[0].fatal and outcome.error is not None
    assert outcome.error.errorcode == "down-aa"


def test_unresolved_secret_fails_that_connection_only(tmp_path: Path, peer: AiohttpPeer) -> None:
    u = peer.url
    root = tree(
        tmp_path,
        conn("aa", u + "/ok/{function}", institutions='"uni-a"', token="MISSING_TOKEN"),
        conn("bb", u + "/ok/{function}", institutions='"uni-b"', priority=2),
    )
    outcome = run(root, ["uni-a", "uni-b"])
    assert outcome.ok and outcome.connection == "demo_svc/bb"
    err = outcome.attempts[0].error
    assert err is not None and "env:MISSING_TOKEN" in err.message and err.errorcode == "connection"


def test_connection_objects_introspect_but_never_reveal(tmp_path: Path, peer: AiohttpPeer) -> None:
    root = tree(
        tmp_path, conn("aa", peer.url + "/ok/{function}", institutions='"uni-a"', fatal=True)
    )
    catalog = load(root)
    store, _ = resolve_catalog(catalog)

    async def go() -> Any:
        async with Transport.open() as transport:
            (c,) = connections_for(
                catalog, "demo_svc", ["uni-a"], secrets=store, transport=transport
            )
            return c

    c = asyncio.run(go())
    assert (c.class_id, c.id, c.full_id, c.protocol, c.encoding, c.auth_type) == (
        "demo_svc",
        "aa",
        "demo_svc/aa",
        "REST",
        "url",
        "token",
    )
    assert c.institution_specific and not c.is_global and c.fatal and c.institutions == ("uni-a",)
    assert c.describe()["credentials"] == {"token": "env:DEMO_TOKEN"}
    shown = repr(c) + str(c) + json.dumps(c.describe()) + repr(store) + repr(c._auth)
    assert TOKEN not in shown
    with pytest.raises(TypeError):
        pickle.dumps(c)
    with pytest.raises(AttributeError):
        c.token = "x"  # type: ignore[attr-defined]


def test_cached_routes_match_connections_built_afresh(tmp_path: Path, peer: AiohttpPeer) -> None:
    """The route cache (per transport, catalog and secret store generation) against the slow
    path, BoundConnection objects built from ``routing.applicable`` on every call: the same
    connections in the same order, the same objects while nothing changes, new ones after a
    reload (a new catalog) or on another transport."""
    from rpcd.connections import BoundConnection
    from rpcd.routing import applicable

    u = peer.url
    root = tree(
        tmp_path,
        conn("b-first", u + "/ok/{function}", institutions='"uni-b"', priority=1),
        conn("a-second", u + "/ok/{function}", institutions='"uni-a"', priority=2),
        conn("c-off", u + "/ok/{function}", institutions='"college-c"', enabled=False),
    )
    catalog = load(root)
    store, _ = resolve_catalog(catalog)

    async def go() -> None:
        async with Transport.open() as transport, Transport.open() as other:
            for institutions in (["uni-a"], ["uni-b"], ["uni-a", "uni-b"], ["college-c"], []):
                cached = connections_for(
                    catalog, "demo_svc", institutions, secrets=store, transport=transport
                )
                fresh = [
                    BoundConnection(c, secrets=store, transport=transport)
                    for c in applicable(catalog, "demo_svc", institutions)
                ]
                assert [c.describe() for c in cached] == [c.describe() for c in fresh]
                again = connections_for(
                    catalog, "demo_svc", institutions, secrets=store, transport=transport
                )
                assert all(x is y for x, y in zip(cached, again, strict=True))
                elsewhere = connections_for(
                    catalog, "demo_svc", institutions, secrets=store, transport=other
                )
                assert not any(x is y for x, y in zip(cached, elsewhere, strict=True))
            reloaded = load(root)
            before = connections_for(
                catalog, "demo_svc", ["uni-a", "uni-b"], secrets=store, transport=transport
            )
            after = connections_for(
                reloaded, "demo_svc", ["uni-a", "uni-b"], secrets=store, transport=transport
            )
            assert [c.id for c in after] == [c.id for c in before] == ["b-first", "a-second"]
            assert not any(x is y for x, y in zip(before, after, strict=True))

    asyncio.run(go())


def test_a_bound_connection_never_shows_a_literal_credential() -> None:
    """validate refuses credentials in an endpoint or parameters (plaintext-secret); a catalog
    built another way still never shows one through ``describe()``, ``repr`` or ``str``."""
    from tree_helpers import REPO

    from rpcd.config import build
    from rpcd.secrets import SecretStore

    catalog = build(REPO).catalog
    assert catalog is not None
    conn = catalog.connections["moodle_users/uni-a"].model_copy(
        update={
            "endpoint": "https://svc:zq-pass-123@moodle.example/rest?wstoken=zq-tok-456&a=1",
            "parameters": {"token": "zq-tok-789", "moodlewsrestformat": "json"},
        }
    )

    async def shown() -> str:
        from rpcd.connections.resolve import BoundConnection

        async with Transport.open() as transport:
            one = BoundConnection(conn, secrets=SecretStore({}), transport=transport)
            return json.dumps(one.describe()) + repr(one) + str(one)

    text = asyncio.run(shown())
    for secret_value in ("zq-pass-123", "zq-tok-456", "zq-tok-789"):
        assert secret_value not in text
    assert MASK in text and "moodlewsrestformat" in text
