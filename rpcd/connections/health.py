"""Per-endpoint health: each endpoint's latest outcome, for the metrics and ``rpcd check``.

One board per ``Transport`` (one per process); ``BoundConnection.call_endpoints`` records
every try. An endpoint is *up* when its latest call got an answer from it (a remote fault
counts: the server answered), *down* when it failed in a way that moved the call on to the
next endpoint. Bounded: at most ``MAX_ENDPOINTS_TRACKED`` pairs are kept (the catalog's
connections and endpoints: few), the oldest forgotten first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["EndpointHealth", "HealthBoard"]

MAX_ENDPOINTS_TRACKED = 10_000


@dataclass(slots=True)
class EndpointHealth:
    up: bool
    failures: int  # consecutive failures so far (0 when up)
    since: float  # time.time() of the latest change between up and down


class HealthBoard:
    """``(connection full id, endpoint as shown)`` → ``EndpointHealth``."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], EndpointHealth] = {}

    def record(self, connection: str, endpoint: str, *, ok: bool) -> None:
        key = (connection, endpoint)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= MAX_ENDPOINTS_TRACKED:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = EndpointHealth(ok, 0 if ok else 1, time.time())
            return
        if entry.up != ok:
            entry.up, entry.since = ok, time.time()
        entry.failures = 0 if ok else entry.failures + 1

    def get(self, connection: str, endpoint: str) -> EndpointHealth | None:
        return self._entries.get((connection, endpoint))

    def items(self) -> list[tuple[tuple[str, str], EndpointHealth]]:
        return list(self._entries.items())
