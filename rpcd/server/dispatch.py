"""One dispatcher behind XML-RPC and JSON-RPC: name -> permission -> params -> handler -> value.

Everything that can go wrong becomes a ``Fault`` with a fault-interop code:

- an unknown method and a method the caller may not call are the same -32601;
- params that do not fit the declared ``signature`` (or the function's arity) are -32602;
- a handler's own ``Fault`` passes through unchanged (its code, its message);
- a handler over ``handler_timeout`` is -32400;
- any other exception is -32603 carrying only a request id; the traceback goes to the log.

Sync handlers run in a bounded thread pool so they never block the event loop; async handlers
are awaited. A timed-out sync handler cannot be killed: its thread finishes in the background,
which is why the pool is bounded (``handler_threads``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from rpcd.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    SYSTEM_ERROR,
    Fault,
)
from rpcd.server.auth import Authenticator, AuthRequired, Principal
from rpcd.server.loading import Loaded, MethodEntry, may_call
from rpcd.settings import Settings

__all__ = ["ANONYMOUS_METHODS", "CallContext", "Dispatcher", "check_signature", "not_found"]

log = logging.getLogger("rpcd.server")

#: What a caller without valid credentials may reach; anything else is HTTP 401.
ANONYMOUS_METHODS = frozenset({"system.login", "system.getCapabilities", "system.listMethods"})

ProxyCall = Callable[["CallContext", MethodEntry, list[Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who calls, on which catalog (taken once per request), under which request id."""

    loaded: Loaded
    principal: Principal | None
    request_id: str
    in_multicall: bool = False

    def nested(self) -> CallContext:
        return replace(self, in_multicall=True)


def not_found(name: str) -> Fault:
    shown = name if len(name) <= 100 else name[:100] + "..."
    return Fault(METHOD_NOT_FOUND, f"method {shown!r} not found")


def canonical(name: str) -> str:
    """MNet-style ``system/listMethods`` is an alias of ``system.listMethods``."""
    return name.replace("/", ".") if "/" in name else name


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: type(v) is int,
    "i4": lambda v: type(v) is int,
    "i8": lambda v: type(v) is int,
    "boolean": lambda v: type(v) is bool,
    "string": lambda v: isinstance(v, str),
    "double": lambda v: type(v) in (float, int),
    # JSON has no date or bytes type: the JSON codec hands them over as strings.
    "dateTime.iso8601": lambda v: isinstance(v, datetime | str),
    "base64": lambda v: isinstance(v, bytes | str),
    "struct": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "nil": lambda v: v is None,
}


def check_signature(entry: MethodEntry, params: list[Any]) -> None:
    """-32602 unless ``params`` fit the declared signature (else the function's arity)."""
    declared = entry.method.signature
    if declared is not None:
        wanted = declared[1:]
        if len(params) != len(wanted):
            raise Fault(
                INVALID_PARAMS,
                f"{entry.name} takes {len(wanted)} params ({', '.join(wanted) or 'none'}), "
                f"got {len(params)}",
            )
        for i, (kind, value) in enumerate(zip(wanted, params, strict=True), start=1):
            if not _TYPE_CHECKS[kind](value):
                raise Fault(INVALID_PARAMS, f"{entry.name}: param {i} must be {kind}")
        return
    if entry.py_signature is not None:
        try:
            entry.py_signature.bind(*params)
        except TypeError:
            raise Fault(
                INVALID_PARAMS, f"{entry.name}: wrong number of params ({len(params)})"
            ) from None


class Dispatcher:
    """Runs one call; system methods come from ``rpcd.server.system``."""

    def __init__(
        self,
        settings: Settings,
        authenticator: Authenticator,
        executor: ThreadPoolExecutor,
        proxy_call: ProxyCall | None = None,
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.executor = executor
        self.proxy_call = proxy_call

    async def call(self, ctx: CallContext, name: str, params: list[Any] | dict[str, Any]) -> Any:
        from rpcd.server.system import SYSTEM_METHODS

        name = canonical(name)
        if ctx.principal is None and name not in ANONYMOUS_METHODS:
            raise AuthRequired()
        if isinstance(params, dict):
            if name not in ("system.login", "system.logout"):
                raise Fault(INVALID_PARAMS, "named params are not supported: send them as an array")
            params = [params]
        system = SYSTEM_METHODS.get(name)
        if system is not None:
            return await system.func(self, ctx, params)
        entry = ctx.loaded.methods.get(name)
        assert ctx.principal is not None
        if entry is None or not may_call(ctx.principal.peer, entry.service):
            raise not_found(name)
        check_signature(entry, params)
        return await self._run(ctx, entry, params)

    async def _run(self, ctx: CallContext, entry: MethodEntry, params: list[Any]) -> Any:
        timeout = self.settings.handler_timeout
        try:
            async with asyncio.timeout(timeout) as scope:
                try:
                    if entry.func is None:
                        if self.proxy_call is None:
                            raise Fault(
                                SYSTEM_ERROR, f"{entry.name}: outbound calls are not available"
                            )
                        return await self.proxy_call(ctx, entry, params)
                    if entry.is_async:
                        return await entry.func(*params)
                    loop = asyncio.get_running_loop()
                    return await loop.run_in_executor(self.executor, _call, entry.func, params)
                except asyncio.CancelledError:
                    raise
                except Fault:
                    raise
                except Exception:
                    log.exception(
                        "handler %s failed",
                        entry.name,
                        extra={"request_id": ctx.request_id, "rpc_method": entry.name},
                    )
                    raise Fault(
                        INTERNAL_ERROR, f"internal error (request id {ctx.request_id})"
                    ) from None
        except TimeoutError:
            if not scope.expired():
                raise
            log.warning(
                "handler %s timed out after %g s",
                entry.name,
                timeout,
                extra={"request_id": ctx.request_id, "rpc_method": entry.name},
            )
            raise Fault(SYSTEM_ERROR, f"{entry.name} timed out after {timeout:g} s") from None


def _call(func: Callable[..., Any], params: list[Any]) -> Any:
    return func(*params)
