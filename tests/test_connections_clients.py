"""XML-RPC (stdlib server, Basic auth), SOAP (WS-Security digest/text; spyne) and OAuth 1.0a."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from peers import REQUESTS, serve
from peers.oauth import oauth_app
from peers.soap import NS, soap_app
from peers.tree import load_with_secrets, make_tree, no_secret_in_logs, secret
from peers.xmlrpc_basic import basic_auth_server

from rpcd.connections import BoundConnection, ParameterError, Transport, connections_for
from rpcd.errors import RemoteFault

__all__ = ["no_secret_in_logs"]

USER, PASSWORD = "svc-mahara", secret("xmlrpc-pass-31c4b0")
WSSE_PASSWORD = secret("wsse-pass-8d2f61e0")
OAUTH_KEY, OAUTH_SECRET = "consumer-key-1234", secret("oauth-secret-a9b8c7d6")


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVC_USER", USER)
    monkeypatch.setenv("SVC_PASSWORD", PASSWORD)
    monkeypatch.setenv("WSSE_USER", USER)
    monkeypatch.setenv("WSSE_PASSWORD", WSSE_PASSWORD)
    monkeypatch.setenv("OAUTH_KEY", OAUTH_KEY)
    monkeypatch.setenv("OAUTH_SECRET", OAUTH_SECRET)


def one(tmp_path: Path, body: str, class_extra: str = "") -> Path:
    return make_tree(
        tmp_path,
        {
            "svc.toml": f"""
            [class]
            id = "test_svc"
            plugin = "test"
            name = "Test service"
            {class_extra}

            [[connection]]
            id = "main"
            enabled = true
            global = true
            {body}
            """
        },
    )


def call(root: Path, function: str, params: Any) -> Any:
    catalog, store = load_with_secrets(root)

    async def go() -> Any:
        async with Transport.open() as transport:
            (conn,) = connections_for(catalog, "test_svc", [], secrets=store, transport=transport)
            return await conn.call(function, params)

    return asyncio.run(go())


# ----------------------------------------------------------------------------- XML-RPC


def xmlrpc_conn(endpoint: str) -> str:
    return f"""
    type = "XML-RPC"
    auth = "userpass"
    endpoint = "{endpoint}"
    credentials = {{ username = {{ env = "SVC_USER" }}, password = {{ env = "SVC_PASSWORD" }} }}
    """


def test_xmlrpc_with_basic_auth_checked_by_the_server(tmp_path: Path) -> None:
    with basic_auth_server(USER, PASSWORD) as url:
        root = one(tmp_path, xmlrpc_conn(url))
        assert call(root, "add", [2, 3]) == 5
        assert call(root, "add", [1.5, 2]) == 3.5
        assert call(root, "echo", {"a": [1, "x"], "b": None}) == [{"a": [1, "x"], "b": None}]
        assert "add" in call(root, "system.listMethods", [])
        with pytest.raises(RemoteFault) as info:
            call(root, "fail", ["no such user"])
        assert (info.value.code, info.value.message) == (4, "no such user")
        with pytest.raises(ParameterError, match="positional"):
            call(root, "add", "23")


def test_xmlrpc_wrong_password_is_http_401(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVC_PASSWORD", secret("not-the-password-1"))
    with basic_auth_server(USER, PASSWORD) as url, pytest.raises(RemoteFault) as info:
        call(one(tmp_path, xmlrpc_conn(url)), "add", [1, 2])
    assert info.value.errorcode == "http-401"
    assert "not-the-password-1" not in str(info.value)


# -------------------------------------------------------------------------------- SOAP


def soap_conn(endpoint: str, kind: str = "digest") -> str:
    return f"""
    type = "SOAP"
    auth = "wsse"
    wsse_password_type = "{kind}"
    endpoint = "{endpoint}"
    soap_namespace = "{NS}"
    soap_action = "{NS}#{{function}}"
    credentials = {{ username = {{ env = "WSSE_USER" }}, password = {{ env = "WSSE_PASSWORD" }} }}
    """


@pytest.mark.parametrize("kind", ["digest", "text"])
def test_soap_with_ws_security_verified_by_the_server(tmp_path: Path, kind: str) -> None:
    with serve(soap_app(USER, WSSE_PASSWORD)) as peer:
        root = one(tmp_path, soap_conn(peer.url + "/soap", kind))
        assert call(root, "add", {"a": 2, "b": 40}) == "42"
        assert peer.app[REQUESTS][0]["soapaction"] == f'"{NS}#add"'
        with pytest.raises(RemoteFault) as info:
            call(root, "divide", {"a": 1})
        assert info.value.errorcode == "soap:Client"
        with pytest.raises(ParameterError, match="mapping"):
            call(root, "add", [1, 2])


def test_soap_one_connection_many_calls(tmp_path: Path) -> None:
    """The signed target is kept per function, so each function keeps its own SOAPAction,
    and the UsernameToken (nonce, Created) is still fresh in every envelope."""
    with serve(soap_app(USER, WSSE_PASSWORD)) as peer:
        catalog, store = load_with_secrets(one(tmp_path, soap_conn(peer.url + "/soap")))

        async def go() -> list[Any]:
            async with Transport.open() as transport:
                (conn,) = connections_for(
                    catalog, "test_svc", [], secrets=store, transport=transport
                )
                got = [await conn.call("add", {"a": 2, "b": 40})]
                with pytest.raises(RemoteFault):
                    await conn.call("divide", {"a": 1})
                got.append(await conn.call("add", {"a": 1, "b": 1}))
                return got

        assert asyncio.run(go()) == ["42", "2"]
        actions = [r["soapaction"] for r in peer.app[REQUESTS]]
    assert actions == [f'"{NS}#add"', f'"{NS}#divide"', f'"{NS}#add"']


def test_soap_wrong_password_is_a_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSSE_PASSWORD", secret("bad-wsse-password"))
    with serve(soap_app(USER, WSSE_PASSWORD)) as peer, pytest.raises(RemoteFault) as info:
        call(one(tmp_path, soap_conn(peer.url + "/soap")), "add", {"a": 1, "b": 2})
    assert info.value.errorcode == "wsse:FailedAuthentication"


def test_soap_against_spyne(tmp_path: Path) -> None:
    from peers.spyne_peer import TNS, spyne_server

    with spyne_server() as url:
        body = f"""
        type = "SOAP"
        auth = "wsse"
        endpoint = "{url}"
        soap_namespace = "{TNS}"
        credentials.username = {{ env = "WSSE_USER" }}
        credentials.password = {{ env = "WSSE_PASSWORD" }}
        """
        catalog, store = load_with_secrets(one(tmp_path, body))
        # Not yet a config key: the `soap_qualified` field proposed for the schema.
        resolved = catalog.connections["test_svc/main"].model_copy(update={"soap_qualified": True})

        async def go(function: str, params: Any) -> Any:
            async with Transport.open() as transport:
                conn = BoundConnection(resolved, secrets=store, transport=transport)
                return await conn.call(function, params)

        hello = asyncio.run(go("say_hello", {"name": "Ada", "times": 2}))
        assert hello == {"string": ["Hello, Ada", "Hello, Ada"]}
        with pytest.raises(RemoteFault) as info:
            asyncio.run(go("fail", {"why": "nope"}))
    assert info.value.message == "nope" and info.value.errorcode.endswith("Client.Test")


# ------------------------------------------------------------------------------ OAuth 1


def oauth_conn(
    endpoint: str, method: str = "GET", payload: str = "url", placement: str | None = None
) -> str:
    where = f'oauth_placement = "{placement}"' if placement else ""
    return f"""
    auth = "oauth1"
    payload = "{payload}"
    endpoint = "{endpoint}"
    http_method = "{method}"
    {where}
    parameters = {{ format = "json" }}
    credentials.consumer_key = {{ env = "OAUTH_KEY" }}
    credentials.consumer_secret = {{ env = "OAUTH_SECRET" }}
    """


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_oauth1_signature_verified_by_oauthlib(tmp_path: Path, method: str) -> None:
    with serve(oauth_app(OAUTH_KEY, OAUTH_SECRET)) as peer:
        root = one(tmp_path, oauth_conn(peer.url + "/api/{function}", method))
        answer = call(root, "users", {"ids": [1, 2], "q": "a b&c"})
    assert answer == {
        "ok": True,
        "params": {"format": "json", "ids[0]": "1", "ids[1]": "2", "q": "a b&c"},
        "signature_in": ["header"],  # the default placement
    }


PLACEMENTS = [("header", "GET"), ("header", "POST"), ("query", "GET"), ("query", "POST")]
PLACEMENTS += [("body", "POST")]  # a form body only: validation refuses body with GET


@pytest.mark.parametrize(("placement", "method"), PLACEMENTS)
def test_oauth1_placement_from_config(tmp_path: Path, placement: str, method: str) -> None:
    """``oauth_placement`` decides where the signature goes; oauthlib verifies it there."""
    with serve(oauth_app(OAUTH_KEY, OAUTH_SECRET)) as peer:
        endpoint = peer.url + "/api/{function}"
        root = one(tmp_path, oauth_conn(endpoint, method, placement=placement))
        answer = call(root, "users", {"ids": [1, 2], "q": "a b&c"})
    assert answer["signature_in"] == [placement]
    assert answer["params"] == {"format": "json", "ids[0]": "1", "ids[1]": "2", "q": "a b&c"}


@pytest.mark.parametrize(("placement", "method"), PLACEMENTS)
def test_oauth1_wrong_secret_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, placement: str, method: str
) -> None:
    monkeypatch.setenv("OAUTH_SECRET", secret("wrong-oauth-secret"))
    with serve(oauth_app(OAUTH_KEY, OAUTH_SECRET)) as peer:
        endpoint = peer.url + "/api/{function}"
        root = one(tmp_path, oauth_conn(endpoint, method, placement=placement))
        with pytest.raises(RemoteFault) as info:
            call(root, "users", {"ids": [1]})
    assert info.value.errorcode == "badsignature"


@pytest.mark.parametrize("placement", ["query", "body"])
def test_oauth1_query_and_body_placement(tmp_path: Path, placement: str) -> None:
    from pydantic import SecretStr

    from rpcd.connections.auth import OAuth1Auth
    from rpcd.connections.request import OutboundRequest

    auth = OAuth1Auth(SecretStr(OAUTH_KEY), SecretStr(OAUTH_SECRET), placement=placement)  # type: ignore[arg-type]
    with serve(oauth_app(OAUTH_KEY, OAUTH_SECRET)) as peer:
        request = OutboundRequest(
            "POST", peer.url + "/api/x", query=[("a", "1")], form=[("b", "2")]
        )
        auth.sign(request)
        assert "Authorization" not in request.headers
        assert "oauth_signature" in (
            request.full_url() if placement == "query" else request.body.decode()
        )  # type: ignore[union-attr]

        async def go() -> Any:
            async with Transport.open() as transport:
                response = await transport.send(
                    transport.prepare(request), request.payload(), timeout=5
                )
                return response.body

        assert b'"ok": true' in asyncio.run(go())
    assert repr(auth) == f"OAuth1Auth(placement='{placement}')"


def test_xmlrpc_signed_target_made_once_per_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """XML-RPC reuses one signed target per function (URL parsed, Basic header in place):
    later calls on the same Connection still authenticate, faults and all; the cache of
    targets is bounded (function names come from callers)."""
    from rpcd.connections import resolve

    with basic_auth_server(USER, PASSWORD) as url:
        catalog, store = load_with_secrets(one(tmp_path, xmlrpc_conn(url)))

        async def go() -> tuple[list[Any], int, int]:
            async with Transport.open() as transport:
                (conn,) = connections_for(
                    catalog, "test_svc", [], secrets=store, transport=transport
                )
                got = [await conn.call("add", [2, 3]), await conn.call("add", [4, 5])]
                got.append(await conn.call("echo", ["x"]))
                with pytest.raises(RemoteFault):
                    await conn.call("fail", ["no"])
                got.append(await conn.call("add", [1, 1]))
                kept = len(conn._endpoints[0].prepared)
                monkeypatch.setattr(resolve, "_PREPARED_KEPT", 2)
                for name in ("add", "echo", "system.listMethods"):
                    await conn.call(name, [1, 2] if name == "add" else [])
                return got, kept, len(conn._endpoints[0].prepared)

        got, kept, bounded = asyncio.run(go())
    assert got == [5, 9, ["x"], 2]
    assert kept == 3  # add, echo, fail
    assert bounded <= 2


def test_prepared_target_shows_no_credentials() -> None:
    """A prepared target holds the token (query or header) but never shows or pickles it."""
    import pickle

    from rpcd.connections.request import OutboundRequest

    token = secret("prepared-token-5e1f")

    async def go() -> Any:
        async with Transport.open() as transport:
            request = OutboundRequest("POST", "http://127.0.0.1:9/RPC2", query=[("wstoken", token)])
            request.headers["Authorization"] = "Bearer " + token
            return transport.prepare(request)

    prepared = asyncio.run(go())
    assert token in str(prepared.url) and token in prepared.headers["Authorization"]
    assert prepared.headers["User-Agent"].startswith("rpcd/")
    assert token not in repr(prepared) and "127.0.0.1" in repr(prepared)
    with pytest.raises(TypeError):
        pickle.dumps(prepared)


@pytest.mark.parametrize("kind", ["XML-RPC", "SOAP"])
def test_kept_target_sends_what_a_built_request_sends(tmp_path: Path, kind: str) -> None:
    """The fast path (a signed target kept per function: XML-RPC, SOAP) against the slow one
    (the whole request built and signed for the call, as for REST and OAuth): the same head,
    byte for byte; the same body where it holds no fresh nonce (XML-RPC)."""
    endpoint = "http://127.0.0.1:9/RPC2?x=1"
    body = xmlrpc_conn(endpoint) if kind == "XML-RPC" else soap_conn(endpoint)
    catalog, store = load_with_secrets(one(tmp_path, body))
    params: Any = [1, "two"] if kind == "XML-RPC" else {"a": 1, "b": "two"}

    async def go() -> None:
        async with Transport.open() as transport:
            (conn,) = connections_for(catalog, "test_svc", [], secrets=store, transport=transport)
            auth, client = conn._auth, conn._client
            assert auth is not None and conn._targets is not None
            for _ in range(2):  # made, then kept
                kept, kept_body = conn._request(
                    conn._endpoints[0], "add", client.check_params(params), auth
                )
                request = client.build(conn._conn, "add", client.check_params(params), auth)
                auth.sign(request)
                built = transport.prepare(request, conn.full_id)
                assert kept.head == built.head and kept.origin == built.origin
                if kind == "XML-RPC":
                    assert kept_body == request.payload()
            assert list(conn._endpoints[0].prepared) == ["add"]

    asyncio.run(go())
