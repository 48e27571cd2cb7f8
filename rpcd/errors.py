"""The exception tree of rpcd, in one place.

    RpcdError                       every error rpcd raises on purpose
    ├── ConfigError                 a config tree could not be loaded (carries the Report)
    ├── SecretError                 a secret reference could not be resolved (names the ref only)
    ├── Fault                       an RPC fault: a value with the fault-interop code and message
    │   └── RemoteFault             a remote service answered with a fault / error document
    ├── CodecError                  bytes that are not a well-formed call or response
    │   ├── ParseError              not parseable, or forbidden XML (DTD, entity): -32700
    │   └── LimitExceeded           over a configured bound (depth, size, length)
    └── ConnectionCallError         an outbound call failed before an answer (network, TLS, size)

Codes follow the XML-RPC fault-interop specification, which JSON-RPC 2.0 reuses.
"""

from __future__ import annotations

from typing import Any

# Fault-interop codes (http://xmlrpc-epi.sourceforge.net/specs/rfc.fault_codes.php).
PARSE_ERROR = -32700
UNSUPPORTED_ENCODING = -32701
INVALID_CHARACTER = -32702
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
APPLICATION_ERROR = -32500
SYSTEM_ERROR = -32400
TRANSPORT_ERROR = -32300


class RpcdError(Exception):
    """Base of every error rpcd raises on purpose."""


class ConfigError(RpcdError):
    """A configuration tree is invalid; ``report`` holds every finding."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class SecretError(RpcdError):
    """A secret reference could not be resolved. The message names the reference only."""


class Fault(RpcdError):
    """An RPC fault, both an exception and a value (code, message).

    Handlers raise it to send their own code and message to the caller unchanged.
    ``data`` (JSON-native, optional) goes to a JSON-RPC caller as ``error.data``.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message)
        self.code = int(code)
        self.message = str(message)
        self.data = data

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Fault)
            and type(other) is type(self)
            and (other.code, other.message) == (self.code, self.message)
        )

    def __hash__(self) -> int:
        return hash((type(self), self.code, self.message))


class RemoteFault(Fault):
    """A remote service answered with an error (XML-RPC fault, SOAP Fault, Moodle exception).

    ``code`` is numeric when the remote gave one, else ``APPLICATION_ERROR``; ``errorcode``
    keeps a symbolic code (Moodle's ``errorcode``, a SOAP ``faultcode``) when there is one.
    """

    def __init__(
        self, code: int, message: str, errorcode: str | None = None, detail: Any = None
    ) -> None:
        super().__init__(code, message)
        self.errorcode = errorcode
        self.detail = detail


class CodecError(RpcdError):
    """Bytes that are not a well-formed call or response."""

    code = PARSE_ERROR


class ParseError(CodecError):
    """Not parseable, or forbidden XML constructs (DTD, entity, external reference)."""

    code = PARSE_ERROR


class InvalidRequest(CodecError):
    """Well-formed, but not a valid request (wrong element, missing methodName...)."""

    code = INVALID_REQUEST


class LimitExceeded(CodecError):
    """Over a configured bound: body size, nesting depth, multicall length, integer range."""

    code = INVALID_REQUEST


class ConnectionCallError(RpcdError):
    """An outbound call failed before the remote answered: network, TLS, timeout, size limit."""
