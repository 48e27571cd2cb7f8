"""Bridge to ``rpcd.connections``: proxy methods and ``/v1/call`` run outbound calls.

Both use ``call_class`` over the catalog and secrets the request started with, and the one
pooled ``Transport`` of the process. A proxy method that no connection could serve is a fault:
the remote's own code when it sent one (a ``RemoteFault``), else -32300 transport error; its
message lists every connection tried and why it failed (the runner's masked reasons), and the
same list goes to JSON-RPC callers as ``error.data.attempts``.

Params: none (``[]`` or ``{}``) call a function that takes none, whatever its protocol; a
method with declared ``params`` names sends positional params as those named params (what a
REST or SOAP function takes); one struct is sent as the named params themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from rpcd.connections.runner import Attempt, CallOutcome, call_class
from rpcd.connections.transport import Transport
from rpcd.errors import SYSTEM_ERROR, TRANSPORT_ERROR, Fault
from rpcd.server.core.calls import CallState
from rpcd.server.core.loading import Loaded, MethodEntry

__all__ = ["ProxyCaller", "attempts_text", "proxy_args", "run_call"]

#: How much of one attempt's reason the fault string carries (the log has all of it).
REASON_CHARS = 200

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

    async def __call__(self, ctx: CallState, entry: MethodEntry, params: list[Any]) -> Any:
        proxy = entry.method.proxy
        assert proxy is not None
        outcome = await run_call(
            ctx.loaded,
            self.transport,
            proxy.class_,
            proxy.function,
            proxy_args(entry, params),
            ctx.institutions,
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
        tried = [_attempt(a) for a in outcome.attempts]
        data = {"attempts": tried}
        if error is None:
            raise Fault(TRANSPORT_ERROR, f"{entry.name}: no connection answered", data)
        if not tried:  # none applied: the runner's error says why
            raise Fault(error.code, f"{entry.name}: {error.message}", data)
        raise Fault(error.code, f"{entry.name} failed: {attempts_text(outcome.attempts)}", data)


def proxy_args(entry: MethodEntry, params: list[Any]) -> Any:
    """What the remote function is called with: None for no params (any protocol takes it),
    the declared names' mapping for positional params of a method that names them, one
    struct as the named params themselves, else the positional list."""
    if not params:
        return None
    if len(params) == 1 and isinstance(params[0], dict):
        return params[0]
    names = entry.method.params
    if names is not None and len(params) <= len(names):
        return dict(zip(names, params, strict=False))
    return params


def _reason(attempt: Attempt) -> str:
    error = attempt.error
    text = "failed" if error is None else error.message
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS] + "..."


def _attempt(attempt: Attempt) -> dict[str, Any]:
    error = attempt.error
    return {
        "connection": attempt.connection,
        "code": None if error is None else error.code,
        "errorcode": None if error is None else error.errorcode,
        "reason": _reason(attempt),
        "fatal": attempt.fatal,
    }


def attempts_text(attempts: Sequence[Attempt]) -> str:
    """``tried a/x: reason; b/y: reason`` for a fault string (reasons already masked)."""
    return "tried " + "; ".join(f"{a.connection}: {_reason(a)}" for a in attempts)
