"""``call_class``: try a class's applicable connections in order until one answers.

An error on a connection marked ``fatal`` stops there (the admin said: do not fall back);
otherwise the next connection is tried. Within one connection, its standby endpoints come
first (``BoundConnection.call_endpoints``, ``rpcd.connections.standby``). The outcome names
the connection and the endpoint that answered and what every attempt (one per endpoint tried)
returned, so the daemon's call API and ``rpcd call`` can show it.

Which connections are tried is ``rpcd.routing.applicable``: the caller's institutions' and the
global ones, never another institution's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rpcd.config import Catalog
from rpcd.connections.request import ParameterError
from rpcd.connections.resolve import BoundConnection, routes
from rpcd.connections.transport import Transport
from rpcd.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    TRANSPORT_ERROR,
    CodecError,
    ConnectionCallError,
    RemoteFault,
)
from rpcd.secrets import SecretStore

__all__ = ["Attempt", "CallError", "CallOutcome", "call_class", "describe_error"]

log = logging.getLogger("rpcd.connections")

NO_CONNECTION = "no-connection"


@dataclass(frozen=True, slots=True)
class CallError:
    message: str
    code: int
    errorcode: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "code": self.code, "errorcode": self.errorcode}


@dataclass(slots=True)
class Attempt:
    """One connection's try. Not ``frozen`` (one is built per call, and a frozen dataclass's
    ``__init__`` is slower); nothing changes it after the runner."""

    connection: str
    ok: bool
    result: Any = None
    error: CallError | None = None
    latency_ms: float = 0.0
    fatal: bool = False
    endpoint: str | None = None  # the endpoint tried (credentials masked)

    @property
    def endpoint_down(self) -> bool:
        """The endpoint gave no answer, or a 5xx without the protocol's fault (health)."""
        if self.ok or self.error is None:
            return False
        code = self.error.errorcode or ""
        return code == "connection" or (code.startswith("http-5") and len(code) == 8)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"connection": self.connection, "ok": self.ok}
        if self.endpoint is not None:
            out["endpoint"] = self.endpoint
        if self.ok:
            out["result"] = self.result
        else:
            out["error"] = self.error.to_dict() if self.error else None
            out["fatal"] = self.fatal
        out["latency_ms"] = round(self.latency_ms, 3)
        return out


@dataclass(slots=True)
class CallOutcome:
    ok: bool
    result: Any = None
    connection: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    error: CallError | None = None  # why the whole call failed (last error, or none applied)
    endpoint: str | None = None  # the endpoint that answered

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "result": self.result,
            "connection": self.connection,
            "endpoint": self.endpoint,
            "error": self.error.to_dict() if self.error else None,
            "attempts": [a.to_dict() for a in self.attempts],
        }


def describe_error(exc: BaseException) -> CallError:
    """Code, message and symbolic code of an outbound failure, for results and logs."""
    if isinstance(exc, RemoteFault):
        return CallError(exc.message, exc.code, exc.errorcode)
    if isinstance(exc, ConnectionCallError):
        return CallError(str(exc), TRANSPORT_ERROR, "connection")
    if isinstance(exc, ParameterError):
        return CallError(str(exc), INVALID_PARAMS, "invalid-params")
    if isinstance(exc, CodecError):
        return CallError(f"unreadable answer: {exc}", exc.code, "bad-response")
    # Anything else is a bug; its text is not trusted to be free of data.
    return CallError(f"internal error ({type(exc).__name__})", INTERNAL_ERROR, "internal")


async def try_connections(
    connections: Sequence[BoundConnection], function: str, params: Any
) -> CallOutcome:
    """The fallback loop over already-resolved connections."""
    attempts: list[Attempt] = []
    error: CallError | None = None
    clock = time.perf_counter
    for conn in connections:
        started = clock()
        name = conn.full_id
        try:
            tries = await conn.call_endpoints(function, params)
        except Exception as exc:  # before any request: parameters, credentials
            error = _failed(function, name, exc)
            latency_ms = (clock() - started) * 1000.0
            attempts.append(Attempt(name, False, None, error, latency_ms, conn.fatal))
            if conn.fatal:
                break
            continue
        for one in tries:
            if one.error is None:
                attempts.append(
                    Attempt(name, True, one.result, None, one.latency * 1000.0, False, one.endpoint)
                )
                return CallOutcome(True, one.result, name, attempts, None, one.endpoint)
            error = _failed(function, f"{name} at {one.endpoint}", one.error)
            attempts.append(
                Attempt(name, False, None, error, one.latency * 1000.0, conn.fatal, one.endpoint)
            )
        if conn.fatal:
            break
    return CallOutcome(False, None, None, attempts, error)


def _failed(function: str, where: str, exc: BaseException) -> CallError:
    """The error of one try, logged (with a traceback only when it is a bug)."""
    error = describe_error(exc)
    if error.code == INTERNAL_ERROR:
        log.error("call %s on %s failed unexpectedly", function, where, exc_info=exc)
    else:
        log.info("call %s on %s failed: %s", function, where, error.message)
    return error


async def call_class(
    catalog: Catalog,
    class_id: str,
    function: str,
    params: Any,
    institutions: Sequence[str],
    *,
    secrets: SecretStore,
    transport: Transport,
) -> CallOutcome:
    """Run ``function`` over the applicable connections of ``class_id`` (SPEC section 4)."""
    connections = routes(catalog, class_id, institutions, secrets=secrets, transport=transport)
    if not connections:
        return CallOutcome(ok=False, error=_none_applies(catalog, class_id, institutions))
    return await try_connections(connections, function, params)


def _none_applies(catalog: Catalog, class_id: str, institutions: Sequence[str]) -> CallError:
    if class_id not in catalog.classes:
        why = f"no connection class {class_id!r}"
    elif not catalog.connections_enabled:
        why = "client connections are disabled by the master switch"
    else:
        who = ", ".join(institutions) if institutions else "no institution"
        why = f"no enabled connection of class {class_id} applies to {who}"
    return CallError(why, TRANSPORT_ERROR, NO_CONNECTION)
