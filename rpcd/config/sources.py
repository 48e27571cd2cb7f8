"""Find the config files of a tree and read their bytes, turning every I/O mishap into a finding.

A config root holds ``rpcd.toml``, ``connections.d/`` and ``services.d/``; the two folders are
searched recursively for ``*.toml``. Symlinked folders are followed once (a loop is reported,
not walked forever); anything that is not a regular file is reported, never opened (a FIFO
named ``x.toml`` would block a naive reader).
"""

from __future__ import annotations

import errno
import operator
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from rpcd.config.findings import Finding

SITE_FILE = "rpcd.toml"
CONNECTIONS_DIR = "connections.d"
SERVICES_DIR = "services.d"
DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024
# Never block: a file swapped for a FIFO between listing and reading would wait for a writer.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


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
    path: str | Path  # a str from discovery: no Path object per file of a 10,000-file tree
    kind: FileKind
    signature: tuple[int, int, int, int]


Known = Callable[[str], "SourceFile | None"]

# A folder's listing is trusted again only if the folder had not changed for this long when it
# was listed: a file system with coarse timestamps could otherwise give a folder changed just
# after the listing the very mtime it had (2 s: FAT's granularity, the coarsest in use).
SETTLED_NS = 2_000_000_000
_MODE = operator.attrgetter("st_mode")
_REL = operator.attrgetter("rel")
_SIGNATURE = operator.attrgetter("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino")


@dataclass(frozen=True, slots=True)
class Listing:
    """What a folder held when it was last listed: its config files and its subfolders.

    Kept only for a folder with nothing but regular ``*.toml`` files, folders and other
    regular files (no symlink, nothing reported): whether those stay what they are can be
    told from the folder's own stat signature, which any entry added, removed or renamed
    moves. A rebuild then stats the files by path and skips listing and sorting the folder.
    """

    signature: tuple[int, int, int, int, int]
    paths: tuple[str, ...]  # the *.toml files, in name order
    rels: tuple[str, ...]
    folders: tuple[str, ...]


Listings = dict[str, Listing]


def discover(
    root: Path,
    known: Known | None = None,
    listings: Listings | None = None,
    listed: Listings | None = None,
) -> tuple[list[SourceFile], list[Finding]]:
    """Every config file under ``root``, sorted by relative path, and the problems met.

    ``known`` gives the file a previous run found at a relative path: when its signature is
    unchanged, that very ``SourceFile`` is returned again, so a caller tells an unchanged file
    by identity. ``listings`` are the folder listings a previous run left in its ``listed``
    (see ``Listing``); they spare a rebuild listing the folders that did not change.
    """
    files: list[SourceFile] = []
    findings: list[Finding] = []
    site = root / SITE_FILE
    entry = _entry(root, site, FileKind.SITE, findings, known)
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
    for folder, kind in (
        (CONNECTIONS_DIR, FileKind.CONNECTIONS),
        (SERVICES_DIR, FileKind.SERVICES),
    ):
        base = root / folder
        if base.is_dir():
            files.extend(_walk(root, base, kind, findings, known, listings, listed))
        elif os.path.lexists(base):
            findings.append(
                Finding(
                    "not-a-file",
                    f"{folder} must be a folder of *.toml files, but it is {_what(base)}: "
                    "replace it with a folder",
                    file=folder,
                )
            )
    files.sort(key=_REL)
    return files, findings


def _walk(
    root: Path,
    base: Path,
    kind: FileKind,
    findings: list[Finding],
    known: Known | None = None,
    listings: Listings | None = None,
    listed: Listings | None = None,
) -> list[SourceFile]:
    """Every ``*.toml`` under ``base``, folders and files in name order.

    ``os.scandir`` and ``DirEntry.stat``: one stat per file and no path arithmetic in Python,
    so listing 10,000 files for a rebuild costs about what the 10,000 stat calls cost.
    """
    found: list[SourceFile] = []
    seen_dirs: set[tuple[int, int]] = set()
    root_prefix = str(root).rstrip(os.sep) + os.sep
    settled = time.time_ns() - SETTLED_NS

    def visit(path: str) -> None:
        try:
            st = os.stat(path)
        except OSError:
            return
        key = (st.st_dev, st.st_ino)
        rel_dir = _rel_str(root_prefix, path)
        if key in seen_dirs:
            findings.append(
                Finding(
                    "symlink-loop",
                    "this folder was already read through another path (a symlink loop, or two "
                    "links to one folder); it was skipped: remove the link",
                    file=rel_dir,
                )
            )
            return
        seen_dirs.add(key)
        state = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_size)
        cached = listings.get(path) if listings is not None else None
        if cached is not None and cached.signature == state:
            again = _files_of(cached, kind, known)
            if again is not None:
                found.extend(again)
                if listed is not None:
                    listed[path] = cached
                for folder in cached.folders:
                    visit(folder)
                return
        reported = len(findings)
        plain = True  # no symlink among the entries
        paths: list[str] = []
        rels: list[str] = []
        try:
            with os.scandir(path) as listing:
                entries = list(listing)
        except OSError as exc:
            findings.append(
                Finding(
                    "file-unreadable",
                    f"this folder cannot be listed ({exc.strerror}): its files were not "
                    "checked; fix its permissions",
                    file=rel_dir,
                )
            )
            return
        entries.sort(key=lambda e: e.name)
        folders = []
        prefix = rel_dir + "/"
        for entry in entries:
            name = entry.name
            if plain and entry.is_symlink():
                plain = False
            try:
                is_dir = entry.is_dir()  # follows symlinks, as os.walk(followlinks=True) does
            except OSError:
                is_dir = False
            if is_dir:
                folders.append(entry.path)
                if name.endswith(".toml"):
                    # Reported, and still searched for config files, never read as one.
                    findings.append(
                        Finding(
                            "not-a-file",
                            "is a directory, not a TOML file: rename it (only files may end in "
                            ".toml); it is still searched for config files",
                            file=prefix + name,
                        )
                    )
            elif name.endswith(".toml"):
                rel = prefix + name
                try:
                    info: os.stat_result | None = entry.stat()
                except OSError:
                    info = None
                if info is not None and stat.S_ISREG(info.st_mode):  # the usual case, inline
                    signature = (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
                    before = known(rel) if known is not None else None
                    if before is None or before.signature != signature or before.kind is not kind:
                        before = SourceFile(rel, entry.path, kind, signature)
                    found.append(before)
                    paths.append(entry.path)
                    rels.append(rel)
                    continue
                plain = False
                source = _entry_at(entry.path, rel, kind, findings, known)  # says what it is
                if source is not None:
                    found.append(source)
        if (
            listed is not None
            and plain
            and len(findings) == reported
            and st.st_mtime_ns < settled
            and st.st_ctime_ns < settled
        ):
            listed[path] = Listing(state, tuple(paths), tuple(rels), tuple(folders))
        for folder in folders:
            visit(folder)

    visit(str(base))
    return found


def _files_of(listing: Listing, kind: FileKind, known: Known | None) -> list[SourceFile] | None:
    """The files of an unchanged folder, by their listing: ``None`` when one is no longer a
    regular file one can stat (then the folder is listed again, and says what it is)."""
    try:
        stats = list(map(os.stat, listing.paths))
    except OSError:
        return None
    if not all(map(stat.S_ISREG, map(_MODE, stats))):
        return None
    files = []
    for rel, path, signature in zip(
        listing.rels, listing.paths, map(_SIGNATURE, stats), strict=True
    ):
        before = known(rel) if known is not None else None
        if before is None or before.signature != signature or before.kind is not kind:
            before = SourceFile(rel, path, kind, signature)
        files.append(before)
    return files


def _rel_str(root_prefix: str, path: str) -> str:
    if path.startswith(root_prefix):
        path = path[len(root_prefix) :]
    return path.replace(os.sep, "/") if os.sep != "/" else path


def _entry(
    root: Path, path: Path, kind: FileKind, findings: list[Finding], known: Known | None
) -> SourceFile | None:
    return _entry_at(str(path), _rel(root, path), kind, findings, known)


def _entry_at(
    path: str, rel: str, kind: FileKind, findings: list[Finding], known: Known | None = None
) -> SourceFile | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.readlink(path)
            findings.append(
                Finding(
                    "file-unreadable",
                    f"is a symlink to {target}, which does not exist: fix the link or remove it",
                    file=rel,
                )
            )
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            findings.append(
                Finding(
                    "symlink-loop",
                    "is a symlink that leads back to itself (a loop): point it at a real "
                    "file or remove it",
                    file=rel,
                )
            )
        else:
            findings.append(
                Finding(
                    "file-unreadable",
                    f"cannot be read ({exc.strerror}): fix its permissions",
                    file=rel,
                )
            )
        return None
    if not stat.S_ISREG(st.st_mode):
        # Reported, never opened: reading a FIFO would block, a device could be endless.
        findings.append(
            Finding(
                "not-a-file",
                f"is {_what_mode(st.st_mode)}, not a regular file, so it was not read: "
                "config files "
                "must be regular files; rename or remove it",
                file=rel,
            )
        )
        return None
    signature = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if known is not None:
        before = known(rel)
        if before is not None and before.signature == signature and before.kind is kind:
            return before
    return SourceFile(rel, path, kind, signature)


def read_bytes(source: SourceFile, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes | Finding:
    """The file's bytes, or a finding saying why they cannot be had."""
    if source.signature[0] > max_bytes:
        return Finding(
            "file-too-large",
            f"is {source.signature[0]:,} bytes, over the limit of {max_bytes:,} bytes, and was not "
            "read: split it into several files (is it really a config file?)",
            file=source.rel,
        )
    try:
        data = _read(os.fspath(source.path), source.signature[0], max_bytes)
    except OSError as exc:
        return Finding(
            "file-unreadable",
            f"cannot be read ({exc.strerror}): check its permissions",
            file=source.rel,
        )
    if len(data) > max_bytes:
        return Finding(
            "file-too-large",
            f"grew over the limit of {max_bytes:,} bytes while being read: split it into "
            "several files",
            file=source.rel,
        )
    return data


def _read(path: str, size: int, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes of the file that had ``size`` bytes when it was listed.

    The one place config files are opened. os.open/os.read, not open(): no buffered reader
    per file, and a buffer of the file's size rather than of the limit (``read(max_bytes + 1)``
    allocates 16 MiB for every file).
    """
    fd = os.open(path, _READ_FLAGS)
    try:
        data = os.read(fd, size + 1)
        if len(data) != size:  # it grew, or a short read: on to the end, bounded
            while len(data) <= max_bytes:
                chunk = os.read(fd, max_bytes + 1 - len(data))
                if not chunk:
                    break
                data += chunk
        return data
    finally:
        os.close(fd)


def _what(path: Path) -> str:
    try:
        return _what_mode(path.stat().st_mode)
    except OSError:
        return "unreadable"


def _what_mode(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
