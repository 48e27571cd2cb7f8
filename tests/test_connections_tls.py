"""X.509 client certificates (trustme CA) and TLS verification that is never off."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from peers import AiohttpPeer, serve
from peers.tls import cert_app, server_context
from peers.tree import load_with_secrets, make_tree, no_secret_in_logs, secret

from rpcd.connections import Transport, connections_for
from rpcd.errors import ConnectionCallError

__all__ = ["no_secret_in_logs"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def peer(ca: trustme.CA) -> Iterator[AiohttpPeer]:
    with serve(cert_app(), server_context(ca)) as p:
        yield p


@pytest.fixture(scope="module")
def material(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    client = ca.issue_cert("client.example", common_name="mahara-client")
    key_pem = secret(client.private_key_pem.bytes().decode())
    cert_pem = client.cert_chain_pems[0].bytes().decode()
    d = tmp_path_factory.mktemp("pki")
    (d / "ca.pem").write_bytes(ca.cert_pem.bytes())
    (d / "client.pem").write_text(cert_pem)
    (d / "client.key").write_text(key_pem)
    return {"dir": d, "cert": cert_pem, "key": key_pem}


def tree(tmp_path: Path, endpoint: str, credentials: str, ca_bundle: str | None) -> Path:
    bundle = f'ca_bundle = "{ca_bundle}"' if ca_bundle else ""
    return make_tree(
        tmp_path,
        {
            "mnet.toml": f"""
            [class]
            id = "mnet_peer"
            plugin = "mnet"
            name = "MNet peer"

            [[connection]]
            id = "main"
            enabled = true
            global = true
            type = "XML-RPC"
            auth = "{"cert" if "certificate" in credentials else "token"}"
            endpoint = "{endpoint}"
            {bundle}
            credentials = {credentials}
            """
        },
    )


def call(root: Path) -> Any:
    catalog, store = load_with_secrets(root)

    async def go() -> Any:
        async with Transport.open() as transport:
            (conn,) = connections_for(catalog, "mnet_peer", [], secrets=store, transport=transport)
            return await conn.call("whoami", ["x"])

    return asyncio.run(go())


FILES = '{ certificate = { file = "DIR/client.pem" }, private_key = { file = "DIR/client.key" } }'
ENVS = '{ certificate = { env = "CLIENT_CERT" }, private_key = { env = "CLIENT_KEY" } }'


@pytest.mark.parametrize("source", ["file", "env", "credential"])
def test_client_certificate_from_each_kind_of_reference(
    tmp_path: Path,
    peer: AiohttpPeer,
    material: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    d = material["dir"]
    if source == "file":
        creds = FILES.replace("DIR", str(d))
    elif source == "env":
        monkeypatch.setenv("CLIENT_CERT", material["cert"])
        monkeypatch.setenv("CLIENT_KEY", material["key"])
        creds = ENVS
        seen: list[str] = []
        real_mkdtemp = __import__("tempfile").mkdtemp

        def spy(*args: Any, **kwargs: Any) -> str:
            path = real_mkdtemp(*args, **kwargs)
            seen.append(path)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
            return path

        monkeypatch.setattr("tempfile.mkdtemp", spy)
    else:
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(d))
        creds = (
            '{ certificate = { credential = "client.pem" }, '
            'private_key = { credential = "client.key" } }'
        )
    root = tree(tmp_path, peer.url + "/RPC2", creds, str(d / "ca.pem"))
    answer = call(root)
    assert answer == {"method": "whoami", "params": ["x"], "client": "mahara-client"}
    if source == "env":
        assert seen and not any(os.path.exists(p) for p in seen)  # key deleted after loading


def test_without_a_client_certificate_the_call_fails_clearly(
    tmp_path: Path, peer: AiohttpPeer, material: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN", secret("tls-token-0a1b2c3d"))
    root = tree(
        tmp_path,
        peer.url + "/RPC2",
        '{ token = { env = "TOKEN" } }',
        str(material["dir"] / "ca.pem"),
    )
    with pytest.raises(ConnectionCallError) as info:
        call(root)
    message = str(info.value)
    assert message.startswith("mnet_peer/main: POST https://127.0.0.1:")
    assert "certificate" in message.lower() or "tls" in message.lower(), message


def test_server_not_trusted_without_ca_bundle(
    tmp_path: Path, peer: AiohttpPeer, material: dict[str, Any]
) -> None:
    root = tree(tmp_path, peer.url + "/RPC2", FILES.replace("DIR", str(material["dir"])), None)
    with pytest.raises(ConnectionCallError, match="certificate verification failed"):
        call(root)


def test_cert_auth_needs_https(tmp_path: Path, material: dict[str, Any]) -> None:
    root = tree(
        tmp_path, "http://127.0.0.1:9/RPC2", FILES.replace("DIR", str(material["dir"])), None
    )
    with pytest.raises(ConnectionCallError, match="needs an https endpoint"):
        call(root)
