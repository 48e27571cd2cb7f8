"""Item 6 of issue 14: eGroupWare and phpGroupWare clients, written the way their docs show.

eGroupWare (seed 002): ``system.login(struct('domain' => ..., 'username' => ..., 'password' =>
...))`` answers ``{sessionid, kp3}``; then either a client that keeps cookies "needs to do
nothing", or every request carries ``Authorization: Basic base64(sessionid:kp3)``; a failed
login is HTTP 401 with an authenticate header; ``system.logout`` answers GOODBYE/XOXO.
phpGroupWare (seed 004): ``http://<sessionid>:<kp3>@host/xmlrpc.php``, or the sessionid and
kp3 passed along with the call (here: as URL params, ``?sessionid=...&kp3=...``).
"""

from __future__ import annotations

import base64
import xmlrpc.client
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from serving_helpers import EGW_PASSWORD, EGW_USER, Served, served


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("seeds")) as s:
        yield s


def _xml(session: requests.Session, url: str, method: str, *params: Any, **kw: Any) -> Any:
    """One XML-RPC call over a requests session (which keeps cookies, like a browser)."""
    body = xmlrpc.client.dumps(params, method, allow_none=True)
    response = session.post(url, data=body, headers={"Content-Type": "text/xml"}, **kw)
    response.raise_for_status()
    (value,), _ = xmlrpc.client.loads(response.content, use_builtin_types=True)
    return value


def test_egroupware_login_with_domain_then_cookies(setup: Served) -> None:
    url = setup.daemon.url + "/xmlrpc.php"
    with requests.Session() as egw:
        login = {"domain": "uni-b", "username": EGW_USER, "password": EGW_PASSWORD}
        session = _xml(egw, url, "system.login", login, timeout=30)
        assert set(session) == {"sessionid", "kp3"}
        assert set(egw.cookies.keys()) == {"sessionid", "kp3"}
        # "If your xmlrpc clients / layer supports cookies ... there is nothing you need to do"
        me = _xml(egw, url, "ctx.whoami", timeout=30)
        assert (me["peer"], me["institutions"], me["auth"]) == ("egw", ["uni-b"], "session")
        cookies = dict(egw.cookies)
        assert _xml(egw, url, "system.logout", timeout=30) == {"GOODBYE": "XOXO"}
        assert not egw.cookies  # the logout expired them
        failed = egw.post(
            url,
            data=xmlrpc.client.dumps((), "ctx.whoami"),
            headers={"Content-Type": "text/xml"},
            cookies=cookies,
            timeout=30,
        )
        assert failed.status_code == 401  # the session itself ended with the logout


def test_egroupware_default_domain_and_basic_header(setup: Served) -> None:
    proxy = setup.daemon.proxy()  # stdlib xmlrpc.client, as eGroupWare's doc's raw traffic
    session = proxy.system.login(
        {"domain": "default", "username": EGW_USER, "password": EGW_PASSWORD}
    )
    value = base64.b64encode(f"{session['sessionid']}:{session['kp3']}".encode()).decode()
    basic = setup.daemon.proxy([("Authorization", f"Basic {value}")])
    assert basic.ctx.whoami()["institutions"] == ["uni-a", "uni-b"]  # "default": all of them


def test_egroupware_failed_login_is_401_with_an_authenticate_header(setup: Served) -> None:
    for login in (
        {"domain": "uni-b", "username": EGW_USER, "password": "wrong"},
        {"domain": "college-c", "username": EGW_USER, "password": EGW_PASSWORD},
    ):
        status, headers, _ = setup.daemon.post(
            "/xmlrpc.php", xmlrpc.client.dumps((login,), "system.login").encode()
        )
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")


def test_phpgroupware_session_in_the_url(setup: Served) -> None:
    session = setup.daemon.proxy().system.login({"username": EGW_USER, "password": EGW_PASSWORD})
    sid, kp3 = session["sessionid"], session["kp3"]
    host = setup.daemon.url.removeprefix("http://")
    # "You can also call it like: http://<sessionid>:<kp3>@www.mydomain.com/.../xmlrpc.php"
    userinfo = xmlrpc.client.ServerProxy(f"http://{sid}:{kp3}@{host}/xmlrpc.php")
    assert userinfo.ctx.whoami()["auth"] == "session"
    # ... and with the sessionid and kp3 passed along with the call, for clients that cannot
    # send credentials in a header.
    query = urlencode({"sessionid": sid, "kp3": kp3})
    params = xmlrpc.client.ServerProxy(f"{setup.daemon.url}/xmlrpc.php?{query}")
    assert params.ctx.whoami()["peer"] == "egw"
    logs = setup.daemon.logs()  # the access line has the path, not the query with the session
    assert "/xmlrpc.php" in logs and sid not in logs and kp3 not in logs
    bad = urlencode({"sessionid": sid, "kp3": "0" * 32})
    with pytest.raises(xmlrpc.client.ProtocolError) as info:
        xmlrpc.client.ServerProxy(f"{setup.daemon.url}/xmlrpc.php?{bad}").ctx.whoami()
    assert info.value.errcode == 401
