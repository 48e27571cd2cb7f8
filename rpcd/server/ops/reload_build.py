"""A reload's build on a thread of its own, and what a build that overran its deadline is stuck on.

A handler module whose import blocks (a network call, a lock, a read from a pipe) would hold
the thread that imports it for ever, and Python can neither stop a thread nor abandon an
import. So each build (``loading.load``) gets a daemon thread of its own (``BuildThread``,
never a pool worker a later reload or call would wait for, and never one that holds up the
process at exit); ``reload`` stops waiting for it at its deadline and leaves it behind as
*stuck* (``STUCK``).

Python keeps one lock per module being imported: a later build that imports a module a stuck
build is still importing would wait on that lock for ever too. ``blocked_on`` sees that from
the later build's stack (it is in ``importlib``'s ``_find_and_load`` or ``_lock_unlock_module``
for a name whose lock a stuck build holds, in ``_find_and_load_unlocked``), so that reload
fails at once instead of at its deadline. The stacks are read with ``sys._current_frames``,
as ``faulthandler`` and debuggers do.
"""

from __future__ import annotations

import concurrent.futures
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

__all__ = ["STUCK", "BuildThread", "Stuck", "blocked_on", "held_imports", "where"]

log = logging.getLogger("rpcd.reload")


def _in_importlib(filename: str) -> bool:
    """A frame of ``importlib``'s own machinery (frozen, as CPython ships it, or not)."""
    return filename.startswith("<frozen importlib") or "/importlib/_bootstrap" in filename


class BuildThread:
    """``fn()`` on a new daemon thread; its outcome in ``future``."""

    def __init__(self, fn: Callable[[], Any], name: str = "rpcd-reload-build") -> None:
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.started_at = time.time()
        self._fn = fn
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self._fn()
        except BaseException as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)

    @property
    def ident(self) -> int | None:
        return self.thread.ident


@dataclass(frozen=True)
class Stuck:
    """A build that overran its deadline and may still be running."""

    build: BuildThread
    timed_out_at: float

    def alive(self) -> bool:
        return self.build.thread.is_alive()


class _StuckBuilds:
    """The builds left behind; each is forgotten (and logged) once its thread ends."""

    def __init__(self) -> None:
        self._builds: list[Stuck] = []
        self._lock = threading.Lock()

    def add(self, build: BuildThread) -> None:
        entry = Stuck(build, time.time())
        with self._lock:
            self._builds.append(entry)
        build.future.add_done_callback(lambda _: self._ended(entry))

    def _ended(self, entry: Stuck) -> None:
        with self._lock:
            if entry in self._builds:
                self._builds.remove(entry)
        log.warning(
            "a reload build left running at %s has ended; its result was discarded",
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.timed_out_at)),
        )

    def current(self) -> list[Stuck]:
        with self._lock:
            self._builds = [b for b in self._builds if b.alive()]
            return list(self._builds)


#: The builds of this process that timed out and have not ended.
STUCK = _StuckBuilds()


def _frames(ident: int | None) -> list[FrameType]:
    """The thread's stack, innermost first (empty when it is not running)."""
    frame = sys._current_frames().get(ident) if ident is not None else None
    out: list[FrameType] = []
    while frame is not None:
        out.append(frame)
        frame = frame.f_back
    return out


def _import_names(ident: int | None, functions: frozenset[str]) -> list[str]:
    """The module names of the thread's ``importlib._bootstrap`` frames of ``functions``,
    innermost first."""
    names: list[str] = []
    for frame in _frames(ident):
        code = frame.f_code
        if code.co_name in functions and _in_importlib(code.co_filename):
            name = frame.f_locals.get("name")
            if isinstance(name, str) and name not in names:
                names.append(name)
    return names


_HOLDING = frozenset({"_find_and_load_unlocked"})  # runs with the module's lock held
_WANTING = frozenset({"_find_and_load", "_lock_unlock_module"})  # takes the module's lock


def held_imports() -> dict[str, Stuck]:
    """Module name -> the stuck build that holds its import lock (is importing it)."""
    held: dict[str, Stuck] = {}
    for stuck in STUCK.current():
        for name in _import_names(stuck.build.ident, _HOLDING):
            held.setdefault(name, stuck)
    return held


def blocked_on(build: BuildThread, held: dict[str, Stuck]) -> str | None:
    """The module ``build`` waits (or is about to wait) for because a stuck build is still
    importing it, innermost first; None when it needs none of them."""
    for name in _import_names(build.ident, _WANTING):
        if name in held:
            return name
    return None


def where(build: BuildThread) -> tuple[str | None, str]:
    """What a running build is doing: the module it is importing (the innermost one whose
    body runs), if any, and the innermost place in code outside ``importlib``."""
    module: str | None = None
    place = "an unknown place"
    for frame in _frames(build.ident):
        code = frame.f_code
        if _in_importlib(code.co_filename):
            continue
        if place == "an unknown place":
            place = f"{code.co_filename}, line {frame.f_lineno}, in {code.co_name}"
        if code.co_name == "<module>":
            name = frame.f_globals.get("__name__")
            if isinstance(name, str):
                module = name
                break
    return module, place
