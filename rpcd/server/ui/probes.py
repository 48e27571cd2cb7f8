""" "Probe now" from the console: the ``rpcd check`` probe of one connection, rate-limited.

Each connection may be probed from the console at most once per ``console_probe_interval``
seconds, and all console probes together at most ``console_probes_per_minute`` times a
minute, whoever asks: a probe is an outbound call to someone else's server, so a page left
open or a held-down key must not turn the console into a load generator. A refused probe
gets a message saying which limit and when to try again.

The last result per connection is kept for the connection page; the table holds only
connections of the live catalog (pruned when it outgrows it), so its size is the catalog's.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Collection

from rpcd.config import Catalog, ResolvedConnection
from rpcd.connections.probe import ProbeResult, probe_connection
from rpcd.connections.transport import Transport
from rpcd.secrets import SecretStore

__all__ = ["ProbeDesk"]

WINDOW = 60.0


class ProbeDesk:
    """Rate limits and last results of the console's probes."""

    def __init__(
        self, interval: float, per_minute: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.per_minute = per_minute
        self._clock = clock
        self._started: dict[str, float] = {}  # connection -> when its last probe started
        self._window: deque[float] = deque()  # starts within the last minute
        self._last: dict[str, ProbeResult] = {}

    def refusal(self, full_id: str) -> str | None:
        """Why a probe of ``full_id`` may not start now (with when it may), or None."""
        now = self._clock()
        while self._window and self._window[0] <= now - WINDOW:
            self._window.popleft()
        started = self._started.get(full_id)
        if started is not None and now - started < self.interval:
            wait = math.ceil(self.interval - (now - started))
            return (
                f"{full_id} was probed less than {self.interval:g} s ago "
                f"(console_probe_interval): try again in {wait} s"
            )
        if len(self._window) >= self.per_minute:
            wait = math.ceil(self._window[0] + WINDOW - now)
            return (
                f"the console ran {self.per_minute} probes in the last minute "
                f"(console_probes_per_minute): try again in {max(wait, 1)} s"
            )
        return None

    def start(self, full_id: str, known: Collection[str]) -> None:
        """Count a probe of ``full_id`` as started now; ``known``: the live catalog's ids."""
        now = self._clock()
        self._started[full_id] = now
        self._window.append(now)
        if len(self._started) > len(known):
            self._started = {k: v for k, v in self._started.items() if k in known}
        if len(self._last) > len(known):
            self._last = {k: v for k, v in self._last.items() if k in known}

    async def run(
        self,
        catalog: Catalog,
        store: SecretStore,
        transport: Transport,
        conn: ResolvedConnection,
    ) -> ProbeResult:
        """Probe ``conn`` now (the caller checked ``refusal`` first) and keep the result."""
        self.start(conn.full_id, catalog.connections.keys())
        result = await probe_connection(catalog, store, transport, conn)
        self._last[conn.full_id] = result
        return result

    def last(self, full_id: str) -> ProbeResult | None:
        return self._last.get(full_id)
