"""The public handler API: what a published function may ask for, and how it is detected.

A handler opts in to its call's context by a parameter annotated ``CallContext``::

    from rpcd import CallContext, Fault

    def whoami(ctx: CallContext) -> str:
        return ctx.peer

The parameter is passed by keyword, never counted as an RPC param, never shown by
``system.methodSignature``; the same works for sync, async and inline handlers. Which
parameter (if any) asks for the context is found once per catalog load
(``context_parameter``); ``rpcd validate --import`` and the daemon refuse a handler that asks
in a way that cannot work (rule ``handler-context``).

This module imports nothing of the daemon, so ``rpcd validate`` can read it.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rpcd.errors import Fault

__all__ = ["CallContext", "ContextParameterError", "Fault", "Protocol", "context_parameter"]

Protocol = Literal["xmlrpc", "jsonrpc", "v1"]


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who called and how: handed to a handler that declares a ``CallContext`` parameter."""

    #: The calling peer's id (``[[peer]] id``); None for an anonymous call of a method
    #: granted ``anonymous = true``.
    peer: str | None
    #: The institutions the call acts for: the peer's, or the one ``system.login`` chose
    #: with ``domain``.
    institutions: tuple[str, ...]
    #: The user name of a ``system.login`` session (None without a session).
    user: str | None
    #: How the caller proved itself: ``token``, ``password``, ``session``, ``cert``, or None.
    auth: str | None
    #: The request id (``X-Request-ID``): also in the daemon's log lines of this call.
    request_id: str
    #: ``xmlrpc``, ``jsonrpc`` or ``v1``.
    protocol: Protocol
    #: The full method name called (``service.method``).
    method: str
    #: The client's address as the daemon saw it (None when unknown).
    client_address: str | None = None
    #: The hex SHA-256 fingerprint of the client's TLS certificate, when it presented one.
    certificate_sha256: str | None = None


class ContextParameterError(ValueError):
    """A handler asks for a ``CallContext`` in a way rpcd cannot pass one."""


def _is_context(annotation: Any) -> bool:
    """``CallContext``, also as ``CallContext | None`` (a handler callable without rpcd)."""
    if annotation is CallContext:
        return True
    if isinstance(annotation, str):  # ``from __future__ import annotations``, unresolved
        parts = {p.strip() for p in annotation.split("|")} - {"None"}
        return len(parts) == 1 and parts.pop().rsplit(".", 1)[-1] == "CallContext"
    args = set(typing.get_args(annotation)) - {type(None)}
    return args == {CallContext}


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # an unresolvable annotation elsewhere: read the raw ones
        return dict(getattr(func, "__annotations__", {}) or {})


def context_parameter(func: Callable[..., Any]) -> str | None:
    """The name of ``func``'s parameter annotated ``CallContext`` (None: it asks for none).

    ``ContextParameterError`` when it cannot be passed: positional-only, ``*args`` /
    ``**kwargs``, or more than one such parameter."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    hints = _hints(func)
    found: list[inspect.Parameter] = [
        p
        for p in sig.parameters.values()
        if _is_context(hints.get(p.name, p.annotation))
        and p.annotation is not inspect.Parameter.empty
    ]
    if not found:
        return None
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ContextParameterError(
            f"asks for the call context twice ({names}): keep one CallContext parameter"
        )
    param = found[0]
    if param.kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.VAR_KEYWORD,
    ):
        raise ContextParameterError(
            f"parameter `{param.name}: CallContext` is {param.kind.description}, so rpcd "
            "cannot pass it by name: make it an ordinary or keyword-only parameter"
        )
    return param.name


def without_parameter(sig: inspect.Signature, name: str) -> inspect.Signature:
    """``sig`` without the context parameter: what the RPC params are checked against."""
    return sig.replace(parameters=[p for p in sig.parameters.values() if p.name != name])
