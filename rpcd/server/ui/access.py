"""What a signed-in peer may see: an admin peer everything, any other peer its institutions.

A non-admin peer sees the institutions it acts for, the connections that serve one of them or
are global, and its own grants; it never sees another institution's name, connections or
files. Every page asks these functions, so the rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Iterable

from rpcd.config import Catalog, ResolvedConnection
from rpcd.config.models import Peer
from rpcd.config.scopes import folder_of

__all__ = ["can_see_connection", "can_see_file", "visible_institutions"]


def visible_institutions(peer: Peer, catalog: Catalog) -> list[str]:
    """The institution ids ``peer`` may see, sorted."""
    if peer.admin:
        return sorted(catalog.institutions)
    return sorted(i for i in peer.institutions if i in catalog.institutions)


def can_see_connection(peer: Peer, conn: ResolvedConnection) -> bool:
    return peer.admin or conn.is_global or not set(peer.institutions).isdisjoint(conn.institutions)


def can_see_file(peer: Peer, rel: str | None, institutions: Iterable[str]) -> bool:
    """A file in another institution's folder (``connections.d/<institution>/``) is hidden
    from a non-admin peer; any other file is shared configuration."""
    if peer.admin or rel is None:
        return True
    folder = folder_of(rel)
    return folder is None or folder in peer.institutions or folder not in set(institutions)
