"""Bridge to ``rpcd.connections``: proxy methods and ``/v1/call`` run outbound calls.

Both use ``call_class`` over the catalog and secrets the request started with, and the one
pooled ``Transport`` of the process. A proxy method that no connection could serve is a fault:
the remote's own code when it sent one (a ``RemoteFault``), else -32300 transport error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from rpcd.connections.runner import CallOutcome, call_class
from rpcd.connections.transport import Transport
from rpcd.errors import SYSTEM_ERROR, TRANSPORT_ERROR, Fault
from rpcd.server.core.calls import CallContext
from rpcd.server.core.loading import Loaded, MethodEntry

__all__ = ["ProxyCaller", "run_call"]

log = logging.getLogger("rpcd.server")


class OutboundCounter(Protocol):
    """What outbound calls are counted on (``rpcd.server.ops.metrics.Metrics``)."""

    def observe_outbound(self, outcome: CallOutcome) -> None: ...


async def run_call(
    loaded: Loaded,
    transport: Transport | None,
    class_id: str,
    function: str,
    params: Any,
    institutions: Sequence[str],
    metrics: OutboundCounter | None = None,
) -> CallOutcome:
    """Run one outbound call on the catalog ``loaded``; the runner's outcome, counted on
    ``metrics`` when given."""
    if transport is None or loaded.secrets is None:
        raise Fault(SYSTEM_ERROR, "outbound calls are not available (no transport)")
    outcome = await call_class(
        loaded.catalog,
        class_id,
        function,
        params,
        tuple(institutions),
        secrets=loaded.secrets,
        transport=transport,
    )
    if metrics is not None:
        metrics.observe_outbound(outcome)
    return outcome


class ProxyCaller:
    """The dispatcher's ``proxy_call``: a published method served by an outbound call."""

    def __init__(self, transport: Transport | None, metrics: OutboundCounter | None = None) -> None:
        self.transport = transport
        self.metrics = metrics

    async def __call__(self, ctx: CallContext, entry: MethodEntry, params: list[Any]) -> Any:
        proxy = entry.method.proxy
        assert proxy is not None and ctx.principal is not None
        # An XML-RPC caller sends a REST/SOAP function's named params as one struct.
        args: Any = params[0] if len(params) == 1 and isinstance(params[0], dict) else params
        outcome = await run_call(
            ctx.loaded,
            self.transport,
            proxy.class_,
            proxy.function,
            args,
            ctx.principal.peer.institutions,
            self.metrics,
        )
        if outcome.ok:
            return outcome.result
        error = outcome.error
        log.info(
            "proxy %s failed: %s",
            entry.name,
            error.message if error else "no connection answered",
            extra={"request_id": ctx.request_id, "rpc_method": entry.name},
        )
        if error is None:
            raise Fault(TRANSPORT_ERROR, f"{entry.name}: no connection answered")
        raise Fault(error.code, error.message)
