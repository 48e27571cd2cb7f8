"""Remotes that echo the credential rpcd sent them: the echo never reaches anyone (issue 12.8).

Real peers on 127.0.0.1 (``peers.echo``) quote the request they got in XML-RPC faults, Moodle
exceptions (JSON and XML), a SOAP Fault, an HTTP 500's reason phrase and body, and a successful
result. Each is called through a real daemon (``POST /v1/call``, a published proxy method over
XML-RPC and over JSON-RPC), through ``rpcd call``, and through ``call_class`` in-process; no
answer, output or log line may hold a credential in any of the forms the peers write it,
while the remote's message still says what happened.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from peers import serve
from peers.echo import echo_app, echo_xmlrpc_server
from server_helpers import LOOPBACK_TOKEN, Daemon, make_tree, running
from tree_helpers import run_cli

from rpcd.config import build
from rpcd.connections import Transport, call_class
from rpcd.errors import APPLICATION_ERROR, RemoteFault
from rpcd.secrets import MASK, resolve_catalog

# Tokens with the characters that change between forms: / + & " < > and a non-ASCII letter.
BEARER = 'bearer/tok+en&"<é>-4c1d9e'
QUERY = "query/tok+en&x=1-77b0e2"
USER, PASSWORD = "svc-echo-account", "basic/pass+word&9-c3d2"
MOODLE = 'moodle/tok+en&é"<x>-5a6b7c'
WSSE_USER, WSSE_PASSWORD = "wsse-user-echo", "wsse/pass<&>é-8e9f"
SECRETS = {
    "ECHO_BEARER": BEARER,
    "ECHO_QUERY": QUERY,
    "ECHO_USER": USER,
    "ECHO_PASSWORD": PASSWORD,
    "ECHO_MOODLE": MOODLE,
    "ECHO_WSSE_USER": WSSE_USER,
    "ECHO_WSSE_PASSWORD": WSSE_PASSWORD,
}
BLOB = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def leaked_forms(value: str) -> set[str]:
    """What a credential looks like in the peers' echoes (written out here, independently of
    rpcd's own list): as is, UTF-8 read as Latin-1 (a header or reason phrase), percent-encoded,
    and each of those JSON- (also PHP-) and XML-escaped."""
    found = set()
    for base in (
        value,
        value.encode().decode("latin-1"),
        urllib.parse.quote_plus(value, safe=""),
        urllib.parse.quote(value, safe=""),
    ):
        as_json = json.dumps(base)[1:-1]
        found |= {
            base,
            as_json,
            as_json.replace("/", "\\/"),
            json.dumps(base, ensure_ascii=False)[1:-1],
            html.escape(base, quote=False),
            html.escape(base),
        }
    return found


FORBIDDEN = {f for v in (*SECRETS.values(), BLOB) for f in leaked_forms(v)}


def assert_clean(text: str) -> None:
    """No credential in ``text``, nor in it read as JSON (whose escapes hide forms)."""
    shown = [text]
    with contextlib.suppress(ValueError):
        shown.append(json.dumps(json.loads(text), ensure_ascii=False))
    leaked = sorted(f for f in FORBIDDEN for t in shown if f in t)
    assert not leaked, f"a credential reached the output: {leaked}"


CLASS = """
[class]
id = "echo_{name}"
plugin = "echo"
name = "Echo {name}"
{extra}

[[connection]]
id = "main"
enabled = true
global = true
timeout = 10
{body}
"""

CLASSES = {
    "bearer": (
        "",
        """type = "XML-RPC"
auth = "token"
token_header = "Authorization"
endpoint = "{xmlrpc}/RPC2"
credentials = {{ token = {{ env = "ECHO_BEARER" }} }}""",
    ),
    "query": (
        "",
        """type = "XML-RPC"
auth = "token"
endpoint = "{xmlrpc}/RPC2"
credentials = {{ token = {{ env = "ECHO_QUERY" }} }}""",
    ),
    "basic": (
        'probe = { function = "whoami", params = [] }',
        """type = "XML-RPC"
auth = "userpass"
endpoint = "{xmlrpc}/RPC2"
credentials = {{ username = {{ env = "ECHO_USER" }}, password = {{ env = "ECHO_PASSWORD" }} }}""",
    ),
    "reason": (
        "",
        """type = "XML-RPC"
auth = "userpass"
endpoint = "{xmlrpc}/reason/RPC2"
credentials = {{ username = {{ env = "ECHO_USER" }}, password = {{ env = "ECHO_PASSWORD" }} }}""",
    ),
    "moodle": (
        'function_param = "wsfunction"',
        """auth = "token"
endpoint = "{web}/moodle"
parameters = {{ moodlewsrestformat = "json" }}
http_method = "POST"
credentials = {{ token = {{ env = "ECHO_MOODLE" }} }}""",
    ),
    "moodlexml": (
        'function_param = "wsfunction"',
        """auth = "token"
endpoint = "{web}/moodle"
parameters = {{ moodlewsrestformat = "xml" }}
http_method = "POST"
credentials = {{ token = {{ env = "ECHO_MOODLE" }} }}""",
    ),
    "soap": (
        "",
        """type = "SOAP"
auth = "wsse"
wsse_password_type = "text"
endpoint = "{web}/soap"
soap_namespace = "urn:test:echo"
credentials.username = {{ env = "ECHO_WSSE_USER" }}
credentials.password = {{ env = "ECHO_WSSE_PASSWORD" }}""",
    ),
}

# (case id, class, function, params, a phrase of the remote's own text that must survive)
FAILURES = [
    ("xmlrpc-fault-bearer", "bearer", "whoami", [], "access denied for POST /RPC2"),
    ("xmlrpc-fault-query", "query", "whoami", [], "access denied for POST /RPC2?wstoken="),
    ("xmlrpc-fault-basic", "basic", "whoami", [], "Authorization: Basic"),
    ("http-500-reason", "reason", "whoami", [], "HTTP 500 Refused POST /reason/RPC2"),
    ("moodle-json", "moodle", "bad", {}, "Invalid token - token not found"),
    ("moodle-xml", "moodlexml", "bad", {}, "Invalid token - token not found"),
    ("moodle-http-500", "moodle", "http500", {}, "HTTP 500 Token"),
    ("soap-fault", "soap", "login", {}, "The security token could not be authenticated"),
]
ECHOES = [  # successful results that carry the credential
    ("xmlrpc-result", "bearer", "request", []),
    ("moodle-result", "moodle", "echo", {}),
]

SERVICE = """version = 1

[service]
name = "masktest"
apiversion = 1
grant = { peers = ["loopback"] }
""" + "".join(
    f"""
[[service.method]]
name = "{case.replace("-", "_")}"
proxy = {{ class = "echo_{cls}", function = "{function}" }}
"""
    for case, cls, function, _, _ in FAILURES
)


def write_classes(root: Path, xmlrpc: str, web: str) -> None:
    for name, (extra, body) in CLASSES.items():
        text = "version = 1\n" + CLASS.format(
            name=name, extra=extra, body=body.format(xmlrpc=xmlrpc, web=web)
        )
        (root / "connections.d" / f"zz_echo_{name}.toml").write_text(text, encoding="utf-8")


@dataclass
class Setup:
    daemon: Daemon
    root: Path

    def api_call(self, class_id: str, function: str, params: Any) -> str:
        status, _, raw = self.daemon.post(
            f"/v1/call/{class_id}",
            json.dumps({"function": function, "params": params}).encode(),
            "application/json",
            {"Authorization": f"Bearer {LOOPBACK_TOKEN}"},
        )
        assert status == 200, raw
        return raw.decode()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("masking")
    with echo_xmlrpc_server() as xmlrpc, serve(echo_app()) as web:
        root = make_tree(base / "tree")
        write_classes(root, xmlrpc, web.url)
        (root / "services.d" / "zz-masktest.toml").write_text(SERVICE, encoding="utf-8")
        with running(root, base / "rpcd.log", SECRETS) as daemon:
            yield Setup(daemon, root)
            logs = daemon.logs()
        assert_clean(logs)


@pytest.mark.parametrize(
    ("cls", "function", "params", "phrase"),
    [case[1:] for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
def test_v1_call_masks_remote_errors(
    setup: Setup, cls: str, function: str, params: Any, phrase: str
) -> None:
    raw = setup.api_call(f"echo_{cls}", function, params)
    assert_clean(raw)
    data = json.loads(raw)
    assert data["ok"] is False
    message = data["error"]["message"]
    assert phrase in message and MASK in message, message
    assert data["attempts"][0]["error"] == data["error"]


@pytest.mark.parametrize(
    ("cls", "function", "params"),
    [case[1:] for case in ECHOES],
    ids=[case[0] for case in ECHOES],
)
def test_v1_call_masks_a_result_that_echoes_the_credential(
    setup: Setup, cls: str, function: str, params: Any
) -> None:
    raw = setup.api_call(f"echo_{cls}", function, params)
    assert_clean(raw)
    data = json.loads(raw)
    assert data["ok"] is True and MASK in json.dumps(data["result"])


@pytest.mark.parametrize(
    ("case", "params", "phrase"),
    [(case[0], case[3], case[4]) for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
def test_proxy_method_fault_is_masked_over_xmlrpc(
    setup: Setup, case: str, params: Any, phrase: str
) -> None:
    import xmlrpc.client

    method = getattr(setup.daemon.token_proxy().masktest, case.replace("-", "_"))
    with pytest.raises(xmlrpc.client.Fault) as info:
        method(*([params] if isinstance(params, dict) else params))
    assert_clean(info.value.faultString)
    assert phrase in info.value.faultString and MASK in info.value.faultString


@pytest.mark.parametrize(
    ("case", "params", "phrase"),
    [(case[0], case[3], case[4]) for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
def test_proxy_method_fault_is_masked_over_jsonrpc(
    setup: Setup, case: str, params: Any, phrase: str
) -> None:
    call = {
        "jsonrpc": "2.0",
        "method": f"masktest.{case.replace('-', '_')}",
        "params": [params] if isinstance(params, dict) else params,
        "id": 7,
    }
    status, _, raw = setup.daemon.post(
        "/jsonrpc",
        json.dumps(call).encode(),
        "application/json",
        {"Authorization": f"Bearer {LOOPBACK_TOKEN}"},
    )
    assert status == 200
    assert_clean(raw.decode())
    error = json.loads(raw)["error"]
    assert phrase in error["message"] and MASK in error["message"], error


def rpcd(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--root", str(root), env=SECRETS)


@pytest.mark.parametrize(
    ("cls", "function", "args"),
    [
        ("echo_basic", "whoami", ()),
        ("echo_moodle", "bad", ("--param", "x=1")),
        ("echo_soap", "login", ("--param", "x=1")),
        ("echo_bearer", "request", ()),
    ],
    ids=["xmlrpc-fault", "moodle-json", "soap-fault", "xmlrpc-result"],
)
def test_rpcd_call_output_is_masked(setup: Setup, cls: str, function: str, args: Any) -> None:
    result = rpcd(setup.root, "call", cls, function, *args)
    assert_clean(result.stdout + result.stderr)
    data = json.loads(result.stdout)
    shown = json.dumps(data["attempts"])
    assert MASK in shown, result.stdout


def test_rpcd_check_output_is_masked(setup: Setup) -> None:
    for fmt in ("text", "json"):
        result = rpcd(setup.root, "check", "echo_basic", "--format", fmt)
        assert result.returncode == 1
        assert_clean(result.stdout + result.stderr)
        assert "access denied for POST /RPC2" in result.stdout and MASK in result.stdout


def test_in_process_outcome_is_masked_and_keeps_the_remote_fault(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``call_class`` as a handler would use it: the outcome and the log are clean, the
    fault keeps its code, errorcode and SOAP detail (masked too)."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    result = build(setup.root)
    assert result.catalog is not None
    store, _ = resolve_catalog(result.catalog)

    async def go(cls: str, function: str, params: Any) -> Any:
        async with Transport.open() as transport:
            return await call_class(
                result.catalog, cls, function, params, [], secrets=store, transport=transport
            )

    outcome = asyncio.run(go("echo_moodle", "bad", {}))
    assert outcome.error is not None and outcome.error.errorcode == "invalidtoken"
    assert outcome.error.code == APPLICATION_ERROR
    assert_clean(json.dumps(outcome.to_dict()))

    from rpcd.connections import connections_for

    async def soap_detail() -> Any:
        async with Transport.open() as transport:
            (conn,) = connections_for(
                result.catalog, "echo_soap", [], secrets=store, transport=transport
            )
            with pytest.raises(RemoteFault) as info:
                await conn.call("login", {})
            return info.value

    fault = asyncio.run(soap_detail())
    assert fault.errorcode == "wsse:FailedAuthentication"
    assert fault.__cause__ is None and fault.__context__ is None
    assert_clean(fault.message + json.dumps(fault.detail))
    assert MASK in json.dumps(fault.detail)


# ------------------------------------------------------------------------- the masker alone


def test_a_short_credential_withholds_the_whole_text() -> None:
    """A value too short to mask without showing where it was: the text is withheld."""
    from rpcd.connections.masking import Masker

    masker = Masker("c/x", ["ab12"], identities=["svc"])
    assert masker.text("svc is fine") == "svc is fine"  # a short identity is no secret
    withheld = masker.text("bad password ab12 for svc")
    assert "ab12" not in withheld and "withheld" in withheld and "c/x" in withheld


def test_identities_are_masked_in_errors_but_not_in_results() -> None:
    """A username names an account (a result may list it as data); the password and the
    Basic blob are masked everywhere."""
    from rpcd.connections.masking import Masker

    masker = Masker("c/x", ["pass-word-0123", "YmxvYi1ibG9iLWJsb2I="], ["svc-account-1"])
    fault = RemoteFault(4, "svc-account-1 sent pass-word-0123")
    assert masker.exception(fault).message == f"{MASK} sent {MASK}"
    body = b'{"user": "svc-account-1", "echo": "YmxvYi1ibG9iLWJsb2I="}'
    result = masker.result(json.loads(body), body)
    assert result == {"user": "svc-account-1", "echo": MASK}


def test_keys_and_deep_values_are_masked_without_recursion_limits() -> None:
    from rpcd.connections.masking import Masker

    secret = "deep-secret-value-0123"
    masker = Masker("c/x", [secret])
    deep: Any = {secret: [secret]}
    for _ in range(5000):
        deep = [deep]
    out = masker.value(deep)
    for _ in range(5000):
        out = out[0]
    assert out == {MASK: [MASK]}
    assert secret not in repr(masker)
