"""The immutable catalog, and ``build(root)``: files → findings → Catalog.

A rebuild passes the previous ``FileCache``: files whose stat signature is unchanged are not
read again, so reloading a 10,000-connection tree after one edit re-checks one file. The
cross-file rules answer for the whole catalog; when the edit cannot change what they find in
most files (``incremental.py``), they run on the involved files only and the last build's
findings stand for the rest, and the last catalog is patched rather than assembled again.
"""

from __future__ import annotations

import gc
import hashlib
import operator
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from rpcd.config.document import FileResult
from rpcd.config.endpoints import MASK, is_secret_param, mask_endpoint
from rpcd.config.findings import Finding, Report
from rpcd.config.incremental import (
    BuildState,
    FileCache,
    involved,
    new_state,
    next_state,
    recall,
    same_outline,
)
from rpcd.config.models import (
    DEFAULT_PAYLOAD,
    ConnectionClass,
    ConnectionEntry,
    Institution,
    Model,
    Peer,
    ProxyServer,
    SecretRef,
    Service,
    SiteProxy,
    Value,
)
from rpcd.config.pool import check_files
from rpcd.config.rules import RULES, Draft, Located, import_functions
from rpcd.config.sources import DEFAULT_MAX_FILE_BYTES, Listings, SourceFile, discover

# Defaults the catalog fills in where a connection leaves a key out (docs/configuration.md shows
# them; the models keep ``None`` so that "not written" stays visible to the rules).
DEFAULT_HTTP_METHOD = "GET"
DEFAULT_TOKEN_PARAM = "wstoken"  # Moodle's name; used unless token_header is given
DEFAULT_WSSE_PASSWORD_TYPE = "digest"
DEFAULT_OAUTH_PLACEMENT = "header"


class ResolvedConnection(Model):
    """A connection with every default filled in and its class resolved. Secrets stay references."""

    class_id: str
    id: str
    enabled: bool
    priority: int
    name: str | None
    version: str | None
    is_global: bool
    institutions: tuple[str, ...]
    fatal: bool
    type: str
    payload: str
    auth: str
    endpoint: str
    credentials: dict[str, SecretRef]
    parameters: dict[str, Value]
    http_method: str
    timeout: float
    token_param: str | None
    token_header: str | None
    ca_bundle: str | None
    wsse_password_type: str | None
    oauth_placement: str | None
    soap_namespace: str | None
    soap_action: str | None
    soap_qualified: bool
    function_param: str | None
    config: dict[str, Value]
    source: str
    #: Every endpoint in the order tried (``endpoint`` is the first); standbys follow it.
    endpoints: tuple[str, ...] = ()
    #: Its own proxy, ``False`` for none (direct even with a site proxy), ``None``: the site's.
    proxy: ProxyServer | Literal[False] | None = None

    @property
    def full_id(self) -> str:
        return f"{self.class_id}/{self.id}"

    def sort_key(self) -> tuple[int, str]:
        return (self.priority, self.id)

    def shown_endpoint(self) -> str:
        """The endpoint as shown to people: validate refuses literal credentials in it
        (plaintext-secret); one built some other way is still never shown."""
        return mask_endpoint(self.endpoint, (self.token_param,))

    @property
    def urls(self) -> tuple[str, ...]:
        """Every endpoint in the order tried: primary first, then the standbys."""
        return self.endpoints or (self.endpoint,)

    def shown_endpoints(self) -> list[str]:
        """``urls`` as shown to people (see ``shown_endpoint``)."""
        return [mask_endpoint(url, (self.token_param,)) for url in self.urls]

    def shown_parameters(self, parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The parameters (or a dump of them) as shown to people: any that carries a token
        is masked."""
        given = self.parameters if parameters is None else parameters
        return {k: MASK if is_secret_param(k, (self.token_param,)) else v for k, v in given.items()}


@dataclass(frozen=True)
class Catalog:
    """Everything a valid tree declares. Never mutated: a reload builds a new one and swaps."""

    root: Path
    connections_enabled: bool
    institutions: Mapping[str, Institution]
    classes: Mapping[str, ConnectionClass]
    connections: Mapping[str, ResolvedConnection]
    services: Mapping[str, Service]
    peers: Mapping[str, Peer]
    content_hash: str
    files: tuple[str, ...] = field(default=())
    #: rpcd.toml's site-wide outbound proxy (``[proxy]``), if it has one.
    proxy: SiteProxy | None = None
    # The instances of each class in priority order; computed from ``connections`` when not
    # given (``build`` gives it, reusing the previous build's tuple for an unchanged class).
    by_class: Mapping[str, tuple[ResolvedConnection, ...]] | None = field(
        default=None, repr=False, compare=False
    )
    _by_class: Mapping[str, tuple[ResolvedConnection, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index = self.by_class
        if index is None:
            grouped: dict[str, list[ResolvedConnection]] = {}
            for conn in self.connections.values():
                grouped.setdefault(conn.class_id, []).append(conn)
            index = {k: _in_priority_order(v) for k, v in grouped.items()}
        object.__setattr__(self, "_by_class", MappingProxyType(dict(index)))

    def secret_references(self) -> Iterator[tuple[str, str, SecretRef, str, bool]]:
        """Every secret reference, as (connection full id, "" for rpcd.toml; key path;
        reference; file; whether it is needed): each connection's credentials and its own
        proxy's, and the site proxy's."""
        for full_id in sorted(self.connections):
            conn = self.connections[full_id]
            for key, ref in conn.credentials.items():
                yield full_id, f"credentials.{key}", ref, conn.source, conn.enabled
            if conn.proxy:
                for key, ref in conn.proxy.refs().items():
                    yield full_id, f"proxy.{key}", ref, conn.source, conn.enabled
        if self.proxy is not None:
            for key, ref in self.proxy.refs().items():
                yield "", f"proxy.{key}", ref, "rpcd.toml", self.connections_enabled

    def instances(self, class_id: str) -> list[ResolvedConnection]:
        """All instances of a class, enabled or not, in priority order (ties by id).

        Indexed once when the catalog is made: a lookup costs the class's own instances, not a
        scan of every connection (the daemon asks on every call).
        """
        return list(self._by_class.get(class_id, ()))

    def to_dict(self) -> dict[str, Any]:
        """The resolved catalog as plain data (secrets as references like ``env:NAME``)."""

        def dump(model: Model) -> dict[str, Any]:
            data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
            return data

        connections = []
        for conn in sorted(self.connections.values(), key=lambda c: (c.class_id, c.priority, c.id)):
            item = dump(conn)
            item["credentials"] = {k: str(v) for k, v in conn.credentials.items()}
            item["endpoint"] = conn.shown_endpoint()
            if conn.endpoints:
                item["endpoints"] = conn.shown_endpoints()
            else:
                item.pop("endpoints", None)
            if conn.proxy:
                item["proxy"] = _shown_proxy(conn.proxy)
            item["parameters"] = conn.shown_parameters(item.get("parameters", {}))
            connections.append(item)
        return {
            "version": 1,
            "content_hash": self.content_hash,
            "connections": {"enabled": self.connections_enabled},
            **({"proxy": _shown_proxy(self.proxy)} if self.proxy is not None else {}),
            "institution": [dump(i) for i in self.institutions.values()],
            "class": [dump(c) for c in self.classes.values()],
            "connection": connections,
            "service": [dump(s) for s in self.services.values()],
            "peer": [dump(p) for p in self.peers.values()],
        }


def _shown_proxy(proxy: ProxyServer) -> dict[str, Any]:
    """A proxy as ``rpcd show`` prints it: its credentials as references (``env:NAME``)."""
    shown: dict[str, Any] = {"url": proxy.url}
    shown |= {key: str(ref) for key, ref in proxy.refs().items()}
    if isinstance(proxy, SiteProxy) and proxy.no_proxy is not None:
        shown["no_proxy"] = list(proxy.no_proxy)
    return shown


def _in_priority_order(conns: list[ResolvedConnection]) -> tuple[ResolvedConnection, ...]:
    return tuple(sorted(conns, key=ResolvedConnection.sort_key))


@dataclass
class BuildResult:
    catalog: Catalog | None
    report: Report
    cache: FileCache


def build(
    root: Path | str,
    *,
    previous: Mapping[str, FileResult] | None = None,
    check_imports: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    jobs: int = 1,
) -> BuildResult:
    """Check the tree at ``root`` in four stages; a catalog only when there is no error.

    ``jobs`` > 1 lets a big tree be parsed and schema-checked by forked workers (``pool.py``;
    same results, in the same order); the CLI passes its CPU count.

    The cyclic garbage collector is paused meanwhile: a build makes millions of objects and
    frees almost none of them until it returns, so the collections it would trigger (each
    walking everything allocated so far) would find nothing.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return _build(root, previous, check_imports, max_file_bytes, jobs)
    finally:
        if paused:
            gc.enable()


def _build(
    root: Path | str,
    previous: Mapping[str, FileResult] | None,
    check_imports: bool,
    max_file_bytes: int,
    jobs: int,
) -> BuildResult:
    root = Path(root)
    report = Report()
    if not root.is_dir():
        what = "does not exist" if not os.path.lexists(root) else "is not a directory"
        report.add(
            Finding(
                "root-not-found", f"config root {root} {what}: pass the folder that holds rpcd.toml"
            )
        )
        return BuildResult(None, report, FileCache())

    previous = previous or {}
    state = recall(previous) if previous else None
    # A plain dict's bound get: no Python frame per file of a 10,000-file rebuild.
    known = (
        {s.rel: s for s in state.sources}.get
        if state is not None
        else {rel: old.source for rel, old in previous.items()}.get
        if previous
        else None
    )
    listed: Listings = {}
    sources, problems = discover(root, known, state.listings if state else None, listed)
    report.extend(problems)
    fresh: dict[str, FileResult] = {}
    if state is not None and len(sources) == len(state.sources):
        # discover hands back the previous SourceFile itself when the signature is unchanged.
        changed = list(compress(range(len(sources)), map(operator.is_not, sources, state.sources)))
        if all(sources[i].rel == state.sources[i].rel for i in changed):
            checked = check_files([sources[i] for i in changed], max_file_bytes, jobs)
            done = _rebuild(
                root, report, sources, listed, changed, checked, state, previous, check_imports
            )
            if done is not None:
                return done
            fresh = {r.source.rel: r for r in checked}  # not checked a second time
    changed_files = [
        s
        for s in sources
        if s.rel not in fresh and ((old := previous.get(s.rel)) is None or old.source is not s)
    ]
    fresh.update((r.source.rel, r) for r in check_files(changed_files, max_file_bytes, jobs))
    cache = FileCache()
    for source in sources:
        result = fresh.get(source.rel) or previous[source.rel]
        cache[source.rel] = result
        report.extend(result.findings)
    results = list(cache.values())
    draft = Draft.from_files(results)
    rule_findings: list[Finding] = []
    for rule in RULES:
        rule_findings.extend(rule(draft))
    report.extend(rule_findings)
    if check_imports:
        report.extend(import_functions(draft))
    catalog = _assemble(root, draft, results) if report.valid else None
    cache.state = new_state(sources, listed, results, draft, rule_findings, catalog)
    return BuildResult(catalog, report, cache)


def _rebuild(
    root: Path,
    report: Report,
    sources: list[SourceFile],
    listed: Listings,
    changed: list[int],
    checked: list[FileResult],
    state: BuildState,
    previous: Mapping[str, FileResult],
    check_imports: bool,
) -> BuildResult | None:
    """The same file list as the last build, a few files changed: re-check those, run the
    rules on the involved files only (``incremental.py`` says which, and why that suffices)
    and patch the last catalog. ``None`` when the edit reaches too far for that to pay or to
    hold; then the caller builds the usual way, with the ``checked`` results of the changed
    files."""
    results = list(state.results)
    for i, result in zip(changed, checked, strict=True):
        results[i] = result
    if not all(same_outline(state.results[i], results[i]) for i in changed):
        return None
    files = involved(state, changed, results)
    if files is None:
        return None
    cache = FileCache(previous)
    for i in changed:
        cache[sources[i].rel] = results[i]
    findings_at = set(state.with_findings)
    findings_at.difference_update(changed)
    findings_at.update(i for i in changed if results[i].findings)
    for i in sorted(findings_at):
        report.extend(results[i].findings)
    draft = Draft.from_files([results[i] for i in sorted(files)])
    # Broken parts and unreadable files are the same as last time (same_outline): all of them
    # count, not only those of the involved files.
    draft.broken, draft.unreadable = state.broken, state.unreadable
    rels = {sources[i].rel for i in files}
    rule_findings = [f for f in state.rule_findings if f.file not in rels]
    for rule in RULES:
        rule_findings.extend(rule(draft))
    report.extend(rule_findings)
    if check_imports:
        report.extend(import_functions(draft))
    catalog = None
    new = next_state(state, sources, listed, results, changed, draft, rule_findings, None)
    if report.valid:
        catalog = _patch(root, draft, new, changed, state)
        if catalog is None:
            catalog = _assemble(root, Draft.from_files(results), results)
    new.catalog = catalog
    cache.state = new
    return BuildResult(catalog, report, cache)


def _assemble(root: Path, draft: Draft, results: list[FileResult]) -> Catalog:
    classes = {x.value.id: x.value for x in draft.classes}
    connections: dict[str, ResolvedConnection] = {}
    grouped: dict[str, list[ResolvedConnection]] = {}
    for class_id, located in draft.connections:
        resolved = _resolve(located, class_id, classes[class_id])
        connections[f"{class_id}/{resolved.id}"] = resolved
        group = grouped.get(class_id)
        if group is None:
            grouped[class_id] = [resolved]
        else:
            group.append(resolved)
    in_order = sorted(results, key=lambda r: r.source.rel)
    return _catalog(
        root,
        draft,
        classes,
        connections,
        hash_lines=[r.hash_line for r in in_order],
        files=tuple(r.source.rel for r in in_order),
        by_class={k: _in_priority_order(conns) for k, conns in grouped.items()},
    )


def _catalog(
    root: Path,
    draft: Draft,
    classes: dict[str, ConnectionClass],
    connections: dict[str, ResolvedConnection],
    *,
    hash_lines: list[str],
    files: tuple[str, ...],
    by_class: dict[str, tuple[ResolvedConnection, ...]],
) -> Catalog:
    """The catalog of a draft, for a full build and a patched rebuild alike."""
    return Catalog(
        root=root,
        connections_enabled=draft.switch,
        institutions=MappingProxyType({x.value.id: x.value for x in draft.institutions}),
        classes=MappingProxyType(classes),
        connections=MappingProxyType(connections),
        services=MappingProxyType({x.value.name: x.value for x in draft.services}),
        peers=MappingProxyType({x.value.id: x.value for x in draft.peers}),
        # One string, one update: the same bytes as hashing file by file, without 10,000 calls.
        content_hash=hashlib.sha256("".join(hash_lines).encode()).hexdigest(),
        files=files,
        by_class=by_class,
        proxy=draft.proxy,
    )


def _patch(
    root: Path, draft: Draft, state: BuildState, changed: list[int], before: BuildState
) -> Catalog | None:
    """The last catalog with the connections of the changed files replaced, or ``None`` when
    that would not be what ``_assemble`` makes: no last catalog, or a changed file now
    declares other connections (the mapping's order, file by file, would differ).

    ``draft`` holds whole classes and every entity but connections (``incremental.py``).
    """
    last: Catalog | None = before.catalog
    if last is None:
        return None
    for i in changed:
        if _keys(before.results[i]) != _keys(state.results[i]):
            return None
    classes = {x.value.id: x.value for x in draft.classes}
    connections = dict(last.connections)
    touched: set[str] = set()
    for i in changed:
        parts = state.results[i].parts
        for class_id, located in parts.connections if parts is not None else ():
            resolved = _resolve(located, class_id, classes[class_id])
            connections[f"{class_id}/{resolved.id}"] = resolved
            touched.add(class_id)
    grouped: dict[str, list[ResolvedConnection]] = {class_id: [] for class_id in touched}
    for class_id, located in draft.connections:
        group = grouped.get(class_id)
        if group is not None:
            group.append(_resolve(located, class_id, classes[class_id]))
    by_class = dict(last._by_class)
    for class_id, conns in grouped.items():
        by_class[class_id] = _in_priority_order(conns)
    return _catalog(
        root,
        draft,
        classes,
        connections,
        hash_lines=state.hash_lines,
        files=last.files,
        by_class=by_class,
    )


def _keys(result: FileResult) -> list[tuple[str, str]]:
    parts = result.parts
    return [(c, x.value.id) for c, x in parts.connections] if parts is not None else []


def _resolve(
    located: Located[ConnectionEntry], class_id: str, klass: ConnectionClass
) -> ResolvedConnection:
    """A connection with its class resolved and every default filled in.

    The parts are validated models already (stage 3): building the derived model from them
    needs no second validation. tests/test_catalog.py checks that validating the result gives
    the same model, for every connection of the example tree.
    """
    conn = located.value
    return ResolvedConnection.model_construct(
        class_id=class_id,
        id=conn.id,
        enabled=conn.enabled,
        priority=conn.priority,
        name=conn.name,
        version=conn.version,
        is_global=conn.global_,
        institutions=conn.institutions,
        fatal=conn.fatal,
        type=conn.type,
        payload=conn.payload or DEFAULT_PAYLOAD[conn.type],
        auth=conn.auth,
        endpoint=conn.urls[0],
        endpoints=conn.endpoints or (),
        proxy=conn.proxy,
        credentials=conn.credentials.refs(),
        parameters=conn.parameters,
        http_method=conn.http_method or DEFAULT_HTTP_METHOD,
        timeout=conn.timeout,
        token_param=(
            conn.token_param or (DEFAULT_TOKEN_PARAM if conn.token_header is None else None)
        )
        if conn.auth == "token"
        else None,
        token_header=conn.token_header,
        ca_bundle=conn.ca_bundle,
        wsse_password_type=(conn.wsse_password_type or DEFAULT_WSSE_PASSWORD_TYPE)
        if conn.auth == "wsse"
        else None,
        oauth_placement=(conn.oauth_placement or DEFAULT_OAUTH_PLACEMENT)
        if conn.auth == "oauth1"
        else None,
        soap_namespace=conn.soap_namespace,
        soap_action=conn.soap_action,
        soap_qualified=bool(conn.soap_qualified),
        function_param=klass.function_param,
        config=conn.config,
        source=located.origin.source.rel,
    )
