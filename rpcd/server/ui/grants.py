"""Who may call a published method, in one function (``method_access``).

The answer is the dispatcher's own: ``MethodEntry.callers`` (the peers
``core.grants.may_call`` lets in, worked out once per catalog), the method's effective grant
(its own, else its service's) and the anonymous methods (``grant.anonymous``, and
``core.calls``'s ``system.*``). The console shows grants only through this function, so a
change to the grant model changes it here alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from rpcd.server.core.calls import ANONYMOUS_METHODS
from rpcd.server.core.loading import MethodEntry

__all__ = ["MethodAccess", "method_access"]


@dataclass(frozen=True)
class MethodAccess:
    """Who may call one method: anyone (no credentials), and which peers and institutions."""

    anonymous: bool
    peers: tuple[str, ...]
    institutions: tuple[str, ...]
    granted_peers: tuple[str, ...]


def method_access(entry: MethodEntry) -> MethodAccess:
    """``peers``: every peer that may call it; ``institutions`` and ``granted_peers``: what
    the grant that decides (the method's own, else its service's) names."""
    grant = entry.service.grant_for(entry.method)
    return MethodAccess(
        anonymous=entry.anonymous or entry.name in ANONYMOUS_METHODS,
        peers=tuple(sorted(entry.callers)),
        institutions=tuple(grant.institutions) if grant is not None else (),
        granted_peers=tuple(grant.peers) if grant is not None else (),
    )
