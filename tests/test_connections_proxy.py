"""Outbound calls through a real proxy (tinyproxy): http targets in absolute form, https
targets through CONNECT with the certificate checked against the target, with and without
proxy authentication; a proxy that refuses (403, 407) or is down; the site proxy, no_proxy,
``proxy = false`` and the environment variables only when the setting says so; proxy
credentials never in logs, errors or ``rpcd show``."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from peers import AiohttpPeer, serve
from peers.tinyproxy import RunningProxy, free_port, tinyproxy
from peers.tree import load_with_secrets, make_tree, no_secret_in_logs, secret
from tree_helpers import run_cli

from rpcd.codecs.xmlrpc import dumps_response, loads_call
from rpcd.connections import Transport, connections_for
from rpcd.connections.transport import TransportSettings
from rpcd.errors import ConnectionCallError, RemoteFault

__all__ = ["no_secret_in_logs"]

pytestmark = pytest.mark.usefixtures("no_secret_in_logs")

PROXY_USER = "rpcd-proxy-user"
PROXY_PASSWORD = secret("Pr0xyPassw0rdNeverShown")
secret(base64.b64encode(f"rpcd-proxy-user:{PROXY_PASSWORD}".encode()).decode())  # the Basic blob
TOKEN = secret("token-for-the-remote-0123")


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_USER", PROXY_USER)
    monkeypatch.setenv("PROXY_PASSWORD", PROXY_PASSWORD)
    monkeypatch.setenv("REMOTE_TOKEN", TOKEN)
    monkeypatch.setenv("WRONG_PASSWORD", "not-the-proxy-password")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def _app() -> web.Application:
    """XML-RPC ``whoami``: answers with what the request looked like on arrival."""
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        method, _params = loads_call(await request.read())
        value = {
            "method": method,
            "via": request.headers.get("Via", ""),
            "proxy_authorization": "Proxy-Authorization" in request.headers,
        }
        return web.Response(body=dumps_response(value), content_type="text/xml")

    app.router.add_post("/RPC2", handler)
    return app


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def http_peer() -> Iterator[AiohttpPeer]:
    with serve(_app()) as peer:
        yield peer


def _tls(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def https_peer(ca: trustme.CA) -> Iterator[AiohttpPeer]:
    with serve(_app(), _tls(ca, "127.0.0.1", "localhost")) as peer:
        yield peer


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(ca.cert_pem.bytes())
    return str(path)


@pytest.fixture(scope="module")
def auth_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    with tinyproxy(
        tmp_path_factory.mktemp("tp-auth"), user=PROXY_USER, password=PROXY_PASSWORD
    ) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def open_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    with tinyproxy(tmp_path_factory.mktemp("tp-open")) as proxy:
        yield proxy


CREDS = 'username = { env = "PROXY_USER" }, password = { env = "PROXY_PASSWORD" }'


def _tree(
    tmp_path: Path,
    endpoint: str,
    *,
    proxy: str | None = None,
    site_proxy: str | None = None,
    ca_bundle: str | None = None,
    probe: bool = False,
) -> Path:
    lines = [
        "[class]",
        'id = "mnet_peer"',
        'plugin = "mnet"',
        'name = "MNet peer"',
    ]
    if probe:
        lines += ["[class.probe]", 'function = "whoami"']
    lines += [
        "[[connection]]",
        'id = "main"',
        "enabled = true",
        "global = true",
        'type = "XML-RPC"',
        'auth = "token"',
        f'endpoint = "{endpoint}/RPC2"',
        'credentials = { token = { env = "REMOTE_TOKEN" } }',
        "timeout = 10",
    ]
    if ca_bundle:
        lines.append(f'ca_bundle = "{ca_bundle}"')
    if proxy is not None:
        lines.append(f"proxy = {proxy}")
    root = make_tree(tmp_path, {"mnet.toml": "\n".join(lines) + "\n"})
    if site_proxy is not None:
        with (root / "rpcd.toml").open("a") as site:
            site.write("\n[proxy]\n" + site_proxy + "\n")
    return root


def _call(root: Path, settings: TransportSettings | None = None) -> Any:
    catalog, store = load_with_secrets(root)

    async def go() -> Any:
        async with Transport.open(settings) as transport:
            (conn,) = connections_for(catalog, "mnet_peer", [], secrets=store, transport=transport)
            return await conn.call("whoami", ["x"])

    return asyncio.run(go())


def _refused(root: Path) -> str:
    with pytest.raises(ConnectionCallError) as info:
        _call(root)
    text = str(info.value)
    assert PROXY_PASSWORD not in text and TOKEN not in text
    return text


def _own(proxy: RunningProxy, creds: str | None = CREDS) -> str:
    return f'{{ url = "{proxy.url}"' + (f", {creds}" if creds else "") + " }"


# ------------------------------------------------------------------ through the proxy


def test_http_target_through_an_authenticating_proxy(
    tmp_path: Path, http_peer: AiohttpPeer, auth_proxy: RunningProxy
) -> None:
    got = _call(_tree(tmp_path, http_peer.url, proxy=_own(auth_proxy)))
    assert got["method"] == "whoami"
    assert "tinyproxy" in got["via"]  # it went through the proxy ...
    assert got["proxy_authorization"] is False  # ... whose credentials stayed with it
    assert f"127.0.0.1:{http_peer.port}" in auth_proxy.log_text()


def test_https_target_through_connect_with_proxy_auth(
    tmp_path: Path, https_peer: AiohttpPeer, auth_proxy: RunningProxy, ca_file: str
) -> None:
    root = _tree(tmp_path, https_peer.url, proxy=_own(auth_proxy), ca_bundle=ca_file)
    got = _call(root)
    assert got["method"] == "whoami"
    assert got["via"] == ""  # a tunnel: the proxy never saw the request
    assert f"CONNECT 127.0.0.1:{https_peer.port}" in auth_proxy.log_text() or (
        f"127.0.0.1:{https_peer.port}" in auth_proxy.log_text()
    )


def test_http_and_https_through_a_proxy_without_auth(
    tmp_path: Path,
    http_peer: AiohttpPeer,
    https_peer: AiohttpPeer,
    open_proxy: RunningProxy,
    ca_file: str,
) -> None:
    plain = _call(_tree(tmp_path / "a", http_peer.url, proxy=_own(open_proxy, None)))
    assert "tinyproxy" in plain["via"]
    tls_root = _tree(
        tmp_path / "b", https_peer.url, proxy=_own(open_proxy, None), ca_bundle=ca_file
    )
    assert _call(tls_root)["method"] == "whoami"


def test_tls_through_the_tunnel_is_checked_against_the_target(
    tmp_path: Path, ca: trustme.CA, open_proxy: RunningProxy, ca_file: str
) -> None:
    """The target's certificate names another host: refused, although the proxy is fine."""
    with serve(_app(), _tls(ca, "other.example")) as wrong:
        root = _tree(tmp_path, wrong.url, proxy=_own(open_proxy, None), ca_bundle=ca_file)
        text = _refused(root)
    assert "TLS certificate verification failed" in text
    assert f"via proxy 127.0.0.1:{open_proxy.port}" in text


# ------------------------------------------------------------------ a proxy that refuses


def test_407_over_connect_and_plain_http(
    tmp_path: Path,
    http_peer: AiohttpPeer,
    https_peer: AiohttpPeer,
    auth_proxy: RunningProxy,
    ca_file: str,
) -> None:
    """No credentials: 407 from the proxy, for a tunnel and for a plain http request."""
    https_root = _tree(
        tmp_path / "s", https_peer.url, proxy=_own(auth_proxy, None), ca_bundle=ca_file
    )
    http_root = _tree(tmp_path / "h", http_peer.url, proxy=_own(auth_proxy, None))
    for text in (_refused(https_root), _refused(http_root)):
        assert "asks for authentication (HTTP 407" in text
        assert f"proxy 127.0.0.1:{auth_proxy.port}" in text


def test_wrong_proxy_credentials(
    tmp_path: Path,
    http_peer: AiohttpPeer,
    https_peer: AiohttpPeer,
    auth_proxy: RunningProxy,
    ca_file: str,
) -> None:
    """Wrong credentials: tinyproxy answers CONNECT with 407, and a plain http request with
    its own 401 page, which comes back as that answer; neither shows a credential."""
    wrong = 'username = { env = "PROXY_USER" }, password = { env = "WRONG_PASSWORD" }'
    https_root = _tree(
        tmp_path / "s", https_peer.url, proxy=_own(auth_proxy, wrong), ca_bundle=ca_file
    )
    text = _refused(https_root)
    assert "refused the credentials" in text or "check the proxy's username" in text
    assert "not-the-proxy-password" not in text
    http_root = _tree(tmp_path / "h", http_peer.url, proxy=_own(auth_proxy, wrong))
    with pytest.raises(RemoteFault) as info:
        _call(http_root)
    assert "HTTP 401" in str(info.value) or "HTTP 407" in str(info.value)
    assert "not-the-proxy-password" not in str(info.value)


def test_403_when_the_proxy_refuses_the_tunnel(
    tmp_path: Path, https_peer: AiohttpPeer, ca_file: str
) -> None:
    with tinyproxy(tmp_path / "tp", connect_ports=[443]) as strict:
        root = _tree(tmp_path, https_peer.url, proxy=_own(strict, None), ca_bundle=ca_file)
        text = _refused(root)
    assert "refused the tunnel (HTTP 403" in text


def test_a_proxy_that_is_down(tmp_path: Path, http_peer: AiohttpPeer) -> None:
    down = f'{{ url = "http://127.0.0.1:{free_port()}", {CREDS} }}'
    text = _refused(_tree(tmp_path, http_peer.url, proxy=down))
    assert "cannot connect to the proxy 127.0.0.1" in text


# ------------------------------------------------------------------ which proxy


def test_site_proxy_no_proxy_and_proxy_false(
    tmp_path: Path, http_peer: AiohttpPeer, auth_proxy: RunningProxy
) -> None:
    site = f'url = "{auth_proxy.url}"\n{CREDS.replace(", ", chr(10))}'
    via_site = _call(_tree(tmp_path / "a", http_peer.url, site_proxy=site))
    assert "tinyproxy" in via_site["via"]
    excluded = site + '\nno_proxy = ["localhost", "127.0.0.1"]'
    direct = _call(_tree(tmp_path / "b", http_peer.url, site_proxy=excluded))
    assert direct["via"] == ""
    off = _call(_tree(tmp_path / "c", http_peer.url, site_proxy=site, proxy="false"))
    assert off["via"] == ""


def test_environment_proxy_only_when_the_setting_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    http_peer: AiohttpPeer,
    open_proxy: RunningProxy,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", open_proxy.url)
    root = _tree(tmp_path, http_peer.url)
    assert _call(root)["via"] == ""  # the default: the environment is not read
    assert "tinyproxy" in _call(root, TransportSettings(proxy_from_env=True))["via"]
    monkeypatch.setenv("NO_PROXY", "example.org,127.0.0.1")
    assert _call(root, TransportSettings(proxy_from_env=True))["via"] == ""


# ------------------------------------------------------------------ rpcd check and show


def test_rpcd_check_goes_through_the_site_proxy(tmp_path: Path, http_peer: AiohttpPeer) -> None:
    down = f'url = "http://127.0.0.1:{free_port()}"\n{CREDS.replace(", ", chr(10))}'
    root = _tree(tmp_path, http_peer.url, site_proxy=down, probe=True)
    out = run_cli("check", "--root", str(root))
    assert out.returncode == 1
    assert "cannot connect to the proxy" in out.stdout
    assert PROXY_PASSWORD not in out.stdout + out.stderr


def test_show_and_errors_hold_proxy_references_not_values(
    tmp_path: Path, http_peer: AiohttpPeer
) -> None:
    site = f'url = "http://127.0.0.1:{free_port()}"\n{CREDS.replace(", ", chr(10))}'
    root = _tree(tmp_path, http_peer.url, site_proxy=site, proxy=_own_down())
    out = run_cli("show", "--root", str(root))
    assert out.returncode == 0, out.stderr
    assert "env:PROXY_PASSWORD" in out.stdout or "PROXY_PASSWORD" in out.stdout
    assert PROXY_PASSWORD not in out.stdout + out.stderr
    called = run_cli("call", "mnet_peer", "whoami", "--root", str(root))
    assert called.returncode == 1
    assert PROXY_PASSWORD not in called.stdout + called.stderr
    assert "proxy" in called.stdout


def _own_down() -> str:
    return f'{{ url = "http://127.0.0.1:{free_port()}", {CREDS} }}'


def test_proxy_credentials_of_an_institution_folder_are_scope_checked(tmp_path: Path) -> None:
    """A connection in connections.d/uni-a/ may spend only uni-a's secrets, on its proxy too."""
    from tree_helpers import findings

    root = make_tree(
        tmp_path,
        {
            "uni-a/mnet.toml": """
            [[connection]]
            class = "mnet_peer"
            id = "uni-a"
            institutions = ["uni-a"]
            type = "XML-RPC"
            auth = "token"
            endpoint = "http://mahara.uni-a.example/RPC2"
            credentials = { token = { env = "UNI_A_TOKEN" } }
            [connection.proxy]
            url = "http://proxy.example:3128"
            username = { env = "UNI_A_PROXY_USER" }
            password = { env = "PROXY_PASSWORD" }
            """,
            "mnet.toml": '[class]\nid = "mnet_peer"\nplugin = "mnet"\nname = "MNet peer"\n',
        },
    )
    scoped = [f for f in findings(root) if f.rule == "secret-scope"]
    assert [f.path for f in scoped] == ["connection[0].proxy.password.env"], scoped
    assert "proxy.password" in scoped[0].message


def test_a_standby_through_the_proxy(
    tmp_path: Path,
    http_peer: AiohttpPeer,
    https_peer: AiohttpPeer,
    auth_proxy: RunningProxy,
    ca_file: str,
) -> None:
    """The proxy cannot reach the primary (a 5xx page for http, a refused CONNECT for https):
    the call moves on to the standby, through the same proxy."""
    site = f'url = "{auth_proxy.url}"\n{CREDS.replace(", ", chr(10))}'
    for name, peer, bundle in (("h", http_peer, None), ("s", https_peer, ca_file)):
        scheme = "https" if bundle else "http"
        root = _tree(tmp_path / name, f"{scheme}://127.0.0.1:{free_port()}", site_proxy=site)
        text = (root / "connections.d" / "mnet.toml").read_text()
        primary = text.split('endpoint = "', 1)[1].split('"', 1)[0]
        text = text.replace(
            f'endpoint = "{primary}"', f'endpoints = ["{primary}", "{peer.url}/RPC2"]'
        )
        if bundle:
            text += f'ca_bundle = "{bundle}"\n'
        (root / "connections.d" / "mnet.toml").write_text(text)
        outcome = asyncio.run(_run_class(root))
        assert outcome.ok, outcome.to_dict()
        assert outcome.endpoint == f"{peer.url}/RPC2"
        assert len(outcome.attempts) == 2 and not outcome.attempts[0].ok


async def _run_class(root: Path) -> Any:
    from rpcd.connections.runner import call_class

    catalog, store = load_with_secrets(root)
    async with Transport.open() as transport:
        return await call_class(
            catalog, "mnet_peer", "whoami", ["x"], [], secrets=store, transport=transport
        )


def test_an_unresolved_proxy_secret_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_peer: AiohttpPeer
) -> None:
    monkeypatch.delenv("PROXY_PASSWORD")
    site = f'url = "http://127.0.0.1:{free_port()}"\n{CREDS.replace(", ", chr(10))}'
    root = _tree(tmp_path, http_peer.url, site_proxy=site)
    called = run_cli("call", "mnet_peer", "whoami", "--root", str(root))
    assert called.returncode == 1
    assert "secret-unresolved" in called.stderr and "proxy.password" in called.stderr
    assert "PROXY_PASSWORD" in called.stdout and "proxy" in called.stdout
