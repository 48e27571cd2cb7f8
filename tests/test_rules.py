"""Every rule id the checker can emit: a failing fixture (rule, file, line, column) and its
passing neighbour (the smallest change that makes the tree valid again).

Each case adds or replaces one file of a small valid tree (``BASE``). In the ``bad`` text the
line marked ``# <-`` is where the finding must point; the column is where ``at`` starts on that
line (default: the first non-blank character). ``good`` is the same file, fixed.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tree_helpers import REPO, findings, run_cli

from rpcd.config import Finding, Severity, build, rulebook
from rpcd.config.scopes import Scope, _overlapping

SITE = """\
version = 1

[[institution]]
id = "uni-a"
name = "University A"

[[institution]]
id = "uni-b"
name = "University B"
endpoint_hosts = ["*.uni-b.example"]
"""

CLASS = """\
version = 1

[class]
id = "moodle_users"
plugin = "moodle"
name = "Moodle users"
function_param = "wsfunction"

[[connection]]
id = "uni-a"
enabled = true
institutions = ["uni-a"]
auth = "token"
endpoint = "https://moodle.uni-a.example/rest"
credentials = { token = { env = "MOODLE_A_TOKEN" } }
"""

SERVICES = """\
version = 1

[service]
name = "hello"
grant = { institutions = ["uni-a"], peers = ["mahara"] }

[[service.method]]
name = "hi"
function = "examples.hello:hello_world"

[[peer]]
id = "mahara"
institutions = ["uni-a"]
auth = "token"
token_sha256 = "14fe41b620bcbd4b551e3c6bdd02b243175a834d268e6657f981365ceb01d531"
"""

BASE = {
    "rpcd.toml": SITE,
    "connections.d/moodle.toml": CLASS,
    "services.d/hello.toml": SERVICES,
}
MARK = "# <-"
HASH_B = "0" * 63 + "b"


def write_tree(root: Path, files: dict[str, str | bytes | None]) -> Path:
    """BASE plus ``files`` (a None value deletes that file)."""
    merged: dict[str, str | bytes | None] = {**BASE, **files}
    for rel, content in merged.items():
        if content is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")
    return root


@dataclass(frozen=True)
class Case:
    rule: str
    file: str
    bad: str
    good: str
    at: str | None = None  # the text on the marked line where the column must point
    imports: bool = False
    severity: Severity = Severity.ERROR

    @property
    def id(self) -> str:
        return self.rule

    def expected_position(self) -> tuple[int, int]:
        lines = textwrap.dedent(self.bad).splitlines()
        marked = [i for i, text in enumerate(lines, start=1) if MARK in text]
        assert len(marked) == 1, f"{self.rule}: mark exactly one line with {MARK!r}"
        text = lines[marked[0] - 1]
        if self.at is None:
            return marked[0], len(text) - len(text.lstrip()) + 1
        assert self.at in text, f"{self.rule}: {self.at!r} not on the marked line"
        return marked[0], text.index(self.at) + 1


def _conn(body: str, cls: str = 'class = "moodle_users"\n') -> str:
    """A connections.d file with one connection of moodle_users, for uni-b."""
    return (
        "version = 1\n\n[[connection]]\n"
        + cls
        + 'id = "uni-b"\nenabled = true\ninstitutions = ["uni-b"]\n'
        + 'endpoint = "https://moodle.uni-b.example/rest"\n'
        + textwrap.dedent(body)
    )


def _service(methods: str = "", grant: str = '{ peers = ["mahara"] }') -> str:
    """A services.d file with service "more", granted to ``grant``, then ``methods``."""
    text = f'version = 1\n\n[service]\nname = "more"\ngrant = {grant}\n'
    return text + "\n" + textwrap.dedent(methods) if methods else text


TOKEN = 'auth = "token"\ncredentials = { token = { env = "T" } }\n'
TOKEN_B = 'auth = "token"\ncredentials = { token = { env = "UNI_B_T" } }\n'  # uni-b's scope
OAUTH = (
    'auth = "oauth1"\n'
    'credentials = { consumer_key = { env = "K" }, consumer_secret = { env = "S" } }\n'
)
C = "connections.d/extra.toml"
S = "services.d/extra.toml"

CASES = [
    # --- stage 1: syntax and the version line ------------------------------------------------
    Case("toml-syntax", C, "version = 1\nname = # <-\n", "version = 1\n", at="#"),
    Case("missing-version", C, '[class] # <-\nid = "x"\n', "version = 1\n", at="["),
    Case("unknown-version", C, "version = 2 # <-\n", "version = 1\n"),
    # --- stage 2: structure (JSON Schema) ----------------------------------------------------
    Case("unknown-key", C, _conn(TOKEN + "prioity = 2 # <-\n"), _conn(TOKEN + "priority = 2\n")),
    Case(
        "missing-key",
        C,
        _conn('credentials = { token = { env = "T" } }\n').replace(
            "[[connection]]", "[[connection]] # <-"
        ),
        _conn(TOKEN),
        at="connection",
    ),
    Case("wrong-type", C, _conn(TOKEN + 'timeout = "15" # <-\n'), _conn(TOKEN + "timeout = 15\n")),
    Case("invalid-value", C, _conn(TOKEN + "priority = 0 # <-\n"), _conn(TOKEN + "priority = 1\n")),
    Case(
        "plaintext-secret",
        C,
        _conn('auth = "token"\ncredentials = { token = "s3cr3t-value-xyz" } # <-\n'),
        _conn(TOKEN),
        at="token =",
    ),
    Case(
        "credential-mismatch",
        C,
        _conn('auth = "userpass"\ncredentials = { token = { env = "T" } } # <-\n'),
        _conn(TOKEN),
        at="credentials",
    ),
    Case(
        "auth-for-type",
        C,
        _conn(
            'auth = "cert" # <-\n'
            'credentials = { certificate = { env = "C" }, private_key = { env = "K" } }\n'
        ),
        _conn(TOKEN),
    ),
    Case(
        "payload-for-type",
        C,
        _conn(TOKEN + 'payload = "soap" # <-\n'),
        _conn(TOKEN + 'payload = "url"\n'),
    ),
    Case(
        "parameters-need-method",
        C,
        _conn(TOKEN + 'parameters = { moodlewsrestformat = "json" } # <-\n'),
        _conn(TOKEN + 'parameters = { moodlewsrestformat = "json" }\nhttp_method = "POST"\n'),
    ),
    Case(
        "global-with-institutions",
        "connections.d/moodle.toml",
        CLASS.replace('id = "uni-a"\n', 'id = "all"\nglobal = true\n').replace(
            'institutions = ["uni-a"]', 'institutions = ["uni-a"] # <-'
        ),
        CLASS.replace('id = "uni-a"\n', 'id = "all"\nglobal = true\n').replace(
            'institutions = ["uni-a"]\n', ""
        ),
    ),
    Case(
        "token-placement",
        C,
        _conn(TOKEN + 'token_param = "wstoken"\ntoken_header = "Authorization" # <-\n'),
        _conn(TOKEN + 'token_header = "Authorization"\n'),
    ),
    Case(
        "endpoint-or-endpoints",
        C,
        _conn(TOKEN + 'endpoints = ["https://standby.uni-b.example/rest"] # <-\n'),
        _conn(TOKEN),
    ),
    Case(
        "proxy-credentials",
        C,
        _conn(TOKEN + 'proxy = { url = "http://p.example:3128", username = { env = "U" } } # <-\n'),
        _conn(
            TOKEN + 'proxy = { url = "http://proxy.example:3128", username = { env = "U" }, '
            'password = { env = "P" } }\n'
        ),
        at="username",
    ),
    Case(
        "option-for-type",
        C,
        _conn(TOKEN + 'soap_action = "urn:x/{function}" # <-\n'),
        _conn(TOKEN),
    ),
    Case(
        "option-for-type",
        C,
        _conn(TOKEN + 'oauth_placement = "query" # <-\n'),
        _conn(OAUTH + 'oauth_placement = "query"\n'),
    ),
    Case(
        "option-for-type",
        C,
        _conn(OAUTH + 'http_method = "GET"\noauth_placement = "body" # <-\n'),
        _conn(OAUTH + 'http_method = "POST"\noauth_placement = "body"\n'),
    ),
    Case(
        "missing-class",
        C,
        _conn(TOKEN, cls="").replace("[[connection]]", "[[connection]] # <-"),
        _conn(TOKEN),
        at="connection",
    ),
    Case(
        "method-target",
        S,
        _service(
            """\
            [[service.method]]
            name = "a"
            function = "examples.hello:add"

            [[service.method]] # <-
            name = "b"
            """
        ),
        _service(
            """\
            [[service.method]]
            name = "a"
            function = "examples.hello:add"

            [[service.method]]
            name = "b"
            proxy = { class = "moodle_users", function = "core_user_get_users" }
            """
        ),
        at="service.method",
    ),
    Case(
        "method-target",
        S,
        _service(
            """\
            [[service.method]]
            name = "b"
            proxy = { class = "moodle_users", function = "core_user_get_users" }
            run = "inline" # <-
            """
        ),
        _service(
            """\
            [[service.method]]
            name = "b"
            proxy = { class = "moodle_users", function = "core_user_get_users" }

            [[service.method]]
            name = "c"
            function = "examples.hello:add"
            run = "inline"
            """
        ),
    ),
    Case(
        "peer-credential",
        S,
        'version = 1\n\n[[peer]] # <-\nid = "sis"\nauth = "userpass"\nusername = "sis"\n',
        f'version = 1\n\n[[peer]]\nid = "sis"\nauth = "token"\ntoken_sha256 = "{HASH_B}"\n',
        at="peer",
    ),
    # --- stage 4: rules across files ---------------------------------------------------------
    Case(
        "duplicate-id",
        "rpcd.toml",
        SITE + '\n[[institution]]\nid = "uni-a" # <-\nname = "Again"\n',
        SITE + '\n[[institution]]\nid = "uni-c"\nname = "Again"\n',
    ),
    Case(
        "unknown-class",
        C,
        _conn(TOKEN, cls='class = "moodle_user" # <-\n'),
        _conn(TOKEN),
    ),
    Case(
        "unknown-institution",
        C,
        _conn(TOKEN).replace(
            'institutions = ["uni-b"]', 'institutions = [\n  "uni-b",\n  "uni-z", # <-\n]'
        ),
        _conn(TOKEN).replace('institutions = ["uni-b"]', 'institutions = [\n  "uni-b",\n]'),
        at='"uni-z"',
    ),
    Case(
        "unknown-peer",
        S,
        _service(grant='{ peers = ["mahara", "mahra"] } # <-'),
        _service(),
        at='"mahra"',
    ),
    Case(
        "unknown-proxy-class",
        S,
        _service(
            '[[service.method]]\nname = "find"\n[service.method.proxy]\n'
            'class = "ghost" # <-\nfunction = "f"\n'
        ),
        _service(
            '[[service.method]]\nname = "find"\n[service.method.proxy]\n'
            'class = "moodle_users"\nfunction = "f"\n'
        ),
    ),
    Case(
        "global-not-alone",
        C,
        _conn(TOKEN).replace('institutions = ["uni-b"]', "global = true # <-"),
        _conn(TOKEN),
    ),
    Case(
        "institution-overlap",
        "connections.d/zz-uni-b.toml",  # read after moodle.toml, so it is the second one
        _conn(TOKEN).replace('["uni-b"]', '["uni-b", "uni-a"] # <-'),
        _conn(TOKEN),
        at='"uni-a"',
    ),
    Case(
        "fixed-attribute",
        "connections.d/moodle.toml",
        CLASS.replace(
            'function_param = "wsfunction"', 'function_param = "f"\nfixed = { payload = "url" }'
        )
        + 'payload = "json" # <-\n',
        CLASS.replace(
            'function_param = "wsfunction"', 'function_param = "f"\nfixed = { payload = "url" }'
        ),
    ),
    Case(
        "class-id-prefix",
        "connections.d/moodle.toml",
        CLASS.replace('plugin = "moodle"', 'plugin = "mahara"').replace(
            'id = "moodle_users"', 'id = "moodle_users" # <-'
        ),
        CLASS,
    ),
    Case(
        "config-field",
        "connections.d/moodle.toml",
        CLASS.replace(
            'function_param = "wsfunction"',
            'function_param = "wsfunction"\nconfig_fields.page_size = '
            '{ type = "integer", help = "n" }',
        )
        + '\n[connection.config]\npage_size = "50" # <-\n',
        CLASS.replace(
            'function_param = "wsfunction"',
            'function_param = "wsfunction"\nconfig_fields.page_size = '
            '{ type = "integer", help = "n" }',
        )
        + "\n[connection.config]\npage_size = 50\n",
    ),
    Case(
        "function-placement",
        "connections.d/moodle.toml",
        CLASS.replace('function_param = "wsfunction"\n', "").replace(
            'endpoint = "https://moodle.uni-a.example/rest"',
            'endpoint = "https://moodle.uni-a.example/rest" # <-',
        ),
        CLASS.replace('function_param = "wsfunction"\n', "").replace(
            "example/rest", "example/rest/{function}"
        ),
    ),
    Case(
        "folder-ownership",
        "connections.d/uni-b/moodle.toml",
        _conn(TOKEN_B).replace(
            'institutions = ["uni-b"]', 'institutions = ["uni-a", "uni-b"] # <-'
        ),
        _conn(TOKEN_B),
    ),
    # secret-scope: a folder spends only its institution's secrets, nobody the daemon's own
    Case(
        "secret-scope",
        "connections.d/uni-b/moodle.toml",
        _conn('auth = "token"\ncredentials = { token = { env = "UNI_A_TOKEN" } } # <-\n'),
        _conn(TOKEN_B),
        at="env =",
    ),
    Case(
        "secret-scope",
        "connections.d/uni-b/moodle.toml",
        _conn('auth = "token"\ncredentials = { token = { credential = "uni-a-token" } } # <-\n'),
        _conn('auth = "token"\ncredentials = { token = { credential = "uni-b-token" } }\n'),
        at="credential =",
    ),
    Case(
        "secret-scope",
        "connections.d/uni-b/moodle.toml",
        _conn(
            'auth = "token"\n'
            'credentials = { token = { file = "/etc/rpcd/secrets/uni-b/../uni-a/t" } } # <-\n'
        ),
        _conn('auth = "token"\ncredentials = { token = { file = "/etc/rpcd/secrets/uni-b/t" } }\n'),
        at="file =",
    ),
    Case(
        "secret-scope",
        C,  # a site-level file: any secret but the daemon's own
        _conn('auth = "token"\ncredentials = { token = { env = "RPCD_SESSION_KEY" } } # <-\n'),
        _conn('auth = "token"\ncredentials = { token = { env = "UNI_A_TOKEN" } }\n'),
        at="env =",
    ),
    Case(
        "secret-scope",
        "rpcd.toml",  # the site proxy: any secret but the daemon's own
        SITE + '\n[proxy]\nurl = "http://proxy.example:3128"\nusername = { env = "PROXY_USER" }\n'
        'password = { env = "RPCD_SESSION_KEY" } # <-\n',
        SITE + '\n[proxy]\nurl = "http://proxy.example:3128"\nusername = { env = "PROXY_USER" }\n'
        'password = { env = "PROXY_PASSWORD" }\n',
        at="env =",
    ),
    Case(
        "secret-scope",
        C,
        _conn('auth = "token"\ncredentials = { token = { credential = "session-key" } } # <-\n'),
        _conn(TOKEN),
        at="credential =",
    ),
    Case(
        "secret-scope",
        C,
        _conn('auth = "token"\ncredentials = { token = { env = "rpcd_tls_key" } } # <-\n'),
        _conn(TOKEN),
        at="env =",
    ),
    # endpoint-host: a folder calls only the hosts its institution lists, when it lists any
    Case(
        "endpoint-host",
        "connections.d/uni-b/moodle.toml",
        _conn(TOKEN_B).replace(
            'endpoint = "https://moodle.uni-b.example/rest"',
            'endpoint = "https://x@moodle.uni-b.example.evil.example:443/rest" # <-',
        ),
        _conn(TOKEN_B).replace(
            'endpoint = "https://moodle.uni-b.example/rest"',
            'endpoint = "https://MOODLE.Uni-B.example:8443/rest"',
        ),
    ),
    # plaintext-secret: no literal credential in an endpoint or parameters either
    Case(
        "plaintext-secret",
        C,
        _conn(TOKEN).replace(
            'endpoint = "https://moodle.uni-b.example/rest"',
            'endpoint = "https://svc:hunter2-pass@moodle.uni-b.example/rest" # <-',
        ),
        _conn(TOKEN),
    ),
    Case(
        "plaintext-secret",
        C,
        _conn(TOKEN).replace(
            'endpoint = "https://moodle.uni-b.example/rest"',
            'endpoint = "https://moodle.uni-b.example/rest?moodlewsrestformat=json&'
            'WsToken=abc123def456" # <-',
        ),
        _conn(TOKEN).replace(
            'endpoint = "https://moodle.uni-b.example/rest"',
            'endpoint = "https://moodle.uni-b.example/rest?moodlewsrestformat=json&wstoken="',
        ),
    ),
    Case(
        "plaintext-secret",
        C,
        _conn(TOKEN + 'token_param = "sesame"\n').replace(
            'endpoint = "https://moodle.uni-b.example/rest"',
            'endpoint = "https://moodle.uni-b.example/rest?Se%73ame=abc123def456" # <-',
        ),
        _conn(TOKEN + 'token_param = "sesame"\n'),
    ),
    Case(
        "plaintext-secret",
        C,
        _conn(TOKEN + 'http_method = "POST"\nparameters = { api_key = "abc123def456" } # <-\n'),
        _conn(TOKEN + 'http_method = "POST"\nparameters = { moodlewsrestformat = "json" }\n'),
        at="api_key",
    ),
    # invalid-value: control characters where a request line or header would carry them
    Case(
        "invalid-value",
        C,
        _conn(TOKEN).replace(
            'endpoint = "https://moodle.uni-b.example/rest"',
            'endpoint = "https://moodle.uni-b\\u0000.example/rest" # <-',
        ),
        _conn(TOKEN),
    ),
    Case(
        "invalid-value",
        C,
        _conn(TOKEN).replace(
            'endpoint = "https://moodle.uni-b.example/rest"',
            'endpoint = "https://moodle.uni-b.example/rest\\r\\nX-Evil: 1" # <-',
        ),
        _conn(TOKEN),
    ),
    Case(
        "invalid-value",
        C,
        _conn(
            'type = "SOAP"\nauth = "token"\ncredentials = { token = { env = "T" } }\n'
            'soap_action = "urn:x\\nX-Evil: 1" # <-\n'
        ),
        _conn('type = "SOAP"\nauth = "token"\ncredentials = { token = { env = "T" } }\n'),
    ),
    Case(
        "invalid-value",
        C,
        _conn('auth = "token"\ncredentials = { token = { file = "/etc/x\\u0000y" } } # <-\n'),
        _conn(TOKEN),
        at="file =",
    ),
    # nesting-depth: nothing after the parser walks a value nested past the limit
    Case(
        "nesting-depth",
        C,
        _conn(
            TOKEN + 'http_method = "POST"\nparameters = { p = ' + "[" * 40 + "]" * 40 + " } # <-\n"
        ),
        _conn(TOKEN + 'http_method = "POST"\nparameters = { p = ' + "[" * 20 + "]" * 20 + " }\n"),
        at="[" * 39 + "]",
    ),
    Case(
        "enabled-missing",
        C,
        _conn(TOKEN).replace('id = "uni-b"\nenabled = true', 'id = "uni-b" # <-'),
        _conn(TOKEN),
        at='id = "uni-b"',
        severity=Severity.INFO,
    ),
    Case(
        "service-without-grant",
        S,
        'version = 1\n\n[service]\nname = "more" # <-\n',
        'version = 1\n\n[service]\nname = "more"\ngrant = { institutions = ["uni-b"] }\n',
        severity=Severity.WARNING,
    ),
    Case(
        "duplicate-credential",
        "services.d/zz-sis.toml",  # read after hello.toml, so it is the second one
        'version = 1\n\n[[peer]]\nid = "sis"\nauth = "token"\n'
        'token_sha256 = "14fe41b620bcbd4b551e3c6bdd02b243175a834d268e6657f981365ceb01d531" # <-\n',
        f'version = 1\n\n[[peer]]\nid = "sis"\nauth = "token"\ntoken_sha256 = "{HASH_B}"\n',
    ),
    Case(
        "import-failed",
        "services.d/hello.toml",
        SERVICES.replace(
            'function = "examples.hello:hello_world"',
            'function = "examples.hello:hello_wrld" # <-',
        ),
        SERVICES,
        imports=True,
    ),
    # --- issue 14: serving ---------------------------------------------------------------------
    Case(
        "handler-context",
        S,
        _service(
            """\
            [[service.method]]
            name = "rid"
            function = "serving_handlers:positional_context" # <-
            """
        ),
        _service(
            """\
            [[service.method]]
            name = "rid"
            function = "serving_handlers:whoami"
            """
        ),
        imports=True,
    ),
    Case(
        "anonymous-grant",
        S,
        _service(
            """\
            [[service.method]]
            name = "register"
            function = "examples.hello:echo"
            grant = { anonymous = true } # <-
            """
        ),
        _service(
            """\
            [[service.method]]
            name = "register"
            function = "examples.hello:echo"
            grant = { peers = ["mahara"] }
            """
        ),
        severity=Severity.WARNING,
    ),
    Case(
        "method-params",
        S,
        _service(
            """\
            [[service.method]]
            name = "hi"
            function = "examples.hello:hello_world"
            signature = ["string", "string", "string"]
            params = ["first"] # <-
            """
        ),
        _service(
            """\
            [[service.method]]
            name = "hi"
            function = "examples.hello:hello_world"
            signature = ["string", "string", "string"]
            params = ["first", "last"]
            """
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule_fires_at_the_right_place(case: Case, tmp_path: Path) -> None:
    root = write_tree(tmp_path, {case.file: case.bad})
    found = [
        f for f in findings(root, check_imports=case.imports, infos=True) if f.rule == case.rule
    ]
    line, column = case.expected_position()
    assert found, f"no {case.rule} finding; got {findings(root, check_imports=case.imports)}"
    first = found[0]
    assert (first.file, first.line, first.column) == (case.file, line, column), first.as_text()
    assert first.severity is case.severity
    assert first.message and first.message[0] != " "


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_passing_neighbour_is_clean(case: Case, tmp_path: Path) -> None:
    root = write_tree(tmp_path, {case.file: case.good})
    assert findings(root, check_imports=case.imports) == []


def test_base_tree_is_clean(tmp_path: Path) -> None:
    assert findings(write_tree(tmp_path, {}), check_imports=True) == []


def test_example_tree_is_valid_with_imports() -> None:
    result = build(REPO, check_imports=True)
    assert list(result.report) == []
    assert result.catalog is not None


# --- rules about files rather than their content ---------------------------------------------


def _fs_file_encoding(root: Path, bad: bool) -> None:
    text = "version = 1\n# café\n"
    data = text.encode("latin-1") if bad else text.encode("utf-8")
    (root / C).write_bytes(data)


def _fs_file_unreadable(root: Path, bad: bool) -> None:
    (root / "connections.d" / "real.data").write_text("version = 1\n")
    os.symlink("gone.data" if bad else "real.data", root / C)


def _fs_not_a_file(root: Path, bad: bool) -> None:
    (root / C).mkdir() if bad else (root / C).write_text("version = 1\n")


def _fs_symlink_loop(root: Path, bad: bool) -> None:
    if bad:
        os.symlink("extra.toml", root / C)
    else:
        (root / C).write_text("version = 1\n")


def _fs_missing_site_file(root: Path, bad: bool) -> None:
    if bad:
        (root / "rpcd.toml").unlink()


def _fs_file_too_large(root: Path, bad: bool) -> None:
    (root / C).write_text("version = 1\n" + ("#" * 2000 + "\n" if bad else ""))


FS_CASES = {
    "file-encoding": (_fs_file_encoding, (2, 6)),
    "file-unreadable": (_fs_file_unreadable, None),
    "not-a-file": (_fs_not_a_file, None),
    "symlink-loop": (_fs_symlink_loop, None),
    "missing-site-file": (_fs_missing_site_file, None),
    "file-too-large": (_fs_file_too_large, None),
}


@pytest.mark.parametrize("rule", sorted(FS_CASES))
def test_file_rules(rule: str, tmp_path: Path) -> None:
    setup, position = FS_CASES[rule]
    bad = write_tree(tmp_path / "bad", {})
    setup(bad, True)
    found = [f for f in build(bad, max_file_bytes=1000).report if f.rule == rule]
    assert len(found) == 1, list(build(bad, max_file_bytes=1000).report)
    expected_file = "rpcd.toml" if rule == "missing-site-file" else C
    assert found[0].file == expected_file
    if position is not None:
        assert (found[0].line, found[0].column) == position
    good = write_tree(tmp_path / "good", {})
    setup(good, False)
    assert list(build(good, max_file_bytes=1000).report) == []


def test_root_not_found(tmp_path: Path) -> None:
    report = build(tmp_path / "nowhere").report
    assert [f.rule for f in report] == ["root-not-found"]
    assert "nowhere" in next(iter(report)).message
    assert list(build(write_tree(tmp_path / "here", {})).report) == []


# --- every rule id in the code has a fixture -------------------------------------------------

# Rule ids that cannot be provoked by a config tree, with the reason.
UNREACHABLE = {
    # Raised only when the JSON Schema accepts what the pydantic model refuses: a bug in rpcd.
    # tests/test_schema_model_agreement.py keeps the two in step.
    "model": "schema/model disagreement (an rpcd bug)",
}


def rule_ids_in_code() -> set[str]:
    ids: set[str] = set()
    config = REPO / "rpcd" / "config"
    call = re.compile(r"(?:Finding|finding|SchemaProblem)\(\s*\"([a-z][a-z0-9-]*)\"")
    for name in ("sources.py", "parse.py", "document.py", "rules.py", "schema.py", "catalog.py"):
        ids |= set(call.findall((config / name).read_text(encoding="utf-8")))
    schema_text = (config / "schema.py").read_text(encoding="utf-8")
    default = re.search(r"_DEFAULT_RULE = \{([^}]*)\}", schema_text)
    assert default is not None
    ids |= set(re.findall(r":\s*\"([a-z-]+)\"", default.group(1)))
    ids |= set(re.findall(r"\"([a-z-]+)\" if isinstance", schema_text))
    ids |= set(re.findall(r'_DEFAULT_RULE\.get\(validator, "([a-z-]+)"\)', schema_text))
    for schema_file in (REPO / "schemas" / "v1").glob("*.schema.json"):
        ids |= set(re.findall(r'"x-rpcd-rule":\s*"([a-z-]+)"', schema_file.read_text("utf-8")))
    return ids


def test_every_rule_id_has_a_fixture() -> None:
    in_code = rule_ids_in_code()
    covered = {c.rule for c in CASES} | set(FS_CASES) | {"root-not-found"}
    assert len(in_code) > 30, in_code  # the scan itself works
    missing = in_code - covered - set(UNREACHABLE)
    assert not missing, f"rule ids without a fixture: {sorted(missing)}"
    stale = covered - in_code
    assert not stale, f"fixtures for rule ids the code no longer emits: {sorted(stale)}"


# Rule ids of the preflight (``validate --resolve-secrets``, the daemon's load): they need
# resolved secrets, not a tree, so their fixtures are in tests/test_preflight.py.
PREFLIGHT = {"secret-unresolved", "secret-short"}


def test_rulebook_lists_every_rule() -> None:
    documented = rulebook.rule_ids()
    assert rule_ids_in_code() - set(UNREACHABLE) <= documented
    secrets_code = (REPO / "rpcd" / "secrets.py").read_text(encoding="utf-8")
    assert all(f'"{rule}"' in secrets_code for rule in PREFLIGHT)
    assert documented <= rule_ids_in_code() | PREFLIGHT


def test_rules_page_is_generated_from_the_rulebook() -> None:
    text = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    assert text == rulebook.render(), (
        "docs/rules.md is stale: edit rpcd/config/rulebook.py, run `make docs` and commit both"
    )


# --- positions in harder places ----------------------------------------------------------------


def _first(root: Path, rule: str) -> Finding:
    found = [f for f in findings(root) if f.rule == rule]
    assert found, findings(root)
    return found[0]


def test_position_of_key_in_nested_inline_table(tmp_path: Path) -> None:
    bad = _conn('auth = "token"\ncredentials = { token = { env = "T", envv = "U" } }\n')
    root = write_tree(tmp_path, {C: bad})
    finding = _first(root, "unknown-key")
    assert (finding.line, finding.column) == (10, 38)
    assert finding.path == "connection[0].credentials.token.envv"


def test_position_of_dotted_key(tmp_path: Path) -> None:
    text = CLASS.replace(
        'function_param = "wsfunction"', 'function_param = "f"\nfixed.tpye = "REST"'
    )
    root = write_tree(tmp_path, {"connections.d/moodle.toml": text})
    finding = _first(root, "unknown-key")
    assert (finding.line, finding.column) == (8, 7)  # the `tpye` part of fixed.tpye


def test_position_in_second_array_of_tables_under_a_table(tmp_path: Path) -> None:
    text = SERVICES.replace(
        'function = "examples.hello:hello_world"\n',
        'function = "examples.hello:hello_world"\n\n[[service.method]]\nname = "x"\n'
        'function = "examples.hello:add"\nsignatur = ["int"]\n',
    )
    root = write_tree(tmp_path, {"services.d/hello.toml": text})
    finding = _first(root, "unknown-key")
    assert finding.path == "service.method[1].signatur"
    assert (finding.line, finding.column) == (14, 1)


def test_position_after_multiline_string_and_array(tmp_path: Path) -> None:
    text = (
        'version = 1\n\n[service]\nname = "more"\ndescription = """\n'
        "[[service.method]]\nname = 1\n"
        '"""\ngrant = { peers = [\n  "mahara",\n] }\n\n[[service.method]]\nname = "m"\n'
        'function = "examples.hello:add"\nhelp = 5\n'
    )
    root = write_tree(tmp_path, {S: text})
    finding = _first(root, "wrong-type")
    assert finding.path == "service.method[0].help"
    assert (finding.line, finding.column) == (16, 1)


def test_secret_value_never_in_messages(tmp_path: Path) -> None:
    secret = "s3cr3t-value-xyz"
    root = write_tree(
        tmp_path,
        {
            C: _conn(
                'auth = "userpass"\ncredentials = '
                f'{{ username = "{secret}", password = {{ env = "{secret}" }} }}\n'
            ),
            S: f'version = 1\n\n[[peer]]\nid = "p"\nauth = "token"\ntoken = "{secret}"\n',
        },
    )
    found = findings(root)
    assert {"plaintext-secret"} <= {f.rule for f in found}
    assert all(secret not in json.dumps([f.message, f.path]) for f in found)


# --- secret scopes (rule secret-scope) ---------------------------------------------------------

UNI_B_FILE = "connections.d/uni-b/moodle.toml"


def _scope_findings(root: Path) -> list[Finding]:
    return [f for f in findings(root) if f.rule == "secret-scope"]


def _site(uni_a_secrets: str = "") -> str:
    """SITE with a `secrets` table for uni-a (none when empty)."""
    extra = f"secrets = {uni_a_secrets}\n" if uni_a_secrets else ""
    return SITE.replace('name = "University A"\n', f'name = "University A"\n{extra}')


def test_a_name_in_two_scopes_belongs_to_neither(tmp_path: Path) -> None:
    """uni-a's declared prefix UNI_ covers uni-b's default UNI_B_: uni-b's folder may not use
    a UNI_B_ name any more (uni-a's could take it), and uni-a's may not either."""
    root = write_tree(tmp_path, {UNI_B_FILE: _conn(TOKEN_B)})
    assert findings(root) == []
    write_tree(tmp_path, {"rpcd.toml": _site('{ env_prefixes = ["UNI_"] }'), UNI_B_FILE: None})
    (found,) = _scope_findings(root)
    assert "in the secret scopes of both `uni-b` and `uni-a`" in found.message
    assert (found.file, found.path) == (UNI_B_FILE, "connection[0].credentials.token.env")


def test_declared_empty_scope_allows_nothing_of_that_kind(tmp_path: Path) -> None:
    conn = _conn('auth = "token"\ncredentials = { token = { file = "/etc/rpcd/secrets/uni-b/t" } }')
    site = SITE.replace(
        'name = "University B"\n', 'name = "University B"\nsecrets = { file_dirs = [] }\n'
    )
    root = write_tree(tmp_path, {"rpcd.toml": site, UNI_B_FILE: conn})
    (found,) = _scope_findings(root)
    assert "no files" in found.message


def test_undeclared_folder_is_a_site_folder(tmp_path: Path) -> None:
    """A folder named after no institution is the site's (folder-ownership treats it so)."""
    conn = _conn('auth = "token"\ncredentials = { token = { env = "ANY_NAME" } }')
    root = write_tree(tmp_path, {"connections.d/shared/moodle.toml": conn})
    assert findings(root) == []


def test_rebuild_sees_a_scope_change_in_rpcd_toml(tmp_path: Path) -> None:
    """The scopes live in rpcd.toml: an edit there re-checks the folders' connections on a
    rebuild, although none of their files changed."""
    root = write_tree(tmp_path, {UNI_B_FILE: _conn(TOKEN_B)})
    first = build(root)
    assert list(first.report) == []
    site = SITE.replace(
        'name = "University B"\n', 'name = "University B"\nsecrets = { env_prefixes = ["B_"] }\n'
    )
    (root / "rpcd.toml").write_text(site, encoding="utf-8")
    second = build(root, previous=first.cache)
    assert [f.rule for f in second.report] == ["secret-scope"]
    assert second.catalog is None
    (root / "rpcd.toml").write_text(SITE, encoding="utf-8")
    third = build(root, previous=second.cache)
    assert list(third.report) == [] and third.catalog is not None


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://svc:zq-hunter2-pass@moodle.uni-b.example/rest",
        "https://moodle.uni-b.example/rest?wstoken=zq-hunter2-pass",
        "https://moodle.uni-b.example/rest?a=1&ACCESS_TOKEN=zq-hunter2-pass#x",
        "https://moodle.uni-b.example/rest?api%5Fkey=zq-hunter2-pass",
        "https://moodle.uni-b.example/rest#access_token=zq-hunter2-pass",
    ],
)
def test_endpoint_credential_is_refused_and_never_printed(tmp_path: Path, endpoint: str) -> None:
    root = write_tree(
        tmp_path,
        {C: _conn(TOKEN).replace("https://moodle.uni-b.example/rest", endpoint)},
    )
    for fmt in ("text", "json", "github"):
        proc = run_cli("validate", str(root), "--format", fmt)
        assert proc.returncode == 1
        assert "plaintext-secret" in proc.stdout
        assert "zq-hunter2-pass" not in proc.stdout + proc.stderr
    show = run_cli("show", str(root))
    assert show.returncode == 1 and "zq-hunter2-pass" not in show.stdout + show.stderr


def test_endpoint_without_credentials_passes(tmp_path: Path) -> None:
    """Look-alikes are not credentials: other names, empty values, the path, a port."""
    endpoint = (
        "https://moodle.uni-b.example:8443/token/rest"
        "?tokens=1&keyword=x&wstoken=&moodlewsrestformat=json"
    )
    root = write_tree(
        tmp_path, {C: _conn(TOKEN).replace("https://moodle.uni-b.example/rest", endpoint)}
    )
    assert findings(root) == []


@pytest.mark.parametrize(
    ("endpoint", "allowed"),
    [
        ("https://moodle.uni-b.example/rest", True),
        ("https://a.b.uni-b.example:8443/", True),
        ("http://UNI.UNI-B.EXAMPLE", True),
        ("https://uni-b.example/", False),  # the domain itself is not under it
        ("https://evil-uni-b.example/", False),
        ("https://uni-b.example.evil/", False),
        ("https://127.0.0.1:8080/RPC2", False),
        ("https://[::1]:8080/", False),
        ("https://moodle.uni-b.example@127.0.0.1/", False),  # user information is not a host
    ],
)
def test_endpoint_hosts_are_matched_as_hosts(endpoint: str, allowed: bool) -> None:
    from rpcd.config.endpoints import endpoint_host, host_matches

    assert host_matches(endpoint_host(endpoint), ["*.uni-b.example", "[fe80::1]"]) is allowed
    assert host_matches(endpoint_host("https://[FE80::1]:9/x"), ["[fe80::1]"])


def test_without_endpoint_hosts_any_host(tmp_path: Path) -> None:
    """uni-a lists no endpoint_hosts: its folder may call any host."""
    conn = _conn('auth = "token"\ncredentials = { token = { env = "UNI_A_T" } }\n')
    conn = conn.replace("moodle.uni-b.example", "anywhere.example").replace('"uni-b"', '"uni-a"')
    classes = CLASS.replace(
        'id = "uni-a"\nenabled = true\ninstitutions = ["uni-a"]',
        'id = "uni-b"\nenabled = true\ninstitutions = ["uni-b"]',
    )
    root = write_tree(
        tmp_path,
        {"connections.d/moodle.toml": classes, "connections.d/uni-a/moodle.toml": conn},
    )
    assert findings(root) == []


# --- no finding costs more than its own share ---------------------------------------------------

_CONN_FOR_SIZE = """version = 1

[[connection]]
class = "moodle_users"
id = "big"
institutions = {institutions}
auth = "token"
endpoint = "https://moodle.uni-a.example/rest"
credentials = {{ token = {{ env = "T" }} }}
http_method = "POST"
parameters = {{ p = {p} }}
"""
_SIZED = {
    "non-finite numbers": lambda n: _CONN_FOR_SIZE.format(
        institutions='["uni-a"]', p="[" + ",".join(["nan"] * n) + "]"
    ),
    "items of the wrong type": lambda n: _CONN_FOR_SIZE.format(
        institutions="[" + ",".join(["1"] * n) + "]", p="1"
    ),
    "broken connections": lambda n: (
        "version = 1\n"
        + "".join(
            f'[[connection]]\nclass = "moodle_users"\nid = "c{i}"\nauth = 1\n' for i in range(n)
        )
    ),
    "unknown keys": lambda n: "version = 1\n" + "".join(f"k{i} = 1\n" for i in range(n)),
}


@pytest.mark.parametrize("shape", sorted(_SIZED))
def test_findings_cost_linear_time(tmp_path: Path, shape: str) -> None:
    """A file with a finding on each of n items is checked and located in time linear in n:
    8 times the items may take at most 40 times as long (quadratic work would take 64 times),
    plus a second for a busy machine."""

    def seconds(n: int) -> float:
        root = write_tree(tmp_path / str(n), {C: _SIZED[shape](n)})
        started = time.perf_counter()
        report = build(root).report
        took = time.perf_counter() - started
        assert report.error_count >= n
        return took

    seconds(100)  # warm: compiled schemas, imports
    n = 500 if shape == "broken connections" else 2_000  # jsonschema walks each one: slower
    small, big = seconds(n), seconds(8 * n)
    assert big < 40 * small + 1.0, (small, big)


# --- overlapping secret scopes: the sorted scan against every pair ----------------------------

_PREFIXES = st.lists(st.text("ab/", max_size=3), max_size=3).map(tuple)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_PREFIXES, _PREFIXES, _PREFIXES), max_size=6))
def test_overlapping_scopes_are_the_pairs_with_prefix_related_names(
    prefixes: list[tuple[tuple[str, ...], ...]],
) -> None:
    """``ScopeTable`` finds the rivals of a scope by a sorted scan; every pair compared must
    give the same institutions (two names overlap when one starts with the other)."""
    scopes = {
        f"i{n}": Scope(f"i{n}", env, credential, file, True)
        for n, (env, credential, file) in enumerate(prefixes)
    }

    def overlap(one: Scope, other: Scope) -> bool:
        return any(
            a.startswith(b) or b.startswith(a)
            for kind in ("env", "credential", "file")
            for a in one.prefixes(kind)
            for b in other.prefixes(kind)
        )

    expected = {
        ident: {o.institution for o in scopes.values() if o is not s and overlap(s, o)}
        for ident, s in scopes.items()
    }
    assert _overlapping(scopes) == expected
