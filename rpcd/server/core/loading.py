"""Load a config tree into everything the server needs, and hold the current one.

``load(root)`` builds and validates the catalog off to the side (handlers imported, secrets
resolved, the method table and peer index built) and returns a ``Loaded`` or the ``Report``
that says why not. ``CatalogHolder.swap`` replaces the current ``Loaded`` in one assignment;
each request reads ``holder.current`` once at its start, so in-flight calls finish on the
catalog they began with. The SIGHUP / admin reload calls exactly these two functions.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rpcd.config import Catalog, FileCache, Finding, Report, Severity, build
from rpcd.config.models import Grant, Method, Peer, Service
from rpcd.config.rules import Located, parts_of
from rpcd.config.scopes import (
    DAEMON_FILES,
    RealPaths,
    ScopeTable,
    daemon_env_names,
    folder_of,
    real_paths,
    reserved_problem,
    resolved_problem,
)
from rpcd.handler import context_parameter, without_parameter
from rpcd.secrets import SecretStore, resolve_catalog, short_secret_findings
from rpcd.server.core import grants
from rpcd.server.core.auth import PeerIndex
from rpcd.server.core.signatures import Check, arity, param_checks, param_types

__all__ = [
    "CatalogHolder",
    "Loaded",
    "MethodEntry",
    "build_methods",
    "load",
    "may_call",
    "secret_scope_findings",
]

log = logging.getLogger("rpcd.server")


@dataclass(frozen=True, slots=True)
class MethodEntry:
    """One published method, ready to call: ``func`` for code, ``method.proxy`` for a proxy."""

    name: str
    service: Service
    method: Method
    func: Callable[..., Any] | None
    is_async: bool
    py_signature: inspect.Signature | None
    #: A sync function declared ``run = "inline"``: called on the event loop, no pool hop.
    inline: bool = False
    #: One check per declared param type (``signatures.param_checks``); None: undeclared.
    param_checks: tuple[Check, ...] | None = None
    #: The typical type of each declared param (``signatures.param_types``): params of
    #: exactly these types fit without running ``param_checks``.
    param_types: tuple[type, ...] | None = None
    #: The ids of the catalog's peers that may call it (``may_call``, worked out once per
    #: catalog: a reload builds new entries), so the per-call access check is one set lookup.
    callers: frozenset[str] = frozenset()
    #: ``signatures.arity(py_signature)``: the param counts ``py_signature`` binds, checked
    #: without ``Signature.bind`` for a method with no declared signature.
    arity: tuple[int, int] | None = None
    #: The handler's ``CallContext`` parameter (``rpcd.handler.context_parameter``), passed
    #: by keyword; None: the handler does not ask for the context.
    context_param: str | None = None
    #: Anyone may call it, callers without credentials too (``grant.anonymous``).
    anonymous: bool = False


@dataclass(frozen=True)
class Loaded:
    """A catalog and what was derived from it; immutable, swapped as a whole."""

    catalog: Catalog
    methods: Mapping[str, MethodEntry]
    peers: PeerIndex
    git_commit: str | None
    loaded_at: float
    secrets: SecretStore | None = None
    cache: FileCache = field(default_factory=FileCache)

    @property
    def revision(self) -> dict[str, Any]:
        return {
            "content_hash": self.catalog.content_hash,
            "git_commit": self.git_commit,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
        }


class CatalogHolder:
    """The one place the current ``Loaded`` lives. ``swap`` is a single reference assignment."""

    def __init__(self, initial: Loaded) -> None:
        self._current = initial

    @property
    def current(self) -> Loaded:
        return self._current

    def swap(self, new: Loaded) -> Loaded:
        """Make ``new`` current; return the previous one."""
        old, self._current = self._current, new
        return old


def may_call(peer: Peer, service: Service, method: Method | None = None) -> bool:
    """May ``peer`` call ``method`` of ``service``: ``rpcd.server.core.grants.may_call``."""
    return grants.may_call(peer, service, method)


def _resolve(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    return target  # type: ignore[no-any-return]


def build_methods(catalog: Catalog) -> dict[str, MethodEntry]:
    """``service.method`` -> entry, with every handler imported (the build checked they import)."""
    methods: dict[str, MethodEntry] = {}
    callers_of = _callers_by_grant(catalog.peers.values())
    for service in catalog.services.values():
        for method in service.method:
            callers = callers_of(service.grant_for(method))
            func = _resolve(method.function) if method.function else None
            try:
                sig = inspect.signature(func) if func is not None else None
            except (TypeError, ValueError):
                sig = None
            context = context_parameter(func) if func is not None else None
            if sig is not None and context is not None:
                sig = without_parameter(sig, context)
            name = f"{service.name}.{method.name}"
            is_async = func is not None and inspect.iscoroutinefunction(func)
            inline = func is not None and not is_async and method.run == "inline"
            checks = param_checks(method.signature)
            types = param_types(method.signature)
            methods[name] = MethodEntry(
                name,
                service,
                method,
                func,
                is_async,
                sig,
                inline,
                checks,
                types,
                callers,
                arity(sig),
                context,
                grants.is_anonymous(service, method),
            )
    return methods


def _callers_by_grant(peers: Iterable[Peer]) -> Callable[[Grant | None], frozenset[str]]:
    """``grant -> ids of the peers it admits``, from an institution -> peers index
    (linear in the grants, not peers x methods), one shared set per distinct grant."""
    ids: set[str] = set()
    members: dict[str, set[str]] = {}
    for peer in peers:
        ids.add(peer.id)
        for institution in peer.institutions:
            members.setdefault(institution, set()).add(peer.id)
    shared: dict[tuple[tuple[str, ...], tuple[str, ...], bool], frozenset[str]] = {}

    def callers(grant: Grant | None) -> frozenset[str]:
        if grant is None:
            return frozenset()
        key = (tuple(grant.peers), tuple(grant.institutions), grant.anonymous)
        found = shared.get(key)
        if found is None:
            if grant.anonymous:
                found = frozenset(ids)
            else:
                found = frozenset(ids.intersection(grant.peers)).union(
                    *(members.get(i, ()) for i in grant.institutions)
                )
            shared[key] = found
        return found

    return callers


def git_commit(root: Path) -> str | None:
    """The commit of a git checkout at ``root`` (one ``git rev-parse`` per load), else None."""
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) in (40, 64) else None


def load(
    root: Path | str,
    previous: Loaded | None = None,
    *,
    strict_secrets: bool = True,
    short_secrets: str = "refuse",
    settings: Any = None,
) -> Loaded | Report:
    """Build, validate, import and resolve; a ``Loaded`` only when nothing is an error.

    With ``strict_secrets=False`` (development only) an unresolved secret is a warning: the
    daemon starts, and a call over that connection fails naming the reference. A secret too
    short to mask in logs is an error unless ``short_secrets="warn"`` (development only).
    ``settings`` (``rpcd.settings.Settings``) names the daemon's own secrets, which no
    connection may reference (without it, the ``RPCD_*`` environment does).
    """
    root = Path(root)
    result = build(root, previous=previous.cache if previous else None, check_imports=True)
    report = result.report
    if result.catalog is None:
        return report
    catalog = result.catalog
    # Where each reference really leads, before any is read: a tree that bypassed CI, or a
    # symlink placed beside the secrets, is refused here (rule secret-scope).
    report.extend(secret_scope_findings(catalog, result.cache, settings))
    if not report.valid:
        return report
    secrets, findings = resolve_catalog(catalog)  # env and file references are read again
    findings = short_secret_findings(findings, short_secrets)
    if not strict_secrets:
        findings = [
            replace(f, severity=Severity.WARNING) if f.rule == "secret-unresolved" else f
            for f in findings
        ]
    report.extend(findings)
    for finding in findings:
        log.warning("%s", finding.as_text())
    if not report.valid:
        return report
    try:
        methods = build_methods(catalog)
    except Exception as exc:  # import-time side effects the build did not see
        report.add(
            Finding("import-failed", f"a handler failed to load ({type(exc).__name__}: {exc})")
        )
        return report
    return Loaded(
        catalog=catalog,
        methods=MappingProxyType(methods),
        peers=PeerIndex.build(catalog.peers),
        git_commit=git_commit(root),
        loaded_at=time.time(),
        secrets=secrets,
        cache=result.cache,
    )


# The settings that name the daemon's own secret files.
_DAEMON_FILE_SETTINGS = ("session_key_file", "tls_key", "tls_cert")


def _daemon_files(settings: Any, environ: Mapping[str, str]) -> frozenset[str]:
    """The real paths of the daemon's own secret files: its settings' key files and settings
    file, the same read from ``RPCD_*`` variables, and the documented places."""
    upper = {k.upper(): v for k, v in environ.items() if k.upper().startswith("RPCD_")}
    paths: list[Any] = [*DAEMON_FILES, upper.get("RPCD_SETTINGS_FILE")]
    paths += [upper.get(f"RPCD_{name.upper()}") for name in _DAEMON_FILE_SETTINGS]
    if settings is not None:
        fields = getattr(type(settings), "model_fields", {})
        paths += [getattr(settings, name) for name in fields if name.endswith(("_file", "_key"))]
        paths += [getattr(settings, name, None) for name in _DAEMON_FILE_SETTINGS]
        paths.append(getattr(settings, "model_config", {}).get("toml_file"))
    return real_paths(p for p in paths if isinstance(p, str | Path))


def secret_scope_findings(
    catalog: Catalog,
    cache: FileCache,
    settings: Any = None,
    environ: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Rule secret-scope, judged as the daemon will read each reference: no connection names
    one of the daemon's settings or reaches its secret files (symlinks followed), a
    credential stays in ``$CREDENTIALS_DIRECTORY``, and a file of an institution's folder
    resolves inside that institution's folders. Reads no secret."""
    env = os.environ if environ is None else environ
    setting_names = getattr(type(settings), "model_fields", {}) if settings is not None else {}
    env_names = daemon_env_names(setting_names)
    daemon_files = _daemon_files(settings, env)
    credentials_dir = env.get("CREDENTIALS_DIRECTORY")
    table = ScopeTable.of(catalog.institutions.values())
    paths = RealPaths()
    found: list[Finding] = []
    for full_id, key, ref, source, _ in catalog.secret_references():
        folder = folder_of(source)  # the site proxy (rpcd.toml) and site files: no folder
        scope = table.scopes.get(folder) if folder is not None else None
        problem = reserved_problem(ref, env_names) or resolved_problem(
            ref, scope, daemon_files, credentials_dir, paths
        )
        if problem is None:
            continue
        if not full_id:
            message = (
                f"the site proxy's {key.removeprefix('proxy.')}: {problem}: the daemon refuses it"
            )
            found.append(Finding("secret-scope", message, file=source, path=key))
            continue
        conn = catalog.connections[full_id]
        message = f"connection {full_id} {key}: {problem}: the daemon refuses it"
        located = _located(cache, source, conn.class_id, conn.id)
        if located is not None:
            found.append(located.finding("secret-scope", message, *key.split(".")))
        else:
            path = f"{full_id}.{key}"
            found.append(Finding("secret-scope", message, file=source, path=path))
    return found


def _located(cache: FileCache, rel: str, class_id: str, ident: str) -> Located[Any] | None:
    """Where a catalog connection is written, for the line of a finding."""
    origin = cache.get(rel)
    if origin is None or origin.model is None:
        return None
    for owner_class, located in parts_of(origin).connections:
        if owner_class == class_id and located.value.id == ident:
            return located
    return None
