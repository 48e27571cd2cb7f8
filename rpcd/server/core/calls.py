"""What one call carries through the core: its context, the name rules, the not-found fault.

Shared by the dispatcher, the system methods, the call budget and the HTTP edge (a module of
its own so that none of them imports another just for these).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, NamedTuple

from rpcd import handler
from rpcd.errors import METHOD_NOT_FOUND, Fault
from rpcd.server.core import grants
from rpcd.server.core.auth import Principal
from rpcd.server.core.loading import Loaded, MethodEntry

if TYPE_CHECKING:
    from aiohttp.web import BaseRequest

__all__ = ["ANONYMOUS_METHODS", "CallState", "allowed", "canonical", "not_found"]

#: What a caller without valid credentials may reach; anything else is HTTP 401.
ANONYMOUS_METHODS = frozenset({"system.login", "system.getCapabilities", "system.listMethods"})


class CallState(NamedTuple):
    """Who calls, on which catalog (taken once per request), under which request id.

    Immutable; a named tuple because one is made per call."""

    loaded: Loaded
    principal: Principal | None
    request_id: str
    in_multicall: bool = False
    #: The ``protocol`` label of the call's metrics: ``xmlrpc``, ``jsonrpc`` or ``http``.
    protocol: str = "xmlrpc"
    #: The HTTP request (its client address limits ``system.login``'s failures).
    request: BaseRequest | None = None

    def nested(self) -> CallState:
        return self._replace(in_multicall=True)

    @property
    def institutions(self) -> tuple[str, ...]:
        """The institutions the caller acts for (none for a caller without credentials)."""
        return () if self.principal is None else self.principal.institutions

    def for_handler(self, method: str) -> handler.CallContext:
        """The public ``rpcd.CallContext`` of this call, for a handler that asks for it."""
        principal = self.principal
        session = principal is not None and principal.method == "session"
        return handler.CallContext(
            peer=None if principal is None else principal.peer.id,
            institutions=self.institutions,
            user=principal.peer.username if session and principal is not None else None,
            auth=None if principal is None else principal.method,
            request_id=self.request_id,
            protocol=_PUBLIC_PROTOCOL.get(self.protocol, "v1"),
            method=method,
            client_address=None if self.request is None else self.request.remote,
            certificate_sha256=_certificate_sha256(self.request),
        )


_PUBLIC_PROTOCOL: dict[str, handler.Protocol] = {
    "xmlrpc": "xmlrpc",
    "jsonrpc": "jsonrpc",
    "http": "v1",
}


def _certificate_sha256(request: BaseRequest | None) -> str | None:
    """The hex SHA-256 of the client's TLS certificate (DER), when it presented one."""
    transport = None if request is None else request.transport
    ssl_object = None if transport is None else transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return None if der is None else hashlib.sha256(der).hexdigest()


def allowed(ctx: CallState, entry: MethodEntry) -> bool:
    """May this call's caller call ``entry`` (``grants``; the per-catalog set of callers
    answers for a peer acting for all its institutions)."""
    if entry.anonymous:
        return True
    principal = ctx.principal
    if principal is None:
        return False
    if principal.session is not None and principal.session.institution is not None:
        grant = entry.service.grant_for(entry.method)
        return grants.admits(grant, principal.peer.id, principal.institutions)
    return principal.peer.id in entry.callers


def not_found(name: str) -> Fault:
    shown = name if len(name) <= 100 else name[:100] + "..."
    return Fault(METHOD_NOT_FOUND, f"method {shown!r} not found")


def canonical(name: str) -> str:
    """MNet-style ``system/listMethods`` is an alias of ``system.listMethods``."""
    return name.replace("/", ".") if "/" in name else name
