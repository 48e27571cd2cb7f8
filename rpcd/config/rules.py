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
from rpcd.config.findings import Finding, Severity
from rpcd.config.models import (
    DEFAULT_PAYLOAD,
    Connection,
    ConnectionClass,
    ConnectionsFile,
    Institution,
    Peer,
    Service,
    ServicesFile,
    SiteFile,
)
from rpcd.config.parse import Path_
from rpcd.config.sources import CONNECTIONS_DIR, FileKind

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
    institutions: list[Located[Institution]] = field(default_factory=list)
    classes: list[Located[ConnectionClass]] = field(default_factory=list)
    connections: list[tuple[str, Located[Connection]]] = field(
        default_factory=list
    )  # (class id, …)
    services: list[Located[Service]] = field(default_factory=list)
    peers: list[Located[Peer]] = field(default_factory=list)
    broken: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # Files that could not be read or parsed at all, by kind: what they declare is unknown.
    unreadable: dict[FileKind, list[str]] = field(default_factory=lambda: defaultdict(list))
    site_loaded: bool = False

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
            parts = result.parts
            if parts is None:
                parts = result.parts = _Parts.of(result, model)
            if isinstance(model, SiteFile):
                draft.site_loaded = True  # unless its institutions are broken: see complete()
                draft.switch = model.connections.enabled
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
    connections: list[tuple[str, Located[Connection]]]
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


Rule = Callable[[Draft], Iterator[Finding]]


def _duplicates(items: Iterable[tuple[Any, Located[Any]]], what: str) -> Iterator[Finding]:
    first: dict[Any, Located[Any]] = {}
    for key, located in items:
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
    yield from _duplicates((((c, x.value.id), x) for c, x in draft.connections), "connection")
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

    def unknown_institutions(
        located: Located[Any], ids: Iterable[str], *sub: str
    ) -> Iterator[Finding]:
        if not draft.site_loaded or not draft.complete("institution"):
            return  # rpcd.toml is missing or broken (reported): every reference would look unknown
        for i, inst in enumerate(ids):
            if inst not in institutions:
                yield located.finding(
                    "unknown-institution",
                    f"institution `{inst}` is not declared in rpcd.toml: "
                    f"{_suggest(inst, institutions)}"
                    f'add an [[institution]] with id = "{inst}" or fix the id '
                    f"({_choices(institutions)})",
                    *sub,
                    i,
                )

    for class_id, conn in draft.connections:
        if class_id not in classes and draft.complete("class"):
            yield conn.finding(
                "unknown-class",
                f"class `{class_id}` is not declared in any connections.d file: "
                f"{_suggest(class_id, classes)}"
                f"fix the name or declare the class ({_choices(classes)}){class_hint}",
                "class",
            )
        yield from unknown_institutions(conn, conn.value.institutions, "institutions")
    for peer in draft.peers:
        yield from unknown_institutions(peer, peer.value.institutions, "institutions")
    for svc in draft.services:
        grant = svc.value.grant
        if grant is not None:
            yield from unknown_institutions(svc, grant.institutions, "grant", "institutions")
            for i, peer_id in enumerate(grant.peers):
                if peer_id not in peers and draft.complete("peer"):
                    yield svc.finding(
                        "unknown-peer",
                        f"peer `{peer_id}` is not declared in any services.d file: "
                        f"{_suggest(peer_id, peers)}"
                        f"fix the id or add a [[peer]] ({_choices(peers)}){peer_hint}",
                        "grant",
                        "peers",
                        i,
                    )
        for i, method in enumerate(svc.value.method):
            if (
                method.proxy is not None
                and method.proxy.class_ not in classes
                and draft.complete("class")
            ):
                yield svc.finding(
                    "unknown-proxy-class",
                    f"proxy class `{method.proxy.class_}` of method `{method.name}` is not "
                    "a declared "
                    f"connection class: {_suggest(method.proxy.class_, classes)}fix the "
                    "name or declare "
                    f"the class in connections.d ({_choices(classes)}){class_hint}",
                    "method",
                    i,
                    "proxy",
                    "class",
                )


def _suggest(name: str, ids: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(ids), n=1)
    return f"did you mean `{close[0]}`? " if close else ""


def _choices(ids: set[str]) -> str:
    shown = sorted(ids)[:8]
    return (
        "declared: " + ", ".join(shown) + (", …" if len(ids) > 8 else "")
        if shown
        else "none declared"
    )


def _by_class(draft: Draft) -> dict[str, list[Located[Connection]]]:
    grouped: dict[str, list[Located[Connection]]] = defaultdict(list)
    for class_id, conn in draft.connections:
        grouped[class_id].append(conn)
    return grouped


def global_alone(draft: Draft) -> Iterator[Finding]:
    for class_id, conns in _by_class(draft).items():
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
    for class_id, conns in _by_class(draft).items():
        seen: dict[str, Located[Connection]] = {}
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


_EFFECTIVE: dict[str, Callable[[Connection], Any]] = {
    "payload": lambda c: c.effective_payload,
    "http_method": lambda c: c.http_method or "GET",
    "global": lambda c: c.global_,
}


def fixed_attributes(draft: Draft) -> Iterator[Finding]:
    # One model_dump per class, not one per connection (of two classes with one id, the last
    # one counts, as everywhere else: the duplicate is reported by unique_ids).
    fixed: dict[str, dict[str, Any]] = {}
    for x in draft.classes:
        fixed[x.value.id] = x.value.fixed.model_dump(by_alias=True, exclude_none=True)
    for class_id, conn in draft.connections:
        wanted_by_key = fixed.get(class_id)
        if not wanted_by_key:
            continue
        for key, wanted in wanted_by_key.items():
            attr = "global_" if key == "global" else key
            actual = _EFFECTIVE[key](conn.value) if key in _EFFECTIVE else getattr(conn.value, attr)
            if actual != wanted:
                want, have = json.dumps(wanted), json.dumps(actual)
                written = key in conn.value.model_fields_set or attr in conn.value.model_fields_set
                yield conn.finding(
                    "fixed-attribute",
                    f"class `{class_id}` fixes {key} = {want} for every instance, but "
                    f"`{class_id}/{conn.value.id}` has {key} = {have}"
                    f"{'' if written else ' (the default)'}: "
                    f"set {key} = {want} (or change the class's `fixed`)",
                    key if written else "id",
                )


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
    classes = {x.value.id: x.value for x in draft.classes}
    for class_id, conn in draft.connections:
        klass = classes.get(class_id)
        if klass is None:
            continue
        fields, values = klass.config_fields, conn.value.config
        for name, spec in fields.items():
            if spec.required and name not in values:
                yield conn.finding(
                    "config-field",
                    f"class `{class_id}` requires config.{name} ({spec.help}), and "
                    f"`{class_id}/{conn.value.id}` does not set it: add {name} = … under "
                    "[connection.config]",
                    "config" if values else "id",
                )
        for name, value in values.items():
            spec_ = fields.get(name)
            if spec_ is None:
                yield conn.finding(
                    "config-field",
                    f"config.{name} is not a config field of class `{class_id}` "
                    f"(fields: {', '.join(sorted(fields)) or 'none'}): remove it or declare it",
                    "config",
                    name,
                )
            elif (isinstance(value, bool) and spec_.type != "boolean") or not isinstance(
                value, _FIELD_TYPES[spec_.type]
            ):
                yield conn.finding(
                    "config-field",
                    f"config.{name} is {json.dumps(value, default=str)}, but class "
                    f"`{class_id}` declares it "
                    f"as type {spec_.type} ({spec_.help}): give a value of type {spec_.type}",
                    "config",
                    name,
                )


def function_placement(draft: Draft) -> Iterator[Finding]:
    classes = {x.value.id: x.value for x in draft.classes}
    for class_id, conn in draft.connections:
        klass = classes.get(class_id)
        if klass is None:
            continue
        if (
            conn.value.type == "REST"
            and klass.function_param is None
            and "{function}" not in conn.value.endpoint
        ):
            yield conn.finding(
                "function-placement",
                f"REST class `{class_id}` has no function_param, so the endpoint must contain "
                '`{function}` (or give the class a function_param such as "wsfunction")',
                "endpoint",
            )


def folder_ownership(draft: Draft) -> Iterator[Finding]:
    institutions = draft.known("institution")
    owned: dict[str, str] = {}
    origins = [x.origin for x in draft.classes] + [c.origin for _, c in draft.connections]
    for origin in origins:
        # The folder a file lies in never changes: split its path once per file result.
        folder = origin.memo.get("folder", False)
        if folder is False:
            folder = origin.memo["folder"] = _folder_of(origin.source.rel)
        if folder is not None and folder in institutions:
            owned[origin.source.rel] = folder
    for klass in draft.classes:
        owner = owned.get(klass.origin.source.rel)
        if owner is not None:
            yield klass.finding(
                "folder-ownership",
                f"a file under connections.d/{owner}/ belongs to institution `{owner}` and may not "
                "declare a class: move the class to a site-level file",
                "id",
            )
    for _, conn in draft.connections:
        owner = owned.get(conn.origin.source.rel)
        if owner is None:
            continue
        if conn.value.global_ or conn.value.institutions != (owner,):
            yield conn.finding(
                "folder-ownership",
                f"a file under connections.d/{owner}/ may only declare connections with "
                f'institutions = ["{owner}"] (never global): move this connection, or fix '
                "its institutions",
                "global" if conn.value.global_ else "institutions",
            )


def _folder_of(rel: str) -> str | None:
    """``connections.d/<folder>/…`` → ``<folder>`` (an institution's folder if one is so named)."""
    parts = rel.split("/")
    if len(parts) >= 3 and parts[0] == CONNECTIONS_DIR:
        return parts[1]
    return None


def grants(draft: Draft) -> Iterator[Finding]:
    for svc in draft.services:
        grant = svc.value.grant
        if grant is None or not (grant.institutions or grant.peers):
            yield svc.finding(
                "service-without-grant",
                f"service `{svc.value.name}` grants nobody, so nobody can call it: add "
                "grant = { institutions = [...], peers = [...] }",
                "name",
                severity=Severity.WARNING,
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
    grants,
    peer_credentials_unique,
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


__all__ = ["DEFAULT_PAYLOAD", "RULES", "Draft", "Located", "import_functions", "import_problem"]
