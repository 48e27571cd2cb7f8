"""The serving tests' tree and daemon: the example tree, the test peers, handlers from
``tests/serving_handlers.py``, and a REST connection class over the echo peer.

``serving_tree(dest, lms_url)`` writes it; ``serving_daemon`` starts ``rpcd serve`` on it with
``tests/`` on the daemon's ``PYTHONPATH`` (where ``serving_handlers`` lives).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers import AiohttpPeer, serve
from peers.echo import echo_app
from server_helpers import LOOPBACK_TOKEN, OUTSIDER_TOKEN, Daemon, make_tree, running
from tree_helpers import REPO

from rpcd.secrets_hash import scrypt_hash

#: A userpass peer of two institutions (eGroupWare's ``domain`` picks one at login).
EGW_USER, EGW_PASSWORD = "egw-user", "egw-password-0123456789"
LMS_A_TOKEN, LMS_B_TOKEN = "lms-uni-a-token-5d1c0e7b", "lms-uni-b-token-8a2f61c9"

CTX_SERVICE = """\
version = 1

[service]
name = "ctx"
grant = { institutions = ["uni-a", "uni-b"], peers = ["outsider"] }

[[service.method]]
name = "whoami"
function = "serving_handlers:whoami"

[[service.method]]
name = "whoamiAsync"
function = "serving_handlers:whoami_async"

[[service.method]]
name = "whoamiInline"
function = "serving_handlers:whoami_inline"
run = "inline"

[[service.method]]
name = "greet"
function = "serving_handlers:greet"
signature = ["string", "string"]
params = ["name"]

[[service.method]]
name = "fullName"
function = "examples.hello:hello_world"
signature = ["string", "string", "string"]
params = ["first", "last"]

[[service.method]]
name = "echo"
function = "examples.hello:echo"

[[service.method]]
name = "ownFault"
function = "serving_handlers:own_fault"

[[service.method]]
name = "crash"
function = "serving_handlers:crash"

[[service.method]]
name = "uniBOnly"
function = "serving_handlers:whoami"
grant = { institutions = ["uni-b"] }

[[service.method]]
name = "register"
function = "serving_handlers:register"
signature = ["struct", "string"]
params = ["email"]
grant = { anonymous = true }
"""

LMS_SERVICE = """\
version = 1

[service]
name = "lms"
grant = { institutions = ["uni-a", "uni-b"] }

[[service.method]]
name = "siteInfo"
proxy = { class = "lms_site", function = "echo" }

[[service.method]]
name = "lookup"
proxy = { class = "lms_site", function = "echo" }
params = ["field", "value"]

[[service.method]]
name = "broken"
proxy = { class = "lms_site", function = "core_fail" }
"""

LMS_CLASS = """\
version = 1

[class]
id = "lms_site"
plugin = "lms"
name = "Site information of the caller's LMS"
function_param = "wsfunction"
fixed = {{ type = "REST", payload = "url" }}

[[connection]]
id = "uni-a"
enabled = true
priority = 1
institutions = ["uni-a"]
auth = "token"
endpoint = "{url}"
credentials = {{ token = {{ env = "LMS_A_TOKEN" }} }}
parameters = {{ moodlewsrestformat = "json" }}
http_method = "POST"

[[connection]]
id = "uni-b"
enabled = true
priority = 2
institutions = ["uni-b"]
auth = "token"
endpoint = "{url}"
credentials = {{ token = {{ env = "LMS_B_TOKEN" }} }}
parameters = {{ moodlewsrestformat = "json" }}
http_method = "POST"
"""

EGW_PEER = """\
version = 1

[[peer]]
id = "egw"
institutions = ["uni-a", "uni-b"]
auth = "userpass"
username = "{user}"
password_hash = "{hash}"
"""


def serving_tree(dest: Path, lms_url: str, client_cert_der: bytes | None = None) -> Path:
    root = make_tree(dest, client_cert_der)
    services = root / "services.d"
    (services / "zz-ctx.toml").write_text(CTX_SERVICE, encoding="utf-8")
    (services / "zz-lms.toml").write_text(LMS_SERVICE, encoding="utf-8")
    peer = EGW_PEER.format(user=EGW_USER, hash=scrypt_hash(EGW_PASSWORD, n=2**10))
    (services / "zz-egw.toml").write_text(peer, encoding="utf-8")
    lms = LMS_CLASS.format(url=lms_url)
    (root / "connections.d" / "zz_lms.toml").write_text(lms, encoding="utf-8")
    return root


@contextmanager
def serving_daemon(
    root: Path,
    log: Path,
    env: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Iterator[Daemon]:
    full_env = {
        "PYTHONPATH": f"{REPO / 'tests'}:{REPO}",
        "LMS_A_TOKEN": LMS_A_TOKEN,
        "LMS_B_TOKEN": LMS_B_TOKEN,
        **(env or {}),
    }
    with running(root, log, full_env, ssl_context) as daemon:
        yield daemon


@dataclass
class Served:
    """The serving daemon and the echo peer its ``lms_site`` connections call."""

    daemon: Daemon
    lms: AiohttpPeer

    def jsonrpc(self, body: Any, headers: dict[str, str] | None = None) -> Any:
        """POST ``body`` (a JSON value) to ``/jsonrpc`` with the loopback token: the answer."""
        hdrs = {"Authorization": f"Bearer {LOOPBACK_TOKEN}", **(headers or {})}
        status, _, raw = self.daemon.post(
            "/jsonrpc", json.dumps(body).encode(), "application/json", hdrs
        )
        assert status == 200, (status, raw)
        return json.loads(raw)


@contextmanager
def served(base: Path) -> Iterator[Served]:
    """The echo peer, the serving tree over it, and the daemon; after it stops, its log
    is checked for every secret the tree uses."""
    with serve(echo_app()) as lms:
        root = serving_tree(base / "tree", lms.url + "/moodle")
        with serving_daemon(root, base / "rpcd.log") as daemon:
            yield Served(daemon, lms)
            logs = daemon.logs()
    for secret in (LMS_A_TOKEN, LMS_B_TOKEN, EGW_PASSWORD, LOOPBACK_TOKEN, OUTSIDER_TOKEN):
        assert secret not in logs, "a secret reached the daemon's log"
