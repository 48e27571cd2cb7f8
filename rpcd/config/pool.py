"""Check many files on every CPU: forked workers for the first two stages of each file.

Parsing and the schema checks are pure functions of a file's bytes and take most of a cold
build (tomllib alone is half of it); the files are independent. So a big tree is cut into
contiguous chunks of about equal bytes, one per CPU; a forked child checks each chunk but the
last, which this process checks meanwhile, and sends back plain data (pickled: no pydantic
object crosses, building the models again is cheaper than unpickling them). The models
(stage 3) of the workers' files are then built here, so the results are exactly those of the
serial path, in file order. Small trees, a process with other threads (a fork would copy
their locks, held or not) or a platform without ``fork`` stay serial, and a worker that
fails for any reason has its chunk checked here instead.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from rpcd.config.document import FileResult, check_model, check_structure
from rpcd.config.sources import SourceFile

# Below this many bytes to read, a fork costs more than it saves.
PARALLEL_MIN_BYTES = 512 * 1024

Staged = tuple[FileResult, dict[str, Any] | None]
# What a worker sends back per file: digest, findings, broken ids, text, pruned document.
_Wire = tuple[str, list[Any], dict[str, set[str]], str | None, dict[str, Any] | None]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_files(sources: Sequence[SourceFile], max_bytes: int, jobs: int = 1) -> list[FileResult]:
    """``check_file`` of every source, in order, using up to ``jobs`` processes."""
    chunks = _chunks(sources, jobs) if _may_fork(sources, jobs) else [list(sources)]
    if len(chunks) == 1:
        return [check_model(*check_structure(s, max_bytes)) for s in sources]
    workers: list[tuple[int, int, list[SourceFile]]] = []
    staged: list[Staged] = []
    try:
        for chunk in chunks[:-1]:
            workers.append((*_spawn(chunk, max_bytes), chunk))
        # This chunk's models too, while the workers are still busy with theirs.
        own = [check_model(*check_structure(s, max_bytes)) for s in chunks[-1]]
        while workers:
            pid, fd, chunk = workers[0]
            staged += _collect(pid, fd, chunk, max_bytes)
            workers.pop(0)
    finally:
        for pid, fd, _ in workers:  # interrupted: no worker outlives the build
            _stop(pid, fd)
    return [check_model(result, document) for result, document in staged] + own


def _may_fork(sources: Sequence[SourceFile], jobs: int) -> bool:
    return (
        jobs > 1
        and hasattr(os, "fork")
        and sys.platform != "win32"
        and threading.active_count() == 1
        and sum(s.signature[0] for s in sources) >= PARALLEL_MIN_BYTES
    )


def _chunks(sources: Sequence[SourceFile], jobs: int) -> list[list[SourceFile]]:
    """Contiguous runs of about equal bytes (a file costs in proportion to its size).

    Equal, although this process has more to do: what it does before the fork (start-up,
    discovery) and after the join (the workers' models, the rules) is on the critical path
    whatever the split; between the two, its chunk and a worker's should end together.
    """
    total = sum(s.signature[0] for s in sources)
    chunks: list[list[SourceFile]] = [[]]
    done = 0
    for source in sources:
        if done >= total * len(chunks) / jobs and len(chunks) < jobs:
            chunks.append([])
        chunks[-1].append(source)
        done += source.signature[0]
    return [c for c in chunks if c]


def _spawn(chunk: list[SourceFile], max_bytes: int) -> tuple[int, int]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: never returns into the caller's stack
        code = 1
        try:
            os.close(read_end)
            wire: list[_Wire] = []
            for source in chunk:
                result, document = check_structure(source, max_bytes)
                wire.append(
                    (result.digest, result.findings, result.broken_ids, result.text, document)
                )
            data = memoryview(pickle.dumps(wire, protocol=pickle.HIGHEST_PROTOCOL))
            while data:
                data = data[os.write(write_end, data) :]
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def _stop(pid: int, fd: int) -> None:
    """Kill and reap a worker whose results are no longer wanted."""
    with contextlib.suppress(OSError):  # already gone
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):  # already reaped
        os.waitpid(pid, 0)
    with contextlib.suppress(OSError):  # already closed
        os.close(fd)


def _collect(pid: int, fd: int, chunk: list[SourceFile], max_bytes: int) -> list[Staged]:
    """A worker's results, or its chunk checked here when it did not deliver."""
    parts = []
    try:
        while chunk_ := os.read(fd, 1 << 20):
            parts.append(chunk_)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        try:
            wire: list[_Wire] = pickle.loads(b"".join(parts))
        except Exception:
            wire = []
        if len(wire) == len(chunk):
            staged: list[Staged] = []
            for source, (digest, findings, broken, text, document) in zip(chunk, wire, strict=True):
                result = FileResult(source, digest, findings, None, broken, text)
                staged.append((result, document))
            return staged
    return [check_structure(s, max_bytes) for s in chunk]
