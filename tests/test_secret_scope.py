"""Secret scopes where the daemon reads them: at start-up and on every reload, a reference is
judged where it really leads (symlinks followed), before any secret is read.

Real files and symlinks in a temp dir; the daemon is the real ``rpcd serve`` on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from server_helpers import LOOPBACK_TOKEN, SESSION_KEY, make_tree, start_daemon

from rpcd.config import Report
from rpcd.server.core.loading import load
from rpcd.settings import Settings

UNI_A = "connections.d/uni-a/moodle_users.toml"
UNI_A_REF = '{ env = "MOODLE_UNI_A_TOKEN" }'
TOKEN_A = "zq-uni-a-token-0123456789"
TOKEN_B = "zq-uni-b-token-0123456789"


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def secrets_dirs(base: Path) -> tuple[Path, Path]:
    """uni-a's and uni-b's secret folders, each with its token."""
    a, b = base / "secrets" / "uni-a", base / "secrets" / "uni-b"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    (a / "moodle-token").write_text(TOKEN_A + "\n")
    (b / "moodle-token").write_text(TOKEN_B + "\n")
    return a, b


def scoped_tree(base: Path) -> tuple[Path, Path, Path]:
    """The example tree with uni-a's Moodle token read from uni-a's secret folder."""
    root = make_tree(base / "tree")
    a, b = secrets_dirs(base)
    site = root / "rpcd.toml"
    text = site.read_text(encoding="utf-8")
    start = text.index('[[institution]]\nid = "uni-a"')
    end = text.index("[[institution]]", start + 1)
    block = f'[[institution]]\nid = "uni-a"\nname = "A"\nsecrets = {{ file_dirs = ["{a}/"] }}\n\n'
    site.write_text(text[:start] + block + text[end:], encoding="utf-8")
    edit(root, UNI_A, UNI_A_REF, f'{{ file = "{a}/moodle-token" }}')
    return root, a, b


def rules(outcome: object) -> set[str]:
    assert isinstance(outcome, Report), "the tree was accepted"
    return {f.rule for f in outcome if f.severity.value == "error"}


def texts(outcome: Report) -> str:
    return "\n".join(f.as_text() for f in outcome)


def test_symlink_out_of_the_folder_scope_is_refused_at_load(tmp_path: Path) -> None:
    root, a, b = scoped_tree(tmp_path)
    assert not isinstance(load(root, strict_secrets=False), Report)
    # uni-a's token file becomes a link to uni-b's: lexically in scope, really not.
    (a / "moodle-token").unlink()
    (a / "moodle-token").symlink_to(b / "moodle-token")
    outcome = load(root, strict_secrets=False)
    assert rules(outcome) == {"secret-scope"}
    assert isinstance(outcome, Report)
    text = texts(outcome)
    assert f"resolves to {b / 'moodle-token'}" in text and "uni-a" in text
    assert UNI_A in text and TOKEN_B not in text and TOKEN_A not in text


def test_dot_dot_after_a_symlink_climbs_from_its_target(tmp_path: Path) -> None:
    """``uni-a/link/../token`` reads as uni-a's token written out, but the kernel climbs from
    where ``link`` leads: the daemon judges the file it would really open."""
    root, a, b = scoped_tree(tmp_path)
    (b / "deeper").mkdir()
    (a / "link").symlink_to(b / "deeper")
    edit(
        root, UNI_A, f'{{ file = "{a}/moodle-token" }}', f'{{ file = "{a}/link/../moodle-token" }}'
    )
    assert rules(load(root, strict_secrets=False)) == {"secret-scope"}


def test_daemon_secret_files_are_refused_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site connection's reference that leads to the session key, TLS key or settings
    file, by name or through a symlink, never loads."""
    root = make_tree(tmp_path / "tree")
    key_file = tmp_path / "session-key"
    key_file.write_text(SESSION_KEY + "\n")
    link = tmp_path / "innocent"
    link.symlink_to(key_file)
    settings = Settings(session_key_file=key_file, strict_secrets=False)
    badges = "connections.d/badges.toml"
    for target in (str(key_file), str(link), str(tmp_path / "." / "session-key")):
        edit(root, badges, '{ env = "BADGES_SECRET" }', f'{{ file = "{target}" }}')
        outcome = load(root, strict_secrets=False, settings=settings)
        assert rules(outcome) == {"secret-scope"}, target
        assert isinstance(outcome, Report) and SESSION_KEY not in texts(outcome)
        edit(root, badges, f'{{ file = "{target}" }}', '{ env = "BADGES_SECRET" }')
    # without settings, the RPCD_* environment names the files
    edit(root, badges, '{ env = "BADGES_SECRET" }', f'{{ file = "{link}" }}')
    assert not isinstance(load(root, strict_secrets=False), Report)
    monkeypatch.setenv("RPCD_TLS_KEY", str(key_file))
    assert rules(load(root, strict_secrets=False)) == {"secret-scope"}
    # a setting of the running daemon is reserved at load, whatever validate's list says
    edit(root, badges, f'{{ file = "{link}" }}', '{ env = "rpcd_handler_threads" }')
    assert rules(load(root, strict_secrets=False, settings=settings)) == {"secret-scope"}


def test_credential_leaving_the_credentials_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_tree(tmp_path / "tree")
    creds = tmp_path / "creds"
    creds.mkdir()
    (tmp_path / "outside").write_text("zq-outside-secret-0123")
    (creds / "moodle-uni-b-token").symlink_to(tmp_path / "outside")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    outcome = load(root, strict_secrets=False)
    assert rules(outcome) == {"secret-scope"}
    assert isinstance(outcome, Report) and "outside $CREDENTIALS_DIRECTORY" in texts(outcome)
    assert "zq-outside-secret-0123" not in texts(outcome)


def serve_once(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("RPCD_")}
    full.update({"RPCD_STRICT_SECRETS": "false", "RPCD_SESSION_KEY": SESSION_KEY, **env})
    return subprocess.run(
        [sys.executable, "-m", "rpcd", "serve", str(root), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
        check=False,
    )


def test_daemon_refuses_to_start_on_a_tree_that_bypassed_ci(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    edit(root, UNI_A, UNI_A_REF, '{ credential = "moodle-uni-b-token" }')
    done = serve_once(root, {})
    assert done.returncode == 1, done.stderr
    assert "error[secret-scope]" in done.stderr and "Traceback" not in done.stderr
    assert "rpcd: listening" not in done.stdout


def test_reload_refuses_a_scope_breach_and_keeps_serving(tmp_path: Path) -> None:
    root, a, b = scoped_tree(tmp_path)
    daemon = start_daemon(root, tmp_path / "rpcd.log")
    auth = {"Authorization": f"Bearer {LOOPBACK_TOKEN}"}
    try:
        code, _, body = daemon.post("/v1/reload", b"", "application/json", auth)
        assert code == 200, body
        before = json.loads(daemon.get("/v1/status", auth)[2])["revision"]["content_hash"]
        (a / "moodle-token").unlink()
        (a / "moodle-token").symlink_to(b / "moodle-token")
        code, _, body = daemon.post("/v1/reload", b"", "application/json", auth)
        answer = json.loads(body)
        assert code == 409, answer
        assert "secret-scope" in json.dumps(answer) and "internal error" not in json.dumps(answer)
        after = json.loads(daemon.get("/v1/status", auth)[2])["revision"]["content_hash"]
        assert after == before
        assert daemon.get("/healthz")[0] == 200
        logs = daemon.logs()
        assert TOKEN_B not in logs and TOKEN_A not in logs
    finally:
        assert daemon.stop() == 0


def test_reload_of_a_crafted_deep_file_says_what_is_wrong(tmp_path: Path) -> None:
    """Point 14: a reload of a 999-level nested file is a finding with file and line, not an
    internal error; the old catalog keeps serving."""
    root = make_tree(tmp_path / "tree")
    daemon = start_daemon(root, tmp_path / "rpcd.log")
    auth = {"Authorization": f"Bearer {LOOPBACK_TOKEN}"}
    try:
        deep = 'version = 1\n\n[class]\nid = "x_deep"\nplugin = "x"\nname = "X"\n'
        deep += 'probe = { function = "f", params = ' + "[" * 999 + "]" * 999 + " }\n"
        (root / "connections.d" / "deep.toml").write_text(deep, encoding="utf-8")
        code, _, body = daemon.post("/v1/reload", b"", "application/json", auth)
        answer = json.dumps(json.loads(body))
        assert code == 409, answer
        assert "nesting-depth" in answer and "connections.d/deep.toml:7:" in answer
        assert "internal error" not in answer and "RecursionError" not in answer
        assert daemon.get("/healthz")[0] == 200
    finally:
        assert daemon.stop() == 0


def _names(annotation: object) -> set[str]:
    """The type names inside an annotation (``SecretStr | None`` → {SecretStr, NoneType})."""
    args = typing.get_args(annotation)
    if not args:
        return {getattr(annotation, "__name__", str(annotation))}
    return set().union(*(_names(a) for a in args))


def test_every_secret_setting_is_reserved_for_validate() -> None:
    """validate (which must not import the settings: start-up time) knows the daemon's own
    env names from a list; every setting that holds a secret or names a file must be on it."""
    from rpcd.config.scopes import DAEMON_ENV

    for name, info in Settings.model_fields.items():
        if _names(info.annotation) & {"SecretStr", "Path"}:
            assert f"RPCD_{name.upper()}" in DAEMON_ENV, (
                f"add RPCD_{name.upper()} to DAEMON_ENV in rpcd/config/scopes.py"
            )
    assert "RPCD_SETTINGS_FILE" in DAEMON_ENV


def test_proxy_credentials_that_lead_to_the_session_key_are_refused_at_load(
    tmp_path: Path,
) -> None:
    """Proxy credentials are secrets like any other: the site proxy's and a connection's own
    proxy's references are judged where they lead, before any is read."""
    root = make_tree(tmp_path / "tree")
    key_file = tmp_path / "session-key"
    key_file.write_text(SESSION_KEY + "\n")
    link = tmp_path / "proxy-password"
    link.symlink_to(key_file)  # validate cannot see where it leads: the daemon must
    settings = Settings(session_key_file=key_file, strict_secrets=False)
    site = root / "rpcd.toml"
    base = site.read_text(encoding="utf-8")
    site.write_text(
        base + '\n[proxy]\nurl = "http://proxy.example:3128"\n'
        f'username = {{ env = "PROXY_USER" }}\npassword = {{ file = "{link}" }}\n',
        encoding="utf-8",
    )
    outcome = load(root, strict_secrets=False, settings=settings)
    assert rules(outcome) == {"secret-scope"}
    assert isinstance(outcome, Report)
    assert "the site proxy's password" in texts(outcome) and SESSION_KEY not in texts(outcome)

    site.write_text(base, encoding="utf-8")
    assert not isinstance(load(root, strict_secrets=False, settings=settings), Report)
    badges = "connections.d/badges.toml"
    text = (root / badges).read_text(encoding="utf-8")
    at = text.index("[[connection]]")
    own = (
        'proxy = { url = "http://proxy.example:3128", username = { env = "PROXY_USER" }, '
        f'password = {{ file = "{link}" }} }}\n'
    )
    end = text.index("\n", text.index("enabled", at)) + 1  # inside the first connection
    (root / badges).write_text(text[:end] + own + text[end:], encoding="utf-8")
    outcome = load(root, strict_secrets=False, settings=settings)
    assert rules(outcome) == {"secret-scope"}
    assert isinstance(outcome, Report)
    assert "proxy.password" in texts(outcome) and SESSION_KEY not in texts(outcome)
