"""Handlers the serving tests publish: context-aware (sync, async, inline), faults, a crash."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from rpcd import CallContext, Fault

#: What a handler's own fault carries; passes through to the caller unchanged.
OWN_CODE, OWN_TEXT = 4242, "no such course: 17"


def whoami(ctx: CallContext) -> dict[str, Any]:
    """The whole context, as the caller's protocol encodes it (None left out for XML-RPC)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(ctx).items() if v}


async def whoami_async(ctx: CallContext) -> dict[str, Any]:
    await asyncio.sleep(0)
    return whoami(ctx)


def whoami_inline(ctx: CallContext) -> dict[str, Any]:
    return whoami(ctx)


def greet(name: str, ctx: CallContext) -> str:
    """Answers differently per peer: the greeting names the caller and its institutions."""
    if ctx.peer == "outsider":
        return f"Hello {name}, guest of {', '.join(ctx.institutions)}"
    return f"Welcome back {name} ({ctx.peer})"


def own_fault() -> None:
    raise Fault(OWN_CODE, OWN_TEXT)


def crash() -> None:
    raise RuntimeError("database password is hunter2-internal")


def register(email: str, ctx: CallContext) -> dict[str, Any]:
    """An anonymous method (Drupal's user.register): who called, if anyone."""
    return {"email": email, "peer": ctx.peer or "", "protocol": ctx.protocol}


def positional_context(ctx: CallContext, /) -> str:
    """Asks for the context in a way rpcd cannot pass it (rule handler-context)."""
    return ctx.request_id
