"""The data of each console page, as pure functions of the catalog, metrics and reloads.

Every list a page shows is filtered and cut into pages here, so what a page costs is its page
size, not the tree's size: a 10,000-connection tree renders as fast as the example one. The
routing cells are ``rpcd.routing.applicable``'s answer — the one ``rpcd diff`` and the call
path give — with the disabled instances beside it, marked as not tried.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rpcd.config import Catalog, ResolvedConnection
from rpcd.config.models import ConnectionsFile, Peer
from rpcd.connections.probe import ProbeResult
from rpcd.routing import applicable
from rpcd.server.core.loading import Loaded
from rpcd.server.ops.reload import ReloadResult
from rpcd.server.ui.access import can_see_connection, can_see_file, visible_institutions
from rpcd.server.ui.grants import MethodAccess, method_access
from rpcd.server.ui.metrics_view import ConnectionSummary

__all__ = [
    "Cell",
    "Page",
    "connection_fields",
    "connection_line",
    "matrix",
    "paginate",
    "reload_rows",
    "service_rows",
]

T = TypeVar("T")

#: A refused reload's error line, for a viewer who may not see the finding it quotes.
HIDDEN_ERROR = "invalid tree; the old catalog keeps serving"


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a longer list: its items, its number (from 1), how many pages in all."""

    items: Sequence[T]
    number: int
    pages: int
    total: int


def paginate(items: Sequence[T], number: int, size: int) -> Page[T]:
    """Page ``number`` (clamped to the last page) of ``items``, ``size`` per page."""
    pages = max(1, -(-len(items) // size))
    number = min(number, pages)
    start = (number - 1) * size
    return Page(items[start : start + size], number, pages, len(items))


@dataclass(frozen=True)
class Entry:
    """A connection as one routing cell shows it."""

    conn: ResolvedConnection
    tried: bool  # enabled, and the master switch on: the runner tries it


@dataclass(frozen=True)
class Cell:
    """The connections a caller of ``class_id`` acting for ``institution`` gets."""

    class_id: str
    institution: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Matrix:
    """The routing matrix: a page of classes (rows) by a page of institutions (columns)."""

    rows: Page[str]
    columns: Page[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)


def _matches(needle: str) -> Callable[[str], bool]:
    folded = needle.casefold()
    return lambda text: folded in text.casefold()


def matrix(
    catalog: Catalog,
    peer: Peer,
    class_filter: str,
    institution_filter: str,
    page: int,
    column_page: int,
    page_size: int,
    columns: int,
) -> Matrix:
    """The routing matrix page: classes whose id or name holds ``class_filter``, by the visible
    institutions whose id or name holds ``institution_filter``."""
    class_ok, inst_ok = _matches(class_filter), _matches(institution_filter)
    class_ids = [
        c for c in sorted(catalog.classes) if class_ok(c) or class_ok(catalog.classes[c].name)
    ]
    institutions = [
        i
        for i in visible_institutions(peer, catalog)
        if inst_ok(i) or inst_ok(catalog.institutions[i].name)
    ]
    rows = paginate(class_ids, page, page_size)
    cols = paginate(institutions, column_page, columns)
    cells: dict[tuple[str, str], Cell] = {}
    for class_id in rows.items:
        instances = catalog.instances(class_id)
        for inst in cols.items:
            tried = applicable(catalog, class_id, (inst,))
            tried_ids = {c.id for c in tried}
            shown = [c for c in instances if c.is_global or inst in c.institutions]
            entries = [Entry(c, True) for c in tried] + [
                Entry(c, False) for c in shown if c.id not in tried_ids
            ]
            cells[(class_id, inst)] = Cell(class_id, inst, tuple(entries))
    return Matrix(rows, cols, cells)


def connection_fields(conn: ResolvedConnection) -> list[tuple[str, str]]:
    """Every field as resolved, as (name, text): secrets as references, the endpoint (or the
    endpoints, in the order tried) and parameters as ``rpcd show`` prints them (anything
    carrying a token masked)."""
    data: dict[str, Any] = conn.model_dump(mode="json", by_alias=True)
    data["credentials"] = {k: str(v) for k, v in conn.credentials.items()}
    if conn.endpoints:  # primary first, then the standbys, in the order they are tried
        data["endpoints"] = conn.shown_endpoints()
        data.pop("endpoint", None)
    else:
        data["endpoint"] = conn.shown_endpoint()
    data["parameters"] = conn.shown_parameters(data.get("parameters", {}))
    rows = []
    for name, value in data.items():
        if isinstance(value, str):
            text = value
        elif value is None:
            text = "—"
        else:
            text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        rows.append((name, text))
    return rows


def connection_line(loaded: Loaded, conn: ResolvedConnection) -> int | None:
    """The line of ``conn``'s ``[[connection]]`` in its file, from the build's file cache."""
    result = loaded.cache.get(conn.source)
    if result is None or not isinstance(result.model, ConnectionsFile):
        return None
    for index, entry in enumerate(result.model.connection):
        if entry.id == conn.id:
            line, _ = result.locate(("connection", index))
            return line
    return None


@dataclass(frozen=True)
class ConnectionPage:
    """Everything the connection page shows."""

    conn: ResolvedConnection
    class_name: str
    line: int | None
    fields: list[tuple[str, str]]
    summary: ConnectionSummary
    last_probe: ProbeResult | None
    has_probe: bool


@dataclass(frozen=True)
class MethodRow:
    """One published method and who may call it (as the viewer may see it)."""

    name: str
    signature: str
    help: str
    target: str
    access: MethodAccess
    viewer_may_call: bool
    asked_peer_may_call: bool | None


def service_rows(
    loaded: Loaded, peer: Peer, name_filter: str, asked_peer: str | None
) -> list[MethodRow]:
    """Every method whose name holds ``name_filter``, with its access; a non-admin viewer
    sees only the part of each grant that is its own (its id, its institutions)."""
    ok = _matches(name_filter)
    rows = []
    for name in sorted(loaded.methods):
        if not ok(name):
            continue
        entry = loaded.methods[name]
        access = method_access(entry)
        if not peer.admin:
            own = set(peer.institutions)
            access = MethodAccess(
                access.anonymous,
                tuple(p for p in access.peers if p == peer.id),
                tuple(i for i in access.institutions if i in own),
                tuple(p for p in access.granted_peers if p == peer.id),
            )
        method = entry.method
        signature = " ".join(method.signature) if method.signature else "(not declared)"
        target = method.function or (
            f"proxy {method.proxy.class_}.{method.proxy.function}" if method.proxy else ""
        )
        rows.append(
            MethodRow(
                name,
                signature,
                method.help,
                target,
                access,
                access.anonymous or peer.id in access.peers,
                None
                if asked_peer is None
                else access.anonymous or asked_peer in method_access(entry).peers,
            )
        )
    return rows


@dataclass(frozen=True)
class ReloadRow:
    """One reload as the reload pages show it."""

    at: str
    ok: bool
    changed: bool
    content_hash: str
    duration_ms: float
    error: str | None
    error_count: int
    findings: list[dict[str, Any]]
    hidden_findings: int


def reload_rows(
    history: Sequence[ReloadResult], peer: Peer, institutions: Sequence[str]
) -> list[ReloadRow]:
    """Newest first. A non-admin viewer does not see findings in another institution's
    folder (nor the error line quoting one); it sees how many were left out."""
    rows = []
    for result in reversed(history):
        data = result.to_dict()
        findings = [f for f in data["findings"] if can_see_file(peer, f.get("file"), institutions)]
        hidden = len(data["findings"]) - len(findings)
        rows.append(
            ReloadRow(
                at=data["at"],
                ok=result.ok,
                changed=result.changed,
                content_hash=result.content_hash,
                duration_ms=data["duration_ms"],
                error=data["error"] if hidden == 0 else HIDDEN_ERROR,
                error_count=result.error_count,
                findings=findings,
                hidden_findings=hidden,
            )
        )
    return rows


def visible_connection(catalog: Catalog, peer: Peer, full_id: str) -> ResolvedConnection | None:
    conn = catalog.connections.get(full_id)
    if conn is None or not can_see_connection(peer, conn):
        return None
    return conn
