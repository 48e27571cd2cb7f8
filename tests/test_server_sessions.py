"""Sessions across replicas, and client-certificate authentication over TLS (trustme CA).

Three daemons share one session key: A (HTTP), B (TLS, client certificates from a throwaway
CA) and C (HTTP, 2 s session lifetime, for expiry).
"""

from __future__ import annotations

import ssl
import time
import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import trustme
from server_helpers import MOODLE_PASSWORD, MOODLE_USER, Daemon, make_tree, running

ANONYMOUS = ["system.getCapabilities", "system.listMethods", "system.login"]


@dataclass
class Cluster:
    a: Daemon
    b: Daemon
    c: Daemon
    client_cert_context: ssl.SSLContext


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("sessions")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("sis-gateway@example.org")
    server.private_key_and_cert_chain_pem.write_to_path(str(base / "server.pem"))
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    der = ssl.PEM_cert_to_DER_cert(client.cert_chain_pems[0].bytes().decode())
    root = make_tree(base / "tree", client_cert_der=der)

    plain = ssl.create_default_context()
    ca.configure_trust(plain)
    with_cert = ssl.create_default_context()
    ca.configure_trust(with_cert)
    client.configure_cert(with_cert)

    tls_env = {
        "RPCD_TLS_CERT": str(base / "server.pem"),
        "RPCD_TLS_KEY": str(base / "server.pem"),
        "RPCD_TLS_CLIENT_CA": str(base / "ca.pem"),
    }
    with (
        running(root, base / "a.log") as a,
        running(root, base / "b.log", tls_env, ssl_context=plain) as b,
        running(root, base / "c.log", {"RPCD_SESSION_TTL": "2"}) as c,
    ):
        yield Cluster(a, b, c, with_cert)


def login(daemon: Daemon) -> dict[str, str]:
    session: dict[str, str] = daemon.proxy().system.login(
        {"username": MOODLE_USER, "password": MOODLE_PASSWORD}
    )
    return session


def accepted(daemon: Daemon, session: dict[str, str]) -> bool:
    proxy = daemon.basic_proxy(session["sessionid"], session["kp3"])
    try:
        return bool(proxy.directory.people.count() == 42)
    except xmlrpc.client.ProtocolError as exc:
        assert exc.errcode == 401
        return False


def test_session_is_accepted_by_another_replica_with_the_same_key(cluster: Cluster) -> None:
    session = login(cluster.a)
    assert accepted(cluster.a, session)
    assert accepted(cluster.b, session)  # over TLS, no client certificate needed


def test_logout_revokes_on_the_replica_that_served_it(cluster: Cluster) -> None:
    session = login(cluster.a)
    cluster.a.basic_proxy(session["sessionid"], session["kp3"]).system.logout()
    assert not accepted(cluster.a, session)
    # Documented bound: revocation is local, so another replica accepts the session until it
    # expires (at most session_ttl after login).
    assert accepted(cluster.b, session)


def test_expired_session_is_refused_everywhere(cluster: Cluster) -> None:
    session = login(cluster.c)  # C issues 2-second sessions; expiry is signed into the session
    assert accepted(cluster.a, session)
    time.sleep(3.1)
    for daemon in (cluster.a, cluster.b, cluster.c):
        assert not accepted(daemon, session)


def test_client_certificate_authenticates_its_peer(cluster: Cluster) -> None:
    proxy = cluster.b.proxy(context=cluster.client_cert_context)
    assert proxy.hello.add(2, 3) == 5  # cert-peer is in uni-a, which hello grants
    assert "hello.add" in proxy.system.listMethods()
    assert cluster.b.proxy().system.listMethods() == ANONYMOUS


def test_tls_daemon_refuses_plain_http(cluster: Cluster) -> None:
    plain_url = cluster.b.url.replace("https://", "http://")
    with pytest.raises((xmlrpc.client.ProtocolError, OSError)):
        xmlrpc.client.ServerProxy(plain_url + "/RPC2").system.listMethods()
    assert cluster.b.alive()
