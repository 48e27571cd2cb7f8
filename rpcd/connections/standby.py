"""Standby endpoints: which failure on one endpoint moves a call on to the next.

A connection lists its endpoints in order (``endpoints = [primary, standby, ...]``). A call
goes to the primary; it moves on to the next endpoint, within the same connection and before
the runner tries another connection, only when the failure says the endpoint did not take the
call or could not answer it:

- no connection was made (TCP refused or unreachable, TLS handshake, the proxy refused or is
  down): nothing was sent, so any call moves on;
- no answer within the connection's ``timeout``: the endpoint is not answering, so the call
  moves on (the standby is another server; the request is never sent to the same one twice);
- an HTTP 5xx that does not carry the protocol's own fault (a 502/503/504 of a load
  balancer, an error page): the server said it failed;
- the connection broke during the exchange, for an idempotent ``GET`` only (the pool has
  already retried a ``GET`` once when a reused keep-alive connection turned out to be closed).

Everything else stops at that endpoint and is the connection's answer: a ``POST`` whose
connection broke after it was sent (it may have reached the server: never sent again), any
remote fault (the remote answered), a 4xx, an answer that could not be read or was over a
limit, a parameter or configuration error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rpcd.connections.transport import EndpointFailure
from rpcd.errors import RemoteFault, RpcdError

__all__ = ["IDEMPOTENT", "EndpointTry", "moves_on"]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(slots=True)
class EndpointTry:
    """One endpoint's try within a call: the endpoint as shown (credentials masked), the
    result or the error, and how long it took (seconds)."""

    endpoint: str
    result: Any
    error: RpcdError | None
    latency: float


def moves_on(error: RpcdError, method: str) -> bool:
    """Whether a call that failed with ``error`` goes on to the next endpoint (see the module
    docstring); ``method`` is the HTTP method that was sent ("" when none was built)."""
    if isinstance(error, EndpointFailure):
        if error.stage in ("connect", "timeout"):
            return True
        return error.stage == "exchange" and method in IDEMPOTENT and _broken(error)
    if isinstance(error, RemoteFault):
        code = error.errorcode or ""
        return code.startswith("http-5") and len(code) == 8
    return False


def _broken(error: EndpointFailure) -> bool:
    """The exchange broke (a close or reset) rather than delivering an answer over a limit
    or unreadable: those would be the same on the standby."""
    return error.broken
