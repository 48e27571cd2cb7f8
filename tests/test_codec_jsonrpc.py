"""The JSON-RPC 2.0 codec: requests (single, batch, notification, invalid), responses, values."""

from __future__ import annotations

import json
import xmlrpc.client as xc
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcd.codecs.jsonrpc import (
    InvalidJsonRpcRequest,
    JsonRpcRequest,
    dumps_batch,
    dumps_error,
    dumps_request,
    dumps_result,
    loads_request,
    loads_response,
    make_error,
    make_result,
)
from rpcd.errors import (
    INVALID_REQUEST,
    PARSE_ERROR,
    InvalidRequest,
    LimitExceeded,
    ParseError,
    RemoteFault,
)


def req(obj: Any) -> Any:
    return loads_request(json.dumps(obj).encode())


# ---------------------------------------------------------------------------------------------
# requests


def test_single_positional() -> None:
    got = req({"jsonrpc": "2.0", "method": "svc.add", "params": [1, 2], "id": 7})
    assert got == JsonRpcRequest("svc.add", [1, 2], 7, False)


def test_single_named_and_string_id() -> None:
    got = req({"jsonrpc": "2.0", "method": "m", "params": {"a": 1}, "id": "abc"})
    assert got == JsonRpcRequest("m", {"a": 1}, "abc", False)


def test_params_omitted_is_empty_list() -> None:
    assert req({"jsonrpc": "2.0", "method": "m", "id": 1}) == JsonRpcRequest("m", [], 1, False)


def test_null_id_is_not_a_notification() -> None:
    got = req({"jsonrpc": "2.0", "method": "m", "id": None})
    assert isinstance(got, JsonRpcRequest)
    assert not got.is_notification
    assert got.id is None


def test_notification() -> None:
    got = req({"jsonrpc": "2.0", "method": "m", "params": [1]})
    assert got == JsonRpcRequest("m", [1], None, True)


def test_batch_with_invalid_members() -> None:
    got = req(
        [
            {"jsonrpc": "2.0", "method": "a", "params": [1], "id": 1},
            {"jsonrpc": "2.0", "method": "notify"},
            1,
            {"jsonrpc": "1.0", "method": "b", "id": 3},
            {"jsonrpc": "2.0", "method": 5, "id": "x"},
        ]
    )
    assert isinstance(got, list)
    assert got[0] == JsonRpcRequest("a", [1], 1, False)
    assert got[1] == JsonRpcRequest("notify", [], None, True)
    assert [type(x) for x in got[2:]] == [InvalidJsonRpcRequest] * 3
    assert [x.id for x in got[2:] if isinstance(x, InvalidJsonRpcRequest)] == [None, 3, "x"]
    assert all(x.code == INVALID_REQUEST for x in got[2:] if isinstance(x, InvalidRequest))


def test_empty_batch_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest) as ei:
        loads_request(b"[]")
    assert ei.value.code == INVALID_REQUEST


@pytest.mark.parametrize(
    ("obj", "expected_id"),
    [
        ({"jsonrpc": "1.0", "method": "m", "id": 1}, 1),
        ({"method": "m", "id": 2}, 2),
        ({"jsonrpc": 2.0, "method": "m", "id": 3}, 3),
        ({"jsonrpc": "2.0", "method": 1, "id": "a"}, "a"),
        ({"jsonrpc": "2.0", "method": None, "id": "b"}, "b"),
        ({"jsonrpc": "2.0", "method": "", "id": 4}, 4),
        ({"jsonrpc": "2.0", "id": 5}, 5),
        ({"jsonrpc": "2.0", "method": "m", "params": "bar", "id": 6}, 6),
        ({"jsonrpc": "2.0", "method": "m", "params": 1, "id": 7}, 7),
        ({"jsonrpc": "2.0", "method": "m", "params": None, "id": 8}, 8),
        ({"jsonrpc": "2.0", "method": "m", "id": {"x": 1}}, None),
        ({"jsonrpc": "2.0", "method": "m", "id": [1]}, None),
        ({"jsonrpc": "2.0", "method": "m", "id": True}, None),
        ({"jsonrpc": "2.0", "method": 1, "params": "bar"}, None),
        ("a string", None),
        (42, None),
        (None, None),
    ],
)
def test_invalid_single_request(obj: Any, expected_id: Any) -> None:
    with pytest.raises(InvalidJsonRpcRequest) as ei:
        req(obj)
    assert ei.value.id == expected_id
    assert ei.value.code == INVALID_REQUEST


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"{",
        b'{"jsonrpc": "2.0", "method": "m", "params": [1, 2}',
        b"not json",
        b"\xff\xfe\x00garbage",
        b'{"jsonrpc": "2.0", "method": "m", "params": [NaN], "id": 1}',
        b'{"jsonrpc": "2.0", "method": "m", "params": [Infinity], "id": 1}',
        b'{"jsonrpc": "2.0", "method": "m", "params": [-Infinity], "id": 1}',
        b'[{"jsonrpc": "2.0", "method": "m", "params": [1], "id": 1}',
        b'{"a": 1} {"b": 2}',
        b"\x80\x81",
    ],
)
def test_invalid_json_is_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError) as ei:
        loads_request(data)
    assert type(ei.value) is ParseError
    assert ei.value.code == PARSE_ERROR
    assert len(str(ei.value)) < 200


def test_integers_beyond_64_bits_on_input() -> None:
    ok = (
        b'{"jsonrpc":"2.0","method":"m","params":[9223372036854775807,-9223372036854775808],"id":1}'
    )
    got = loads_request(ok)
    assert isinstance(got, JsonRpcRequest)
    assert got.params == [2**63 - 1, -(2**63)]
    with pytest.raises(LimitExceeded):
        loads_request(b'{"jsonrpc":"2.0","method":"m","params":[9223372036854775808],"id":1}')
    with pytest.raises((LimitExceeded, ParseError)):
        loads_request(b'{"jsonrpc":"2.0","method":"m","params":[' + b"9" * 10_000 + b"]}")
    # long digit runs inside strings are not integers
    s = b'{"jsonrpc":"2.0","method":"m","params":["12345678901234567890123"],"id":1}'
    assert isinstance(loads_request(s), JsonRpcRequest)


def test_deep_nesting_is_limit_exceeded() -> None:
    with pytest.raises(LimitExceeded):
        loads_request(b"[" * 100_000 + b"]" * 100_000)
    nested = b'{"jsonrpc":"2.0","method":"m","params":' + b"[" * 70 + b"]" * 70 + b',"id":1}'
    with pytest.raises(LimitExceeded):
        loads_request(nested)
    assert isinstance(loads_request(nested, max_depth=80), JsonRpcRequest)


# ---------------------------------------------------------------------------------------------
# responses (server side)


def test_dumps_result() -> None:
    assert json.loads(dumps_result(1, {"a": [1, "x"]})) == {
        "jsonrpc": "2.0",
        "result": {"a": [1, "x"]},
        "id": 1,
    }


def test_dumps_error() -> None:
    assert json.loads(dumps_error(None, -32700, "parse error")) == {
        "jsonrpc": "2.0",
        "error": {"code": -32700, "message": "parse error"},
        "id": None,
    }
    assert json.loads(dumps_error("a", -32602, "bad", {"param": 1}))["error"]["data"] == {
        "param": 1
    }


def test_dumps_batch() -> None:
    body = dumps_batch([make_result(1, 2), make_error(2, -32601, "no such method")])
    assert json.loads(body) == [
        {"jsonrpc": "2.0", "result": 2, "id": 1},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "no such method"}, "id": 2},
    ]
    assert dumps_batch([]) == b""


def test_output_is_utf8_not_escaped() -> None:
    assert "é✓".encode() in dumps_result(1, "é✓")


def test_value_conversions() -> None:
    aware = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    value = {
        "bytes": b"\x00\xff",
        "bytearray": bytearray(b"ab"),
        "binary": xc.Binary(b"xy"),
        "naive": datetime(2024, 1, 2, 3, 4, 5),
        "aware": aware,
        "xdt": xc.DateTime(datetime(2024, 1, 2, 3, 4, 5)),
        "tuple": (1, 2),
        "none": None,
        "bool": True,
        "float": 1.5,
    }
    got = json.loads(dumps_result(1, value))["result"]
    assert got == {
        "bytes": "AP8=",
        "bytearray": "YWI=",
        "binary": "eHk=",
        "naive": "2024-01-02T03:04:05",
        "aware": "2024-01-02T03:04:05+01:00",
        "xdt": "20240102T03:04:05",
        "tuple": [1, 2],
        "none": None,
        "bool": True,
        "float": 1.5,
    }


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, [{"x": 10**20}]])
def test_integers_beyond_64_bits_refused_on_output(value: Any) -> None:
    with pytest.raises(LimitExceeded):
        dumps_result(1, value)
    with pytest.raises(LimitExceeded):
        dumps_request("m", [value], 1)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_refused_on_output(value: float) -> None:
    with pytest.raises(ValueError):
        dumps_result(1, [value])


class Secretive:
    def __repr__(self) -> str:
        return "Secretive(password='hunter2')"


@pytest.mark.parametrize("value", [Secretive(), {1, 2}, {1: "a"}, object()])
def test_unsupported_types_refused_on_output(value: Any) -> None:
    with pytest.raises(TypeError) as ei:
        dumps_result(1, value)
    assert "hunter2" not in str(ei.value)


def test_recursive_value_refused() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="nested too deeply"):
        dumps_result(1, loop)


def test_bad_id_refused_on_output() -> None:
    with pytest.raises(TypeError):
        dumps_result([1], 1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# client side


def test_dumps_request_and_server_side_read_back() -> None:
    body = dumps_request("svc.add", [1, 2], 9)
    assert json.loads(body) == {"jsonrpc": "2.0", "method": "svc.add", "params": [1, 2], "id": 9}
    assert loads_request(body) == JsonRpcRequest("svc.add", [1, 2], 9, False)
    note = dumps_request("svc.ping", {"a": 1})
    assert "id" not in json.loads(note)
    assert loads_request(note) == JsonRpcRequest("svc.ping", {"a": 1}, None, True)


def test_loads_response_result() -> None:
    assert loads_response(dumps_result(1, {"x": [1, None]})) == {"x": [1, None]}
    assert loads_response(dumps_result(1, None)) is None


def test_loads_response_error() -> None:
    with pytest.raises(RemoteFault) as ei:
        loads_response(dumps_error(1, -32601, "no such method"))
    assert ei.value == RemoteFault(-32601, "no such method")


def test_loads_response_error_with_symbolic_code() -> None:
    body = b'{"jsonrpc":"2.0","error":{"code":"E_BAD","message":"bad"},"id":1}'
    with pytest.raises(RemoteFault) as ei:
        loads_response(body)
    assert ei.value.errorcode == "E_BAD"


@pytest.mark.parametrize(
    "body",
    [
        b'{"result": 1, "id": 1}',
        b'{"jsonrpc": "2.0", "id": 1}',
        b'{"jsonrpc": "2.0", "error": "bad", "id": 1}',
        b"[1]",
    ],
)
def test_loads_response_invalid(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        loads_response(body)


def test_loads_response_parse_error() -> None:
    with pytest.raises(ParseError):
        loads_response(b"<html>502 Bad Gateway</html>")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8")),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=200)
@given(JSON_VALUES)
def test_property_round_trip(value: Any) -> None:
    assert loads_response(dumps_result(1, value)) == value
    got = loads_request(dumps_request("m", [value], 1))
    assert isinstance(got, JsonRpcRequest)
    assert got.params == [value]
