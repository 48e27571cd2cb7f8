"""The protocol clients: a connection's call as an HTTP request, and the answer as a result.

One module per connection ``type``, over the codecs of ``rpcd.codecs`` (which know bytes, not
connections). Each offers ``check_params``, ``build`` (the whole request, unsigned) and
``decode``; XML-RPC and SOAP also split the request into a ``target`` that is the same for
every call of a function and a ``body`` per call, so a connection can sign the target once.
"""

from __future__ import annotations

from typing import Any, Protocol

from rpcd.config import ResolvedConnection
from rpcd.connections.auth import Auth
from rpcd.connections.clients import rest, soap, xmlrpc
from rpcd.connections.request import OutboundRequest, Response


class ProtocolClient(Protocol):
    """What ``BoundConnection.call`` needs of a protocol (a module is one)."""

    def check_params(self, params: Any) -> Any:
        """The call's parameters in this protocol's shape, or ``ParameterError``."""

    def build(
        self, conn: ResolvedConnection, function: str, params: Any, auth: Auth
    ) -> OutboundRequest:
        """The whole request, before ``auth.sign``."""

    def decode(self, conn: ResolvedConnection, response: Response) -> Any:
        """The result, or ``RemoteFault`` / ``CodecError``."""


class TargetClient(ProtocolClient, Protocol):
    """A protocol whose URL and headers do not depend on the call's parameters."""

    def target(self, conn: ResolvedConnection, function: str) -> OutboundRequest:
        """The request without its body: the same for every call of ``function``."""

    def body(self, conn: ResolvedConnection, function: str, params: Any, auth: Auth) -> bytes:
        """This call's body."""


#: The client of each connection ``type``.
CLIENTS: dict[str, ProtocolClient] = {"REST": rest, "XML-RPC": xmlrpc, "SOAP": soap}
#: Those of them that can reuse a signed target (see ``TargetClient``).
TARGET_CLIENTS: dict[str, TargetClient] = {"XML-RPC": xmlrpc, "SOAP": soap}
