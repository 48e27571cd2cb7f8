"""One dispatcher behind XML-RPC and JSON-RPC: name -> permission -> params -> handler -> value.

Everything that can go wrong becomes a ``Fault`` with a fault-interop code:

- an unknown method and a method the caller may not call are the same -32601;
- params that do not fit the declared ``signature`` (or the function's arity) are -32602;
- a handler's own ``Fault`` passes through unchanged (its code, its message);
- a handler over ``handler_timeout`` is -32400;
- any other exception is -32603 carrying only a request id; the traceback goes to the log.

Sync handlers run in a bounded thread pool so they never block the event loop, unless their
method says ``run = "inline"`` (quick pure functions: called on the loop, no hop, no time
limit); async handlers are awaited. A timed-out sync handler cannot be killed: its thread
finishes in the background, which is why the pool is bounded (``handler_threads``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import Any, Protocol

from rpcd.errors import INTERNAL_ERROR, INVALID_PARAMS, SYSTEM_ERROR, Fault
from rpcd.server.core.auth import Authenticator, AuthRequired
from rpcd.server.core.calls import ANONYMOUS_METHODS, CallState, allowed, canonical, not_found
from rpcd.server.core.loading import MethodEntry
from rpcd.server.core.named import by_name
from rpcd.server.core.system import SYSTEM_METHODS
from rpcd.settings import Settings

__all__ = ["UNAUTHENTICATED", "UNKNOWN", "Dispatcher", "check_signature"]

log = logging.getLogger("rpcd.server")


class CallMetrics(Protocol):
    """What the dispatcher counts on (``rpcd.server.ops.metrics.Metrics``)."""

    @property
    def observe_call(self) -> Callable[[str, str, float, int | None], None]: ...

    def login(self, ok: bool, nonce: str | None = None, expires: float | None = None) -> None: ...

    def logout(self, nonce: str) -> None: ...


ProxyCall = Callable[[CallState, MethodEntry, list[Any]], Awaitable[Any]]


#: The ``method`` label of a call whose caller has no valid credentials (the method's name
#: would tell who can scrape ``/metrics`` which guesses exist), and of a call to a method that
#: does not exist or that the caller may not call (the same -32601 to the caller, too).
UNAUTHENTICATED = "unauthenticated"
UNKNOWN = "unknown"


def _label(ctx: CallState, name: str, system: bool, entry: MethodEntry | None) -> str:
    """The ``method`` label of a call: its name only when the caller may call it."""
    principal = ctx.principal
    if entry is not None and entry.anonymous:
        return name
    if principal is None:
        return name if name in ANONYMOUS_METHODS else UNAUTHENTICATED
    if system or (entry is not None and principal.peer.id in entry.callers):
        return name
    return UNKNOWN


def check_signature(entry: MethodEntry, params: list[Any]) -> None:
    """-32602 unless ``params`` fit the declared signature (else the function's arity)."""
    types = entry.param_types
    if types is not None and tuple(map(type, params)) == types:
        return  # the usual case: exactly the types the codec hands over
    checks = entry.param_checks
    if checks is not None:
        if len(params) != len(checks):
            wanted = entry.method.signature[1:] if entry.method.signature else ()
            raise Fault(
                INVALID_PARAMS,
                f"{entry.name} takes {len(wanted)} params ({', '.join(wanted) or 'none'}), "
                f"got {len(params)}",
            )
        for check, value in zip(checks, params, strict=True):
            if not check(value):
                _wrong_param(entry, params)
        return
    bounds = entry.arity
    if bounds is not None and bounds[0] <= len(params) <= bounds[1]:
        return  # what ``bind`` would accept, counted without it
    if entry.py_signature is not None:
        try:
            entry.py_signature.bind(*params)
        except TypeError:
            raise Fault(
                INVALID_PARAMS, f"{entry.name}: wrong number of params ({len(params)})"
            ) from None


def _wrong_param(entry: MethodEntry, params: list[Any]) -> None:
    """-32602 naming the first param that does not fit (the rare path of check_signature)."""
    assert entry.method.signature is not None and entry.param_checks is not None
    kinds = entry.method.signature[1:]
    for i, (check, kind, value) in enumerate(
        zip(entry.param_checks, kinds, params, strict=True), start=1
    ):
        if not check(value):
            raise Fault(INVALID_PARAMS, f"{entry.name}: param {i} must be {kind}")


class Dispatcher:
    """Runs one call; system methods come from ``rpcd.server.core.system``."""

    def __init__(
        self,
        settings: Settings,
        authenticator: Authenticator,
        executor: ThreadPoolExecutor,
        proxy_call: ProxyCall | None = None,
        metrics: CallMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.executor = executor
        self.proxy_call = proxy_call
        self.metrics = metrics  # also sets what each call is counted with
        self._bridge: _PoolBridge | None = None

    @property
    def metrics(self) -> CallMetrics | None:
        return self._metrics

    @metrics.setter
    def metrics(self, metrics: CallMetrics | None) -> None:
        """Set after construction too (the app hands over its metrics): the observer follows."""
        self._metrics = metrics
        self._observe = None if metrics is None else metrics.observe_call

    def _in_pool(self, func: Callable[..., Any], params: list[Any]) -> asyncio.Future[Any]:
        """``func(*params)`` in the bounded pool, as a future of the running loop."""
        loop = asyncio.get_running_loop()
        bridge = self._bridge
        if bridge is None or bridge.loop is not loop:
            bridge = self._bridge = _PoolBridge(loop)
        return bridge.submit(self.executor, func, params)

    async def call(self, ctx: CallState, name: str, params: list[Any] | dict[str, Any]) -> Any:
        """One call (each call of a multicall or batch too), counted and timed when the
        dispatcher has metrics. A ``run = "inline"`` handler runs right here, on the loop."""
        name = canonical(name)
        system = SYSTEM_METHODS.get(name)
        entry = None if system is not None else ctx.loaded.methods.get(name)
        label = _label(ctx, name, system is not None, entry)
        observe = self._observe
        started = perf_counter()
        code: int | None = None
        try:
            if (
                ctx.principal is None
                and name not in ANONYMOUS_METHODS
                and (entry is None or not entry.anonymous)
            ):
                raise AuthRequired()
            if system is not None:
                if isinstance(params, dict):
                    if name not in ("system.login", "system.logout"):
                        raise Fault(
                            INVALID_PARAMS,
                            f"{name} takes its params as an array, not by name",
                        )
                    params = [params]
                return await system.func(self, ctx, params)
            principal = ctx.principal
            if entry is None or not (
                # the usual case in one set lookup; a login narrowed to one institution
                # and anonymous methods are judged by ``allowed``
                (
                    principal is not None
                    and principal.session is None
                    and principal.peer.id in entry.callers
                )
                or allowed(ctx, entry)
            ):
                raise not_found(name)
            if isinstance(params, dict):
                params = by_name(entry, params)
            check_signature(entry, params)
            if entry.inline:
                return _run_inline(ctx, entry, params)
            return await self._run(ctx, entry, params)
        except Fault as fault:
            code = fault.code
            raise
        except Exception:
            code = INTERNAL_ERROR
            raise
        finally:
            if observe is not None:
                observe(ctx.protocol, label, perf_counter() - started, code)

    async def _run(self, ctx: CallState, entry: MethodEntry, params: list[Any]) -> Any:
        if entry.func is not None and not entry.is_async:
            return await self._run_pooled(ctx, entry, params)
        func = None if entry.func is None else _with_context(ctx, entry)
        timeout = self.settings.handler_timeout
        try:
            async with asyncio.timeout(timeout) as scope:
                try:
                    if func is None:
                        if self.proxy_call is None:
                            raise Fault(
                                SYSTEM_ERROR, f"{entry.name}: outbound calls are not available"
                            )
                        return await self.proxy_call(ctx, entry, params)
                    return await func(*params)
                except asyncio.CancelledError:
                    raise
                except Fault:
                    raise
                except Exception:
                    raise _internal_error(ctx, entry) from None
        except TimeoutError:
            if not scope.expired():
                raise
            raise _timed_out(ctx, entry, timeout) from None

    async def _run_pooled(self, ctx: CallState, entry: MethodEntry, params: list[Any]) -> Any:
        """A sync handler in the pool, its time limit a timer on the pool's future (what
        ``asyncio.timeout`` would do, without its context manager's two coroutine frames)."""
        timeout = self.settings.handler_timeout
        future = self._in_pool(_with_context(ctx, entry), params)
        timer = future.get_loop().call_later(timeout, _expire, future)
        try:
            return await future
        except _Expired:
            raise _timed_out(ctx, entry, timeout) from None
        except Fault:
            raise
        except Exception:
            raise _internal_error(ctx, entry) from None
        finally:
            timer.cancel()


class _Expired(Exception):
    """Set on a pooled call's future when its time limit passes first."""


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(_Expired())


def _with_context(ctx: CallState, entry: MethodEntry) -> Callable[..., Any]:
    """The handler, its ``CallContext`` parameter bound when it asks for one."""
    func = entry.func
    assert func is not None
    if entry.context_param is None:
        return func
    return functools.partial(func, **{entry.context_param: ctx.for_handler(entry.name)})


def _internal_error(ctx: CallState, entry: MethodEntry) -> Fault:
    """-32603 with only the request id; the traceback (of the exception being handled) is
    logged."""
    log.exception(
        "handler %s failed",
        entry.name,
        extra={"request_id": ctx.request_id, "rpc_method": entry.name},
    )
    return Fault(INTERNAL_ERROR, f"internal error (request id {ctx.request_id})")


def _timed_out(ctx: CallState, entry: MethodEntry, timeout: float) -> Fault:
    log.warning(
        "handler %s timed out after %g s",
        entry.name,
        timeout,
        extra={"request_id": ctx.request_id, "rpc_method": entry.name},
    )
    return Fault(SYSTEM_ERROR, f"{entry.name} timed out after {timeout:g} s")


def _run_inline(ctx: CallState, entry: MethodEntry, params: list[Any]) -> Any:
    """A ``run = "inline"`` handler, on the loop: no pool hop and no time limit (it cannot be
    interrupted there anyway); its errors become faults exactly as in ``Dispatcher._run``."""
    try:
        return _with_context(ctx, entry)(*params)
    except Fault:
        raise
    except Exception:
        raise _internal_error(ctx, entry) from None


class _PoolBridge:
    """Runs sync handlers in the bounded pool and hands results back to one event loop.

    ``loop.run_in_executor`` does the same with a ``concurrent.futures.Future`` (a Condition
    each), ``wrap_future`` and one ``call_soon_threadsafe`` — a write to the loop's self-pipe,
    during which the worker drops the GIL to the busy loop thread and waits to get it back —
    per call. Here a worker appends its result to a queue and wakes the loop only when no
    wake-up is pending yet; the loop then settles every finished call at once (what that buys:
    docs/performance.md).

    Same behaviour otherwise: the pool stays the bound on concurrent handlers; a call
    cancelled (timed out) before a worker picks it up never runs, one already running
    finishes in the background and its result is dropped; contextvars are not copied into
    the worker (as with ``run_in_executor``); work items cancelled by the pool's shutdown
    cancel their futures; nothing is delivered to a closed loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._done: collections.deque[tuple[asyncio.Future[Any], bool, Any]] = collections.deque()
        self._lock = threading.Lock()
        self._wake_pending = False

    def submit(
        self, executor: ThreadPoolExecutor, func: Callable[..., Any], params: list[Any]
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()

        def work() -> None:
            if future.done():  # cancelled, or its time limit passed before it started
                return
            try:
                result = func(*params)
            except StopIteration as exc:  # a Future refuses it (and would stop _settle)
                self._finish(future, False, RuntimeError(f"handler raised {exc!r}"))
            except BaseException as exc:  # like concurrent.futures: handed to the awaiter
                self._finish(future, False, exc)
            else:
                self._finish(future, True, result)

        executor.submit(work).add_done_callback(
            lambda cf: self._cancelled(future) if cf.cancelled() else None
        )
        return future

    def _finish(self, future: asyncio.Future[Any], ok: bool, value: Any) -> None:
        """In a worker: queue the outcome, and wake the loop unless a wake-up is pending."""
        self._done.append((future, ok, value))
        with self._lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        self._wake(self._settle)

    def _cancelled(self, future: asyncio.Future[Any]) -> None:
        """The pool cancelled the work item (shutdown with ``cancel_futures``)."""
        self._wake(lambda: future.done() or future.cancel())

    def _wake(self, callback: Callable[[], Any]) -> None:
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self.loop.call_soon_threadsafe(callback)

    def _settle(self) -> None:
        """In the loop: deliver every finished call."""
        with self._lock:
            self._wake_pending = False  # before draining: a later append wakes us again
        done = self._done
        while done:
            future, ok, value = done.popleft()
            if future.done():  # cancelled or timed out meanwhile: the result is dropped
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
