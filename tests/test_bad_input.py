"""Bad input gets a finding, never a traceback; every problem of every file in one run."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from unittest import mock

import pytest
from tree_helpers import findings, rules_of, run_cli

from rpcd.config import build
from rpcd.config import sources as sources_module

C = "connections.d"


def _only(root: Path, rel: str) -> list[tuple[str, int | None]]:
    return [(f.rule, f.line) for f in findings(root) if f.file == rel]


def test_empty_file(tree: Path) -> None:
    (tree / C / "empty.toml").write_text("")
    assert _only(tree, f"{C}/empty.toml") == [("missing-version", 1)]


def test_binary_file(tree: Path) -> None:
    (tree / C / "blob.toml").write_bytes(bytes(range(256)) * 4)
    found = [f for f in findings(tree) if f.file == f"{C}/blob.toml"]
    assert [f.rule for f in found] == ["file-encoding"]
    assert "0x80" in found[0].message


def test_nul_bytes_in_utf8_text(tree: Path) -> None:
    (tree / C / "nul.toml").write_bytes(b"version = 1\n\x00\x00\n")
    assert _only(tree, f"{C}/nul.toml") == [("toml-syntax", 2)]


def test_non_utf8_text(tree: Path) -> None:
    # column counts characters: the é of "Universität" before the bad byte is one column
    text = 'version = 1\nname = "Universität Université"\n'
    data = text.encode("utf-8").replace("é".encode(), "é".encode("latin-1"))
    (tree / C / "latin.toml").write_bytes(data)
    found = [f for f in findings(tree) if f.file == f"{C}/latin.toml"]
    assert [(f.rule, f.line, f.column) for f in found] == [
        ("file-encoding", 2, 30)
    ]  # bytes would say 31


def test_utf8_bom_is_accepted(tree: Path) -> None:
    path = tree / "rpcd.toml"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert findings(tree) == []


def test_directory_named_toml(tree: Path) -> None:
    (tree / C / "x.toml").mkdir()
    (tree / C / "x.toml" / "inner.toml").write_text("version = 1\nbogus = 1\n")
    found = findings(tree)
    assert ("not-a-file", f"{C}/x.toml") in {(f.rule, f.file) for f in found}
    # it is still searched: the file inside is checked
    assert ("unknown-key", f"{C}/x.toml/inner.toml") in {(f.rule, f.file) for f in found}


def test_fifo_is_reported_never_opened(tree: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tree / C / "x.toml")
    # Opening a FIFO for reading blocks until a writer comes: a build that tried would hang,
    # so run it in a thread with a deadline rather than hang the suite.
    box: dict[str, object] = {}
    worker = threading.Thread(target=lambda: box.setdefault("found", findings(tree)), daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # unblock the reader so the thread can end, then fail
        with open(tree / C / "x.toml", "wb"):
            pass
        pytest.fail("validate opened the FIFO and blocked")
    found = box["found"]
    assert isinstance(found, list)
    assert [(f.rule, f.file) for f in found] == [("not-a-file", f"{C}/x.toml")]
    assert "FIFO" in found[0].message


def test_unreadable_file(tree: Path) -> None:
    path = tree / C / "secret.toml"
    path.write_text("version = 1\n")
    path.chmod(0)
    try:
        with open(path, "rb"):
            readable = True
    except PermissionError:
        readable = False
    if readable:  # root reads anything: simulate the refusal at the one place files are opened
        real_read = sources_module._read

        def refusing_read(file: str, size: int, max_bytes: int) -> bytes:
            if file == str(path):
                raise PermissionError(13, "Permission denied", file)
            return real_read(file, size, max_bytes)

        with mock.patch.object(sources_module, "_read", refusing_read):
            found = findings(tree)
    else:
        found = findings(tree)
    path.chmod(0o644)
    assert [(f.rule, f.file) for f in found] == [("file-unreadable", f"{C}/secret.toml")]
    assert "Permission denied" in found[0].message


def test_dangling_symlink(tree: Path) -> None:
    os.symlink("nowhere.toml", tree / C / "dangling.toml")
    assert _only(tree, f"{C}/dangling.toml") == [("file-unreadable", None)]


def test_symlink_loops(tree: Path) -> None:
    os.symlink("self.toml", tree / C / "self.toml")
    os.symlink("..", tree / C / "uni-a" / "up")  # a folder loop: connections.d/uni-a/up -> ..
    found = findings(tree)
    loops = sorted(f.file or "" for f in found if f.rule == "symlink-loop")
    assert loops == [f"{C}/self.toml", f"{C}/uni-a/up"]
    # nothing was read twice through the loop
    assert "duplicate-id" not in rules_of(found)


def test_50_mb_file_is_not_read(tree: Path) -> None:
    big = tree / C / "big.toml"
    with open(big, "wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse: costs no disk
    real_read = sources_module._read
    opened: list[str] = []

    def watching_read(file: str, size: int, max_bytes: int) -> bytes:
        opened.append(file)
        return real_read(file, size, max_bytes)

    with mock.patch.object(sources_module, "_read", watching_read):
        found = findings(tree)
    assert [(f.rule, f.file) for f in found] == [("file-too-large", f"{C}/big.toml")]
    assert "52,428,800" in found[0].message
    assert str(big) not in opened
    assert opened  # the other files were read through the watched open


def test_file_that_grows_past_the_limit_is_cut_off(tree: Path) -> None:
    path = tree / C / "grow.toml"
    path.write_text("version = 1\n")
    result = build(tree, max_file_bytes=4000)
    assert result.report.valid
    path.write_text("version = 1\n" + "# pad\n" * 1000)
    found = [f for f in build(tree, max_file_bytes=4000).report if f.file == f"{C}/grow.toml"]
    assert [f.rule for f in found] == ["file-too-large"]


def test_duplicate_keys(tree: Path) -> None:
    (tree / C / "dup.toml").write_text(
        'version = 1\n\n[[connection]]\nclass = "moodle_users"\nid = "a"\nid = "b"\n'
    )
    found = [f for f in findings(tree) if f.file == f"{C}/dup.toml"]
    assert [(f.rule, f.line, f.column) for f in found] == [("toml-syntax", 6, 1)]
    assert "connection[0].id" in found[0].message and "line 5" in found[0].message


def test_duplicate_table(tree: Path) -> None:
    (tree / C / "dup.toml").write_text('version = 1\n[class]\nid = "a_b"\n[class]\nname = "x"\n')
    found = [f for f in findings(tree) if f.file == f"{C}/dup.toml"]
    assert [(f.rule, f.line) for f in found] == [("toml-syntax", 4)]
    assert "[class]" in found[0].message


WRONG_TYPES = """\
version = 1

[class]
id = 1
plugin = true
name = []
fixed = "REST"
probe = 2
config_fields = 3
function_param = {}

[[connection]]
id = 1
class = 2
enabled = "yes"
priority = "1"
name = 3
version = 4
global = "no"
institutions = "uni-a"
fatal = 1
type = 5
payload = 6
auth = 7
endpoint = 8
credentials = 9
parameters = 10
http_method = 11
timeout = "30"
token_param = 12
token_header = 13
ca_bundle = 14
wsse_password_type = 15
soap_namespace = 16
soap_action = 17
config = 18
"""


def test_wrong_types_everywhere(tree: Path) -> None:
    (tree / C / "types.toml").write_text(WRONG_TYPES)
    found = [f for f in findings(tree) if f.file == f"{C}/types.toml"]
    written = [
        line.split(" = ")[0]
        for line in WRONG_TYPES.splitlines()
        if " = " in line and not line.startswith("version")
    ]
    by_line = {f.line for f in found}
    # every key that has a wrong type is reported, on its own line
    for number, line in enumerate(WRONG_TYPES.splitlines(), start=1):
        if " = " in line and not line.startswith("version"):
            assert number in by_line, f"line {number} ({line}) not reported"
    assert len(found) >= len(written)
    assert rules_of(found) <= {"wrong-type", "invalid-value", "plaintext-secret"}


def test_site_file_wrong_types(tree: Path) -> None:
    (tree / "rpcd.toml").write_text('version = 1\nconnections = true\ninstitution = { id = "x" }\n')
    found = [f for f in findings(tree) if f.file == "rpcd.toml"]
    assert [(f.rule, f.line) for f in found] == [("wrong-type", 2), ("wrong-type", 3)]
    # rpcd.toml is broken, so no institution can be resolved: no flood of unknown-institution
    assert "unknown-institution" not in rules_of(findings(tree))


@pytest.mark.parametrize("version", ["2", "0", '"1"', "1.5", "2.0", "true", "[1]", "-1"])
def test_unknown_version(tree: Path, version: str) -> None:
    (tree / "rpcd.toml").write_text(f"version = {version}\n")
    found = [f for f in findings(tree) if f.file == "rpcd.toml"]
    assert [(f.rule, f.line, f.column) for f in found] == [("unknown-version", 1, 1)]
    assert "version 1" in found[0].message  # names the versions this build reads


def test_root_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-root"
    proc = run_cli("validate", str(missing), "--format", "json", subprocess_=True)
    assert proc.returncode == 2, proc.stderr
    document = json.loads(proc.stdout)
    assert [d["rule"] for d in document["diagnostics"]] == ["root-not-found"]
    assert "Traceback" not in proc.stderr


def test_root_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rpcd.toml"
    path.write_text("version = 1\n")
    proc = run_cli("validate", str(path))
    assert proc.returncode == 2
    assert "root-not-found" in proc.stdout and "not a directory" in proc.stdout


def test_site_file_that_is_a_directory(tree: Path) -> None:
    (tree / "rpcd.toml").unlink()
    (tree / "rpcd.toml").mkdir()
    found = findings(tree)
    assert ("not-a-file", "rpcd.toml") in {(f.rule, f.file) for f in found}


def test_connections_dir_that_is_a_file(tree: Path) -> None:
    import shutil

    shutil.rmtree(tree / "services.d")
    (tree / "services.d").write_text("version = 1\n")
    found = findings(tree)
    assert ("not-a-file", "services.d") in {(f.rule, f.file) for f in found}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
def test_nan_and_inf(tree: Path, value: str) -> None:
    path = tree / C / "moodle_users.toml"
    path.write_text(path.read_text().replace("timeout = 15", f"timeout = {value}"))
    found = [f for f in findings(tree) if f.file == f"{C}/moodle_users.toml"]
    assert [(f.rule, f.path) for f in found] == [("invalid-value", "connection[0].timeout")]
    assert found[0].line is not None
    assert "finite" in found[0].message


def test_every_problem_of_every_file_in_one_run(tree: Path) -> None:
    (tree / C / "a.toml").write_text("version = 1\nx = \n")  # syntax
    (tree / C / "b.toml").write_bytes(b"\xff\xfe")  # encoding
    (tree / "services.d" / "c.toml").write_text("version = 9\n")  # version
    conn = tree / C / "sis_enrolments.toml"
    conn.write_text(conn.read_text().replace('auth = "wsse"\nwsse', 'auth = "tokn"\nwsse', 1))
    peers = tree / "services.d" / "peers.toml"
    peers.write_text(peers.read_text().replace('id = "mahara-prod"', 'id = "loopback"'))
    site = tree / "rpcd.toml"
    site.write_text(site.read_text() + "\n[extra]\n")
    found = findings(tree)
    got = {(f.rule, f.file) for f in found}
    assert {
        ("toml-syntax", f"{C}/a.toml"),
        ("file-encoding", f"{C}/b.toml"),
        ("unknown-version", "services.d/c.toml"),
        ("invalid-value", f"{C}/sis_enrolments.toml"),
        ("duplicate-id", "services.d/peers.toml"),
        ("unknown-key", "rpcd.toml"),
    } <= got


def test_cli_never_prints_a_traceback_on_bad_trees(tree: Path) -> None:
    (tree / C / "a.toml").write_bytes(os.urandom(4096))
    (tree / C / "b.toml").write_text("[[connection]]\n" * 3)
    (tree / C / "c.toml").write_text("version = 1\nconnection = [1, 'x', {}]\n")
    (tree / "services.d" / "d.toml").write_text("version = 1\nservice = []\npeer = {}\n")
    for fmt in ("text", "json", "github"):
        proc = run_cli(
            "validate", str(tree), "--format", fmt, "--import", subprocess_=fmt == "json"
        )
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr == ""
