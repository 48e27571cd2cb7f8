"""glibc malloc tuning (``rpcd.server.memory``), checked in a fresh interpreter each time.

After many small allocations are freed (a big XML document parsed with lxml and dropped),
glibc trims the free top of the heap back to the kernel unless the trim threshold is raised:
``mallinfo2().keepcost`` (the releasable top) then stays large. Each case runs in its own
subprocess so the thresholds of the test process itself do not matter.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import copy_example
from server_helpers import start_daemon

from rpcd.server import memory
from rpcd.settings import Settings

MIB = 1024 * 1024


def _glibc_with_mallinfo2() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    return hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallinfo2")


glibc_only = pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="needs glibc 2.33+ (mallinfo2)")

_CHILD = textwrap.dedent(
    """
    import ctypes, ctypes.util, json, sys
    from lxml import etree
    from rpcd.server import memory

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallinfo2.restype = Mallinfo2
    tuned = memory.tune_malloc(int(sys.argv[1]), int(sys.argv[2]))
    memory.release()
    # About 25 MB of libxml2 nodes, each a small malloc, freed with the tree.
    items = (b"<v><i>%d</i><s>text %d</s></v>" % (i, i) for i in range(40000))
    doc = b"<r>" + b"".join(items) + b"</r>"
    for _ in range(3):
        root = etree.fromstring(doc)
        count = sum(1 for _ in root.iter())
        del root
        # A freed chunk over 64 KiB (a request body, say) makes glibc consolidate the small
        # free chunks into the top of the heap, and trim the top if it is over the threshold.
        big = bytes(100_000)
        del big
    info = libc.mallinfo2()
    print(json.dumps({"tuned": tuned, "keepcost": info.keepcost, "arena": info.arena}))
    """
)


def _run(trim: int, mmap: int) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(trim), str(mmap)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@glibc_only
def test_raised_trim_threshold_keeps_freed_memory() -> None:
    tuned = _run(64 * MIB, 32 * MIB)
    default = _run(0, 0)
    assert tuned["tuned"]
    # glibc's default trims the top down to its 128 KiB pad; tuned, the megabytes the tree
    # took stay in the process for the next one.
    assert default["keepcost"] < 1 * MIB, default
    assert tuned["keepcost"] > 8 * MIB, tuned
    assert tuned["arena"] > default["arena"] + 8 * MIB


@glibc_only
def test_a_free_top_over_the_threshold_is_given_back() -> None:
    """The threshold is when glibc trims: a free top past it goes back (down to the pad)."""
    small = _run(2 * MIB, 32 * MIB)
    assert small["tuned"]
    assert small["keepcost"] < 1 * MIB, small


def test_zero_settings_do_nothing_anywhere() -> None:
    assert memory.tune_malloc(0, 0) is True


def test_not_glibc_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_glibc", lambda: None)
    assert memory.tune_malloc(64 * MIB, 32 * MIB) is False
    memory.release()  # no crash without glibc


def test_settings_defaults_and_bounds() -> None:
    settings = Settings()
    assert settings.malloc_trim_threshold == 64 * MIB
    assert settings.malloc_mmap_threshold == 32 * MIB
    assert Settings(malloc_trim_threshold=0, malloc_mmap_threshold=0).malloc_trim_threshold == 0
    with pytest.raises(ValueError):
        Settings(malloc_mmap_threshold=64 * MIB)  # glibc's own limit is 32 MiB
    with pytest.raises(ValueError):
        Settings(malloc_trim_threshold=-1)


def test_settle_freezes_the_heap_for_the_collector() -> None:
    code = (
        "import gc\n"
        "from rpcd.server import memory\n"
        "keep = [[i] for i in range(1000)]\n"
        "assert gc.get_freeze_count() == 0\n"
        "memory.settle()\n"
        "print(gc.get_freeze_count())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert int(done.stdout.strip()) > 1000


_WRAPPER = textwrap.dedent(
    """
    import gc, runpy, sys
    from rpcd.server import memory

    def tune_malloc(trim, mmap):
        sys.stderr.write(f"TEST tune_malloc {trim} {mmap}\\n")
        return real_tune(trim, mmap)

    def settle():
        real_settle()
        sys.stderr.write(f"TEST settled frozen={gc.get_freeze_count()}\\n")

    real_tune, real_settle = memory.tune_malloc, memory.settle
    memory.tune_malloc, memory.settle = tune_malloc, settle
    sys.argv = sys.argv[2:]  # drop "-m rpcd": run the module as python -m would
    runpy.run_module("rpcd", run_name="__main__", alter_sys=True)
    """
)


def test_serve_tunes_malloc_and_settles_at_start_up(tmp_path: Path) -> None:
    """``rpcd serve`` applies the settings and freezes the loaded catalog before serving."""
    root = copy_example(tmp_path / "tree")
    wrapper = tmp_path / "wrap.py"
    wrapper.write_text(_WRAPPER, encoding="utf-8")
    daemon = start_daemon(
        root,
        tmp_path / "serve.log",
        {"RPCD_MALLOC_TRIM_THRESHOLD": str(8 * MIB)},
        prefix=[sys.executable, str(wrapper)],
    )
    try:
        logs = daemon.logs()
    finally:
        assert daemon.stop() == 0
    assert f"TEST tune_malloc {8 * MIB} {32 * MIB}" in logs
    frozen = [line for line in logs.splitlines() if line.startswith("TEST settled frozen=")]
    assert frozen and int(frozen[0].split("=")[1]) > 10_000
