"""Item 3 of issue 14: JSON-RPC 2.0 in full, seen from a real client library (jsonrpcclient).

By-name ``params`` map onto the names a method declares in ``services.d`` (-32602 where it
declares none, for an unknown name, or a gap); one batch member over a value limit gets its
own error and the others run. The codec's per-member judgement is also fuzzed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from jsonrpcclient import Error, Ok, parse, request
from server_helpers import LOOPBACK_TOKEN
from serving_helpers import Served, served

from rpcd.codecs import jsonrpc
from rpcd.codecs.jsonrpc import InvalidJsonRpcRequest, JsonRpcRequest
from rpcd.errors import INVALID_PARAMS, INVALID_REQUEST, LimitExceeded


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("jsonrpc")) as s:
        yield s


def send(setup: Served, payload: Any, raw: bytes | None = None) -> Any:
    """POST a jsonrpcclient request (or batch, or raw bytes); the parsed answer."""
    response = requests.post(
        setup.daemon.url + "/jsonrpc",
        data=raw if raw is not None else json.dumps(payload),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {LOOPBACK_TOKEN}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return parse(response.json())


# ---------------------------------------------------------------- by-name params


def test_by_name_params_map_to_the_declared_names(setup: Served) -> None:
    got = send(setup, request("ctx.fullName", params={"last": "Lovelace", "first": "Ada"}))
    assert got == Ok("Hello, Ada Lovelace!", got.id)
    assert send(setup, request("ctx.fullName", params=("Ada", "Lovelace"))).result == (
        "Hello, Ada Lovelace!"
    )


def test_by_name_params_with_the_context_parameter(setup: Served) -> None:
    assert send(setup, request("ctx.greet", params={"name": "Ada"})).result == (
        "Welcome back Ada (loopback)"
    )


@pytest.mark.parametrize(
    ("method", "params", "says"),
    [
        ("ctx.echo", {"value": 1}, "declares no parameter names"),
        ("ctx.fullName", {"first": "Ada", "middle": "King"}, "no param named middle"),
        ("ctx.fullName", {"last": "Lovelace"}, "'first' is missing"),
        ("ctx.fullName", {"first": "Ada"}, "takes 2 params"),
    ],
    ids=["none-declared", "unknown-name", "gap", "too-few"],
)
def test_by_name_params_that_do_not_fit_are_invalid_params(
    setup: Served, method: str, params: dict[str, Any], says: str
) -> None:
    got = send(setup, request(method, params=params))
    assert isinstance(got, Error) and got.code == INVALID_PARAMS
    assert says in got.message


def test_an_empty_object_is_no_params(setup: Served) -> None:
    assert send(setup, request("ctx.whoami", params={})).result["peer"] == "loopback"


# ---------------------------------------------------------------- per-member batch errors


def test_one_member_over_a_limit_gets_its_own_error(setup: Served) -> None:
    batch = [
        request("ctx.echo", params=(2**70,), id=1),  # an integer beyond 64 bits
        request("ctx.echo", params=("DEEP",), id=2),  # nested past max_xml_depth below
        request("ctx.echo", params=("fine",), id=3),
        request("ctx.fullName", params={"first": "Ada", "last": "L"}, id=4),
    ]
    raw = json.dumps(batch).replace('"DEEP"', "[" * 70 + "]" * 70)
    got = {r.id: r for r in send(setup, None, raw.encode())}
    assert isinstance(got[1], Error) and got[1].code == INVALID_REQUEST
    assert "64 bits" in got[1].message
    assert isinstance(got[2], Error) and "nested too deeply" in got[2].message
    assert got[3] == Ok("fine", 3)
    assert got[4] == Ok("Hello, Ada L!", 4)


def test_a_single_request_over_a_limit_keeps_its_id(setup: Served) -> None:
    got = send(setup, request("ctx.echo", params=(2**70,), id=77))
    assert isinstance(got, Error) and (got.code, got.id) == (INVALID_REQUEST, 77)


def test_the_whole_body_limits_still_hold(setup: Served) -> None:
    """Not JSON at all, or more members than max_multicall: the request fails as a whole."""
    got = send(setup, None, b'[{"jsonrpc": "2.0", "method": "ctx.echo", "params": [1], "id": 1')
    assert isinstance(got, Error) and got.id is None and got.code == -32700
    batch = [request("ctx.echo", params=(i,), id=i) for i in range(1, 2000)]
    got = send(setup, batch)
    assert isinstance(got, Error) and got.id is None and got.code == INVALID_REQUEST


# ---------------------------------------------------------------- the codec, fuzzed

_SAFE = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_BIG = st.one_of(st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1))


@pytest.mark.fuzz
@given(st.lists(st.tuples(st.booleans(), _SAFE, _BIG), min_size=1, max_size=20))
def test_each_batch_member_is_judged_on_its_own(members: list[tuple[bool, int, int]]) -> None:
    body = [
        {"jsonrpc": "2.0", "method": "m", "params": [big if bad else fine], "id": i}
        for i, (bad, fine, big) in enumerate(members)
    ]
    parsed = jsonrpc.loads_request(json.dumps(body).encode())
    assert isinstance(parsed, list) and len(parsed) == len(members)
    for i, ((bad, fine, _), item) in enumerate(zip(members, parsed, strict=True)):
        if bad:
            assert isinstance(item, InvalidJsonRpcRequest) and item.id == i
        else:
            assert item == JsonRpcRequest("m", [fine], i, False)


@pytest.mark.fuzz
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bodies_decode_or_fail_cleanly(data: bytes) -> None:
    try:
        parsed = jsonrpc.loads_request(data, max_depth=8)
    except (jsonrpc.CodecError, LimitExceeded):
        return
    items = parsed if isinstance(parsed, list) else [parsed]
    for item in items:
        assert isinstance(item, JsonRpcRequest | InvalidJsonRpcRequest)
