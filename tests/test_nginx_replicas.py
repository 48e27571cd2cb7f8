"""nginx (Debian's package) in front of two ``rpcd serve`` replicas sharing the session key.

The shipped ``contrib/nginx/rpcd.conf`` is used as is, with only its ports replaced: a session
made through nginx works on both replicas directly and on every call through nginx, whichever
replica answers. A third daemon with another key refuses it (the test can fail).

Needs ``nginx`` (Debian: ``apt-get install -y nginx-light``); skipped with the reason if absent.
"""

from __future__ import annotations

import base64
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path

import pytest
from ops_helpers import start_serve
from server_helpers import LOOPBACK_TOKEN, MOODLE_PASSWORD, MOODLE_USER, Daemon, make_tree
from tree_helpers import REPO

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx not installed (Debian: apt-get install -y nginx-light)"
)

MAIN = """\
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {site};
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_of(daemon: Daemon) -> int:
    return int(daemon.url.rsplit(":", 1)[1])


def site_config(a: int, b: int, listen: int) -> str:
    text = (REPO / "contrib" / "nginx" / "rpcd.conf").read_text()
    for old, new in (
        ("server 127.0.0.1:8080 ", f"server 127.0.0.1:{a} "),
        ("server 127.0.0.1:8081 ", f"server 127.0.0.1:{b} "),
        ("listen 127.0.0.1:80;", f"listen 127.0.0.1:{listen};"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Daemon, Daemon]]:
    assert NGINX is not None
    tmp = tmp_path_factory.mktemp("nginx")
    root = make_tree(tmp / "tree")
    # start_serve gives every daemon the same RPCD_SESSION_KEY, as LoadCredential= would.
    a = start_serve(root, tmp / "a.log")
    b = start_serve(root, tmp / "b.log")
    listen = free_port()
    site = tmp / "rpcd.conf"
    site.write_text(site_config(port_of(a), port_of(b), listen))
    main = tmp / "nginx.conf"
    main.write_text(MAIN.format(tmp=tmp, site=site))
    check = subprocess.run(
        [NGINX, "-t", "-c", str(main), "-p", str(tmp)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [NGINX, "-c", str(main), "-p", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{listen}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "nginx did not come up"
                time.sleep(0.05)
        yield url, a, b
    finally:
        proc.terminate()
        proc.wait(10)
        for d in (a, b):
            assert d.stop() == 0, d.logs()


def proxy(url: str, auth: str | None = None) -> xmlrpc.client.ServerProxy:
    headers = [("Authorization", auth)] if auth else []
    return xmlrpc.client.ServerProxy(url + "/RPC2", headers=headers, allow_none=True)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def served_by(daemon: Daemon) -> int:
    """How many /RPC2 calls this replica's access log shows."""
    return len(re.findall(r"POST /RPC2 200", daemon.logs()))


def test_session_made_through_one_replica_works_on_the_other(
    cluster: tuple[str, Daemon, Daemon],
) -> None:
    url, a, b = cluster
    login = proxy(url).system.login(MOODLE_USER, MOODLE_PASSWORD)
    session = basic(login["sessionid"], login["kp3"])
    # Directly on each replica: the one that issued it and the one that did not.
    for replica in (a, b):
        assert proxy(replica.url, session).directory.people.count() == 42
    # Through nginx, round robin across both: every call accepted.
    before = served_by(a), served_by(b)
    for _ in range(6):
        assert proxy(url, session).directory.people.count() == 42
    after = served_by(a), served_by(b)
    assert after[0] > before[0] and after[1] > before[1], (before, after)


def test_a_replica_with_another_key_refuses_the_session(
    cluster: tuple[str, Daemon, Daemon], tmp_path: Path
) -> None:
    url, _, _ = cluster
    login = proxy(url).system.login(MOODLE_USER, MOODLE_PASSWORD)
    session = basic(login["sessionid"], login["kp3"])
    other = start_serve(
        make_tree(tmp_path / "tree"),
        tmp_path / "other.log",
        {"RPCD_SESSION_KEY": "a-different-key-0123456789abcdef0123"},
    )
    try:
        with pytest.raises(xmlrpc.client.ProtocolError) as refused:
            proxy(other.url, session).directory.people.count()
        assert refused.value.errcode == 401
    finally:
        assert other.stop() == 0, other.logs()


def test_operations_endpoints_stay_inside(cluster: tuple[str, Daemon, Daemon]) -> None:
    url, _, _ = cluster
    request = urllib.request.Request(
        url + "/v1/reload", method="POST", headers={"Authorization": f"Bearer {LOOPBACK_TOKEN}"}
    )
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(request, timeout=10)
    assert denied.value.code == 403
