"""Who may call a published method: the one place that answers it.

A method's own ``grant`` replaces its service's (a grant per method, as Drupal Services has);
without one the service's applies; without either nobody may call (deny by default). A grant
admits the peers it names, the peers acting for an institution it names, and, with
``anonymous = true``, anyone, callers without credentials included.

``may_call(peer, service, method)`` is the question "may peer X call method Y"; the dispatcher
asks it once per catalog (``loading.build_methods`` keeps each method's callers as a set) and
the introspection methods and other readers (a console) ask it directly.
"""

from __future__ import annotations

from collections.abc import Sequence

from rpcd.config.models import Grant, Method, Peer, Service

__all__ = ["admits", "is_anonymous", "may_call"]


def is_anonymous(service: Service, method: Method | None = None) -> bool:
    """Whether anyone, even a caller without credentials, may call the method."""
    grant = service.grant_for(method)
    return grant is not None and grant.anonymous


def admits(grant: Grant | None, peer_id: str | None, institutions: Sequence[str]) -> bool:
    """Whether ``grant`` lets a caller in: the peer ``peer_id`` (None: no credentials) acting
    for ``institutions``."""
    if grant is None:
        return False
    if grant.anonymous:
        return True
    if peer_id is None:
        return False
    return peer_id in grant.peers or not set(institutions).isdisjoint(grant.institutions)


def may_call(
    peer: Peer | None,
    service: Service,
    method: Method | None = None,
    institutions: Sequence[str] | None = None,
) -> bool:
    """May ``peer`` (None: a caller without credentials) call ``method`` of ``service``
    (``method`` None: the service's own grant), acting for ``institutions`` (default: all
    of the peer's; a ``system.login`` with ``domain`` narrows them to one)?"""
    if peer is None:
        return admits(service.grant_for(method), None, ())
    acting = peer.institutions if institutions is None else institutions
    return admits(service.grant_for(method), peer.id, acting)
