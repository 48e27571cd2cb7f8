"""``rpcd diff`` end to end: a real git repository in a temp dir, the CLI as a subprocess.

Golden files live in tests/golden/diff/; regenerate them with ``RPCD_UPDATE_GOLDEN=1 pytest
tests/test_diff.py`` and review the change like any other diff. The example tree is copied
from the repository root, so an edit to the examples may need a regeneration too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
from tree_helpers import REPO, copy_example

from rpcd.cli import main
from rpcd.config import Catalog, build
from rpcd.config.models import SecretRef
from rpcd.diff import Action, diff_catalogs
from rpcd.diff.render import code

GOLDEN = Path(__file__).resolve().parent / "golden" / "diff"
UPDATE = os.environ.get("RPCD_UPDATE_GOLDEN") == "1"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


@dataclass
class Run:
    code: int
    out: str
    err: str


def rpcd_diff(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """The real command line, as CI runs it: a subprocess with ``cwd`` in the repository."""
    proc = subprocess.run(
        [sys.executable, "-m", "rpcd", "diff", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def rpcd_diff_many(cwd: Path, runs: list[tuple[str, ...]]) -> list[Run]:
    """Several subprocesses at once: interpreter start-up dominates, so overlap it."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: rpcd_diff(cwd, *args), runs))


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> Run:
    """The same ``main()`` in this process, for the many semantic checks (no start-up cost)."""
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.update(env or {})
    for name in unset:
        os.environ.pop(name, None)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["diff", *args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Run(code, out.getvalue(), err.getvalue())


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def commit(repo: Path, tag: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", tag)
    git(repo, "tag", tag)


COLLEGE_C_MOODLE = """\
version = 1

[[connection]]
class = "moodle_users"
id = "college-c"
name = "College C Moodle"
enabled = true
priority = 2
institutions = ["college-c"]
auth = "token"
endpoint = "https://moodle.college-c.example/webservice/rest/server.php"
credentials = { token = { env = "COLLEGE_C_MOODLE_TOKEN" } }
config = { match_field = "username" }
"""

SIS_UNI_B = """
[[connection]]
id = "uni-b"
enabled = false                                    # being set up; off until tested
institutions = ["uni-b"]
type = "SOAP"
auth = "wsse"
endpoint = "https://sis.uni-b.example/soap"
soap_namespace = "urn:example:sis:enrolment:2"
credentials = { username = { env = "SIS_UNI_B_USER" }, password = { env = "SIS_UNI_B_PASSWORD" } }
"""

NEW_TOKEN_HASH = hashlib.sha256(b"a rotated token").hexdigest()


def make_history(repo: Path) -> None:
    """base → add-remove → reorder-retarget → rotate → move → switch-off, plus a broken branch."""
    copy_example(repo)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "base")
    conns = repo / "connections.d"
    (conns / "college-c").mkdir()
    (conns / "college-c" / "moodle_users.toml").write_text(COLLEGE_C_MOODLE)
    edit(conns / "sis_enrolments.toml", SIS_UNI_B, "")
    commit(repo, "add-remove")
    edit(conns / "uni-a" / "moodle_users.toml", "priority = 1", "priority = 5")
    edit(
        conns / "mahara_sso.toml",
        "https://mahara.uni-a.example/",
        "https://portfolio.uni-a.example/",
    )
    commit(repo, "reorder-retarget")
    edit(
        conns / "moodle_users.toml",
        '{ credential = "moodle-uni-b-token" }',
        '{ env = "MOODLE_UNI_B_TOKEN_2025" }',
    )
    peers = repo / "services.d" / "peers.toml"
    old_hash = re.search(
        r'id = "mahara-prod".*?token_sha256 = "([0-9a-f]{64})"', peers.read_text(), re.S
    )
    assert old_hash is not None
    edit(peers, old_hash.group(1), NEW_TOKEN_HASH)
    commit(repo, "rotate")
    edit(conns / "mahara_sso.toml", 'institutions = ["college-c"]', "institutions = []")
    edit(
        conns / "mahara_sso.toml",
        'institutions = ["uni-a"]',
        'institutions = ["uni-a", "college-c"]',
    )
    commit(repo, "move")
    edit(repo / "rpcd.toml", "enabled = true", "enabled = false")
    commit(repo, "switch-off")
    git(repo, "checkout", "-q", "-b", "broken", "base")
    edit(conns / "moodle_users.toml", 'institutions = ["uni-b"]', 'institutions = ["uni-z"]')
    commit(repo, "invalid")
    git(repo, "checkout", "-q", "main")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("diffrepo") / "repo"
    make_history(path)
    return path


# --- golden files -----------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Commit ids and content hashes depend on the example tree's bytes: not what goldens test."""
    return re.sub(r'"(revision|content_hash)": "[0-9a-f]{40,64}"', r'"\1": "<\1>"', text)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    text = normalise(text)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden {path}: run with RPCD_UPDATE_GOLDEN=1"
    assert text == path.read_text(), (
        f"{name} differs from its golden (RPCD_UPDATE_GOLDEN=1 to accept)"
    )


FORMATS = {"txt": "text", "md": "markdown", "json": "json"}
CASES = {
    "all": ("base", "move"),
    "switch": ("move", "switch-off"),
    "institution-uni-b": ("base", "switch-off", "--institution", "uni-b"),
}


@pytest.fixture(scope="module")
def golden_runs(repo: Path) -> dict[tuple[str, str], Run]:
    """In-process (start-up would dominate); ``test_subprocess_matches`` ties it to the real CLI."""
    keys = [(case, ext) for case in sorted(CASES) for ext in sorted(FORMATS)]
    return {(case, ext): cli(repo, *CASES[case], "--format", FORMATS[ext]) for case, ext in keys}


def test_subprocess_matches_in_process(repo: Path, golden_runs: dict[tuple[str, str], Run]) -> None:
    (run,) = rpcd_diff_many(repo, [(*CASES["all"], "--format", "markdown")])
    assert (run.code, run.out, run.err) == (2, golden_runs["all", "md"].out, "")


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_golden(golden_runs: dict[tuple[str, str], Run], case: str, ext: str) -> None:
    run = golden_runs[case, ext]
    assert (run.code, run.err) == (2, "")
    check_golden(f"{case}.{ext}", run.out)


def test_json_matches_schema(repo: Path, golden_runs: dict[tuple[str, str], Run]) -> None:
    schema = json.loads((REPO / "schemas" / "diff.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    outputs = [run.out for (_, ext), run in golden_runs.items() if ext == "json"]
    outputs.append(cli(repo, "base", "base", "--format", "json").out)  # no change
    outputs.append(cli(repo.parent, "repo", "repo", "--format", "json").out)  # directories
    for output in outputs:
        jsonschema.validate(json.loads(output), schema, cls=jsonschema.Draft7Validator)


# --- what each kind of change shows ---------------------------------------------------------


def doc(repo: Path, *args: str) -> dict[str, object]:
    run = cli(repo, *args, "--format", "json")
    assert run.code == 2, run.err
    result: dict[str, object] = json.loads(run.out)
    return result


def changes(document: dict[str, object]) -> dict[tuple[str, str], dict[str, object]]:
    items = document["changes"]
    assert isinstance(items, list)
    return {(c["kind"], c["id"]): c for c in items}


def fields(change: dict[str, object]) -> dict[str, dict[str, object]]:
    items = change["fields"]
    assert isinstance(items, list)
    return {f["field"]: f for f in items}


def test_add_and_remove(repo: Path) -> None:
    found = changes(doc(repo, "base", "add-remove"))
    added = found["connection", "moodle_users/college-c"]
    assert added["action"] == "added"
    assert fields(added)["credentials.token"]["new"] == "env:COLLEGE_C_MOODLE_TOKEN"
    assert fields(added)["file"]["new"] == "connections.d/college-c/moodle_users.toml"
    assert found["connection", "sis_enrolments/uni-b"] == {
        "kind": "connection",
        "id": "sis_enrolments/uni-b",
        "action": "removed",
        "renamed_from": None,
        "fields": [],
    }


def test_reorder_changes_only_priority_and_routing_for_multi_institution_callers(
    repo: Path,
) -> None:
    document = doc(repo, "add-remove", "reorder-retarget")
    found = changes(document)
    assert list(fields(found["connection", "moodle_users/uni-a"])) == ["priority"]
    assert fields(found["connection", "mahara_sso/uni-a"])["endpoint"] == {
        "field": "endpoint",
        "old": "https://mahara.uni-a.example/api/xmlrpc/server.php",
        "new": "https://portfolio.uni-a.example/api/xmlrpc/server.php",
        "secret": None,
        "note": None,
        "scope": None,
    }
    assert document["routing"] == [
        {
            "class": "moodle_users",
            "institutions": ["uni-a", "uni-b"],
            "peers": ["mahara-prod"],
            "before": ["uni-a", "uni-b"],
            "after": ["uni-b", "uni-a"],
        }
    ]


def test_rotation_marks_reference_and_hides_hash(repo: Path) -> None:
    found = changes(doc(repo, "reorder-retarget", "rotate"))
    token = fields(found["connection", "moodle_users/uni-b"])["credentials.token"]
    assert (token["old"], token["new"], token["note"]) == (
        "credential:moodle-uni-b-token",
        "env:MOODLE_UNI_B_TOKEN_2025",
        "secret reference changed",
    )
    peer = fields(found["peer", "mahara-prod"])
    assert peer == {
        "token_sha256": {
            "field": "token_sha256",
            "old": "(hidden)",
            "new": "(hidden)",
            "secret": "hash",
            "note": "credential rotated",
            "scope": None,
        }
    }
    old_hash = re.search(r'"([0-9a-f]{64})"', (REPO / "services.d" / "peers.toml").read_text())
    for fmt in FORMATS.values():
        out = cli(repo, "reorder-retarget", "rotate", "--format", fmt).out
        assert NEW_TOKEN_HASH not in out
        assert old_hash is not None and old_hash.group(1) not in out
        assert "credential rotated" in out
    text = cli(repo, "reorder-retarget", "rotate").out
    line = "credentials.token: credential:moodle-uni-b-token → env:MOODLE_UNI_B_TOKEN_2025"
    assert f"{line}  (secret reference changed)" in text


def test_master_switch_empties_every_route(repo: Path) -> None:
    document = doc(repo, "move", "switch-off")
    assert document["master_switch"] == {"old": True, "new": False}
    assert document["changes"] == []
    routing = document["routing"]
    assert isinstance(routing, list) and routing
    assert all(row["after"] == [] and row["before"] for row in routing)
    assert {
        "class": "moodle_users",
        "institutions": ["uni-a", "uni-b"],
        "peers": ["mahara-prod"],
        "before": ["uni-b", "uni-a"],
        "after": [],
    } in routing


def test_move_institution_between_instances(repo: Path) -> None:
    document = doc(repo, "rotate", "move")
    found = changes(document)
    assert fields(found["connection", "mahara_sso/college-c"])["institutions"]["new"] == []
    assert fields(found["connection", "mahara_sso/uni-a"])["institutions"]["new"] == [
        "uni-a",
        "college-c",
    ]
    assert document["routing"] == [
        {
            "class": "mahara_sso",
            "institutions": ["college-c"],
            "peers": ["sis-gateway"],
            "before": ["college-c"],
            "after": ["uni-a"],
        }
    ]


def test_institution_filter(repo: Path) -> None:
    document = doc(repo, "base", "switch-off", "--institution", "college-c")
    ids = set(changes(document))
    assert ("connection", "moodle_users/college-c") in ids
    assert ("connection", "mahara_sso/college-c") in ids
    assert ("connection", "mahara_sso/uni-a") in ids  # it now serves college-c
    assert ("connection", "moodle_users/uni-b") not in ids  # secret rotated for uni-b only
    assert ("peer", "mahara-prod") not in ids
    assert ("peer", "sis-gateway") not in ids  # acts for college-c, but did not change
    routing = document["routing"]
    assert isinstance(routing, list)
    assert all("college-c" in row["institutions"] for row in routing)
    assert document["master_switch"] == {"old": True, "new": False}
    uni_b = changes(doc(repo, "reorder-retarget", "rotate", "--institution", "uni-b"))
    assert set(uni_b) == {("connection", "moodle_users/uni-b"), ("peer", "mahara-prod")}
    college = cli(repo, "reorder-retarget", "rotate", "--institution", "college-c")
    assert (college.code, college.out.splitlines()[-1]) == (0, "No changes.")


# --- exit codes and errors --------------------------------------------------------------------


def test_exit_codes(repo: Path) -> None:
    # Real processes for the codes CI depends on (exit 2 is in test_subprocess_matches_in_process).
    same, usage = rpcd_diff_many(repo, [("base", "base"), ("base",)])
    changed, invalid = cli(repo, "base", "HEAD"), cli(repo, "base", "invalid")
    work = cli(repo, "HEAD", ".")  # committed vs work tree
    unknown = cli(repo, "base", "no-such-rev")
    nobody = cli(repo, "base", "move", "--institution", "uni-z")
    help_text = cli(repo, "--help")
    assert (same.code, work.code, changed.code) == (0, 0, 2)
    assert unknown.code == 1 and "neither a directory nor a revision" in unknown.err
    assert usage.code == 1 and "required" in usage.err  # not argparse's 2: that means "changes"
    assert nobody.code == 1 and "uni-z" in nobody.err
    assert invalid.code == 1 and "error[" in invalid.err
    assert help_text.code == 0
    assert "0  no change" in help_text.out and "2  changes found" in help_text.out


def test_invalid_side_prints_findings(repo: Path) -> None:
    for args in (("base", "invalid"), ("invalid", "base")):
        run = cli(repo, *args, "--format", "json")
        assert run.code == 1
        assert run.out == ""
        assert "(invalid) is invalid:" in run.err
        assert "connections.d/moodle_users.toml:" in run.err and "uni-z" in run.err


def test_outside_a_repository(tmp_path: Path) -> None:
    run = cli(tmp_path, "HEAD~1", "HEAD")
    assert run.code == 1 and "not inside a git repository" in run.err


def test_symlink_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    copy_example(repo)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "base")
    (repo / "connections.d" / "evil.toml").symlink_to("/etc/passwd")
    commit(repo, "evil")
    run = cli(repo, "base", "evil")
    assert run.code == 1 and "symlink leaving the config tree" in run.err


# --- directories, sub-folders, and leaving the checkout alone --------------------------------


def test_dir_vs_dir(tmp_path: Path) -> None:
    copy_example(tmp_path / "before")
    copy_example(tmp_path / "after")
    edit(
        tmp_path / "after" / "connections.d" / "badges.toml",
        "https://badges.example/",
        "https://badges2.example/",
    )
    edit(tmp_path / "after" / "rpcd.toml", 'name = "College C"', 'name = "College C | Arts"')
    run = cli(tmp_path, "before", "after")
    assert (run.code, run.err) == (2, "")
    check_golden("dirs.txt", run.out)
    md = cli(tmp_path, "before", "after", "--format", "markdown").out
    assert r'`"College C \| Arts"`' in md  # a pipe in a value cannot break the table


def test_root_in_a_sub_folder(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    copy_example(repo / "config")
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "base")
    edit(repo / "config" / "rpcd.toml", "enabled = true", "enabled = false")
    commit(repo, "off")
    inside = cli(repo / "config", "base", "off", "--format", "json")
    assert inside.code == 2 and json.loads(inside.out)["master_switch"] == {
        "old": True,
        "new": False,
    }
    from_top = cli(repo, "base", "off", "--root-in-repo", "config")
    assert from_top.code == 2 and "master switch" in from_top.out.lower()
    wrong = cli(repo, "base", "off")  # no config at the top
    assert wrong.code == 1 and "rpcd.toml is missing" in wrong.err


def snapshot(repo: Path) -> tuple[str, str, str, bytes]:
    return (
        git(repo, "status", "--porcelain=v2", "--untracked-files=all"),
        git(repo, "diff"),
        git(repo, "diff", "--cached"),
        (repo / ".git" / "index").read_bytes(),
    )


def test_work_tree_and_index_untouched(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_history(repo)
    edit(repo / "rpcd.toml", 'name = "University B"', 'name = "University B (staged)"')
    git(repo, "add", "rpcd.toml")
    edit(repo / "connections.d" / "badges.toml", "Badge platform", "Badge platform (unstaged)")
    (repo / "services.d" / "untracked.toml").write_text("version = 1\n")
    before = snapshot(repo)
    (work,) = rpcd_diff_many(repo, [("HEAD", ".", "--format", "json")])
    assert cli(repo, "base", "switch-off").code == 2
    assert cli(repo, "invalid", "move", "--format", "markdown").code == 1
    assert work.code == 2
    ids = {c["id"] for c in json.loads(work.out)["changes"]}
    assert ids == {"uni-b", "badges_publish/global"}  # staged and unstaged edits both seen
    assert snapshot(repo) == before


# --- secrets are never resolved ---------------------------------------------------------------


def test_no_secret_value_in_any_format(tmp_path: Path) -> None:
    """Every reference points at a real value; output must not depend on those values at all.

    Some values are chosen to equal non-secret text of the tree (an endpoint fragment, a
    connection name), decK's masking bugs: that text must still be shown, unmasked, and exactly
    as often as when the secrets are absent.
    """
    repo, secrets, creds = tmp_path / "repo", tmp_path / "secrets", tmp_path / "creds"
    secrets.mkdir()
    creds.mkdir()
    copy_example(repo)
    moodle_a = repo / "connections.d" / "uni-a" / "moodle_users.toml"
    edit(moodle_a, '{ env = "MOODLE_UNI_A_TOKEN" }', f'{{ file = "{secrets}/token-a" }}')
    edit(repo / "rpcd.toml", '"/etc/rpcd/secrets/uni-a/"', f'"{secrets}/"')  # uni-a's scope
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "base")
    edit(moodle_a, f'{{ file = "{secrets}/token-a" }}', f'{{ file = "{secrets}/token-b" }}')
    edit(moodle_a, "https://moodle.uni-a.example/", "https://moodle2.uni-a.example/")
    edit(
        repo / "connections.d" / "badges.toml",
        '{ env = "BADGES_SECRET" }',
        '{ env = "BADGES_SECRET_V2" }',
    )
    edit(
        repo / "connections.d" / "moodle_users.toml",
        '"moodle-uni-b-token"',
        '"moodle-uni-b-token-2"',
    )
    edit(
        repo / "connections.d" / "mahara_sso.toml", "University A portfolio", "University A Moodle"
    )
    commit(repo, "head")
    distinctive = {
        "BADGES_SECRET": "zq-badges-secret-old-7731",
        "BADGES_SECRET_V2": "zq-badges-secret-new-9924",
        "BADGES_KEY": "zq-badges-key-1180",
        "MAHARA_UNI_A_USER": "zq-mahara-user-5521",
    }
    (secrets / "token-a").write_text("zq-file-token-a-3310")
    (secrets / "token-b").write_text("zq-file-token-b-4420")
    (creds / "moodle-uni-b-token").write_text("zq-cred-token-8801")
    (creds / "moodle-uni-b-token-2").write_text("zq-cred-token-8802")
    colliding = {"SIS_USER": "moodle.uni-a.example", "SIS_PASSWORD": "University A Moodle"}
    env = {**distinctive, **colliding, "CREDENTIALS_DIRECTORY": str(creds)}
    values = [
        *distinctive.values(),
        "zq-file-token-a-3310",
        "zq-file-token-b-4420",
        "zq-cred-token-8801",
    ]
    for fmt in FORMATS.values():
        for extra in ((), ("--institution", "uni-a")):
            with_secrets = cli(repo, "base", "head", "--format", fmt, *extra, env=env)
            assert with_secrets.code == 2, with_secrets.err
            for value in values:
                assert value not in with_secrets.out
            for path in secrets.iterdir():
                path.rename(path.with_suffix(".gone"))
            try:
                without = cli(repo, "base", "head", "--format", fmt, *extra, unset=tuple(env))
            finally:
                for path in secrets.iterdir():
                    path.rename(path.with_suffix(""))
            assert with_secrets.out == without.out  # nothing read from env, files or credentials
            for text in colliding.values():  # non-secret text that equals a secret: shown, unmasked
                assert text in with_secrets.out
                assert with_secrets.out.count(text) == without.out.count(text)
    real = rpcd_diff(repo, "base", "head", env=env)  # and once as a real process
    assert real.code == 2 and "moodle2.uni-a.example" in real.out
    assert not any(value in real.out + real.err for value in values)


# --- pure parts ------------------------------------------------------------------------------


def catalogs(tmp_path: Path, change: Callable[[Path], None]) -> tuple[Catalog, Catalog]:
    copy_example(tmp_path / "a")
    copy_example(tmp_path / "b")
    change(tmp_path / "b")
    built = [build(tmp_path / side) for side in ("a", "b")]
    assert built[0].catalog is not None and built[1].catalog is not None, [
        list(b.report) for b in built
    ]
    return built[0].catalog, built[1].catalog


def test_pure_diff_only_changed_fields(tmp_path: Path) -> None:
    def change(root: Path) -> None:
        edit(root / "connections.d" / "moodle_users.toml", "timeout = 15", "timeout = 20")

    base, head = catalogs(tmp_path, change)
    diff = diff_catalogs(base, head)
    assert [(c.kind, c.id, c.action) for c in diff.changes] == [
        ("connection", "moodle_users/uni-b", Action.CHANGED)
    ]
    (field,) = diff.changes[0].fields
    assert (field.field, field.old, field.new, field.secret, field.note) == (
        "timeout",
        15.0,
        20.0,
        None,
        None,
    )
    assert not diff.routing and diff.master_switch is None
    assert diff_catalogs(base, base).empty


def test_markdown_code_spans() -> None:
    assert code("a|b") == r"`a\|b`"
    assert code("x`y") == "``x`y``"
    assert code("`a") == "`` `a ``"
    assert code("") == ""


def test_pure_diff_services_methods_classes_peers(tmp_path: Path) -> None:
    def change(root: Path) -> None:
        edit(
            root / "services.d" / "hello.toml",
            'peers = ["loopback", "mahara-prod"]',
            'peers = ["loopback"]',
        )
        edit(root / "services.d" / "hello.toml", 'help = "Adds two integers."', 'help = "Adds."')
        edit(root / "connections.d" / "moodle_users.toml", "ask for at a time", "ask for per call")
        edit(
            root / "rpcd.toml",
            "[[institution]]",
            '[[institution]]\nid = "uni-d"\nname = "D"\n\n[[institution]]',
        )
        with (root / "services.d" / "peers.toml").open("a") as fh:
            fh.write(
                f'\n[[peer]]\nid = "new-peer"\nauth = "token"\ntoken_sha256 = "{NEW_TOKEN_HASH}"\n'
            )

    base, head = catalogs(tmp_path, change)
    diff = diff_catalogs(base, head)
    found = {(c.kind, c.id): c for c in diff.changes}
    assert [f.field for f in found["service", "hello"].fields] == ["grant.peers"]
    assert [(f.field, f.new) for f in found["method", "hello.add"].fields] == [("help", "Adds.")]
    (klass,) = found["class", "moodle_users"].fields
    assert (klass.field, klass.new) == (
        "config_fields.page_size.help",
        "How many users to ask for per call",
    )
    assert found["institution", "uni-d"].action is Action.ADDED
    peer = {f.field: f for f in found["peer", "new-peer"].fields}
    assert peer["token_sha256"].new == "(hidden)" and peer["token_sha256"].note is None
    assert not diff.routing
    assert diff_catalogs(base, head, "college-c").changes == ()  # none of it reaches college-c
    uni_a = {(c.kind, c.id) for c in diff_catalogs(base, head, "uni-a").changes}
    assert uni_a == {("service", "hello"), ("method", "hello.add"), ("class", "moodle_users")}


# --- secret scopes (rule secret-scope) --------------------------------------------------------


def test_scope_widened_in_the_same_change_is_flagged(tmp_path: Path) -> None:
    """uni-a's folder takes a secret that only this change's rpcd.toml lets it take: valid,
    and both the scope change and the reference are flagged, in every format."""
    repo = tmp_path / "repo"
    copy_example(repo)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "base")
    edit(repo / "rpcd.toml", '"MOODLE_UNI_A_"]', '"MOODLE_UNI_A_", "SHARED_"]')
    edit(repo / "rpcd.toml", 'name = "University B"', 'name = "University B"\nendpoint_hosts = []')
    edit(
        repo / "connections.d" / "uni-a" / "moodle_users.toml",
        '{ env = "MOODLE_UNI_A_TOKEN" }',
        '{ env = "SHARED_MOODLE_TOKEN" }',
    )
    commit(repo, "widen")
    found = changes(doc(repo, "base", "widen"))
    token = fields(found["connection", "moodle_users/uni-a"])["credentials.token"]
    assert token["scope"] is not None
    assert token["scope"].startswith("allowed only by this change to rpcd.toml")
    assert "env:SHARED_MOODLE_TOKEN is outside institution `uni-a`'s secret scope" in token["scope"]
    scope = fields(found["institution", "uni-a"])["secrets.env_prefixes"]
    assert scope["scope"] == "what connections.d/uni-a/ may reference changes"
    hosts = fields(found["institution", "uni-b"])["endpoint_hosts"]
    assert hosts["scope"] == "which hosts connections.d/uni-b/ may call changes"
    text = cli(repo, "base", "widen").out
    assert "!! secret scope: allowed only by this change to rpcd.toml" in text
    markdown = cli(repo, "base", "widen", "--format", "markdown").out
    assert "⚠️ **secret scope:** allowed only by this change to rpcd.toml" in markdown
    schema = json.loads((REPO / "schemas" / "diff.schema.json").read_text())
    jsonschema.validate(json.loads(cli(repo, "base", "widen", "--format", "json").out), schema)
    assert all(
        f["scope"] is None
        for c in found.values()
        for f in c["fields"]
        if f["field"] not in ("credentials.token", "secrets.env_prefixes", "endpoint_hosts")
    )


def test_reference_outside_the_folder_scope_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    copy_example(repo)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "base")
    edit(
        repo / "connections.d" / "uni-a" / "moodle_users.toml",
        '{ env = "MOODLE_UNI_A_TOKEN" }',
        '{ credential = "moodle-uni-b-token" }',
    )
    commit(repo, "steal")
    run = cli(repo, "base", "steal", "--format", "json")
    assert run.code == 1 and run.out == ""
    assert "error[secret-scope]" in run.err and "credential:moodle-uni-b-token" in run.err


def test_pure_diff_flags_references_outside_scope(tmp_path: Path) -> None:
    """On catalogs that did not go through validate (diff_catalogs is pure): a folder's
    reference outside its scope, and a daemon secret anywhere, are flagged."""
    base, head = catalogs(tmp_path, lambda root: None)
    uni_a = head.connections["moodle_users/uni-a"]
    badges = head.connections["badges_publish/global"]
    stolen = uni_a.model_copy(
        update={"credentials": {"token": SecretRef(credential="moodle-uni-b-token")}}
    )
    session = badges.model_copy(
        update={
            "credentials": {
                "consumer_key": badges.credentials["consumer_key"],
                "consumer_secret": SecretRef(env="RPCD_SESSION_KEY"),
            }
        }
    )
    connections = {
        **head.connections,
        "moodle_users/uni-a": stolen,
        "badges_publish/global": session,
    }
    diff = diff_catalogs(base, dataclasses.replace(head, connections=connections))
    flags = {(c.id, f.field): f.scope for c in diff.changes for f in c.fields}
    assert "outside institution `uni-a`'s secret scope" in str(
        flags["moodle_users/uni-a", "credentials.token"]
    )
    assert "daemon" in str(flags["badges_publish/global", "credentials.consumer_secret"])


def test_crafted_nesting_is_a_finding_not_a_traceback(tmp_path: Path) -> None:
    """Point 14 for rpcd diff: a side with a 999-level nested value is an invalid side (its
    finding printed, exit 1), in every format."""
    repo = tmp_path / "repo"
    copy_example(repo)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "base")
    deep = "[" * 999 + "]" * 999
    edit(
        repo / "connections.d" / "badges.toml",
        'http_method = "POST"',
        f'config = {{ x = {deep} }}\nhttp_method = "POST"',
    )
    commit(repo, "deep")
    for fmt in ("text", "json", "markdown"):
        run = cli(repo, "base", "deep", "--format", fmt)
        assert run.code == 1 and run.out == ""
        assert "connections.d/badges.toml:" in run.err and "error[nesting-depth]" in run.err
        assert "Traceback" not in run.err and "RecursionError" not in run.err
