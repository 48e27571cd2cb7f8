"""What one call carries through the core: its context, the name rules, the not-found fault.

Shared by the dispatcher, the system methods, the call budget and the HTTP edge (a module of
its own so that none of them imports another just for these).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from rpcd.errors import METHOD_NOT_FOUND, Fault
from rpcd.server.core.auth import Principal
from rpcd.server.core.loading import Loaded

if TYPE_CHECKING:
    from aiohttp.web import BaseRequest

__all__ = ["ANONYMOUS_METHODS", "CallContext", "canonical", "not_found"]

#: What a caller without valid credentials may reach; anything else is HTTP 401.
ANONYMOUS_METHODS = frozenset({"system.login", "system.getCapabilities", "system.listMethods"})


class CallContext(NamedTuple):
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

    def nested(self) -> CallContext:
        return self._replace(in_multicall=True)


def not_found(name: str) -> Fault:
    shown = name if len(name) <= 100 else name[:100] + "..."
    return Fault(METHOD_NOT_FOUND, f"method {shown!r} not found")


def canonical(name: str) -> str:
    """MNet-style ``system/listMethods`` is an alias of ``system.listMethods``."""
    return name.replace("/", ".") if "/" in name else name
