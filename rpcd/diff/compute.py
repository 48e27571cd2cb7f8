"""Two catalogs → Diff: what a change does, entity by entity and as effective routing.

Pure data, no I/O. Only changed fields are listed (decK's whole-object diffs hide the one line
that matters). Secrets are never resolved here: a connection's credentials are compared as
references (``env:NAME``…), and a peer's credential hashes are compared but never carried in
the result, so no reporter can print them.

Secret scopes (rule secret-scope) are judged here too: an added or changed reference of a
connection in an institution's folder is flagged when it lies outside that folder's scope on
either side (a scope widened in the same change admits it only on HEAD), or names the
daemon's own secrets; a change to an institution's ``secrets`` is flagged as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from rpcd.config import Catalog
from rpcd.config.models import (
    ConnectionClass,
    Institution,
    Method,
    Peer,
    ProxyServer,
    SecretRef,
    Service,
    SiteProxy,
)
from rpcd.config.scopes import ScopeTable, folder_of, reserved_problem
from rpcd.diff.actions import NextStep, next_steps
from rpcd.routing import caller_sets, routing_table

Json = Any  # a JSON-able value: str, int, float, bool, list, dict

#: ``proxy``: rpcd.toml's site-wide outbound proxy, id ``site`` (it concerns everyone).
KINDS: tuple[str, ...] = (
    "institution",
    "class",
    "connection",
    "service",
    "method",
    "peer",
    "proxy",
)
HASH_FIELDS = frozenset({"token_sha256", "password_hash", "fingerprint_sha256"})
HIDDEN = "(hidden)"  # stands in for a credential hash, which a diff never shows


class Action(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    RENAMED = "renamed"  # same fields under a new id (its fields: id, and file if it moved)


class Secret(StrEnum):
    REFERENCE = "reference"  # the value shown is a reference (env:NAME), never the secret
    HASH = "hash"  # the value is withheld entirely


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field, old → new; ``None`` means unset on that side."""

    field: str
    old: Json
    new: Json
    secret: Secret | None = None
    #: Why a reviewer must look at this field's secret scope: a reference outside the scope of
    #: its connection's folder, or an institution's scope that changes; None otherwise.
    scope: str | None = None

    @property
    def note(self) -> str | None:
        """What a reviewer must notice about a secret field that changed."""
        if self.old is None or self.new is None:
            return None
        if self.secret is Secret.REFERENCE:
            return "secret reference changed"
        if self.secret is Secret.HASH:
            return "credential rotated"
        return None


@dataclass(frozen=True, slots=True)
class EntityChange:
    """An added, removed or changed entity. Added ones list their fields; removed ones none."""

    kind: str
    id: str
    action: Action
    fields: tuple[FieldChange, ...] = ()
    renamed_from: str | None = None  # the old id, for RENAMED


@dataclass(frozen=True, slots=True)
class RouteChange:
    """The connections a caller of ``class_id`` acting for ``institutions`` gets, before → after."""

    class_id: str
    institutions: tuple[str, ...]
    peers: tuple[str, ...]  # peers acting for exactly this set of institutions
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Diff:
    master_switch: tuple[bool, bool] | None
    changes: tuple[EntityChange, ...]
    routing: tuple[RouteChange, ...]
    institution: str | None = None
    #: What applying the change needs besides a reload (rpcd.diff.actions).
    steps: tuple[NextStep, ...] = ()

    @property
    def empty(self) -> bool:
        return self.master_switch is None and not self.changes and not self.routing

    def counts(self) -> dict[str, dict[str, int]]:
        """Per kind: how many were added, removed, changed (every kind and action present)."""
        table = {kind: {action.value: 0 for action in Action} for kind in KINDS}
        for change in self.changes:
            table[change.kind][change.action.value] += 1
        return table

    def totals(self) -> dict[str, int]:
        totals = {action.value: 0 for action in Action}
        for change in self.changes:
            totals[change.action.value] += 1
        return totals


# --- entities as flat field maps --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entity:
    fields: dict[str, Json]
    concerns: frozenset[str] | None  # institutions it affects; None: every institution


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Json]:
    """Nested tables become dotted keys, so a change names the one leaf that moved."""
    out: dict[str, Json] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if value is None:
            continue
        if isinstance(value, dict):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _dump(
    model: Institution | ConnectionClass | Service | Method | Peer, *drop: str
) -> dict[str, Json]:
    data: dict[str, Json] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key in drop:
        data.pop(key, None)
    return _flatten(data)


def _entities(catalog: Catalog) -> dict[str, dict[str, _Entity]]:
    """Every entity of a catalog by kind and id, with the institutions it concerns."""
    peers_of = {p.id: frozenset(p.institutions) for p in catalog.peers.values()}
    connections: dict[str, _Entity] = {}
    class_concerns: dict[str, frozenset[str] | None] = {c: frozenset() for c in catalog.classes}
    for full_id, conn in catalog.connections.items():
        data: dict[str, Json] = conn.model_dump(
            mode="json", exclude={"class_id", "id", "credentials", "source"}
        )
        data = {("global" if k == "is_global" else k): v for k, v in data.items()}
        data["credentials"] = {name: str(ref) for name, ref in conn.credentials.items()}
        if not conn.endpoints:  # one endpoint: `endpoint` says it all
            data.pop("endpoints", None)
        if conn.proxy:  # its credentials as references, like `credentials`
            data["proxy"] = _proxy(conn.proxy)
        data["file"] = conn.source
        concerns = None if conn.is_global else frozenset(conn.institutions)
        connections[full_id] = _Entity(_flatten(data), concerns)
        before = class_concerns.get(conn.class_id, frozenset())
        class_concerns[conn.class_id] = (
            None if before is None or concerns is None else before | concerns
        )
    services: dict[str, _Entity] = {}
    methods: dict[str, _Entity] = {}
    for name, service in catalog.services.items():
        grant = service.grant
        reach = (
            frozenset(grant.institutions).union(*(peers_of.get(p, ()) for p in grant.peers))
            if grant
            else frozenset()
        )
        services[name] = _Entity(_dump(service, "name", "method"), reach)
        for method in service.method:
            methods[f"{name}.{method.name}"] = _Entity(_dump(method, "name"), reach)
    return {
        "institution": {
            i: _Entity(_dump(x, "id"), frozenset({i})) for i, x in catalog.institutions.items()
        },
        "class": {
            c: _Entity(_dump(x, "id"), class_concerns[c]) for c, x in catalog.classes.items()
        },
        "connection": connections,
        "service": services,
        "method": methods,
        "peer": {
            p: _Entity(_dump(x, "id"), None if x.admin else frozenset(x.institutions))
            for p, x in catalog.peers.items()
        },
        "proxy": {} if catalog.proxy is None else {"site": _Entity(_proxy(catalog.proxy), None)},
    }


def _proxy(proxy: ProxyServer) -> dict[str, Json]:
    """A proxy's fields, its credentials as references (a connection's own, or the site's)."""
    shown: dict[str, Json] = {"url": proxy.url}
    shown |= {k: str(ref) for k, ref in proxy.refs().items()}
    if isinstance(proxy, SiteProxy) and proxy.no_proxy is not None:
        shown["no_proxy"] = list(proxy.no_proxy)
    return shown


def _secret(kind: str, field: str) -> Secret | None:
    if kind == "connection" and (
        field.startswith("credentials.") or field in ("proxy.username", "proxy.password")
    ):
        return Secret.REFERENCE
    if kind == "proxy" and field in ("username", "password"):
        return Secret.REFERENCE
    if kind == "peer" and field in HASH_FIELDS:
        return Secret.HASH
    return None


def _field(kind: str, name: str, old: Json, new: Json) -> FieldChange:
    secret = _secret(kind, name)
    if secret is Secret.HASH:
        old = None if old is None else HIDDEN
        new = None if new is None else HIDDEN
    return FieldChange(name, old, new, secret)


def _field_changes(
    kind: str, old: dict[str, Json], new: dict[str, Json]
) -> tuple[FieldChange, ...]:
    names = list(new) + [k for k in old if k not in new]
    return tuple(_field(kind, n, old.get(n), new.get(n)) for n in names if old.get(n) != new.get(n))


def _concerns(institution: str | None, *entities: _Entity | None) -> bool:
    if institution is None:
        return True
    return any(
        e is not None and (e.concerns is None or institution in e.concerns) for e in entities
    )


def _entity_changes(base: Catalog, head: Catalog, institution: str | None) -> list[EntityChange]:
    old_all, new_all = _entities(base), _entities(head)
    scopes = _Scopes(base, head)
    changes: list[EntityChange] = []
    for kind in KINDS:
        old, new = old_all[kind], new_all[kind]
        renamed = _renames(old, new)
        for ident in sorted(old.keys() | new.keys()):
            before, after = old.get(ident), new.get(ident)
            if not _concerns(institution, before, after):
                continue
            if ident in renamed.values():
                continue  # shown once, under its new id
            if ident in renamed:
                was = renamed[ident]
                moved = _field_changes(kind, old[was].fields, new[ident].fields)
                fields = (FieldChange("id", was, ident), *moved)
                changes.append(EntityChange(kind, ident, Action.RENAMED, fields, renamed_from=was))
            elif after is None:
                changes.append(EntityChange(kind, ident, Action.REMOVED))
            elif before is None:
                fields = tuple(_field(kind, k, None, v) for k, v in after.fields.items())
                fields = scopes.flag(kind, ident, fields, added=True)
                changes.append(EntityChange(kind, ident, Action.ADDED, fields))
            else:
                fields = _field_changes(kind, before.fields, after.fields)
                if fields:
                    fields = scopes.flag(kind, ident, fields, added=False)
                    changes.append(EntityChange(kind, ident, Action.CHANGED, fields))
    return changes


def _signature(entity: _Entity) -> str:
    """An entity's fields but where it is written: equal for a rename, even to another file."""
    return repr(sorted((k, repr(v)) for k, v in entity.fields.items() if k != "file"))


def _renames(old: dict[str, _Entity], new: dict[str, _Entity]) -> dict[str, str]:
    """New id → old id, for each removed entity whose fields an added one has exactly (pairs
    taken in id order when several are alike)."""
    gone: dict[str, list[str]] = {}
    for ident in sorted(old.keys() - new.keys()):
        gone.setdefault(_signature(old[ident]), []).append(ident)
    pairs: dict[str, str] = {}
    for ident in sorted(new.keys() - old.keys()):
        same = gone.get(_signature(new[ident]))
        if same:
            pairs[ident] = same.pop(0)
    return pairs


class _Scopes:
    """Both sides' secret scopes, to flag the fields a reviewer of secret scopes must see."""

    def __init__(self, base: Catalog, head: Catalog) -> None:
        self.base, self.head = base, head
        self.before = ScopeTable.of(base.institutions.values())
        self.after = ScopeTable.of(head.institutions.values())

    def flag(
        self, kind: str, ident: str, fields: tuple[FieldChange, ...], *, added: bool
    ) -> tuple[FieldChange, ...]:
        if kind == "institution" and not added:
            spend = f"what connections.d/{ident}/ may reference changes"
            call = f"which hosts connections.d/{ident}/ may call changes"
            return tuple(
                replace(f, scope=spend)
                if f.field.startswith("secrets.")
                else replace(f, scope=call)
                if f.field == "endpoint_hosts"
                else f
                for f in fields
            )
        if kind != "connection":
            return fields
        conn = self.head.connections.get(ident)
        if conn is None:
            return fields
        folder = folder_of(conn.source)
        out = []
        for f in fields:
            key = f.field.removeprefix("credentials.")
            ref = conn.credentials.get(key) if f.secret is Secret.REFERENCE else None
            if ref is not None and f.new is not None:
                f = replace(f, scope=self._problem(folder, ref))
            out.append(f)
        return tuple(out)

    def _problem(self, folder: str | None, ref: SecretRef) -> str | None:
        reserved = reserved_problem(ref)
        if reserved is not None:
            return f"{reserved}: no connection may use it"
        if folder is None or folder not in self.head.institutions:
            return None  # a site-level file: the site's whole namespace
        now = self.after.problem(folder, ref)
        if now is not None:
            return now
        if folder in self.base.institutions:
            then = self.before.problem(folder, ref)
            if then is not None:
                return f"allowed only by this change to rpcd.toml; before it, {then}"
        return None


# --- effective routing ------------------------------------------------------------------------


def _route_changes(base: Catalog, head: Catalog, institution: str | None) -> list[RouteChange]:
    callers = sorted(set(caller_sets(base)) | set(caller_sets(head)), key=lambda s: (len(s), s))
    if institution is not None:
        callers = [c for c in callers if institution in c]
    before, after = routing_table(base, callers), routing_table(head, callers)
    acting: dict[tuple[str, ...], set[str]] = {}
    for peer in [*base.peers.values(), *head.peers.values()]:
        acting.setdefault(tuple(sorted(peer.institutions)), set()).add(peer.id)
    rows: list[RouteChange] = []
    for key in sorted(before.keys() | after.keys(), key=lambda k: (k[0], len(k[1]), k[1])):
        old, new = before.get(key, []), after.get(key, [])
        if old != new:
            class_id, insts = key
            rows.append(
                RouteChange(
                    class_id, insts, tuple(sorted(acting.get(insts, ()))), tuple(old), tuple(new)
                )
            )
    return rows


def diff_catalogs(
    base: Catalog,
    head: Catalog,
    institution: str | None = None,
    changed_modules: frozenset[str] = frozenset(),
) -> Diff:
    """What changes from ``base`` to ``head``; with ``institution``, only what concerns it.
    ``changed_modules``: handler modules whose code differs between the sides (a restart)."""
    switch = None
    if base.connections_enabled != head.connections_enabled:
        switch = (base.connections_enabled, head.connections_enabled)
    changes = tuple(_entity_changes(base, head, institution))
    routing = tuple(_route_changes(base, head, institution))
    changed = bool(switch is not None or changes or routing)
    return Diff(
        master_switch=switch,
        changes=changes,
        routing=routing,
        institution=institution,
        steps=next_steps(base, head, changed_modules, changed=changed, institution=institution)
        if changed
        else (),
    )


def known_institutions(*catalogs: Catalog) -> set[str]:
    """Institutions declared on any side (``--institution`` must name one of them)."""
    return set().union(*(c.institutions for c in catalogs))
