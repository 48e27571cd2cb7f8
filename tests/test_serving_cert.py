"""Item 1 of issue 14 over TLS: a handler sees the client certificate's fingerprint.

A daemon terminating TLS (a throwaway trustme CA) on the serving tree, with a ``cert`` peer
whose fingerprint is the client certificate's.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator

import pytest
import trustme
from server_helpers import Daemon
from serving_helpers import serving_daemon, serving_tree


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, ssl.SSLContext, bytes]]:
    base = tmp_path_factory.mktemp("cert")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(base / "server.pem")
    )
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    client = ca.issue_cert("sis-gateway@example.org")
    der = ssl.PEM_cert_to_DER_cert(client.cert_chain_pems[0].bytes().decode())
    root = serving_tree(base / "tree", "http://127.0.0.1:9/moodle", client_cert_der=der)
    plain = ssl.create_default_context()
    ca.configure_trust(plain)
    with_cert = ssl.create_default_context()
    ca.configure_trust(with_cert)
    client.configure_cert(with_cert)
    env = {
        "RPCD_TLS_CERT": str(base / "server.pem"),
        "RPCD_TLS_KEY": str(base / "server.pem"),
        "RPCD_TLS_CLIENT_CA": str(base / "ca.pem"),
    }
    with serving_daemon(root, base / "rpcd.log", env, plain) as daemon:
        yield daemon, with_cert, der


def test_a_handler_sees_the_client_certificate(
    tls: tuple[Daemon, ssl.SSLContext, bytes],
) -> None:
    daemon, with_cert, der = tls
    got = daemon.proxy(context=with_cert).ctx.whoami()
    assert (got["peer"], got["auth"], got["institutions"]) == ("cert-peer", "cert", ["uni-a"])
    assert got["certificate_sha256"] == hashlib.sha256(der).hexdigest()


def test_no_fingerprint_without_a_client_certificate(
    tls: tuple[Daemon, ssl.SSLContext, bytes],
) -> None:
    daemon, _, _ = tls
    got = daemon.token_proxy().ctx.whoami()
    assert got["peer"] == "loopback" and "certificate_sha256" not in got
