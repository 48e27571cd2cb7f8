"""Secret scopes: which secret references a connection may use, by the folder it lies in.

A file under ``connections.d/<institution>/`` is merged by that institution's admins alone
(CODEOWNERS, rule folder-ownership), so it may only spend that institution's secrets: env
names that start with one of its ``env_prefixes``, systemd credentials that start with one of
its ``credential_prefixes``, files under one of its ``file_dirs`` (``[institution.secrets]``
in rpcd.toml; defaults derived from the id). A name inside two institutions' scopes belongs
to neither. The site's own files keep the whole namespace, except the daemon's own secrets
(session key, TLS key, settings), which no connection may reference at all.

``validate`` judges references as written (paths normalised lexically); the daemon, at load,
judges them again where they resolve (symlinks followed), before reading any of them.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rpcd.config.models import Institution, InstitutionSecrets, SecretRef
from rpcd.config.sources import CONNECTIONS_DIR

__all__ = [
    "DAEMON_CREDENTIALS",
    "DAEMON_ENV",
    "DAEMON_FILES",
    "DEFAULT_SECRETS_DIR",
    "RealPaths",
    "Scope",
    "ScopeTable",
    "daemon_env_names",
    "folder_of",
    "normal_path",
    "reserved_problem",
    "resolved_problem",
]

#: Where an institution's secret files live unless it declares ``file_dirs``.
DEFAULT_SECRETS_DIR = "/etc/rpcd/secrets"

#: The environment variables ``rpcd serve`` reads as its own settings (pydantic-settings reads
#: ``RPCD_<setting>`` whatever the case). The daemon adds every setting of the build it runs;
#: tests/test_rules.py checks that each secret or path setting is listed here for validate.
DAEMON_ENV = frozenset(
    {
        "RPCD_ACCESS_LOG_FLUSH",
        "RPCD_AUTH_CACHE_TTL",
        "RPCD_AUTH_FAIL_LIMIT",
        "RPCD_AUTH_FAIL_TABLE_SIZE",
        "RPCD_AUTH_FAIL_WINDOW",
        "RPCD_BODY_TIMEOUT",
        "RPCD_EVENT_LOOP",
        "RPCD_HANDLER_THREADS",
        "RPCD_HANDLER_TIMEOUT",
        "RPCD_HEADER_TIMEOUT",
        "RPCD_KEEPALIVE_TIMEOUT",
        "RPCD_LISTEN",
        "RPCD_LOG_FORMAT",
        "RPCD_LOG_LEVEL",
        "RPCD_MALLOC_MMAP_THRESHOLD",
        "RPCD_MALLOC_TRIM_THRESHOLD",
        "RPCD_MAX_BODY_BYTES",
        "RPCD_MAX_CALLS_PER_REQUEST",
        "RPCD_MAX_CONNECTIONS",
        "RPCD_MAX_MULTICALL",
        "RPCD_MAX_NUMBER_CHARS",
        "RPCD_MAX_XML_DEPTH",
        "RPCD_METRICS_TOKEN",
        "RPCD_METRICS_TOKEN_FILE",
        "RPCD_RELOAD_TIMEOUT",
        "RPCD_SESSION_KEY",
        "RPCD_SESSION_KEY_FILE",
        "RPCD_SESSION_TTL",
        "RPCD_SETTINGS_FILE",
        "RPCD_SHORT_SECRETS",
        "RPCD_SHUTDOWN_TIMEOUT",
        "RPCD_STRICT_SECRETS",
        "RPCD_TLS_CERT",
        "RPCD_TLS_CLIENT_CA",
        "RPCD_TLS_KEY",
        "RPCD_TRUSTED_PROXIES",
    }
)
#: The systemd credential the unit file loads the session key from.
DAEMON_CREDENTIALS = frozenset({"session-key"})
#: Where docs/operations.md puts the session key.
DAEMON_FILES = frozenset({"/etc/rpcd/session-key"})


def daemon_env_names(setting_names: Iterable[str] = ()) -> frozenset[str]:
    """``DAEMON_ENV`` plus ``RPCD_<NAME>`` for each of ``setting_names``, upper-cased."""
    return DAEMON_ENV | {f"RPCD_{name.upper()}" for name in setting_names}


def normal_path(path: str) -> str:
    """``path`` with ``.``, ``..`` and repeated slashes worked out, as the kernel would (lexically:
    no symlink is followed; ``/a/b/../c`` is ``/a/c``)."""
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("/") else normal


def _dir(path: str) -> str:
    """A folder path normalised and ending in one slash, so ``startswith`` means "inside"."""
    return normal_path(path).rstrip("/") + "/"


def _env_prefix(institution: str) -> str:
    return institution.upper().replace("-", "_") + "_"


@dataclass(frozen=True, slots=True)
class Scope:
    """The secrets one institution's folder may reference."""

    institution: str
    env: tuple[str, ...]
    credential: tuple[str, ...]
    file: tuple[str, ...]  # normalised folders, each ending in "/"
    declared: bool  # written in rpcd.toml (else the defaults)
    hosts: tuple[str, ...] | None = None  # endpoint hosts the folder may call; None: any

    @classmethod
    def of(cls, institution: Institution) -> Scope:
        ident, declared = institution.id, institution.secrets
        given = declared or InstitutionSecrets()
        env = given.env_prefixes
        credential = given.credential_prefixes
        file = given.file_dirs
        return cls(
            ident,
            (_env_prefix(ident),) if env is None else env,
            (f"{ident}-",) if credential is None else credential,
            (f"{DEFAULT_SECRETS_DIR}/{ident}/",) if file is None else tuple(map(_dir, file)),
            declared is not None,
            institution.endpoint_hosts,
        )

    def prefixes(self, kind: str) -> tuple[str, ...]:
        return self.env if kind == "env" else self.credential if kind == "credential" else self.file

    def allows(self, kind: str, target: str) -> bool:
        """Whether a reference of ``kind`` to ``target`` (a normalised path for files) is in it."""
        return target.startswith(self.prefixes(kind))

    def describe(self) -> str:
        """What the folder may reference, for a finding."""

        def some(items: tuple[str, ...], what: str) -> str:
            return f"{what} " + " or ".join(items) if items else f"no {what.split()[0]}"

        return (
            f"{some(tuple(p + '*' for p in self.env), 'env names')}, "
            f"{some(tuple(p + '*' for p in self.credential), 'credentials')}, "
            f"{some(self.file, 'files under')}"
        )


@dataclass(frozen=True)
class ScopeTable:
    """Every institution's scope, and for each the other institutions whose scope overlaps
    it (worked out once: a name in two scopes is refused to both folders)."""

    scopes: Mapping[str, Scope]
    rivals: Mapping[str, tuple[Scope, ...]]

    @classmethod
    def of(cls, institutions: Iterable[Institution]) -> ScopeTable:
        scopes: dict[str, Scope] = {}
        for institution in institutions:
            scopes.setdefault(institution.id, Scope.of(institution))
        overlapping = _overlapping(scopes)
        rivals = {
            ident: tuple(
                other for other in scopes.values() if other.institution in overlapping[ident]
            )
            for ident in scopes
        }
        return cls(scopes, rivals)

    def admits(self, institution: str | None, ref: SecretRef) -> bool:
        """Whether ``ref`` is neither the daemon's own nor, for a connection in
        ``institution``'s folder (None: a site file), outside that institution's scope: the
        quick answer for every reference of a tree (``problem`` and ``reserved_problem`` say
        why not)."""
        kind = next(iter(ref.model_fields_set))
        target: str = getattr(ref, kind)
        if kind == "env":
            if target.upper() in DAEMON_ENV:
                return False
        elif kind == "credential":
            if target in DAEMON_CREDENTIALS:
                return False
        else:
            target = normal_path(target)
            if target in DAEMON_FILES:
                return False
        scope = self.scopes.get(institution) if institution is not None else None
        if scope is None:
            return True
        if not target.startswith(scope.prefixes(kind)):
            return False
        rivals = self.rivals[scope.institution]
        return not any(target.startswith(o.prefixes(kind)) for o in rivals)

    def problem(self, institution: str, ref: SecretRef) -> str | None:
        """Why ``institution``'s folder may not reference ``ref``; None when it may."""
        scope = self.scopes.get(institution)
        if scope is None:
            return None
        kind, target = ref.kind, _target(ref)
        if not scope.allows(kind, target):
            moved = kind == "file" and target != ref.target
            normalised = f" (normalised: {target})" if moved else ""
            return (
                f"{ref}{normalised} is outside institution `{institution}`'s secret scope (its "
                f"folder connections.d/{institution}/ may reference {scope.describe()})"
            )
        for other in self.rivals.get(institution, ()):
            if other.allows(kind, target):
                return (
                    f"{ref} is in the secret scopes of both `{institution}` and "
                    f"`{other.institution}` (their scopes overlap: {other.describe()}), so it "
                    "belongs to neither"
                )
        return None


def _overlapping(scopes: Mapping[str, Scope]) -> dict[str, set[str]]:
    """Institution → the other institutions whose scope shares a prefix-related name with its
    own. Sorted, every name that starts with a prefix follows it directly, so each prefix is
    compared with its overlapping neighbours only, not with every other institution's."""
    found: dict[str, set[str]] = {ident: set() for ident in scopes}
    for kind in ("env", "credential", "file"):
        names = sorted((p, ident) for ident, scope in scopes.items() for p in scope.prefixes(kind))
        for i, (prefix, one) in enumerate(names):
            j = i + 1
            while j < len(names) and names[j][0].startswith(prefix):
                other = names[j][1]
                if other != one:
                    found[one].add(other)
                    found[other].add(one)
                j += 1
    return found


def _target(ref: SecretRef) -> str:
    return normal_path(ref.target) if ref.kind == "file" else ref.target


def folder_of(rel: str) -> str | None:
    """``connections.d/<folder>/…`` → ``<folder>`` (an institution's folder if one is so named)."""
    parts = rel.split("/")
    if len(parts) >= 3 and parts[0] == CONNECTIONS_DIR:
        return parts[1]
    return None


def reserved_problem(ref: SecretRef, env_names: frozenset[str] = DAEMON_ENV) -> str | None:
    """Why no connection may reference ``ref`` (it is the daemon's own secret); None if it may."""
    kind, target = ref.kind, ref.target
    if kind == "env":
        if target.upper() in env_names:
            return f"{ref} is one of the daemon's own settings (rpcd serve reads {target.upper()})"
    elif kind == "credential":
        if target in DAEMON_CREDENTIALS:
            return f"{ref} is the daemon's session key (the unit's LoadCredential=session-key)"
    elif normal_path(target) in DAEMON_FILES:
        return f"{ref} is where the daemon's session key is kept"
    return None


class RealPaths:
    """``os.path.realpath`` with each folder resolved once: a reload of 10,000 connections
    whose secret files share a few folders costs one ``lstat`` per file, not one per part of
    every path."""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def folder(self, path: str) -> str:
        """The real path of folder ``path``, ending in "/"."""
        real = self._folders.get(path)
        if real is None:
            real = self._folders[path] = os.path.realpath(path).rstrip("/") + "/"
        return real

    def real(self, path: str) -> str:
        """Where ``path`` leads, as ``open`` would follow it. A ``..`` after a symlink climbs
        from the link's target, not from the link's folder: such a path is resolved whole."""
        head, _, name = path.rpartition("/")
        if name in ("", ".", "..") or "/./" in path or "/../" in path or "//" in path:
            return os.path.realpath(path)
        try:
            is_link = stat.S_ISLNK(os.lstat(path).st_mode)
        except (OSError, ValueError):
            is_link = False  # missing or unreadable: resolving it reports that
        if is_link:
            return os.path.realpath(path)
        return self.folder(head or "/") + name


def resolved_problem(
    ref: SecretRef,
    scope: Scope | None,
    daemon_files: frozenset[str],
    credentials_dir: str | None,
    paths: RealPaths | None = None,
) -> str | None:
    """Why ``ref`` may not be read, judged where it resolves (symlinks followed): it is one of
    the ``daemon_files`` (real paths), leaves ``$CREDENTIALS_DIRECTORY``, or, for a folder's
    connection, leaves the ``scope``'s folders. Reads no secret; None when it may be read."""
    if ref.kind == "env":
        return None
    paths = paths or RealPaths()
    if ref.kind == "credential":
        if not credentials_dir:
            return None  # resolving it reports the missing directory
        base = paths.folder(credentials_dir)
        real = paths.real(os.path.join(credentials_dir, ref.target))
        if not real.startswith(base):
            return f"{ref} resolves to {real}, outside $CREDENTIALS_DIRECTORY"
    else:
        real = paths.real(ref.target)
    if real in daemon_files:
        return f"{ref} resolves to {real}, one of the daemon's own secret files"
    inside = scope is None or ref.kind != "file"
    if not inside and scope is not None:
        inside = any(real.startswith(paths.folder(d)) for d in scope.file)
        if not inside:
            return (
                f"{ref} resolves to {real}, outside the folders of institution "
                f"`{scope.institution}`'s secret scope ({', '.join(scope.file)})"
            )
    return None


def real_paths(paths: Iterable[str | Path | None]) -> frozenset[str]:
    """The real paths of the given files (None skipped)."""
    return frozenset(os.path.realpath(p) for p in paths if p)
