"""Stage 4: the rules across files. Each rule is ``fn(draft) -> findings``, listed in RULES.

The draft holds the valid parts of every file with where they came from, so each finding can
point at the file and line of the offending key.
"""

from __future__ import annotations

import difflib
import importlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rpcd.config.document import UNKNOWN_ID, FileResult
from rpcd.config.endpoints import endpoint_host, host_matches, is_secret_param, literal_secrets
from rpcd.config.findings import Finding, Severity
from rpcd.config.models import (
    DEFAULT_PAYLOAD,
    ConnectionClass,
    ConnectionEntry,
    ConnectionsFile,
    Institution,
    Peer,
    ProxyServer,
    SecretRef,
    Service,
    ServicesFile,
    SiteFile,
    SiteProxy,
)
from rpcd.config.parse import Path_
from rpcd.config.scopes import Scope, ScopeTable, folder_of, reserved_problem
from rpcd.config.sources import FileKind
from rpcd.handler import ContextParameterError, context_parameter

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Located(Generic[T]):
    """An entity and where it is written."""

    value: T
    origin: FileResult
    path: Path_

    def finding(
        self, rule: str, message: str, *sub: str | int, severity: Severity = Severity.ERROR
    ) -> Finding:
        return self.origin.finding(rule, message, (*self.path, *sub), severity=severity)


@dataclass
class Draft:
    """Every valid part of every file, before the catalog is assembled."""

    switch: bool = True
    proxy: SiteProxy | None = None  # rpcd.toml's [proxy]
    proxy_origin: FileResult | None = None  # where it is written
    institutions: list[Located[Institution]] = field(default_factory=list)
    classes: list[Located[ConnectionClass]] = field(default_factory=list)
    connections: list[tuple[str, Located[ConnectionEntry]]] = field(
        default_factory=list
    )  # (class id, …)
    services: list[Located[Service]] = field(default_factory=list)
    peers: list[Located[Peer]] = field(default_factory=list)
    broken: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # Files that could not be read or parsed at all, by kind: what they declare is unknown.
    unreadable: dict[FileKind, list[str]] = field(default_factory=lambda: defaultdict(list))
    site_loaded: bool = False
    # Findings several rules share, worked out once per draft (``_per_class``, ``_local``).
    per_class: _PerClass | None = field(default=None, repr=False, compare=False)
    local: _Local | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_files(cls, files: Iterable[FileResult]) -> Draft:
        draft = cls()
        for result in files:
            for kind, ids in result.broken_ids.items():
                draft.broken[kind] |= ids
            model = result.model
            if model is None and not result.broken_ids:
                draft.unreadable[result.source.kind].append(result.source.rel)
            if model is None:
                continue
            parts = parts_of(result)
            if isinstance(model, SiteFile):
                draft.site_loaded = True  # unless its institutions are broken: see complete()
                draft.switch = model.connections.enabled
                draft.proxy = model.proxy
                draft.proxy_origin = result
            draft.institutions += parts.institutions
            draft.classes += parts.classes
            draft.connections += parts.connections
            draft.services += parts.services
            draft.peers += parts.peers
        return draft

    def known(self, kind: str) -> set[str]:
        declared = {
            "institution": {x.value.id for x in self.institutions},
            "class": {x.value.id for x in self.classes},
            "peer": {x.value.id for x in self.peers},
        }[kind]
        return declared | self.broken.get(kind, set())

    def complete(self, kind: str) -> bool:
        """Whether every declared id of ``kind`` is known (no broken part hides one)."""
        return UNKNOWN_ID not in self.broken.get(kind, set())

    def unknown_because(self, kind: FileKind) -> str:
        """Why a reference may only look unresolved: a file that could declare it is broken."""
        files = self.unreadable.get(kind, [])
        if not files:
            return ""
        shown = ", ".join(files[:3]) + (", …" if len(files) > 3 else "")
        return f"; {shown} could not be checked and may declare it: fix that first"


@dataclass(frozen=True, slots=True)
class _Parts:
    """The located entities of one file, built once per file result (kept across rebuilds)."""

    institutions: list[Located[Institution]]
    classes: list[Located[ConnectionClass]]
    connections: list[tuple[str, Located[ConnectionEntry]]]
    services: list[Located[Service]]
    peers: list[Located[Peer]]

    @classmethod
    def of(cls, result: FileResult, model: Any) -> _Parts:
        parts = cls([], [], [], [], [])
        if isinstance(model, SiteFile):
            parts.institutions.extend(
                Located(v, result, ("institution", i)) for i, v in enumerate(model.institution)
            )
        elif isinstance(model, ConnectionsFile):
            if model.class_ is not None:
                parts.classes.append(Located(model.class_, result, ("class",)))
            own = model.class_.id if model.class_ else ""
            parts.connections.extend(
                (conn.class_ or own, Located(conn, result, ("connection", i)))
                for i, conn in enumerate(model.connection)
            )
        elif isinstance(model, ServicesFile):
            if model.service is not None:
                parts.services.append(Located(model.service, result, ("service",)))
            parts.peers.extend(Located(v, result, ("peer", i)) for i, v in enumerate(model.peer))
        return parts


def parts_of(result: FileResult) -> _Parts:
    """The located entities of a file with a model, made once per file result."""
    parts: _Parts | None = result.parts
    if parts is None:
        parts = result.parts = _Parts.of(result, result.model)
    return parts


Rule = Callable[[Draft], Iterator[Finding]]


def _duplicates(items: Iterable[tuple[Any, Located[Any]]], what: str) -> Iterator[Finding]:
    pairs = list(items)
    if len({key for key, _ in pairs}) == len(pairs):
        return  # the usual case: no id twice, nothing to point at
    first: dict[Any, Located[Any]] = {}
    for key, located in pairs:
        if key in first:
            other = first[key]
            shown = "/".join(key) if isinstance(key, tuple) else key
            yield located.finding(
                "duplicate-id",
                f"{what} `{shown}` is declared twice (first in {other.origin.source.rel}"
                f"{_line(other)}): rename or remove one",
                "name" if what in ("service", "method") else "id",
            )
        else:
            first[key] = located


def _where(located: Located[Any]) -> str:
    return f"{located.origin.source.rel}{_line(located)}"


def _line(located: Located[Any]) -> str:
    line, _ = located.origin.locate(located.path)
    return f" line {line}" if line else ""


def unique_ids(draft: Draft) -> Iterator[Finding]:
    yield from _duplicates(((x.value.id, x) for x in draft.institutions), "institution")
    yield from _duplicates(((x.value.id, x) for x in draft.classes), "class")
    yield from _per_class(draft).duplicates
    yield from _duplicates(((x.value.name, x) for x in draft.services), "service")
    yield from _duplicates(((x.value.id, x) for x in draft.peers), "peer")
    for svc in draft.services:
        methods = [
            (m.name, Located(m, svc.origin, (*svc.path, "method", i)))
            for i, m in enumerate(svc.value.method)
        ]
        yield from _duplicates(methods, "method")


def references(draft: Draft) -> Iterator[Finding]:
    classes, institutions, peers = (
        draft.known("class"),
        draft.known("institution"),
        draft.known("peer"),
    )
    class_hint = draft.unknown_because(FileKind.CONNECTIONS)
    peer_hint = draft.unknown_because(FileKind.SERVICES)
    about_class, about_institution, about_peer = (
        _Hints(classes),
        _Hints(institutions),
        _Hints(peers),
    )
    # rpcd.toml missing or broken (reported): every institution reference would look unknown.
    check_institutions = draft.site_loaded and draft.complete("institution")
    check_classes = draft.complete("class")

    def unknown_institutions(
        located: Located[Any], ids: Iterable[str], *sub: str
    ) -> Iterator[Finding]:
        for i, inst in enumerate(ids):
            if inst not in institutions:
                yield located.finding(
                    "unknown-institution",
                    f"institution `{inst}` is not declared in rpcd.toml: "
                    f"{about_institution.suggest(inst)}"
                    f'add an [[institution]] with id = "{inst}" or fix the id '
                    f"({about_institution.choices()})",
                    *sub,
                    i,
                )

    for class_id, conn in draft.connections:
        if check_classes and class_id not in classes:
            yield conn.finding(
                "unknown-class",
                f"class `{class_id}` is not declared in any connections.d file: "
                f"{about_class.suggest(class_id)}"
                f"fix the name or declare the class ({about_class.choices()}){class_hint}",
                "class",
            )
        ids = conn.value.institutions
        if check_institutions and not institutions.issuperset(ids):
            yield from unknown_institutions(conn, ids, "institutions")
    for peer in draft.peers:
        if check_institutions:
            yield from unknown_institutions(peer, peer.value.institutions, "institutions")
    for svc in draft.services:
        grant = svc.value.grant
        if grant is not None:
            if check_institutions:
                yield from unknown_institutions(svc, grant.institutions, "grant", "institutions")
            for i, peer_id in enumerate(grant.peers):
                if peer_id not in peers and draft.complete("peer"):
                    yield svc.finding(
                        "unknown-peer",
                        f"peer `{peer_id}` is not declared in any services.d file: "
                        f"{about_peer.suggest(peer_id)}"
                        f"fix the id or add a [[peer]] ({about_peer.choices()}){peer_hint}",
                        "grant",
                        "peers",
                        i,
                    )
        for i, method in enumerate(svc.value.method):
            if method.proxy is not None and method.proxy.class_ not in classes and check_classes:
                yield svc.finding(
                    "unknown-proxy-class",
                    f"proxy class `{method.proxy.class_}` of method `{method.name}` is not "
                    "a declared "
                    f"connection class: {about_class.suggest(method.proxy.class_)}fix the "
                    "name or declare "
                    f"the class in connections.d ({about_class.choices()}){class_hint}",
                    "method",
                    i,
                    "proxy",
                    "class",
                )


class _Hints:
    """ "Did you mean" and the list of declared ids, each worked out once per name: a typo
    copied into 200 connections would otherwise run difflib over every id 200 times."""

    def __init__(self, ids: set[str]) -> None:
        self._ids = ids
        self._sorted: list[str] | None = None
        self._suggestions: dict[str, str] = {}
        self._choices: str | None = None

    def _ordered(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self._ids)
        return self._sorted

    def suggest(self, name: str) -> str:
        found = self._suggestions.get(name)
        if found is None:
            found = self._suggestions[name] = _suggest(name, self._ordered())
        return found

    def choices(self) -> str:
        if self._choices is None:
            self._choices = _choices(self._ordered())
        return self._choices


def _suggest(name: str, ids: list[str]) -> str:
    close = difflib.get_close_matches(name, ids, n=1)
    return f"did you mean `{close[0]}`? " if close else ""


def _choices(ids: list[str]) -> str:
    shown = ids[:8]
    return (
        "declared: " + ", ".join(shown) + (", …" if len(ids) > 8 else "")
        if shown
        else "none declared"
    )


def _by_class(draft: Draft) -> dict[str, list[Located[ConnectionEntry]]]:
    """Connections grouped by class."""
    grouped: dict[str, list[Located[ConnectionEntry]]] = {}
    for class_id, conn in draft.connections:
        found = grouped.get(class_id)
        if found is None:
            grouped[class_id] = [conn]
        else:
            found.append(conn)
    return grouped


def global_alone(draft: Draft) -> Iterator[Finding]:
    yield from _per_class(draft).global_


def _global_alone_in(class_id: str, conns: list[Located[ConnectionEntry]]) -> Iterator[Finding]:
    if len(conns) > 1:
        for conn in conns:
            if conn.value.global_:
                others = ", ".join(c.value.id for c in conns if c is not conn)
                yield conn.finding(
                    "global-not-alone",
                    f"`{class_id}/{conn.value.id}` is global, so it must be the only "
                    "instance of "
                    f"class `{class_id}`; the class also has {others}: make it per-institution "
                    "or remove the others",
                    "global",
                )


def institution_once_per_class(draft: Draft) -> Iterator[Finding]:
    yield from _per_class(draft).overlap


def _overlaps_in(class_id: str, conns: list[Located[ConnectionEntry]]) -> Iterator[Finding]:
    seen: dict[str, Located[ConnectionEntry]] = {}
    for conn in conns:
        for i, inst in enumerate(conn.value.institutions):
            if inst in seen:
                yield conn.finding(
                    "institution-overlap",
                    f"institution `{inst}` is already served by "
                    f"`{class_id}/{seen[inst].value.id}` ({_where(seen[inst])}): "
                    "an institution appears in at most one instance of a class; remove it "
                    "from one of them (or merge the two instances)",
                    "institutions",
                    i,
                )
            else:
                seen[inst] = conn


@dataclass(frozen=True, slots=True)
class _PerClass:
    """Findings of the rules that compare the instances of one class with each other."""

    duplicates: list[Finding]
    global_: list[Finding]
    overlap: list[Finding]


def _per_class(draft: Draft) -> _PerClass:
    """Duplicate connection ids, global-not-alone and institution-overlap, class by class:
    what they find in a class depends on its instances only."""
    if draft.per_class is not None:
        return draft.per_class
    per_class = _PerClass([], [], [])
    for class_id, conns in _by_class(draft).items():
        found = (
            list(_duplicates((((class_id, c.value.id), c) for c in conns), "connection")),
            list(_global_alone_in(class_id, conns)),
            list(_overlaps_in(class_id, conns)),
        )
        per_class.duplicates.extend(found[0])
        per_class.global_.extend(found[1])
        per_class.overlap.extend(found[2])
    draft.per_class = per_class
    return per_class


_EFFECTIVE: dict[str, Callable[[ConnectionEntry], Any]] = {
    "payload": lambda c: c.effective_payload,
    "http_method": lambda c: c.http_method or "GET",
    "global": lambda c: c.global_,
}


def fixed_attributes(draft: Draft) -> Iterator[Finding]:
    yield from _local(draft).fixed


def _fixed_of(
    conn: Located[ConnectionEntry], class_id: str, wanted_by_key: dict[str, Any] | None
) -> list[Finding]:
    found: list[Finding] = []
    if not wanted_by_key:
        return found
    for key, wanted in wanted_by_key.items():
        attr = "global_" if key == "global" else key
        actual = _EFFECTIVE[key](conn.value) if key in _EFFECTIVE else getattr(conn.value, attr)
        if actual != wanted:
            want, have = json.dumps(wanted), json.dumps(actual)
            written = key in conn.value.model_fields_set or attr in conn.value.model_fields_set
            found.append(
                conn.finding(
                    "fixed-attribute",
                    f"class `{class_id}` fixes {key} = {want} for every instance, but "
                    f"`{class_id}/{conn.value.id}` has {key} = {have}"
                    f"{'' if written else ' (the default)'}: "
                    f"set {key} = {want} (or change the class's `fixed`)",
                    key if written else "id",
                )
            )
    return found


def class_prefix(draft: Draft) -> Iterator[Finding]:
    for klass in draft.classes:
        if not klass.value.id.startswith(klass.value.plugin + "_"):
            yield klass.finding(
                "class-id-prefix",
                f"class id `{klass.value.id}` must start with its plugin's name and an "
                f"underscore, `{klass.value.plugin}_`: rename the class (e.g. "
                f"`{klass.value.plugin}_{klass.value.id}`) or fix plugin",
                "id",
            )


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
}


def config_fields(draft: Draft) -> Iterator[Finding]:
    yield from _local(draft).config


def _config_of(conn: Located[ConnectionEntry], class_id: str, klass: Any) -> list[Finding]:
    found: list[Finding] = []
    if klass is None:
        return found
    fields, values = klass.config_fields, conn.value.config
    for name, spec in fields.items():
        if spec.required and name not in values:
            found.append(
                conn.finding(
                    "config-field",
                    f"class `{class_id}` requires config.{name} ({spec.help}), and "
                    f"`{class_id}/{conn.value.id}` does not set it: add {name} = … under "
                    "[connection.config]",
                    "config" if values else "id",
                )
            )
    for name, value in values.items():
        spec_ = fields.get(name)
        if spec_ is None:
            found.append(
                conn.finding(
                    "config-field",
                    f"config.{name} is not a config field of class `{class_id}` "
                    f"(fields: {', '.join(sorted(fields)) or 'none'}): remove it or declare it",
                    "config",
                    name,
                )
            )
        elif (isinstance(value, bool) and spec_.type != "boolean") or not isinstance(
            value, _FIELD_TYPES[spec_.type]
        ):
            found.append(
                conn.finding(
                    "config-field",
                    f"config.{name} is {json.dumps(value, default=str)}, but class "
                    f"`{class_id}` declares it "
                    f"as type {spec_.type} ({spec_.help}): give a value of type {spec_.type}",
                    "config",
                    name,
                )
            )
    return found


def function_placement(draft: Draft) -> Iterator[Finding]:
    yield from _local(draft).placement


def _placement_of(conn: Located[ConnectionEntry], class_id: str, klass: Any) -> list[Finding]:
    if (
        klass is not None
        and conn.value.type == "REST"
        and klass.function_param is None
        and any("{function}" not in url for url in conn.value.urls)
    ):
        return [
            conn.finding(
                "function-placement",
                f"REST class `{class_id}` has no function_param, so the endpoint must contain "
                '`{function}` (or give the class a function_param such as "wsfunction")',
                "endpoint",
            )
        ]
    return []


def folder_ownership(draft: Draft) -> Iterator[Finding]:
    institutions = draft.known("institution")
    for klass in draft.classes:
        owner = _owner(klass.origin, institutions)
        if owner is not None:
            yield klass.finding(
                "folder-ownership",
                f"a file under connections.d/{owner}/ belongs to institution `{owner}` and may not "
                "declare a class: move the class to a site-level file",
                "id",
            )
    yield from _local(draft).folder


def _folder_of_conn(conn: Located[ConnectionEntry], owner: str | None) -> list[Finding]:
    if owner is None or not (conn.value.global_ or conn.value.institutions != (owner,)):
        return []
    return [
        conn.finding(
            "folder-ownership",
            f"a file under connections.d/{owner}/ may only declare connections with "
            f'institutions = ["{owner}"] (never global): move this connection, or fix '
            "its institutions",
            "global" if conn.value.global_ else "institutions",
        )
    ]


def _owner(origin: FileResult, institutions: set[str]) -> str | None:
    """The institution whose folder holds the file, if any."""
    folder = folder_of(origin.source.rel)
    return folder if folder is not None and folder in institutions else None


@dataclass(frozen=True, slots=True)
class _Local:
    """Findings of the rules that look at one connection, its class and its folder only."""

    fixed: list[Finding]
    config: list[Finding]
    placement: list[Finding]
    folder: list[Finding]
    endpoint: list[Finding]


def _local(draft: Draft) -> _Local:
    """fixed-attribute, config-field, function-placement, folder-ownership and the literal
    credentials of endpoints (plaintext-secret) of every connection, in one pass over them.

    A connection depends on nothing but itself, its class and whether its folder belongs to an
    institution.
    """
    if draft.local is not None:
        return draft.local
    classes = {x.value.id: x.value for x in draft.classes}
    # One model_dump per class, not one per connection (of two classes with one id, the last
    # one counts, as everywhere else: the duplicate is reported by unique_ids).
    fixed = {
        x.value.id: x.value.fixed.model_dump(by_alias=True, exclude_none=True)
        for x in draft.classes
    }
    institutions = draft.known("institution")
    local = _Local([], [], [], [], [])
    for class_id, conn in draft.connections:
        klass = classes.get(class_id)
        owner = _owner(conn.origin, institutions)
        found = (
            _fixed_of(conn, class_id, fixed.get(class_id)),
            _config_of(conn, class_id, klass),
            _placement_of(conn, class_id, klass),
            _folder_of_conn(conn, owner),
            _endpoint_of(conn, klass),
        )
        if not any(found):
            continue
        local.fixed.extend(found[0])
        local.config.extend(found[1])
        local.placement.extend(found[2])
        local.folder.extend(found[3])
        local.endpoint.extend(found[4])
    draft.local = local
    return local


def endpoint_credentials(draft: Draft) -> Iterator[Finding]:
    yield from _local(draft).endpoint


_NOT_IN_ENDPOINTS = (
    "credentials never go in the endpoint, which git, logs and `rpcd show` print; remove "
    "{them} and reference the secret in `credentials`: "
)


def _endpoint_of(conn: Located[ConnectionEntry], klass: ConnectionClass | None) -> list[Finding]:
    """Literal credentials in the endpoint or ``parameters`` (rule plaintext-secret); the
    message names where, never the value."""
    value = conn.value
    extra = (value.token_param, klass.fixed.token_param if klass is not None else None)
    found: list[Finding] = []
    for index, url in enumerate(value.urls):
        found += _url_credentials(conn, url, extra, _url_key(value, index))
    for name, param in value.parameters.items():
        literal = isinstance(param, str | int) and not isinstance(param, bool) and str(param)
        if literal and is_secret_param(name, extra):
            found.append(
                conn.finding(
                    "plaintext-secret",
                    f"parameters.{name} holds a literal credential (value hidden): "
                    "parameters are sent, logged and shown as written; remove it and "
                    f'reference the secret in `credentials` (auth = "token", token_param = '
                    f'"{name}")',
                    "parameters",
                    name,
                )
            )
    return found


def _url_key(value: ConnectionEntry, index: int = 0) -> tuple[str | int, ...]:
    """Where a finding about an endpoint points: ``endpoint``, or ``endpoints`` and its index."""
    return ("endpoints", index) if value.endpoints is not None else ("endpoint",)


def _url_credentials(
    conn: Located[ConnectionEntry],
    url: str,
    extra: tuple[str | None, ...],
    key: tuple[str | int, ...],
) -> list[Finding]:
    """Literal credentials in one endpoint URL (rule plaintext-secret)."""
    value = conn.value
    found: list[Finding] = []
    for secret in literal_secrets(url, extra):
        if secret.where == "userinfo":
            where = "a user name and password before the host (`…@`, "
            fix = _NOT_IN_ENDPOINTS.format(them="them") + (
                'auth = "userpass", credentials = '
                '{ username = { env = "NAME" }, password = { env = "NAME" } }'
            )
        else:
            where = f"its {secret.where} parameter `{secret.name}` ("
            fix = _NOT_IN_ENDPOINTS.format(them="it") + (
                'auth = "token", credentials = { token = { env = "NAME" } }, '
                f'token_param = "{secret.name}"'
            )
        found.append(
            conn.finding(
                "plaintext-secret",
                f"`{value.id}`'s endpoint carries a credential in {where}value hidden): {fix}",
                *key,
            )
        )
    return found


def secret_scope(draft: Draft) -> Iterator[Finding]:
    """No connection (and not the site proxy) references the daemon's own secrets; one in an
    institution's folder references only that institution's (``scopes.py``), and calls only
    the hosts it lists in ``endpoint_hosts`` if it lists any (rule endpoint-host)."""
    table = ScopeTable.of(x.value for x in draft.institutions)
    institutions = draft.known("institution")
    for _, conn in draft.connections:
        yield from _scope_of_conn(conn, _owner(conn.origin, institutions), table)
    if draft.proxy is not None and draft.proxy_origin is not None:
        for key, ref in draft.proxy.refs().items():
            problem = reserved_problem(ref)
            if problem is not None:
                yield draft.proxy_origin.finding(
                    "secret-scope",
                    f"proxy.{key}: {problem}: the site proxy may not use it; give the proxy "
                    "credentials of their own",
                    ("proxy", key, ref.kind),
                )


_NO_FINDINGS: list[Finding] = []


def _host_allowed(endpoint: str, scope: Scope) -> bool:
    return scope.hosts is None or host_matches(endpoint_host(endpoint), scope.hosts)


def _scope_of_conn(
    conn: Located[ConnectionEntry], owner: str | None, table: ScopeTable
) -> list[Finding]:
    refs = _refs_of(conn.value)
    scope = table.scopes.get(owner) if owner is not None else None
    urls = conn.value.urls
    host_ok = scope is None or scope.hosts is None or all(_host_allowed(u, scope) for u in urls)
    if host_ok and all(table.admits(owner, ref) for ref in refs.values()):
        return _NO_FINDINGS  # the usual case, without building a message
    found: list[Finding] = []
    for index, url in enumerate(urls):
        if host_ok or scope is None or scope.hosts is None or _host_allowed(url, scope):
            continue
        host = endpoint_host(url)
        found.append(
            conn.finding(
                "endpoint-host",
                f"`{conn.value.id}` calls {host}, which is not one of the hosts institution "
                f"`{owner}`'s folder may call ({', '.join(scope.hosts) or 'none'}): fix the "
                f"endpoint, or have a site admin add the host to `endpoint_hosts` of "
                f"institution `{owner}` in rpcd.toml",
                *_url_key(conn.value, index),
            )
        )
    for key, ref in refs.items():
        problem = reserved_problem(ref)
        fix = "no connection may use it; give the connection a secret of its own"
        if problem is None and owner is not None:
            problem = table.problem(owner, ref)
            fix = (
                f"reference a secret within `{owner}`'s scope, or move the connection to a "
                f"site-level file, or have a site admin declare the name's prefix or folder in "
                f"`secrets` of institution `{owner}` in rpcd.toml"
            )
        if problem is not None:
            found.append(
                conn.finding(
                    "secret-scope",
                    f"{key}: {problem}: {fix}",
                    *key.split("."),
                    ref.kind,
                )
            )
    return found


def _refs_of(value: ConnectionEntry) -> dict[str, SecretRef]:
    """Every secret reference of a connection by its key path: the credentials, and the
    credentials of its own proxy (both spend the folder's secrets)."""
    refs = {f"credentials.{k}": ref for k, ref in value.credentials.refs().items()}
    if isinstance(value.proxy, ProxyServer):
        refs |= {f"proxy.{k}": ref for k, ref in value.proxy.refs().items()}
    return refs


def _grants_someone(grant: Any) -> bool:
    return grant is not None and bool(grant.institutions or grant.peers or grant.anonymous)


def grants(draft: Draft) -> Iterator[Finding]:
    for svc in draft.services:
        grant = svc.value.grant
        methods = svc.value.method
        if methods and all(_grants_someone(m.grant) for m in methods):
            continue  # every method has a grant of its own
        if not _grants_someone(grant):
            yield svc.finding(
                "service-without-grant",
                f"service `{svc.value.name}` grants nobody, so nobody can call it: add "
                "grant = { institutions = [...], peers = [...] }",
                "name",
                severity=Severity.WARNING,
            )


def anonymous_grants(draft: Draft) -> Iterator[Finding]:
    """Warn about every method anyone may call without credentials, naming it."""
    for svc in draft.services:
        service = svc.value
        for i, method in enumerate(service.method):
            grant = service.grant_for(method)
            if grant is None or not grant.anonymous:
                continue
            where = ("method", i, "grant") if method.grant is not None else ("grant",)
            yield svc.finding(
                "anonymous-grant",
                f"method `{service.name}.{method.name}` may be called by anyone, without "
                "credentials (grant anonymous = true): make sure that is meant",
                *where,
                severity=Severity.WARNING,
            )


def method_params(draft: Draft) -> Iterator[Finding]:
    """A method's ``params`` names one param per parameter type of its ``signature``."""
    for svc in draft.services:
        service = svc.value
        for i, method in enumerate(service.method):
            if method.params is None or method.signature is None:
                continue
            types = len(method.signature) - 1
            if len(method.params) != types:
                yield svc.finding(
                    "method-params",
                    f"method `{service.name}.{method.name}` names {len(method.params)} params "
                    f"({', '.join(method.params) or 'none'}) but its signature declares "
                    f"{types} parameter types: give one name per parameter type",
                    "method",
                    i,
                    "params",
                )


def peer_credentials_unique(draft: Draft) -> Iterator[Finding]:
    seen: dict[tuple[str, str], Located[Peer]] = {}
    for peer in draft.peers:
        p = peer.value
        key = ("token", p.token_sha256) if p.token_sha256 else ("user", p.username or "")
        key = ("cert", p.fingerprint_sha256) if p.fingerprint_sha256 else key
        if key[1] and key in seen:
            yield peer.finding(
                "duplicate-credential",
                f"peer `{p.id}` has the same "
                f"{'username' if key[0] == 'user' else key[0] + ' hash'} as "
                f"peer `{seen[key].value.id}` ({_where(seen[key])}): a caller could not be told "
                "apart; give each peer its own credential",
                "username"
                if key[0] == "user"
                else ("token_sha256" if key[0] == "token" else "fingerprint_sha256"),
            )
        seen.setdefault(key, peer)


def enabled_explicit(draft: Draft) -> Iterator[Finding]:
    """(info) A connection without an ``enabled`` key is off (the default is false): say so,
    since forgetting the key otherwise passes silently."""
    for class_id, conn in draft.connections:
        if "enabled" not in conn.value.model_fields_set:
            yield conn.finding(
                "enabled-missing",
                f"`{class_id}/{conn.value.id}` has no `enabled` key, so it is disabled: add "
                "enabled = true to use it (or enabled = false to keep it off on purpose)",
                "id",
                severity=Severity.INFO,
            )


RULES: list[Rule] = [
    unique_ids,
    references,
    global_alone,
    institution_once_per_class,
    fixed_attributes,
    class_prefix,
    config_fields,
    function_placement,
    folder_ownership,
    secret_scope,
    endpoint_credentials,
    grants,
    peer_credentials_unique,
    anonymous_grants,
    method_params,
    enabled_explicit,
]


def import_functions(draft: Draft) -> Iterator[Finding]:
    """Rule 6 for handlers (``validate --import``, and always in the daemon)."""
    for svc in draft.services:
        for i, method in enumerate(svc.value.method):
            if method.function is None:
                continue
            problem = import_problem(method.function)
            if problem:
                yield svc.finding("import-failed", problem, "method", i, "function")
                continue
            problem = context_problem(method.function)
            if problem:
                yield svc.finding("handler-context", problem, "method", i, "function")


def context_problem(spec: str) -> str | None:
    """Why the (importable) handler ``spec`` cannot be given its call context, if it asks
    for it in a way that cannot work (``rpcd.handler.context_parameter``)."""
    module_name, _, attr = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    try:
        context_parameter(target)
    except ContextParameterError as exc:
        return f"handler `{spec}` {exc}"
    return None


def import_problem(spec: str) -> str | None:
    module_name, _, attr = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # any import-time error is the finding
        return (
            f"cannot import module `{module_name}` ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())}): "
            "check the name, and that it is importable (PYTHONPATH)"
        )
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except Exception:
            names = [n for n in dir(target) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f"did you mean `{close[0]}`?" if close else "check the spelling"
            return f"module `{module_name}` has no `{attr}`: {hint}"
    if not callable(target):
        return f"`{spec}` is a {type(target).__name__}, not a function: name a callable"
    return None


__all__ = [
    "DEFAULT_PAYLOAD",
    "RULES",
    "Draft",
    "Located",
    "import_functions",
    "import_problem",
    "parts_of",
]
