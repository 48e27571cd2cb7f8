"""No core dumps: the daemon's memory holds every resolved secret.

``rpcd serve`` sets RLIMIT_CORE to 0 and (Linux) PR_SET_DUMPABLE to 0 before it reads any
secret. The limit of a running daemon is read from outside, in ``/proc/<pid>/limits``; the
dumpable flag only the process itself can read (``PR_GET_DUMPABLE``), so it is checked in a
subprocess that runs the same function, and in the daemon's own debug line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import make_tree, start_daemon
from tree_helpers import REPO

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux")

PROBE = """\
import ctypes, resource
PR_GET_DUMPABLE = 3
libc = ctypes.CDLL(None, use_errno=True)
def state():
    return libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE)
resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print(state())
from rpcd.server.ops.coredump import forbid_core_dumps
print(forbid_core_dumps())
print(state())
"""


@linux_only
def test_forbid_core_dumps_sets_the_limit_and_the_flag() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
        env={"PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    before, said, after = done.stdout.splitlines()
    assert before.startswith("(1, ")  # dumpable, as every process starts
    assert after == "(0, (0, 0))"  # not dumpable, RLIMIT_CORE 0 soft and hard
    assert said == "core dumps off: RLIMIT_CORE is 0 and the process is not dumpable"


def core_limit(pid: int) -> list[str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return line.split()[4:6]
    raise AssertionError("no core limit line")


CORES_ALLOWED_EXEC = """\
import os, resource, sys
resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
os.execv(sys.argv[1], sys.argv[1:])
"""


@linux_only
def test_the_daemon_runs_without_core_dumps(tmp_path: Path) -> None:
    """Started where cores are allowed (unlimited RLIMIT_CORE), the daemon turns them off."""
    wrapper = tmp_path / "cores_allowed.py"
    wrapper.write_text(CORES_ALLOWED_EXEC)
    prefix = [sys.executable, str(wrapper), sys.executable]
    daemon = start_daemon(
        make_tree(tmp_path / "tree"),
        tmp_path / "rpcd.log",
        {"RPCD_LOG_LEVEL": "DEBUG"},
        prefix=prefix,
    )
    try:
        assert core_limit(daemon.proc.pid) == ["0", "0"]
        logs = daemon.logs()
    finally:
        assert daemon.stop() == 0
    said = logs.index("core dumps off: RLIMIT_CORE is 0 and the process is not dumpable")
    assert said < logs.index("listening on")
