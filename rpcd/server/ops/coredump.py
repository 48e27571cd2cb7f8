"""No core dumps of the daemon: its memory holds every resolved secret in plain text.

``forbid_core_dumps()`` runs first thing in ``rpcd serve``, before any secret is read. It
sets RLIMIT_CORE to 0, soft and hard (a handler cannot raise it again), and on Linux marks
the process not dumpable with ``prctl(PR_SET_DUMPABLE, 0)``: the kernel then writes no core
at all, also where ``core_pattern`` pipes cores to a collector that does not look at
RLIMIT_CORE, and processes of the same user can no longer ptrace it or read its
``/proc/<pid>/environ`` and ``mem`` (root still can). The unit file sets ``LimitCORE=0`` too,
so the limit holds from the first instruction.

Elsewhere (no ``prctl``) only the limit is set; a debug line of ``rpcd serve`` says which.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import sys
from collections.abc import Callable

__all__ = ["PR_GET_DUMPABLE", "PR_SET_DUMPABLE", "dumpable", "forbid_core_dumps"]

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, on Linux; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    func = libc.prctl
    func.restype = ctypes.c_int
    prctl: Callable[..., int] = func
    return prctl


def forbid_core_dumps() -> str:
    """RLIMIT_CORE 0 (soft and hard) and, on Linux, not dumpable; what was done, for the log
    (which is not set up yet this early). Raises OSError if the kernel refuses either: a
    daemon holding secrets should not run with cores possible."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    prctl = _prctl()
    if prctl is None:
        return f"core dumps off: RLIMIT_CORE is 0 (no prctl on {sys.platform})"
    if prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_DUMPABLE, 0) failed: {os.strerror(errno)}")
    return "core dumps off: RLIMIT_CORE is 0 and the process is not dumpable"


def dumpable() -> bool | None:
    """Whether this process may dump core (``PR_GET_DUMPABLE``); None without prctl."""
    prctl = _prctl()
    if prctl is None:
        return None
    return bool(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
