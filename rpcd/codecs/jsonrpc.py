"""JSON-RPC 2.0 wire codec, pure (no I/O), shared by the server dispatcher and the client.

Server side::

    try:
        parsed = loads_request(body)
    except CodecError as exc:                 # parse error, empty batch, not a request
        return dumps_error(getattr(exc, "id", None), exc.code, str(exc))
    if isinstance(parsed, list):              # batch: one response per non-notification
        responses = [... make_result(r.id, value) / make_error(r.id, code, msg) ...]
        return dumps_batch(responses)         # b"" when every member was a notification
    ...

A malformed batch member is an ``InvalidJsonRpcRequest`` *instance* in the list (it carries
``id`` when one could be read), so the dispatcher answers it with -32600 and runs the rest.
So is a member over a value limit (an integer beyond 64 bits, a number too long or out of
range, nesting deeper than ``max_depth`` below the batch): the limits are judged per member,
and only what makes the whole body unreadable (not JSON, nesting the parser cannot follow)
fails the whole request.

Values: JSON has no bytes and no date type, so on output ``bytes``/``bytearray`` (and
``xmlrpc.client.Binary``) become base64 strings and ``datetime`` (and
``xmlrpc.client.DateTime``) ISO 8601 strings; on input they stay strings. Tuples become
arrays. As in the XML-RPC codec, an integer beyond signed 64 bits is ``LimitExceeded`` (both
directions), NaN/Infinity are refused (on input the literals are ``ParseError``, a number
that overflows to infinity ``InvalidRequest``; on output ``ValueError``), a number longer
than ``max_number_chars`` is ``LimitExceeded`` before it is converted (``numtext``),
struct keys must be ``str`` and any other type is a ``TypeError`` naming only the type.
"""

from __future__ import annotations

import base64
import json
import math
import xmlrpc.client
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from rpcd.codecs import numtext
from rpcd.errors import (
    APPLICATION_ERROR,
    CodecError,
    InvalidRequest,
    LimitExceeded,
    ParseError,
    RemoteFault,
)

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_NUMBER_CHARS",
    "InvalidJsonRpcRequest",
    "JsonRpcId",
    "JsonRpcRequest",
    "dumps_batch",
    "dumps_error",
    "dumps_request",
    "dumps_result",
    "loads_request",
    "loads_response",
    "make_error",
    "make_result",
]

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_NUMBER_CHARS = numtext.DEFAULT_MAX_NUMBER_CHARS
_MAX_DUMP_DEPTH = 256
_I8_MIN, _I8_MAX = -(2**63), 2**63 - 1

JsonRpcId: TypeAlias = str | int | float | None


class InvalidJsonRpcRequest(InvalidRequest):
    """A request that is valid JSON but not a valid JSON-RPC 2.0 request (-32600).

    ``id`` is the request's id when it could be read (else None), for the error response.
    """

    def __init__(self, message: str, id: JsonRpcId = None) -> None:
        super().__init__(message)
        self.id = id


@dataclass(frozen=True, slots=True)
class JsonRpcRequest:
    """One decoded call. ``params`` is a list (positional) or dict (named); ``[]`` if omitted."""

    method: str
    params: list[Any] | dict[str, Any]
    id: JsonRpcId = None
    is_notification: bool = False


# ---------------------------------------------------------------------------------------------
# Input


def _reject_constant(name: str) -> Any:
    raise ParseError(f"{name} is not valid JSON")


class _Refused:
    """Stands in the parsed document for a number over a limit, so that the limit is judged
    per batch member (``_refusal``); never reaches a caller: a member holding one is an
    error, and a single request holding one raises ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: CodecError) -> None:
        self.error = error


def _checked_int(text: str) -> int | _Refused:
    # JSON has no leading zeros: more than 19 digits is beyond 64 bits, refused unconverted.
    if len(text) - (text[0] == "-") > 19:
        return _Refused(LimitExceeded("integer beyond 64 bits"))
    value = int(text)
    if not _I8_MIN <= value <= _I8_MAX:
        return _Refused(LimitExceeded("integer beyond 64 bits"))
    return value


def _float_checker(limit: int) -> Callable[[str], float | _Refused]:
    def checked_float(text: str) -> float | _Refused:
        try:
            numtext.check_length(text, limit)
        except CodecError as exc:
            return _Refused(exc)
        value = float(text)
        if math.isinf(value):
            return _Refused(
                InvalidRequest("number out of range: JSON-RPC carries finite doubles only")
            )
        return value

    return checked_float


def _refusal(obj: Any, budget: int) -> CodecError | None:
    """The first limit ``obj`` breaks: a ``_Refused`` number in it, or list/dict nesting
    deeper than ``budget`` levels below it. One pass, no recursion."""
    stack: list[tuple[Any, int]] = [(obj, budget)]
    while stack:
        value, left = stack.pop()
        t = type(value)
        if t is _Refused:
            return value.error  # type: ignore[no-any-return]
        if t is dict:
            items: Any = value.values()
        elif t is list:
            items = value
        else:
            continue
        if left < 0:
            return LimitExceeded("JSON nested too deeply")
        for item in items:  # only what can break a limit: containers and refused numbers
            ti = type(item)
            if ti is dict or ti is list or ti is _Refused:
                stack.append((item, left - 1))
    return None


#: Folds every digit to "0", "E" to "e" and "+" to "-", so that three plain searches (``find``
#: in C, far cheaper than a regex with classes over a big body) see every number below.
_FOLD = bytes.maketrans(b"123456789E+", b"000000000e-")
_SUSPECTS = (b"0" * 17, b"e000", b"e-000")


def _suspect(data: bytes | bytearray) -> bool:
    """True if ``data`` may hold a number with a run of 17+ digits or an exponent of 3+
    digits: only such a number can be an integer beyond 64 bits, overflow a double to
    infinity, or reach 39 characters (16 digits each side of the dot and a 2-digit exponent
    make at most 1e115), so only then are the checking parse functions worth their cost."""
    folded = data.translate(_FOLD)
    return any(folded.find(s) != -1 for s in _SUSPECTS)


def _loads(
    data: bytes | str, max_depth: int, max_number_chars: int, per_member: bool = False
) -> Any:
    """Decode JSON strictly: no NaN/Infinity, no integer beyond 64 bits, no double that
    overflows or is longer than ``max_number_chars``, bounded nesting. With ``per_member``
    a top-level array's members are left for ``_member`` to judge one by one."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("JSON-RPC input must be bytes")
    if not data.strip():
        raise ParseError("empty body")
    if data.find(b"\x00") != -1:  # JSON never has a raw NUL: UTF-16/32, which json would
        raise ParseError("invalid JSON: send UTF-8")  # decode past the number check below
    if max_number_chars < numtext.MIN_MAX_NUMBER_CHARS:
        raise ValueError(f"max_number_chars must be at least {numtext.MIN_MAX_NUMBER_CHARS}")
    suspect = _suspect(data)
    try:
        if suspect:
            obj = json.loads(
                data,
                parse_constant=_reject_constant,
                parse_int=_checked_int,
                parse_float=_float_checker(max_number_chars),
            )
        else:
            obj = json.loads(data, parse_constant=_reject_constant)
    except CodecError:
        raise
    except RecursionError:
        raise LimitExceeded("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        # int() over the digit limit, undecodable bytes
        raise ParseError(f"invalid JSON ({type(exc).__name__})") from None
    if per_member and type(obj) is list:
        return obj
    refused = _refusal(obj, max_depth)
    if refused is not None:
        if isinstance(obj, dict):
            refused.id = _read_id(obj)  # type: ignore[attr-defined]
        raise refused
    return obj


def _read_id(obj: Mapping[str, Any]) -> JsonRpcId:
    value = obj.get("id")
    if value is None or type(value) in (str, int, float):
        return value
    return None


def _member(item: Any, budget: int) -> JsonRpcRequest | InvalidJsonRpcRequest:
    """One batch member: a request, or the error it gets on its own (a broken limit too)."""
    refused = _refusal(item, budget)
    if refused is not None:
        rid = _read_id(item) if isinstance(item, dict) else None
        return InvalidJsonRpcRequest(f"{refused} (in this batch member)", rid)
    try:
        return _request(item)
    except InvalidJsonRpcRequest as exc:
        return exc


def _request(obj: Any) -> JsonRpcRequest:
    if not isinstance(obj, dict):
        raise InvalidJsonRpcRequest("request must be a JSON object")
    rid = _read_id(obj)
    if obj.get("jsonrpc") != "2.0":
        raise InvalidJsonRpcRequest('"jsonrpc" must be "2.0"', rid)
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise InvalidJsonRpcRequest('"method" must be a non-empty string', rid)
    params = obj.get("params", [])
    if not isinstance(params, (list, dict)):
        raise InvalidJsonRpcRequest('"params" must be an array or an object', rid)
    if "id" not in obj:
        return JsonRpcRequest(method, params, None, True)
    if type(obj["id"]) not in (str, int, float, type(None)):
        raise InvalidJsonRpcRequest('"id" must be a string, a number or null')
    return JsonRpcRequest(method, params, rid, False)


def loads_request(
    data: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_number_chars: int = DEFAULT_MAX_NUMBER_CHARS,
) -> JsonRpcRequest | list[JsonRpcRequest | InvalidJsonRpcRequest]:
    """Decode a request body: one request, or a batch (a list, invalid members as errors).

    Raises ParseError (not JSON; the NaN/Infinity literals, which JSON does not have: -32700),
    InvalidRequest (a number that overflows a double, ``1e999``: -32600, as XML-RPC refuses
    ``<double>1e400</double>``), LimitExceeded (nesting over ``max_depth``, integer beyond 64
    bits, a number longer than ``max_number_chars``), InvalidJsonRpcRequest (an invalid single
    request, with its ``id`` when known; an empty batch; a body that is neither object nor
    array). Every one is raised before any handler could see the values.
    """
    obj = _loads(data, max_depth, max_number_chars, per_member=True)
    if isinstance(obj, list):
        if not obj:
            raise InvalidJsonRpcRequest("empty batch")
        # A member sits one level below the batch: the same depth as a single request's
        # values, counted from the body.
        return [_member(item, max_depth - 1) for item in obj]
    return _request(obj)


def loads_response(
    data: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_number_chars: int = DEFAULT_MAX_NUMBER_CHARS,
) -> Any:
    """Decode a (single) response for the client: the result, or RemoteFault on an error.

    Refuses the values ``loads_request`` refuses, with the same errors."""
    obj = _loads(data, max_depth, max_number_chars)
    if not isinstance(obj, dict) or obj.get("jsonrpc") != "2.0":
        raise InvalidRequest("not a JSON-RPC 2.0 response")
    if "error" in obj:
        err = obj["error"]
        if not isinstance(err, dict):
            raise InvalidRequest('"error" must be an object')
        code = err.get("code")
        message = err.get("message", "")
        if not isinstance(message, str):
            message = str(message)
        if isinstance(code, int) and not isinstance(code, bool):
            raise RemoteFault(code, message)
        raise RemoteFault(APPLICATION_ERROR, message, None if code is None else str(code))
    if "result" not in obj:
        raise InvalidRequest('response has neither "result" nor "error"')
    return obj["result"]


# ---------------------------------------------------------------------------------------------
# Output


def _to_json(value: Any, depth: int = 0) -> Any:
    """Copy ``value`` into JSON-native types, checking ints, floats and keys on the way."""
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        if not _I8_MIN <= value <= _I8_MAX:
            raise LimitExceeded("integer beyond 64 bits cannot be sent")
        return value
    if t is float:
        if not math.isfinite(value):
            raise ValueError("cannot send NaN or infinity in JSON")
        return value
    if depth >= _MAX_DUMP_DEPTH:
        raise ValueError("value nested too deeply (or recursive)")
    if t is list or t is tuple:
        return [_to_json(item, depth + 1) for item in value]
    if t is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"object keys must be str, not {type(key).__name__}")
            out[key] = _to_json(item, depth + 1)
        return out
    # Subclasses and the non-JSON types.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _to_json(int(value), depth)
    if isinstance(value, float):
        return _to_json(float(value), depth)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, xmlrpc.client.Binary):
        return base64.b64encode(value.data).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, xmlrpc.client.DateTime):
        return str(value.value)
    if isinstance(value, Mapping):
        return _to_json(dict(value), depth)
    if isinstance(value, (list, tuple)):
        return _to_json(list(value), depth)
    raise TypeError(f"cannot marshal a value of type {type(value).__name__} to JSON")


def _dumps(obj: Any) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string contains a lone surrogate, not valid UTF-8") from None


def _check_id(id: JsonRpcId) -> JsonRpcId:
    if id is None or type(id) in (str, int, float):
        return id
    raise TypeError(f"a JSON-RPC id must be str, int, float or None, not {type(id).__name__}")


def make_result(id: JsonRpcId, value: Any) -> dict[str, Any]:
    """A success response object (for ``dumps_batch``); converts and checks ``value``."""
    return {"jsonrpc": "2.0", "result": _to_json(value), "id": _check_id(id)}


def make_error(id: JsonRpcId, code: int, message: str, data: Any = None) -> dict[str, Any]:
    """An error response object (for ``dumps_batch``); ``data`` is left out when None."""
    error: dict[str, Any] = {"code": int(code), "message": str(message)}
    if data is not None:
        error["data"] = _to_json(data)
    return {"jsonrpc": "2.0", "error": error, "id": _check_id(id)}


def dumps_result(id: JsonRpcId, value: Any) -> bytes:
    """Serialize one success response."""
    return _dumps(make_result(id, value))


def dumps_error(id: JsonRpcId, code: int, message: str, data: Any = None) -> bytes:
    """Serialize one error response (use id None when the request id is unknown)."""
    return _dumps(make_error(id, code, message, data))


def dumps_batch(responses: Sequence[Mapping[str, Any]]) -> bytes:
    """Serialize a batch of responses built with ``make_result``/``make_error``.

    Returns ``b""`` for an empty list (a batch of notifications): the server then sends no
    body at all, as JSON-RPC 2.0 requires.
    """
    if not responses:
        return b""
    return _dumps(list(responses))


def dumps_request(
    method: str,
    params: Sequence[Any] | Mapping[str, Any] = (),
    id: JsonRpcId = None,
) -> bytes:
    """Serialize a client request; ``id=None`` makes it a notification (no ``id`` member)."""
    if not isinstance(method, str) or not method:
        raise ValueError("method name must be a non-empty str")
    if isinstance(params, (str, bytes, bytearray)):
        raise TypeError("params must be a sequence or a mapping")
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    body["params"] = _to_json(dict(params) if isinstance(params, Mapping) else list(params))
    if id is not None:
        body["id"] = _check_id(id)
    return _dumps(body)
