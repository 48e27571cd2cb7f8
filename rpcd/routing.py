"""Effective routing: which connections a caller of a class gets, in the order they are tried.

This is SPEC section 4's ``connections_for`` as a pure function of a catalog, so that the call
path (``rpcd.connections``) and the review path (``rpcd diff``) can never disagree on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rpcd.config import Catalog, ResolvedConnection

RouteKey = tuple[str, tuple[str, ...]]  # (class id, sorted institution ids of the caller)


def applicable(
    catalog: Catalog, class_id: str, institutions: Sequence[str]
) -> list[ResolvedConnection]:
    """Enabled instances of a class that are global or serve one of ``institutions``.

    Ordered by priority, ties by id; empty when the master switch is off (SPEC section 4).
    """
    if not catalog.connections_enabled:
        return []
    wanted = set(institutions)
    return [
        conn
        for conn in catalog.instances(class_id)
        if conn.enabled and (conn.is_global or not wanted.isdisjoint(conn.institutions))
    ]


def caller_sets(catalog: Catalog) -> list[tuple[str, ...]]:
    """The institution sets worth routing for: each institution alone, and each peer's set.

    Within a class an institution is served by at most one instance, so only a caller acting
    for several institutions (a peer calling a proxy method) sees an order that priority decides.
    """
    sets: set[tuple[str, ...]] = {(inst,) for inst in catalog.institutions}
    sets |= {
        tuple(sorted(peer.institutions)) for peer in catalog.peers.values() if peer.institutions
    }
    return sorted(sets, key=lambda s: (len(s), s))


def routing_table(
    catalog: Catalog, callers: Iterable[tuple[str, ...]] | None = None
) -> dict[RouteKey, list[str]]:
    """For every class and caller set: the instance ids tried, in order."""
    sets = list(caller_sets(catalog) if callers is None else callers)
    return {
        (class_id, insts): [conn.id for conn in applicable(catalog, class_id, insts)]
        for class_id in sorted(catalog.classes)
        for insts in sets
    }
