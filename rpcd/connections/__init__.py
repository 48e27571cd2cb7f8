"""Making calls: the applicable connections of a class, ready to call (SPEC section 4).

    async with Transport.open() as transport:
        for conn in connections_for(catalog, "moodle_users", ["uni-a"],
                                    secrets=store, transport=transport):
            users = await conn.call("core_user_get_users_by_field",
                                    {"field": "username", "values": ["ada"]})

or let ``call_class`` try them in order, honouring ``fatal``.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rpcd.connections.request import ParameterError
    from rpcd.connections.resolve import BoundConnection, connections_for
    from rpcd.connections.runner import Attempt, CallError, CallOutcome, call_class
    from rpcd.connections.transport import Transport, TransportSettings

# Loaded on first use (PEP 562): `rpcd validate` and `rpcd diff` load the CLI's sub-command
# modules, and must not pay for aiohttp, which the transport imports.
_HOMES = {
    "ParameterError": "request",
    "BoundConnection": "resolve",
    "connections_for": "resolve",
    "Attempt": "runner",
    "CallError": "runner",
    "CallOutcome": "runner",
    "call_class": "runner",
    "Transport": "transport",
    "TransportSettings": "transport",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"rpcd.connections.{home}"), name)


__all__ = [
    "Attempt",
    "BoundConnection",
    "CallError",
    "CallOutcome",
    "ParameterError",
    "Transport",
    "TransportSettings",
    "call_class",
    "connections_for",
]
