"""Reload: build a new catalog beside the live one, swap only a valid one, never half of one.

``reload(holder, root)`` runs ``rpcd.server.core.loading.load`` (build with the previous file cache
for the incremental path, handler imports, secrets resolved again — env and file references
are re-read on every reload) on a thread of its own so the event loop keeps serving, then:

- valid: ``holder.swap(new)`` — one reference assignment; a request already running keeps the
  ``Loaded`` it took at its start, so in-flight calls finish on the catalog they began with;
- invalid: the live catalog stays, every finding is logged and kept for ``/v1/status``, and the
  failure is counted (``rpcd_reloads_total{result="failed"}``);
- not done after ``reload_timeout`` seconds (a handler module whose import blocks): the same,
  with a ``reload-timeout`` finding naming the module; the build is left running on its
  thread (``reload_build``), and a later reload that would wait for that module's import
  fails at once (``reload-blocked``) instead of waiting for ever. At most
  ``max_stuck_reloads`` builds are left running: past that a reload fails at once
  (``reload-stuck-limit``) without starting another thread, so repeated reloads of a tree
  that hangs cannot pile threads up.

``Reloader`` runs one reload at a time. ``Reloader.request()`` (what SIGHUP calls) coalesces a
burst: while a reload runs, further requests set one pending flag, and exactly one more reload
follows — it sees everything that changed meanwhile. Around each reload it tells systemd
``RELOADING=1`` + ``MONOTONIC_USEC`` (one datagram), then ``READY=1`` with a ``STATUS=`` line.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpcd.config import Finding, Report, Severity
from rpcd.server.core.loading import CatalogHolder, Loaded, load
from rpcd.server.ops.logs import update_secrets
from rpcd.server.ops.metrics import Metrics
from rpcd.server.ops.reload_build import STUCK, BuildThread, Stuck, blocked_on, held_imports, where
from rpcd.server.ops.sdnotify import Notifier

__all__ = [
    "ReloadResult",
    "Reloader",
    "freeze",
    "install_sighup",
    "reload",
    "status_line",
]

log = logging.getLogger("rpcd.reload")

#: Findings kept in a result (and shown on /v1/status); the count says how many there were.
MAX_FINDINGS = 50
#: ``Settings.reload_timeout``'s default, for callers without settings.
DEFAULT_TIMEOUT = 30.0
#: ``Settings.max_stuck_reloads``'s default, for callers without settings.
DEFAULT_STUCK_CAP = 4
#: ``Settings.reload_history``'s default, for callers without settings.
DEFAULT_HISTORY = 50
#: While a timed-out build still runs, how often a reload checks whether its build waits
#: for a module that build is importing (seconds).
BLOCKED_POLL = 0.05


@dataclass(frozen=True)
class ReloadResult:
    """What one reload did. ``content_hash`` is the catalog serving afterwards."""

    ok: bool
    changed: bool
    content_hash: str
    previous_hash: str
    started_at: float
    duration_s: float
    error: str | None = None
    error_count: int = 0
    findings: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": "ok" if self.ok else "failed",
            "changed": self.changed,
            "content_hash": self.content_hash,
            "previous_hash": self.previous_hash,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "duration_ms": round(self.duration_s * 1000, 1),
            "error": self.error,
            "error_count": self.error_count,
            "findings": list(self.findings),
        }


def _finding_dicts(report: Report) -> tuple[dict[str, Any], ...]:
    out = []
    for f in report:
        if f.severity is not Severity.ERROR:
            continue
        out.append({**f.as_dict(), "text": f.as_text()})
        if len(out) >= MAX_FINDINGS:
            break
    return tuple(out)


def freeze() -> None:
    """After a catalog load or swap: collect the build's cyclic garbage, then ``gc.freeze``
    what is left, so the collector never scans the catalog (nor aiohttp, pydantic, lxml) again:
    a full collection of a loaded daemon stalls every request in flight. A replaced catalog
    is still freed by reference counting."""
    gc.collect()
    gc.freeze()


async def reload(
    holder: CatalogHolder,
    root: Path | str,
    settings: Any = None,
    *,
    metrics: Metrics | None = None,
) -> ReloadResult:
    """Build, validate and (only when valid) swap in a new catalog; never raises for bad trees.

    ``settings`` (``rpcd.settings.Settings``) gives ``strict_secrets`` and ``short_secrets``,
    as at start-up, and ``reload_timeout``.
    """
    strict = bool(getattr(settings, "strict_secrets", True))
    short = str(getattr(settings, "short_secrets", "refuse"))
    timeout = float(getattr(settings, "reload_timeout", DEFAULT_TIMEOUT))
    stuck_cap = int(getattr(settings, "max_stuck_reloads", DEFAULT_STUCK_CAP))
    started, t0 = time.time(), time.perf_counter()
    old = holder.current
    old_hash = old.catalog.content_hash

    def failed(error: str, count: int, findings: tuple[dict[str, Any], ...] = ()) -> ReloadResult:
        """The old catalog keeps serving: the failure counted and described."""
        if metrics is not None:
            metrics.reload(False)
        return ReloadResult(
            ok=False,
            changed=False,
            content_hash=old_hash,
            previous_hash=old_hash,
            started_at=started,
            duration_s=time.perf_counter() - t0,
            error=error,
            error_count=count,
            findings=findings,
        )

    stuck = STUCK.current()
    if len(stuck) >= stuck_cap:
        overran = _too_many_stuck(stuck, stuck_cap)
        log.error("reload failed: %s", overran.finding.as_text())
        return failed(overran.error, 1, _finding_dicts(Report([overran.finding])))
    try:
        outcome = await _build(
            functools.partial(
                load, root, old, strict_secrets=strict, short_secrets=short, settings=settings
            ),
            timeout,
        )
    except Exception as exc:  # a bug or an I/O error in the build: still keep the old catalog
        log.exception("reload of %s failed unexpectedly; the old catalog keeps serving", root)
        return failed(f"internal error during reload ({type(exc).__name__})", 1)
    if isinstance(outcome, Overran):
        log.error("reload failed: %s", outcome.finding.as_text())
        return failed(outcome.error, 1, _finding_dicts(Report([outcome.finding])))
    if isinstance(outcome, Report):
        findings = _finding_dicts(outcome)
        count = outcome.error_count
        plural = "s" if count != 1 else ""
        error = f"invalid tree: {count} error{plural}; the old catalog keeps serving"
        if findings:
            error += f" (first: {findings[0]['text']})"
        log.error(
            "reload refused: %d error(s) in %s; still serving %s",
            count,
            root,
            old_hash[:12],
            extra={"content_hash": old_hash},
        )
        for finding in outcome:
            if finding.severity is Severity.ERROR:
                log.error("reload finding: %s", finding.as_text())
        return failed(error, count, findings)
    update_secrets(outcome.secrets)  # the log redaction filter learns the new values first
    holder.swap(outcome)
    freeze()
    new_hash = outcome.catalog.content_hash
    changed = new_hash != old_hash
    log.info(
        "reload ok: %s -> %s%s",
        old_hash[:12],
        new_hash[:12],
        "" if changed else " (unchanged; secrets re-read)",
        extra={"content_hash": new_hash},
    )
    if metrics is not None:
        metrics.reload(True)
        metrics.set_catalog(new_hash)
    return ReloadResult(True, changed, new_hash, old_hash, started, time.perf_counter() - t0)


@dataclass(frozen=True)
class Overran:
    """A build that did not end in time: the finding that says why, and its one-line error."""

    finding: Finding
    error: str


async def _build(fn: Callable[[], Loaded | Report], timeout: float) -> Loaded | Report | Overran:
    """``fn()`` on its own thread (``reload_build.BuildThread``), waited for at most
    ``timeout`` seconds; earlier when it waits for an import a timed-out build holds."""
    build = BuildThread(fn)
    build.start()
    waiter = asyncio.wrap_future(build.future)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            held = held_imports()
            remaining = deadline - loop.time()
            wait = min(remaining, BLOCKED_POLL) if held else remaining
            await asyncio.wait({waiter}, timeout=max(0.0, wait))
            if waiter.done():
                result: Loaded | Report = waiter.result()
                return result
            name = blocked_on(build, held) if held else None
            if name is not None:
                STUCK.add(build)
                return _blocked(name, held[name])
            if loop.time() >= deadline:
                overran = _timed_out(build, timeout)
                STUCK.add(build)
                return overran
    finally:
        if not waiter.done():
            waiter.cancel()


def _timed_out(build: BuildThread, timeout: float) -> Overran:
    module, place = where(build)
    if module is None:
        message = (
            f"the reload did not end within reload_timeout ({timeout:g} s): it is still "
            f"running at {place}. The old catalog keeps serving; fix what it waits for "
            "(a secret file that is a pipe, a hung file system), then reload again"
        )
        error = f"reload timed out after {timeout:g} s; the old catalog keeps serving"
    else:
        message = (
            f"the reload did not end within reload_timeout ({timeout:g} s): it is still "
            f"importing module `{module}` ({place}). The old catalog keeps serving. A handler "
            "module must not block when imported (network, locks, input): fix it, then reload "
            "again. Python cannot abandon an import: until this one ends, a reload that "
            f"imports `{module}` fails at once, and a restart (systemctl restart rpcd) clears it"
        )
        error = (
            f"reload timed out after {timeout:g} s importing module `{module}`; "
            "the old catalog keeps serving"
        )
    return Overran(Finding("reload-timeout", message), error)


def _too_many_stuck(stuck: list[Stuck], cap: int) -> Overran:
    oldest = min(stuck, key=lambda entry: entry.timed_out_at)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(oldest.timed_out_at))
    module, place = where(oldest.build)
    waits = f"importing module `{module}` ({place})" if module else f"at {place}"
    message = (
        f"{len(stuck)} earlier reload builds are still running (max_stuck_reloads is {cap}; "
        f"the oldest timed out at {since} and is still {waits}), so this reload does not start "
        "another. The old catalog keeps serving. Fix what they wait for; Python cannot stop "
        "them, a restart (systemctl restart rpcd) does"
    )
    error = (
        f"reload refused: {len(stuck)} earlier reloads still stuck; the old catalog keeps serving"
    )
    return Overran(Finding("reload-stuck-limit", message), error)


def _blocked(name: str, stuck: Stuck) -> Overran:
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stuck.timed_out_at))
    message = (
        f"the reload imports module `{name}`, which a reload that timed out at {since} is "
        "still importing, and Python lets no other import of it go on until that one ends. "
        "The old catalog keeps serving. Restart the daemon (systemctl restart rpcd) to import "
        f"`{name}` afresh; meanwhile a reload that does not import it works"
    )
    error = (
        f"reload needs module `{name}`, still being imported by a reload that timed out: "
        "restart the daemon; the old catalog keeps serving"
    )
    return Overran(Finding("reload-blocked", message), error)


def status_line(loaded: Loaded, last: ReloadResult | None) -> str:
    """The one-line ``STATUS=`` for systemd: the revision serving, or the last reload error."""
    rev = f"serving {loaded.catalog.content_hash[:12]}"
    if loaded.git_commit:
        rev += f" (git {loaded.git_commit[:12]})"
    if last is not None and not last.ok:
        return f"reload failed, {rev}: {last.error_count} error(s)"
    return rev


class Reloader:
    """One reload at a time, bursts coalesced, systemd told before and after."""

    def __init__(
        self,
        holder: CatalogHolder,
        root: Path | str,
        settings: Any = None,
        *,
        metrics: Metrics | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.holder = holder
        self.root = Path(root)
        self.settings = settings
        self.metrics = metrics
        self.notifier = notifier or Notifier({})
        self.last: ReloadResult | None = None
        #: The last ``reload_history`` results since start, oldest first (the console shows them).
        self.history: deque[ReloadResult] = deque(
            maxlen=int(getattr(settings, "reload_history", DEFAULT_HISTORY))
        )
        self.ok_count = 0
        self.failed_count = 0
        self._lock = asyncio.Lock()
        self._pending = False
        self._task: asyncio.Task[None] | None = None

    async def reload(self) -> ReloadResult:
        """Run one reload now (after any running one) and return its result."""
        async with self._lock:
            self.notifier.reloading(f"reloading {self.root}")
            result: ReloadResult | None = None
            try:
                result = await reload(self.holder, self.root, self.settings, metrics=self.metrics)
                self.last = result
                self.history.append(result)
                if result.ok:
                    self.ok_count += 1
                else:
                    self.failed_count += 1
            finally:
                # READY=1 always follows RELOADING=1, or systemd waits for it until the timeout.
                self.notifier.ready(status_line(self.holder.current, result or self.last))
            return result

    def request(self) -> None:
        """Ask for a reload without waiting (the SIGHUP handler); a burst becomes one more."""
        if self._task is not None and not self._task.done():
            self._pending = True
            return
        self._task = asyncio.get_running_loop().create_task(self._drain(), name="rpcd-reload")

    async def _drain(self) -> None:
        while True:
            # Requests that came before this point are served by the reload that starts now.
            self._pending = False
            try:
                await self.reload()
            except Exception:  # never let a reload bug kill the signal path
                log.exception("reload crashed; the old catalog keeps serving")
            if not self._pending:
                return

    async def wait_idle(self) -> None:
        """Wait for requested reloads to finish (tests, shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def status(self) -> dict[str, Any]:
        """For ``/v1/status``: counts and the last reload's result (with its findings)."""
        return {
            "reloads_ok": self.ok_count,
            "reloads_failed": self.failed_count,
            "last": None if self.last is None else self.last.to_dict(),
        }


def install_sighup(reloader: Reloader, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """SIGHUP requests a reload (coalesced). Unix only; call from inside the running loop."""
    loop = loop or asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reloader.request)
