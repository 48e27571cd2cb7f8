"""One side of a diff: a directory as it is, or a git revision copied out of the object store.

A revision is read with ``git ls-tree`` and ``git cat-file --batch`` only, never ``checkout``:
the work tree and the index of the repository the command runs in stay exactly as they were
(a reviewer may have uncommitted edits). Only the config files are copied, into a temp dir
that is removed afterwards.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rpcd.config import BuildResult, build
from rpcd.config.sources import CONNECTIONS_DIR, SERVICES_DIR, SITE_FILE

CONFIG_PATHS = (SITE_FILE, CONNECTIONS_DIR, SERVICES_DIR)


class GitSourceError(Exception):
    """A side that cannot be read at all: neither a directory nor a revision of this repository."""


@dataclass(frozen=True, slots=True)
class Side:
    """A materialised side: where its tree is, how to name it, and the build of that tree."""

    label: str
    root: Path
    revision: str | None  # full commit id when the side is a git revision
    result: BuildResult


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}  # never refresh the index
    proc = subprocess.run(
        ["git", *args], cwd=cwd, input=stdin, capture_output=True, env=env, check=False
    )
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip() or f"git {args[0]} failed"
        raise GitSourceError(message)
    return proc.stdout


def _repository(cwd: Path) -> tuple[Path, str]:
    """The top of the repository ``cwd`` is in, and ``cwd``'s path inside it."""
    try:
        top = _git(cwd, "rev-parse", "--show-toplevel").decode().strip()
        prefix = _git(cwd, "rev-parse", "--show-prefix").decode().strip()
    except (GitSourceError, OSError) as exc:
        raise GitSourceError(
            f"not a directory, and {cwd} is not inside a git repository ({exc})"
        ) from exc
    return Path(top), prefix.rstrip("/")


def _extract(top: Path, commit: str, root_in_repo: str, dest: Path) -> None:
    """Copy the config files of ``commit`` under ``root_in_repo`` into ``dest``."""
    base = f"{root_in_repo}/" if root_in_repo else ""
    listing = _git(
        top, "ls-tree", "-r", "-z", "--full-tree", commit, "--", *(base + p for p in CONFIG_PATHS)
    )
    entries: list[tuple[str, str, str]] = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        path = name.decode("utf-8", errors="surrogateescape")
        if kind == "blob":
            entries.append((mode, oid, path[len(base) :]))
    blobs = _cat_blobs(top, [oid for _, oid, _ in entries])
    for (mode, _oid, rel), data in zip(entries, blobs, strict=True):
        if rel.startswith("/") or ".." in rel.split("/"):
            raise GitSourceError(f"refusing the path {rel!r} in {commit}")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            _link(dest, rel, data.decode("utf-8", errors="surrogateescape"), commit)
        else:
            target.write_bytes(data)


def _link(dest: Path, rel: str, link: str, commit: str) -> None:
    """Recreate a symlink only if it stays inside the tree: a link to /proc/self/environ from an
    untrusted pull request must not be read by the CI job that reviews it."""
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
    if posixpath.isabs(link) or resolved == ".." or resolved.startswith("../"):
        raise GitSourceError(
            f"{rel} in {commit} is a symlink leaving the config tree ({link}): not followed"
        )
    (dest / rel).symlink_to(link)


def _cat_blobs(top: Path, oids: list[str]) -> list[bytes]:
    """Read many blobs with one ``git cat-file --batch`` process."""
    if not oids:
        return []
    out = _git(top, "cat-file", "--batch", stdin=("\n".join(oids) + "\n").encode())
    blobs: list[bytes] = []
    pos = 0
    for oid in oids:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].decode().split()
        if len(header) != 3 or header[0] != oid:
            raise GitSourceError(f"git cat-file: unexpected answer for {oid}: {' '.join(header)}")
        size = int(header[2])
        start = header_end + 1
        blobs.append(out[start : start + size])
        pos = start + size + 1
    return blobs


@contextmanager
def materialise(spec: str, cwd: Path, root_in_repo: str | None = None) -> Iterator[Side]:
    """A side named ``spec``: an existing directory wins, else a revision of ``cwd``'s repository.

    ``root_in_repo`` is where the config root sits inside the repository (default: ``cwd``'s
    own place in it, so running in a sub-folder diffs that sub-folder).
    """
    directory = cwd / spec
    if directory.is_dir():
        yield Side(spec, directory, None, build(directory))
        return
    top, prefix = _repository(cwd)
    root = (prefix if root_in_repo is None else root_in_repo).strip("/")
    if root == ".":
        root = ""
    try:
        commit = (
            _git(top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{spec}^{{commit}}")
            .decode()
            .strip()
        )
    except GitSourceError:
        raise GitSourceError(f"{spec!r} is neither a directory nor a revision of {top}") from None
    with tempfile.TemporaryDirectory(prefix="rpcd-diff-") as tmp:
        dest = Path(tmp)
        _extract(top, commit, root, dest)
        yield Side(spec, dest, commit, build(dest))
