"""The operator console (``/ui``) over real HTTP: a real daemon, a real Moodle-shaped peer.

Sign-in with peer credentials (token, password; the RPC endpoints' throttle), the session
cookie's flags, CSRF on every POST, logout, what an institution peer may see, probe now and
its rate limit, the reload history, clear errors for bad input, and no secret on any page.
The browser's view of the same pages is tests/test_console_browser.py.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
import trustme
from console_helpers import (
    BASIC_PASSWORD,
    BASIC_USER,
    LOOPBACK_TOKEN,
    MOODLE_TOKEN,
    OUTSIDER_TOKEN,
    SECRETS,
    ConsoleClient,
    ConsoleSite,
    console_env,
    console_site,
    console_tree,
)
from peers import REQUESTS
from server_helpers import Daemon, running, xml_call

PAGES = ["/ui", "/ui/routing", "/ui/services", "/ui/reloads"]


Setup = ConsoleSite


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with console_site(tmp_path_factory.mktemp("console")) as site:
        yield site


def admin(setup: Setup) -> ConsoleClient:
    client = ConsoleClient(setup.daemon.url)
    status, headers, _ = client.sign_in_token(LOOPBACK_TOKEN)
    assert status == 303 and headers["Location"] == "/ui"
    return client


def _set_cookie(headers: dict[str, str]) -> str:
    return headers.get("Set-Cookie", "")


def test_every_page_asks_for_sign_in_first(setup: Setup) -> None:
    client = ConsoleClient(setup.daemon.url)
    for path in [*PAGES, "/ui/connections/moodle_users/uni-a"]:
        status, headers, _ = client.get(path)
        assert (status, headers["Location"]) == (303, "/ui/login"), path
    status, headers, html = client.get("/ui/login")
    assert status == 200 and "Sign in" in html
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_admin_signs_in_with_a_token_and_reads_every_page(setup: Setup) -> None:
    client = ConsoleClient(setup.daemon.url)
    status, headers, _ = client.sign_in_token(LOOPBACK_TOKEN)
    assert status == 303
    cookie = _set_cookie(headers)
    assert "rpcd_console=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/ui" in cookie and "Secure" not in cookie  # plain HTTP: no Secure flag
    pages = {path: client.get(path) for path in PAGES}
    for path, (status, headers, html) in pages.items():
        assert status == 200, path
        assert headers["Cache-Control"] == "no-store"
        assert "Signed in as <strong>loopback</strong>" in html
    overview = pages["/ui"][2]
    catalog = json.loads(
        setup.daemon.get("/v1/status", {"Authorization": f"Bearer {LOOPBACK_TOKEN}"})[2]
    )
    assert catalog["revision"]["content_hash"] in overview
    assert "ON</span>: client connections are used" in overview
    routing = pages["/ui/routing"][2]
    for inst in ("uni-a", "uni-b", "college-c"):
        assert f">{inst}<br>" in routing
    assert 'href="/ui/connections/moodle_users/uni-b"' in routing


def test_the_routing_cells_are_rpcd_diffs_routing(setup: Setup) -> None:
    """Each cell lists, in order, what ``rpcd.routing.routing_table`` (rpcd diff) gives."""
    from rpcd.config import build
    from rpcd.routing import routing_table

    catalog = build(setup.root).catalog
    assert catalog is not None
    table = routing_table(catalog, [(i,) for i in catalog.institutions])
    client = admin(setup)
    for (class_id, (inst,)), expected in table.items():
        status, _, html = client.get(f"/ui/routing?class={class_id}&institution={inst}")
        assert status == 200
        tried = [
            conn
            for block in re.findall(r"<ol>(.*?)</ol>", html, re.S)
            for conn in re.findall(r'<li><a href="/ui/connections/[^/]+/([^"]+)">', block)
        ]
        assert tried == expected, (class_id, inst, tried)
    html = client.get("/ui/routing?class=sis_enrolments&institution=uni-b")[2]
    assert "uni-b</a> (disabled: not tried)" in html  # shown beside the tried ones, apart


def test_an_institution_peer_sees_only_its_institutions(setup: Setup) -> None:
    client = ConsoleClient(setup.daemon.url)
    status, _, _ = client.sign_in_password(BASIC_USER, BASIC_PASSWORD)
    assert status == 303
    pages = {path: client.get(path)[2] for path in PAGES}
    for path, html in pages.items():
        for other in ("uni-b", "college-c", "University B", "College C", "mahara-prod"):
            assert other not in html, (path, other)
    assert ">uni-a<br>" in pages["/ui/routing"]
    status, _, html = client.get("/ui/connections/moodle_users/uni-b")
    assert status == 404 and "not one of yours" in html
    assert client.get("/ui/connections/moodle_users/uni-a")[0] == 200
    assert client.get("/ui/connections/badges_publish/global")[0] == 200  # global: everyone's


def test_wrong_credentials_are_refused_with_a_clear_message(setup: Setup) -> None:
    client = ConsoleClient(setup.daemon.url)
    status, _, html = client.sign_in_token("not-a-token-of-any-peer")
    assert status == 401 and "that token belongs to no peer" in html
    status, _, html = client.sign_in_password("nobody-at-all", "wrong-password")
    assert status == 401 and "wrong user name or password" in html
    assert client.get("/ui")[0] == 303


def test_every_post_needs_its_csrf_token(setup: Setup) -> None:
    client = ConsoleClient(setup.daemon.url)
    client.csrf()  # the pre-sign-in cookie, but a forged token
    status, _, html = client.request(
        "/ui/login", {"csrf": "0" * 64, "method": "token", "token": LOOPBACK_TOKEN}
    )
    assert status == 403 and "expired" in html
    assert client.get("/ui")[0] == 303  # not signed in
    client = admin(setup)
    for path in ("/ui/logout", "/ui/connections/moodle_users/uni-a/probe"):
        status, _, html = client.request(path, {"csrf": "f" * 64})
        assert status == 403 and "expired" in html, path
    assert client.get("/ui")[0] == 200  # the forged logout did not end the session
    assert setup.moodle.app[REQUESTS] == [] or all(
        r["form"].get("wsfunction") != "core_webservice_get_site_info"
        for r in setup.moodle.app[REQUESTS]
    )


def test_logout_ends_the_session_and_its_cookie(setup: Setup) -> None:
    client = admin(setup)
    stolen = next(c.value for c in client.jar if c.name == "rpcd_console")
    csrf = client.csrf("/ui")
    status, headers, _ = client.request("/ui/logout", {"csrf": csrf})
    assert (status, headers["Location"]) == (303, "/ui/login")
    assert client.get("/ui")[0] == 303
    replay = ConsoleClient(setup.daemon.url)
    status, _, _ = replay.request("/ui", headers={"Cookie": f"rpcd_console={stolen}"})
    assert status == 303  # revoked on this replica


def test_probe_now_runs_the_class_probe_and_is_rate_limited(setup: Setup) -> None:
    client = admin(setup)
    page = "/ui/connections/moodle_users/uni-a"
    csrf = client.csrf(page)
    status, _, body = client.request(
        page + "/probe", {"csrf": csrf}, headers={"Accept": "application/json"}
    )
    assert status == 200, body
    result = json.loads(body)
    assert result["ok"] is True and result["connection"] == "moodle_users/uni-a"
    sent = [r for r in setup.moodle.app[REQUESTS] if "core_webservice_get_site_info" in str(r)]
    assert sent, "the probe never reached the peer"
    status, _, body = client.request(
        page + "/probe", {"csrf": csrf}, headers={"Accept": "application/json"}
    )
    assert status == 429 and "console_probe_interval" in json.loads(body)["error"]
    status, _, html = client.request(page + "/probe", {"csrf": csrf})  # no script: a page
    assert status == 429 and "try again in" in html
    status, _, html = client.get(page)
    assert 'Last probe: <span class="ok">✔ OK</span>' in html
    assert "connections.d/uni-a/moodle_users.toml:5" in html  # file and line of [[connection]]


def test_outbound_calls_show_in_the_matrix_and_on_the_connection_page(setup: Setup) -> None:
    body = json.dumps({"function": "core_webservice_get_site_info", "institutions": ["uni-a"]})
    status, _, answer = setup.daemon.post(
        "/v1/call/moodle_users",
        body.encode(),
        "application/json",
        {"Authorization": f"Bearer {LOOPBACK_TOKEN}"},
    )
    assert status == 200 and json.loads(answer)["ok"] is True
    client = admin(setup)
    html = client.get("/ui/routing?class=moodle_users&institution=uni-a")[2]
    calls = re.search(r"— 0 of (\d+) calls failed", html)
    assert calls is not None and int(calls.group(1)) >= 1
    html = client.get("/ui/connections/moodle_users/uni-a")[2]
    assert re.search(r"<dt>Calls since start</dt><dd>[1-9]", html)


def test_a_connection_page_shows_fields_with_secret_references(setup: Setup) -> None:
    client = admin(setup)
    status, _, html = client.get("/ui/connections/moodle_users/uni-a")
    assert status == 200
    assert "env:MOODLE_UNI_A_TOKEN" in html and MOODLE_TOKEN not in html
    assert "idnumber" in html  # config, as resolved


def test_no_page_holds_a_secret_value(setup: Setup) -> None:
    client = admin(setup)
    paths = [*PAGES, "/ui/services?peer=basic-user"]
    routing = client.get("/ui/routing")[2]
    paths += sorted(set(re.findall(r'href="(/ui/connections/[^"]+)"', routing)))
    assert len(paths) > 10
    for path in paths:
        status, headers, html = client.get(path)
        assert status == 200, path
        text = html + unescape(html) + json.dumps(headers)
        leaked = [s for s in SECRETS if s in text]
        assert not leaked, f"{path} holds a secret"


def test_bad_input_gets_a_clear_error_page(setup: Setup) -> None:
    client = admin(setup)
    status, _, html = client.get("/ui/routing?page=abc")
    assert status == 400 and "page must be a whole number from 1" in html
    status, _, html = client.get("/ui/routing?class=" + "x" * 101)
    assert status == 400 and "longer than 100 characters" in html
    status, _, html = client.get("/ui/services?peer=nobody")
    assert status == 400 and "no peer 'nobody'" in unescape(html)
    csrf = client.csrf("/ui")
    status, _, html = client.request("/ui/logout", {"csrf": csrf, "evil": "1"})
    assert status == 400 and "unexpected form field 'evil'" in unescape(html)
    status, _, html = client.request("/ui/logout", body=b"csrf=" + b"a" * 5000)
    assert status == 400 and "console_max_form_bytes" in html
    disabled = "/ui/connections/sis_enrolments/uni-b"
    status, _, html = client.request(disabled + "/probe", {"csrf": csrf})
    assert status == 409 and "disabled" in html
    status, _, html = client.get("/ui/connections/nope/nothing")
    assert status == 404 and "no such connection" in html
    assert client.get("/ui/static/../../rpcd.toml")[0] == 404
    assert client.get("/ui/static/console.css")[0] == 200


def test_the_services_page_answers_can_peer_x_call_y(setup: Setup) -> None:
    client = admin(setup)
    status, _, html = client.get("/ui/services?q=hello&peer=outsider")
    assert status == 200
    rows = re.findall(
        r"<code>(hello\.[A-Za-z]+)</code>.*?<td><strong>(yes|no)</strong></td>", html, re.S
    )
    assert rows and all(answer == "no" for _, answer in rows)  # hello grants uni-a only
    status, _, html = client.get("/ui/services?q=hello&peer=basic-user")
    rows = re.findall(
        r"<code>(hello\.[A-Za-z]+)</code>.*?<td><strong>(yes|no)</strong></td>", html, re.S
    )
    assert rows and all(answer == "yes" for _, answer in rows)


# ------------------------------------------------------------------ limits, TLS, reloads


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("console-limits")
    root = console_tree(base / "tree", "http://127.0.0.1:9")
    env = {
        **console_env(base),
        "RPCD_AUTH_FAIL_LIMIT": "2",
        "RPCD_RELOAD_HISTORY": "2",
        "RPCD_CONSOLE_PROBES_PER_MINUTE": "1",
        "RPCD_CONSOLE_PROBE_INTERVAL": "0",
        "RPCD_TRUSTED_PROXIES": '["127.0.0.1"]',
    }
    with running(root, base / "daemon.log", env) as daemon:
        yield daemon


def test_failed_sign_ins_meet_the_rpc_endpoints_throttle(limited: Daemon) -> None:
    client = ConsoleClient(limited.url)
    for _ in range(2):
        assert client.sign_in_password(BASIC_USER, "wrong-password")[0] == 401
    status, headers, html = client.sign_in_password(BASIC_USER, BASIC_PASSWORD)
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert "too many failed password attempts" in html
    # The RPC endpoint shares the same throttle: Basic auth for that user is refused too.
    status, _, _ = limited.post(
        "/RPC2",
        xml_call("system.listMethods"),
        headers={"Authorization": "Basic YmFzaWMtdXNlcjpiYXNpYy1wYXNzd29yZC0wMTIz"},
    )
    assert status == 429


def test_console_probes_per_minute_bounds_all_probes(limited: Daemon) -> None:
    client = ConsoleClient(limited.url)
    assert client.sign_in_token(OUTSIDER_TOKEN)[0] == 303  # college-c; global ones are its too
    page = "/ui/connections/rpcd_loopback/local"
    csrf = client.csrf(page)
    accept = {"Accept": "application/json"}
    status, _, body = client.request(page + "/probe", {"csrf": csrf}, headers=accept)
    assert status == 200 and json.loads(body)["ok"] is False  # nothing listens on 8080
    status, _, body = client.request(page + "/probe", {"csrf": csrf}, headers=accept)
    assert status == 429 and "console_probes_per_minute" in json.loads(body)["error"]


def test_the_reload_history_keeps_only_the_last_reload_history_results(
    limited: Daemon, tmp_path: Path
) -> None:
    root = Path(limited.proc.args[4])  # type: ignore[index]
    site = root / "rpcd.toml"
    good = site.read_text(encoding="utf-8")
    auth = {"Authorization": f"Bearer {LOOPBACK_TOKEN}"}
    try:
        site.write_text(good + "\n[[institution]]\nid = 'uni-a'\nname = 'Twice'\n")
        assert limited.post("/v1/reload", b"", headers=auth)[0] == 409
    finally:
        site.write_text(good)
    for _ in range(2):
        assert limited.post("/v1/reload", b"", headers=auth)[0] == 200
    client = ConsoleClient(limited.url)
    client.sign_in_token(LOOPBACK_TOKEN)
    html = client.get("/ui/reloads")[2]
    assert html.count("✔ OK") == 2 and "REFUSED" not in html  # reload_history = 2
    assert "the last 2 kept" in html


def test_reloads_page_shows_a_refused_reload_with_file_and_line(setup: Setup) -> None:
    site = setup.root / "rpcd.toml"
    good = site.read_text(encoding="utf-8")
    auth = {"Authorization": f"Bearer {LOOPBACK_TOKEN}"}
    try:
        site.write_text(good + "\n[[institution]]\nid = 'uni-a'\nname = 'Twice'\n")
        assert setup.daemon.post("/v1/reload", b"", headers=auth)[0] == 409
    finally:
        site.write_text(good)
    client = admin(setup)
    html = client.get("/ui/reloads")[2]
    assert "✘ REFUSED" in html
    found = re.search(r"<code>rpcd\.toml:(\d+)</code> \[([a-z-]+)\]", html)
    assert found is not None, html
    assert "REFUSED" in client.get("/ui")[2]  # the overview's last reloads too


def test_over_tls_the_cookie_is_secure(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem")
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)
    root = console_tree(tmp_path / "tree", "http://127.0.0.1:9")
    env = {
        **console_env(tmp_path),
        "RPCD_TLS_CERT": str(tmp_path / "server.pem"),
        "RPCD_TLS_KEY": str(tmp_path / "server.pem"),
    }
    with running(root, tmp_path / "daemon.log", env, ssl_context=context) as daemon:
        client = ConsoleClient(daemon.url, context)
        status, headers, _ = client.sign_in_token(LOOPBACK_TOKEN)
        assert status == 303
        cookie = _set_cookie(headers)
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.get("/ui")[0] == 200


def test_a_cert_peer_signs_in_with_its_client_certificate(tmp_path: Path) -> None:
    """Over rpcd's own TLS, the certificate sign-in takes the verified client certificate of
    the connection; without one it says so, and nothing is signed in."""
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem")
    )
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client_cert = ca.issue_cert("sis-gateway@example.org")
    der = ssl.PEM_cert_to_DER_cert(client_cert.cert_chain_pems[0].bytes().decode())
    plain = ssl.create_default_context()
    ca.configure_trust(plain)
    with_cert = ssl.create_default_context()
    ca.configure_trust(with_cert)
    client_cert.configure_cert(with_cert)
    root = console_tree(tmp_path / "tree", "http://127.0.0.1:9", client_cert_der=der)
    env = {
        **console_env(tmp_path),
        "RPCD_TLS_CERT": str(tmp_path / "server.pem"),
        "RPCD_TLS_KEY": str(tmp_path / "server.pem"),
        "RPCD_TLS_CLIENT_CA": str(tmp_path / "ca.pem"),
    }
    with running(root, tmp_path / "daemon.log", env, ssl_context=plain) as daemon:
        anonymous = ConsoleClient(daemon.url, plain)
        status, headers, html = anonymous.sign_in(method="certificate")
        assert status != 303 and "no client certificate of a peer" in html
        assert anonymous.get("/ui")[0] == 303  # still signed out: back to the sign-in page

        client = ConsoleClient(daemon.url, with_cert)
        status, headers, _ = client.sign_in(method="certificate")
        assert status == 303, status
        assert "Secure" in _set_cookie(headers)
        status, _, html = client.get("/ui")
        assert status == 200 and "cert-peer" in html
        assert "uni-b" not in client.get("/ui/routing")[2]  # its institutions only: uni-a


def test_behind_a_trusted_tls_proxy_the_cookie_is_secure(limited: Daemon) -> None:
    client = ConsoleClient(limited.url)
    form = {"csrf": client.csrf(), "method": "token", "token": LOOPBACK_TOKEN}
    status, headers, _ = client.request("/ui/login", form, {"X-Forwarded-Proto": "https"})
    assert status == 303 and "Secure" in _set_cookie(headers)
    client = ConsoleClient(limited.url)
    form = {"csrf": client.csrf(), "method": "token", "token": LOOPBACK_TOKEN}
    status, headers, _ = client.request("/ui/login", form, {"X-Forwarded-Proto": "http"})
    assert status == 303 and "Secure" not in _set_cookie(headers)


def test_the_console_can_be_switched_off(tmp_path: Path) -> None:
    root = console_tree(tmp_path / "tree", "http://127.0.0.1:9")
    env = {**console_env(tmp_path), "RPCD_CONSOLE": "false"}
    with running(root, tmp_path / "daemon.log", env) as daemon:
        assert daemon.get("/ui")[0] == 404
        assert daemon.get("/ui/login")[0] == 404


def test_the_daemon_log_holds_no_secret(setup: Setup) -> None:
    """Last in the module: every sign-in, probe and page above went through the log."""
    log = setup.daemon.logs()
    assert "POST /ui/login 303" in log and "GET /ui/routing 200" in log
    assert not [s for s in SECRETS if s in log], "a secret value reached the daemon's log"
