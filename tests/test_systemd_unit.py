"""The shipped unit file: ``systemd-analyze verify``, its exposure score, and its hardening in
practice where this machine can show it (MemoryDenyWriteExecute with the real daemon).

``verify`` checks the unit as shipped except ExecStart, which points at this checkout's
``rpcd`` (the shipped /opt/rpcd/venv/bin/rpcd does not exist on a test machine). On systemd
older than 253, which does not know ``Type=notify-reload`` / ``ReloadSignal=``, the test checks
that those two are the *only* complaints, then verifies the older-systemd variant the docs give.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xmlrpc.client
from pathlib import Path

import pytest
from ops_helpers import start_serve
from server_helpers import LOOPBACK_TOKEN, make_tree
from tree_helpers import REPO

UNIT = REPO / "contrib" / "systemd" / "rpcd.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze not installed (Debian: apt-get install systemd)"
)
#: The score docs/operations.md states; a change to the unit must update the docs.
DOCUMENTED_EXPOSURE = "1.1"


def systemd_version() -> int:
    assert ANALYZE is not None
    out = subprocess.run([ANALYZE, "--version"], capture_output=True, text=True, check=True)
    match = re.match(r"systemd (\d+)", out.stdout)
    assert match, out.stdout
    return int(match.group(1))


def local_copy(tmp_path: Path, older_systemd: bool = False) -> Path:
    text = UNIT.read_text()
    rpcd = Path(sys.executable).with_name("rpcd")
    assert rpcd.exists(), rpcd
    text = text.replace("ExecStart=/opt/rpcd/venv/bin/rpcd ", f"ExecStart={rpcd} ")
    if older_systemd:  # the drop-in of docs/operations.md, "Older systemd"
        text = text.replace("Type=notify-reload", "Type=notify")
        text = text.replace("ReloadSignal=SIGHUP", "ExecReload=/bin/kill -HUP $MAINPID")
    path = tmp_path / "rpcd.service"
    path.write_text(text)
    return path


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )


def test_unit_declares_the_required_settings() -> None:
    text = UNIT.read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    for key, value in {
        "Type": "notify-reload",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "MemoryDenyWriteExecute": "yes",
        "UMask": "0077",
        "LoadCredential": "session-key:/etc/rpcd/session-key",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "LimitCORE": "0",
        "LimitNOFILE": "4096",
    }.items():
        assert settings.get(key) == value, (key, settings.get(key))
    # The settings name the daemon really reads.
    assert "Environment=RPCD_SESSION_KEY_FILE=%d/session-key" in text
    from rpcd.settings import Settings

    assert "session_key_file" in Settings.model_fields


def test_limit_nofile_fits_the_default_connection_cap() -> None:
    """LimitNOFILE leaves room for max_connections beside what rpcd keeps for itself, so the
    daemon under the unit never has to lower its cap (conn_guard.connection_cap)."""
    from rpcd.connections.transport import TransportSettings
    from rpcd.server.edge.conn_guard import RESERVED_FDS
    from rpcd.settings import Settings

    limit = int(
        next(
            line for line in UNIT.read_text().splitlines() if line.startswith("LimitNOFILE=")
        ).split("=", 1)[1]
    )
    reserve = RESERVED_FDS + TransportSettings().pool_limit
    assert Settings().max_connections + reserve <= limit
    assert f"LimitNOFILE - {reserve}" in UNIT.read_text()  # the comment states the rule


@needs_analyze
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    result = verify(local_copy(tmp_path))
    complaints = [line for line in result.stderr.splitlines() if line.strip()]
    if systemd_version() >= 253:
        assert result.returncode == 0 and not complaints, result.stderr
        return
    # systemd 252 and older: exactly the two notify-reload lines, nothing else.
    unknown = [
        line
        for line in complaints
        if "notify-reload" not in line and "Unknown key 'ReloadSignal'" not in line
    ]
    assert unknown == [], result.stderr
    older = verify(local_copy(tmp_path, older_systemd=True))
    assert older.returncode == 0 and not older.stderr.strip(), older.stderr


@needs_analyze
def test_exposure_score_matches_the_docs(tmp_path: Path) -> None:
    assert ANALYZE is not None
    probe = subprocess.run([ANALYZE, "security", "--help"], capture_output=True, text=True)
    if "--offline" not in probe.stdout:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(local_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for rpcd.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert match.group(1) == DOCUMENTED_EXPOSURE, "update docs/operations.md and this test"
    docs = (REPO / "docs" / "operations.md").read_text()
    assert f"exposure level {DOCUMENTED_EXPOSURE}" in docs


MDWE_EXEC = """\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_MDWE) failed: " + os.strerror(ctypes.get_errno()))
os.execv(sys.argv[1], sys.argv[1:])
"""


def mdwe_supported() -> bool:
    """PR_SET_MDWE (Linux >= 6.3): what MemoryDenyWriteExecute= enforces, without systemd."""
    probe = subprocess.run(
        [sys.executable, "-c", MDWE_EXEC, sys.executable, "-c", "pass"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0


def test_daemon_runs_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """MemoryDenyWriteExecute=yes: CPython, lxml, aiohttp and the handlers need no W+X memory."""
    if not mdwe_supported():
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3): cannot apply W^X without systemd")
    wrapper = tmp_path / "mdwe_exec.py"
    wrapper.write_text(MDWE_EXEC)
    prefix = [sys.executable, str(wrapper), sys.executable]
    # The wrapper really enforces W^X (the flag survives execve, as systemd's does).
    canary = subprocess.run(
        [*prefix, "-c", CANARY], capture_output=True, text=True, timeout=30, check=False
    )
    assert canary.stdout.strip() == "refused", canary.stdout + canary.stderr
    root = make_tree(tmp_path / "tree")
    daemon = start_serve(root, tmp_path / "rpcd.log", prefix=prefix)
    try:
        proxy = xmlrpc.client.ServerProxy(
            daemon.rpc, headers=[("Authorization", f"Bearer {LOOPBACK_TOKEN}")]
        )
        assert proxy.hello.add(2, 3) == 5
        assert proxy.system.multicall([{"methodName": "hello.echo", "params": ["x"]}]) == [["x"]]
        assert proxy.hello.helloWorld("Ada", "Lovelace") == "Hello, Ada Lovelace!"
        code, _, body = daemon.get("/readyz")
        assert code == 200, body
    finally:
        rc = daemon.stop()
    assert rc == 0, daemon.logs()


CANARY = """\
import mmap
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    print("allowed")
except OSError:
    print("refused")
"""
