"""Making calls: the applicable connections of a class, ready to call (SPEC section 4).

    async with Transport.open() as transport:
        for conn in connections_for(catalog, "moodle_users", ["uni-a"],
                                    secrets=store, transport=transport):
            users = await conn.call("core_user_get_users_by_field",
                                    {"field": "username", "values": ["ada"]})

or let ``call_class`` try them in order, honouring ``fatal``.
"""

from rpcd.connections.request import ParameterError
from rpcd.connections.resolve import Connection, connections_for
from rpcd.connections.runner import Attempt, CallError, CallOutcome, call_class
from rpcd.connections.transport import Transport, TransportSettings

__all__ = [
    "Attempt",
    "CallError",
    "CallOutcome",
    "Connection",
    "ParameterError",
    "Transport",
    "TransportSettings",
    "call_class",
    "connections_for",
]
