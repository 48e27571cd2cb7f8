"""``rpcd validate | show | hash-secret`` as a user runs them: a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tree_helpers import REPO, run_cli

from rpcd.secrets_hash import verify_scrypt, verify_token

SECRET = "s3cr3t-value-xyz"


def test_validate_example_tree_exit_0() -> None:
    proc = run_cli("validate", "--import", subprocess_=True)
    assert (proc.returncode, proc.stdout) == (0, "valid: no problems found\n")


def test_validate_root_option_and_cwd(tree: Path) -> None:
    assert run_cli("validate", "--root", str(tree)).returncode == 0
    assert run_cli("validate", cwd=tree).returncode == 0


def test_validate_invalid_exit_1(tree: Path) -> None:
    (tree / "connections.d" / "x.toml").write_text("version = 3\n")
    proc = run_cli("validate", str(tree))
    assert proc.returncode == 1
    assert "connections.d/x.toml:1:1: error[unknown-version]" in proc.stdout
    assert proc.stdout.rstrip().endswith("1 error, 0 warnings")


def test_warnings_alone_keep_exit_0(tree: Path) -> None:
    (tree / "services.d" / "x.toml").write_text('version = 1\n[service]\nname = "x"\n')
    proc = run_cli("validate", str(tree))
    assert proc.returncode == 0, proc.stdout
    assert "warning[service-without-grant]" in proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--bogus"],
        ["validate", "--format", "xml"],
        ["nosuchcommand"],
        [],
        ["hash-secret", SECRET],  # a secret on argv is refused, never hashed
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    proc = run_cli(*args, stdin="")
    assert proc.returncode == 2, proc
    assert "usage:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_error_as_a_subprocess() -> None:
    proc = run_cli("hash-secret", SECRET, stdin="", subprocess_=True)
    assert proc.returncode == 2
    assert "unrecognized arguments" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_root_not_found_exit_2(tmp_path: Path) -> None:
    proc = run_cli("validate", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert "error[root-not-found]" in proc.stdout


def _plant_secrets(tree: Path) -> None:
    conn = tree / "connections.d" / "moodle_users.toml"
    conn.write_text(
        conn.read_text().replace(
            'credentials = { token = { credential = "moodle-uni-b-token" } }',
            f'credentials = {{ token = "{SECRET}" }}',
        )
    )
    sis = tree / "connections.d" / "sis_enrolments.toml"
    sis.write_text(
        sis.read_text().replace('password = { env = "SIS_PASSWORD" }', f'password = "{SECRET}"')
    )
    peers = tree / "services.d" / "peers.toml"
    peers.write_text(
        peers.read_text() + f'\n[[peer]]\nid = "p"\nauth = "token"\ntoken = "{SECRET}"\n'
    )


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_literal_secret_never_printed_by_validate(tree: Path, fmt: str) -> None:
    _plant_secrets(tree)
    proc = run_cli("validate", str(tree), "--format", fmt)
    assert proc.returncode == 1
    assert proc.stdout.count("plaintext-secret") >= 3
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_literal_secret_never_printed_by_show(tree: Path, fmt: str) -> None:
    _plant_secrets(tree)
    proc = run_cli("show", str(tree), "--format", fmt)
    assert proc.returncode == 1
    assert "plaintext-secret" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr


def test_show_json_fills_defaults_and_keeps_references() -> None:
    proc = run_cli("show", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    conns = {f"{c['class_id']}/{c['id']}": c for c in data["connection"]}
    loopback = conns["rpcd_loopback/local"]
    # defaults filled in: payload for XML-RPC, priority, fatal, http_method
    assert loopback["payload"] == "xml"
    assert (loopback["priority"], loopback["fatal"], loopback["http_method"]) == (1, False, "GET")
    assert loopback["credentials"] == {"token": "env:RPCD_LOOPBACK_TOKEN"}
    moodle = conns["moodle_users/uni-a"]
    assert moodle["token_param"] == "wstoken"  # Moodle's default token parameter
    assert moodle["credentials"] == {"token": "env:MOODLE_UNI_A_TOKEN"}
    assert conns["mahara_sso/college-c"]["credentials"] == {
        "certificate": "credential:mahara-college-c.crt",
        "private_key": "credential:mahara-college-c.key",
    }
    assert conns["mahara_sso/uni-a"]["credentials"]["password"] == (
        "file:/etc/rpcd/secrets/mahara-uni-a.pass"
    )
    assert conns["sis_enrolments/college-c"]["wsse_password_type"] == "digest"
    assert data["connections"] == {"enabled": True}


def test_show_toml_parses_and_matches_json() -> None:
    as_toml = run_cli("show", "--format", "toml")
    as_json = run_cli("show", "--format", "json")
    assert as_toml.returncode == 0 and as_json.returncode == 0
    assert tomllib.loads(as_toml.stdout) == json.loads(as_json.stdout)
    assert run_cli("show").stdout == as_toml.stdout  # toml is the default


def test_hash_secret_token_reads_stdin_and_verifies() -> None:
    token = "Zq8k3v9-long-random-token-value"
    proc = run_cli("hash-secret", "--token", stdin=token + "\n")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    key, _, value = line.partition(" = ")
    assert key == "token_sha256"
    digest = json.loads(value)
    assert verify_token(token, digest)
    assert not verify_token(token + "x", digest)
    assert token not in proc.stdout + proc.stderr
    assert tomllib.loads(line) == {"token_sha256": digest}  # pastes into a [[peer]]


def test_hash_secret_default_is_token() -> None:
    proc = run_cli("hash-secret", stdin="Zq8k3v9-long-random-token-value\n")
    assert proc.stdout.startswith("token_sha256 = ")


def test_short_token_warns() -> None:
    proc = run_cli("hash-secret", "--token", stdin="short\n")
    assert proc.returncode == 0
    assert "warning" in proc.stderr


def test_hash_secret_password_reads_stdin_and_verifies() -> None:
    password = "correct horse battery staple"
    proc = run_cli("hash-secret", "--password", stdin=password + "\n", subprocess_=True)
    assert proc.returncode == 0, proc.stderr
    encoded = tomllib.loads(proc.stdout)["password_hash"]
    assert encoded.startswith("scrypt:")
    assert verify_scrypt(password, encoded)
    assert not verify_scrypt(password + "!", encoded)
    assert password not in proc.stdout + proc.stderr


def test_hash_secret_empty_stdin_is_a_usage_error() -> None:
    proc = run_cli("hash-secret", "--password", stdin="")
    assert proc.returncode == 2
    assert "no secret" in proc.stderr


def test_example_password_hash_verifies() -> None:
    """The demo peer's hash in services.d/peers.toml is what its comment says."""
    peers = tomllib.loads((REPO / "services.d" / "peers.toml").read_text("utf-8"))["peer"]
    demo = next(p for p in peers if p["id"] == "moodle-uni-b")
    assert verify_scrypt("example-password-uni-b", demo["password_hash"])


# --- rpcd show never prints a literal credential -----------------------------------------------


def test_show_masks_endpoint_credentials_of_a_tree_that_bypassed_validate() -> None:
    """validate refuses them (plaintext-secret); a catalog made some other way is still shown
    with every literal credential of an endpoint or of ``parameters`` masked."""
    from dataclasses import replace
    from unittest import mock

    from rpcd.config import build

    result = build(REPO)
    assert result.catalog is not None
    conn = result.catalog.connections["moodle_users/uni-a"]
    leaky = conn.model_copy(
        update={
            "endpoint": "https://svc:zq-pass-1@moodle.uni-a.example/rest?WSTOKEN=zq-tok-2&a=1",
            "parameters": {**conn.parameters, "api_key": "zq-key-3"},
        }
    )
    catalog = replace(
        result.catalog, connections={**result.catalog.connections, "moodle_users/uni-a": leaky}
    )
    with mock.patch("rpcd.cli.build", return_value=replace(result, catalog=catalog)):
        shown = {fmt: run_cli("show", "--format", fmt) for fmt in ("json", "toml")}
    for proc in shown.values():
        assert proc.returncode == 0
        assert not any(v in proc.stdout for v in ("zq-pass-1", "zq-tok-2", "zq-key-3"))
    data = json.loads(shown["json"].stdout)
    (item,) = [
        c for c in data["connection"] if c["id"] == "uni-a" and c["class_id"] == "moodle_users"
    ]
    assert item["endpoint"] == "https://**********@moodle.uni-a.example/rest?WSTOKEN=**********&a=1"
    assert item["parameters"]["api_key"] == "**********"
    assert item["parameters"]["moodlewsrestformat"] == "json"


# --- hostile TOML never crashes validate ------------------------------------------------------

_LEAVES = ["1", '"x"', "true", "1979-05-27T07:32:00Z", "nan", "-inf", "1e400", "0x7f"]
_STRINGS = ['"\\u0000"', '"a\\r\\nb"', '"\\u007f"', '"https://h\\u0000.example/"', "'é'"]
_FILES = [
    "rpcd.toml",
    "connections.d/fuzz.toml",
    "connections.d/uni-a/fuzz.toml",
    "services.d/fuzz.toml",
]
_CONNECTION = """\
version = 1

[[connection]]
class = "moodle_users"
id = "fuzz"
institutions = ["uni-a"]
auth = "token"
endpoint = {endpoint}
credentials = {{ token = {{ env = "UNI_A_FUZZ" }} }}
http_method = "POST"
parameters = {{ p = {value} }}
config = {{ match_field = {value} }}
"""


@st.composite
def _toml_value(draw: st.DrawFn) -> str:
    """A TOML value: nested deep (around the limits: rpcd's and the parser's), wide, odd."""
    leaf = draw(st.sampled_from(_LEAVES + _STRINGS))
    # around rpcd's limit (32), where recursion gave out (300-1,000), and the parser's (1,000)
    depth = draw(st.sampled_from([0, 1, 31, 32, 33, 300, 999, 1000, 1001]) | st.integers(0, 1010))
    shape = draw(st.sampled_from(["arrays", "tables", "mixed", "wide", "leaf", "text"]))
    if shape == "arrays":
        return "[" * depth + leaf + "]" * depth
    if shape == "tables":
        return "{a=" * depth + leaf + "}" * depth
    if shape == "mixed":
        return "[{b=" * (depth // 2) + leaf + "}]" * (depth // 2)
    if shape == "wide":
        return "[" + ",".join([leaf] * draw(st.integers(0, 5_000))) + "]"
    if shape == "text":
        return json.dumps(draw(st.text(st.characters(codec="utf-8"), max_size=40)))
    return leaf


@st.composite
def _toml_key(draw: st.DrawFn) -> str:
    parts = draw(st.integers(1, 40) | st.integers(990, 1010))
    odd = json.dumps(draw(st.text(st.characters(codec="utf-8"), max_size=12)))
    return draw(st.sampled_from([".".join(["a"] * parts), odd, f"a.{odd}.b"]))


@st.composite
def _document(draw: st.DrawFn) -> tuple[str, str]:
    """(file, text): hostile keys and values, at the top, under headers, in a connection."""
    value, key = draw(_toml_value()), draw(_toml_key())
    form = draw(st.sampled_from(["top", "table", "array of tables", "connection", "connection"]))
    rel = draw(st.sampled_from(_FILES))
    if form == "top":
        text = f"version = 1\n{key} = {value}\n"
    elif form == "table":
        text = f"version = 1\n[{key}]\nx = {value}\n"
    elif form == "array of tables":
        text = f"version = 1\n[[{key}]]\nx = {value}\n[[{key}]]\n"
    else:
        endpoint = draw(st.sampled_from(['"https://h.example/"', *_STRINGS, value]))
        text = _CONNECTION.format(endpoint=endpoint, value=value)
        rel = draw(st.sampled_from(_FILES[1:3]))  # where the schema and models walk it
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # a raw control character
        at = draw(st.integers(0, len(text)))
        text = text[:at] + chr(draw(st.integers(0, 31) | st.just(127))) + text[at:]
    return rel, text


@pytest.mark.slow
@pytest.mark.fuzz
@given(document=_document())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_validate_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, document: tuple[str, str]
) -> None:
    """Whatever TOML a file holds, validate (and show) answer with findings: exit 0 or 1,
    never an exception, never a traceback."""
    rel, text = document
    root = tmp_path_factory.mktemp("fuzz")
    for part in ("rpcd.toml", "connections.d/moodle_users.toml"):  # the class the file names
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / part, root / part)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        for command in ("validate", "show"):
            proc = run_cli(command, str(root))
            assert proc.returncode in (0, 1), (command, proc)
            assert "Traceback" not in proc.stdout + proc.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_validate_of_a_valid_tree_loads_no_explainer_and_no_writer() -> None:
    """The start-up of `rpcd validate` on a valid tree (the pre-commit case) imports neither
    jsonschema (it only explains refused files) nor tomli_w (only `rpcd show` writes TOML)."""
    code = (
        "import sys\n"
        "from rpcd.cli import main\n"
        "try:\n"
        f"    main(['validate', {str(REPO)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('jsonschema', 'tomli_w') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
