"""``rpcd diff`` says what a change needs and sees renames.

- a new ``{ credential = … }`` needs a ``LoadCredential=`` line and a restart, not a reload;
- a handler module whose code changed needs a restart (found in git, or on disk for folders);
- a new institution folder needs a CODEOWNERS line;
- anything else: a reload;
- a connection (or any entity) with the same fields under a new id is a rename, not a delete
  and an add.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
from tree_helpers import REPO, copy_example

from rpcd.config import build
from rpcd.diff import diff_catalogs

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, check=True, capture_output=True
    )


def diff_json(cwd: Path, base: str, head: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "rpcd", "diff", base, head, "--format", "json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    return json.loads(proc.stdout)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def pair(tmp_path: Path) -> tuple[Path, Path]:
    return copy_example(tmp_path / "base"), copy_example(tmp_path / "head")


def needs(document: dict) -> list[tuple[str, str]]:
    return [(s["need"], s["subject"]) for s in document["next_steps"]]


def test_a_new_credential_needs_load_credential_and_a_restart(tmp_path: Path) -> None:
    _base, head = pair(tmp_path)
    edit(
        head / "connections.d/moodle_users.toml",
        'credential = "moodle-uni-b-token"',
        'credential = "moodle-uni-b-token-2026"',
    )
    document = diff_json(tmp_path, "base", "head")
    assert needs(document) == [
        ("load-credential", "moodle-uni-b-token-2026"),
        ("restart", "service"),
    ]
    text = document["next_steps"][0]["text"]
    assert (
        "LoadCredential=moodle-uni-b-token-2026:/etc/rpcd/credentials/moodle-uni-b-token-2026"
        in text
    )
    plain = subprocess.run(
        [sys.executable, "-m", "rpcd", "diff", "base", "head"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    assert "Next steps (what merging this needs):" in plain
    assert "restart (systemctl restart rpcd), not a reload" in plain


def test_a_new_proxy_credential_needs_load_credential_too(tmp_path: Path) -> None:
    """A new site proxy shows in the diff, and its credentials are secrets like any other: a
    new credential needs its LoadCredential= line and a restart as well."""
    _base, head = pair(tmp_path)
    site = head / "rpcd.toml"
    site.write_text(
        site.read_text() + '\n[proxy]\nurl = "http://proxy.example:3128"\n'
        'username = { env = "PROXY_USER" }\npassword = { credential = "proxy-password" }\n'
    )
    document = diff_json(tmp_path, "base", "head")
    assert needs(document) == [
        ("load-credential", "proxy-password"),
        ("environment", "PROXY_USER"),
        ("restart", "service"),
    ]
    assert "(rpcd.toml)" in document["next_steps"][0]["text"]
    (change,) = document["changes"]  # the proxy itself shows, credentials as references
    assert (change["kind"], change["id"], change["action"]) == ("proxy", "site", "added")
    fields = {f["field"]: f["new"] for f in change["fields"]}
    assert fields["password"] == "credential:proxy-password"
    assert document["counts"]["proxy"]["added"] == 1
    schema = json.loads((REPO / "schemas" / "diff.schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(document)


def test_a_plain_change_needs_only_a_reload(tmp_path: Path) -> None:
    _base, head = pair(tmp_path)
    edit(head / "connections.d/moodle_users.toml", "timeout = 15", "timeout = 20")
    assert needs(diff_json(tmp_path, "base", "head")) == [("reload", "service")]


def test_a_new_institution_folder_needs_a_codeowners_line(tmp_path: Path) -> None:
    _base, head = pair(tmp_path)
    folder = head / "connections.d/uni-b"
    folder.mkdir()
    moved = head / "connections.d/moodle_users.toml"
    text = moved.read_text()
    start = text.index('[[connection]]\nid = "uni-b"')
    (folder / "moodle_users.toml").write_text(
        "version = 1\n\n"
        + text[start:]
        .replace('id = "uni-b"', 'class = "moodle_users"\nid = "uni-b"', 1)
        .replace('credential = "moodle-uni-b-token"', 'credential = "uni-b-moodle-token"')
    )
    moved.write_text(text[:start])
    document = diff_json(tmp_path, "base", "head")
    steps = {s["need"]: s for s in document["next_steps"]}
    assert steps["codeowners"]["subject"] == "uni-b"
    assert "/connections.d/uni-b/ @<org>/uni-b-admins" in steps["codeowners"]["text"]


def test_rename_is_one_change_not_a_delete_and_an_add(tmp_path: Path) -> None:
    _base, head = pair(tmp_path)
    edit(head / "connections.d/moodle_users.toml", 'id = "uni-b"', 'id = "uni-b-moodle"')
    document = diff_json(tmp_path, "base", "head")
    connection_changes = [c for c in document["changes"] if c["kind"] == "connection"]
    assert connection_changes == [
        {
            "kind": "connection",
            "id": "moodle_users/uni-b-moodle",
            "action": "renamed",
            "renamed_from": "moodle_users/uni-b",
            "fields": [
                {
                    "field": "id",
                    "old": "moodle_users/uni-b",
                    "new": "moodle_users/uni-b-moodle",
                    "secret": None,
                    "note": None,
                    "scope": None,
                }
            ],
        }
    ]
    assert document["summary"]["renamed"] == 1 and document["summary"]["added"] == 0
    assert document["counts"]["connection"]["renamed"] == 1


def test_rename_into_another_file_shows_the_move_and_a_changed_field_is_no_rename(
    tmp_path: Path,
) -> None:
    base, head = pair(tmp_path)
    catalog_base = build(base).catalog
    edit(head / "connections.d/badges.toml", 'id = "global"', 'id = "everyone"')
    catalog = build(head).catalog
    assert catalog_base is not None and catalog is not None
    (change,) = [c for c in diff_catalogs(catalog_base, catalog).changes if c.kind == "connection"]
    assert (change.action.value, change.renamed_from) == ("renamed", "badges_publish/global")
    # the same id change with another field changed too is a delete and an add
    edit(head / "connections.d/badges.toml", "badges.example", "badges2.example")
    catalog = build(head).catalog
    assert catalog is not None
    actions = sorted(
        c.action.value
        for c in diff_catalogs(catalog_base, catalog).changes
        if c.kind == "connection"
    )
    assert actions == ["added", "removed"]


def _repo_with_handlers(tmp_path: Path) -> Path:
    repo = copy_example(tmp_path / "repo")
    shutil.copytree(REPO / "examples", repo / "examples")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def test_a_changed_handler_module_needs_a_restart(tmp_path: Path) -> None:
    repo = _repo_with_handlers(tmp_path)
    hello = repo / "examples" / "hello.py"
    hello.write_text(hello.read_text() + "\n# a change in the handler's code\n")
    edit(repo / "connections.d/moodle_users.toml", "timeout = 15", "timeout = 16")
    git(repo, "commit", "-q", "-am", "handler")
    document = diff_json(repo, "HEAD~1", "HEAD")
    assert ("restart", "examples.hello") in needs(document)
    assert ("reload", "service") not in needs(document)
    # the same between two folders: the module files beside each tree
    other = tmp_path / "other"
    shutil.copytree(repo, other, ignore=shutil.ignore_patterns(".git"))
    git(repo, "checkout", "-q", "HEAD~1")
    document = diff_json(tmp_path, "repo", "other")
    assert ("restart", "examples.hello") in needs(document)


def test_an_unrelated_file_change_needs_no_restart(tmp_path: Path) -> None:
    repo = _repo_with_handlers(tmp_path)
    (repo / "examples" / "unused.py").write_text("X = 1\n")
    edit(repo / "connections.d/moodle_users.toml", "timeout = 15", "timeout = 16")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "other")
    assert needs(diff_json(repo, "HEAD~1", "HEAD")) == [("reload", "service")]


def test_institution_filter_keeps_its_own_steps_and_the_verdict(tmp_path: Path) -> None:
    _base, head = pair(tmp_path)
    edit(
        head / "connections.d/moodle_users.toml",
        'credential = "moodle-uni-b-token"',
        'credential = "moodle-uni-b-token-2026"',
    )
    edit(head / "connections.d/badges.toml", "badges.example", "badges2.example")  # global
    for institution, expected in (
        ("uni-b", [("load-credential", "moodle-uni-b-token-2026"), ("restart", "service")]),
        ("uni-a", [("restart", "service")]),  # a global change concerns uni-a; not the credential
    ):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "rpcd",
                "diff",
                "base",
                "head",
                "--format",
                "json",
                "--institution",
                institution,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert needs(json.loads(proc.stdout)) == expected, institution
