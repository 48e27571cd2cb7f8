"""Find the config files of a tree and read their bytes, turning every I/O mishap into a finding.

A config root holds ``rpcd.toml``, ``connections.d/`` and ``services.d/``; the two folders are
searched recursively for ``*.toml``. Symlinked folders are followed once (a loop is reported,
not walked forever); anything that is not a regular file is reported, never opened (a FIFO
named ``x.toml`` would block a naive reader).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from rpcd.config.findings import Finding

SITE_FILE = "rpcd.toml"
CONNECTIONS_DIR = "connections.d"
SERVICES_DIR = "services.d"
DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024


class FileKind(StrEnum):
    SITE = "rpcd"
    CONNECTIONS = "connections"
    SERVICES = "services"


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A discovered config file: its path relative to the root (posix) and its stat signature.

    The signature (size, mtime, ctime, inode) is how a rebuild knows a file did not change
    without reading it: any write moves ctime, and a git checkout replaces the inode.
    """

    rel: str
    path: Path
    kind: FileKind
    signature: tuple[int, int, int, int]


def discover(root: Path) -> tuple[list[SourceFile], list[Finding]]:
    """Every config file under ``root``, sorted by relative path, and the problems met finding them."""
    files: list[SourceFile] = []
    findings: list[Finding] = []
    site = root / SITE_FILE
    entry = _entry(root, site, FileKind.SITE, findings)
    if entry is not None:
        files.append(entry)
    elif not os.path.lexists(site):
        findings.append(
            Finding(
                "missing-site-file",
                f"{SITE_FILE} is missing: create it with `version = 1` and your institutions",
                file=SITE_FILE,
            )
        )
    for folder, kind in ((CONNECTIONS_DIR, FileKind.CONNECTIONS), (SERVICES_DIR, FileKind.SERVICES)):
        base = root / folder
        if base.is_dir():
            files.extend(_walk(root, base, kind, findings))
    files.sort(key=lambda f: f.rel)
    return files, findings


def _walk(root: Path, base: Path, kind: FileKind, findings: list[Finding]) -> list[SourceFile]:
    found: list[SourceFile] = []
    seen_dirs: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(base, followlinks=True, onerror=None):
        here = Path(dirpath)
        try:
            st = here.stat()
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            findings.append(
                Finding(
                    "symlink-loop",
                    "this folder was already read through another path (a symlink loop?); "
                    "it is skipped: remove the link",
                    file=_rel(root, here),
                )
            )
            dirnames[:] = []
            continue
        seen_dirs.add(key)
        dirnames.sort()
        names = [n for n in filenames if n.endswith(".toml")]
        # A folder named x.toml is listed among dirnames; report it, never descend as a file.
        for name in list(dirnames):
            if name.endswith(".toml"):
                findings.append(
                    Finding(
                        "not-a-file",
                        "is a directory, not a TOML file: rename it (config files end in .toml)",
                        file=_rel(root, here / name),
                    )
                )
        for name in sorted(names):
            entry = _entry(root, here / name, kind, findings)
            if entry is not None:
                found.append(entry)
    return found


def _entry(root: Path, path: Path, kind: FileKind, findings: list[Finding]) -> SourceFile | None:
    rel = _rel(root, path)
    try:
        st = path.stat()
    except FileNotFoundError:
        if os.path.islink(path):
            findings.append(Finding("file-unreadable", "is a dangling symlink: fix or remove it", file=rel))
        return None
    except OSError as exc:
        why = "is a symlink loop" if exc.errno == errno.ELOOP else f"cannot be read ({exc.strerror})"
        findings.append(Finding("file-unreadable", f"{why}: fix or remove it", file=rel))
        return None
    if not stat.S_ISREG(st.st_mode):
        what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        if kind is not FileKind.SITE or not stat.S_ISDIR(st.st_mode):
            findings.append(Finding("not-a-file", f"is {what}: config files must be regular files", file=rel))
        return None
    return SourceFile(rel, path, kind, (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))


def read_bytes(source: SourceFile, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes | Finding:
    """The file's bytes, or a finding saying why they cannot be had."""
    if source.signature[0] > max_bytes:
        return Finding(
            "file-too-large",
            f"is {source.signature[0]:,} bytes, over the limit of {max_bytes:,}: "
            "split it into several files",
            file=source.rel,
        )
    try:
        with open(source.path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        return Finding("file-unreadable", f"cannot be read ({exc.strerror}): check its permissions", file=source.rel)
    if len(data) > max_bytes:
        return Finding("file-too-large", f"is over the limit of {max_bytes:,} bytes: split it", file=source.rel)
    return data


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
