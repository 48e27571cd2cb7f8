"""A daemon for the console tests: the example tree with every secret resolved to a known
value, uni-a's Moodle pointed at a local Moodle-shaped peer, and a browser-less client.

``SECRETS`` holds every resolved secret value the daemon has (the tree's env and credential
references, the loopback token, the session key): no console page may contain one.
``ConsoleClient`` is a cookie-keeping urllib client that signs in through the real form.
"""

from __future__ import annotations

import http.cookiejar
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from peers import AiohttpPeer, serve
from peers.moodle import moodle_app
from server_helpers import (
    BASIC_PASSWORD,
    BASIC_USER,
    LOOPBACK_TOKEN,
    OUTSIDER_TOKEN,
    SESSION_KEY,
    Daemon,
    running,
)
from server_helpers import make_tree as make_server_tree

__all__ = [
    "BASIC_PASSWORD",
    "BASIC_USER",
    "LOOPBACK_TOKEN",
    "MOODLE_TOKEN",
    "OUTSIDER_TOKEN",
    "SECRETS",
    "ConsoleClient",
    "console_env",
    "console_tree",
]

MOODLE_TOKEN = "console-moodle-token-5f1e9a2b"
#: The tree's env references, resolved to these values in the daemon's environment.
ENV_SECRETS = {
    "MOODLE_UNI_A_TOKEN": MOODLE_TOKEN,
    "MAHARA_UNI_A_USER": "console-mahara-user-77a1",
    "BADGES_KEY": "console-badges-key-0c3d",
    "BADGES_SECRET": "console-badges-secret-9e8f",
    "SIS_USER": "console-sis-user-4b2a",
    "SIS_PASSWORD": "console-sis-password-6d5c",
    "SIS_UNI_B_USER": "console-sis-b-user-1a0b",
    "SIS_UNI_B_PASSWORD": "console-sis-b-password-3c2d",
}
#: systemd credentials (``credential:NAME``), files in ``$CREDENTIALS_DIRECTORY``.
CREDENTIAL_SECRETS = {"moodle-uni-b-token": "console-moodle-b-token-8e7f"}
SECRETS = [
    *ENV_SECRETS.values(),
    *CREDENTIAL_SECRETS.values(),
    LOOPBACK_TOKEN,
    SESSION_KEY,
    OUTSIDER_TOKEN,
    BASIC_PASSWORD,
]


def console_tree(dest: Path, moodle_url: str, client_cert_der: bytes | None = None) -> Path:
    """The example tree plus the test peers (a cert peer for ``client_cert_der``), uni-a's
    Moodle at ``moodle_url``."""
    root = make_server_tree(dest, client_cert_der)
    path = root / "connections.d" / "uni-a" / "moodle_users.toml"
    text = path.read_text(encoding="utf-8").replace(
        "https://moodle.uni-a.example/webservice/rest/server.php",
        f"{moodle_url}/webservice/rest/server.php",
    )
    path.write_text(text, encoding="utf-8")
    return root


def console_env(dest: Path) -> dict[str, str]:
    """The daemon's environment: every secret of the tree resolvable."""
    credentials = dest / "credentials"
    credentials.mkdir(parents=True, exist_ok=True)
    for name, value in CREDENTIAL_SECRETS.items():
        (credentials / name).write_text(value, encoding="utf-8")
    return {**ENV_SECRETS, "CREDENTIALS_DIRECTORY": str(credentials)}


@dataclass
class ConsoleSite:
    """A daemon serving the console tree, uni-a's Moodle peer, and the tree's root."""

    daemon: Daemon
    moodle: AiohttpPeer
    root: Path


@contextmanager
def console_site(base: Path) -> Iterator[ConsoleSite]:
    """The console tree served by a real daemon, every secret resolvable, and a real
    Moodle-shaped peer for uni-a."""
    with serve(moodle_app(MOODLE_TOKEN)) as moodle:
        root = console_tree(base / "tree", moodle.url)
        with running(root, base / "daemon.log", console_env(base)) as daemon:
            yield ConsoleSite(daemon, moodle, root)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class ConsoleClient:
    """A browser-less console user: a cookie jar, the sign-in form, GET and POST."""

    def __init__(self, url: str, context: ssl.SSLContext | None = None) -> None:
        self.url = url
        self.jar = http.cookiejar.CookieJar()
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.HTTPCookieProcessor(self.jar),
            _NoRedirect(),
        ]
        if context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)

    def request(
        self,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], str]:
        data = (
            body
            if body is not None
            else (urllib.parse.urlencode(form).encode() if form is not None else None)
        )
        request = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        if data is not None and "Content-Type" not in (headers or {}):
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with self.opener.open(request, timeout=30) as response:
                raw = response.read()
                return response.status, dict(response.headers), raw.decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read().decode("utf-8", "replace")

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        return self.request(path)

    def csrf(self, path: str = "/ui/login") -> str:
        status, _, html = self.get(path)
        assert status == 200, (status, html[:500])
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
        assert found is not None, html[:500]
        return found.group(1)

    def sign_in(self, **fields: str) -> tuple[int, dict[str, str], str]:
        return self.request("/ui/login", {"csrf": self.csrf(), **fields})

    def sign_in_token(self, token: str) -> tuple[int, dict[str, str], str]:
        return self.sign_in(method="token", token=token)

    def sign_in_password(self, user: str, password: str) -> tuple[int, dict[str, str], str]:
        return self.sign_in(method="password", username=user, password=password)
