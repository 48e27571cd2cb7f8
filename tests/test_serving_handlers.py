"""Items 1 and 2 of issue 14: handlers get their caller's context, and the public handler API.

A real daemon (``serving_helpers``) publishes ``tests/serving_handlers.py``; the callers are
``xmlrpc.client`` and raw JSON-RPC over HTTP.
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import pytest
import serving_handlers
from server_helpers import LOOPBACK_TOKEN, OUTSIDER_TOKEN
from serving_helpers import EGW_PASSWORD, EGW_USER, Served, served

import rpcd
from rpcd import CallContext, Fault
from rpcd.errors import INTERNAL_ERROR
from rpcd.handler import ContextParameterError, context_parameter


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("handlers")) as s:
        yield s


# ---------------------------------------------------------------- 1. caller context


@pytest.mark.parametrize("method", ["whoami", "whoamiAsync", "whoamiInline"])
def test_sync_async_and_inline_handlers_get_the_same_context(setup: Served, method: str) -> None:
    got = getattr(setup.daemon.token_proxy().ctx, method)()
    request_id = got.pop("request_id")
    assert len(request_id) == 16
    assert got == {
        "peer": "loopback",
        "institutions": ["uni-a"],
        "auth": "token",
        "protocol": "xmlrpc",
        "method": f"ctx.{method}",
        "client_address": "127.0.0.1",
    }


def test_the_context_carries_the_callers_request_id(setup: Served) -> None:
    proxy = setup.daemon.proxy(
        [("Authorization", f"Bearer {LOOPBACK_TOKEN}"), ("X-Request-ID", "trace-42")]
    )
    assert proxy.ctx.whoami()["request_id"] == "trace-42"


def test_a_handler_answers_differently_for_two_peers(setup: Served) -> None:
    assert setup.daemon.token_proxy().ctx.greet("Ada") == "Welcome back Ada (loopback)"
    outsider = setup.daemon.token_proxy(OUTSIDER_TOKEN)
    assert outsider.ctx.greet("Ada") == "Hello Ada, guest of college-c"


def test_json_rpc_handlers_see_their_protocol_and_session_user(setup: Served) -> None:
    daemon = setup.daemon
    session = daemon.proxy().system.login({"username": EGW_USER, "password": EGW_PASSWORD})
    answer = setup.jsonrpc(
        {"jsonrpc": "2.0", "method": "ctx.whoami", "id": 1},
        {"Authorization": _basic(session["sessionid"], session["kp3"])},
    )
    got = answer["result"]
    assert (got["peer"], got["user"], got["auth"], got["protocol"]) == (
        "egw",
        EGW_USER,
        "session",
        "jsonrpc",
    )
    assert got["institutions"] == ["uni-a", "uni-b"]


def test_the_context_parameter_is_no_rpc_param(setup: Served) -> None:
    proxy = setup.daemon.token_proxy()
    assert proxy.system.methodSignature("ctx.greet") == [["string", "string"]]
    assert proxy.system.methodSignature("ctx.whoami") == "undef"
    with pytest.raises(xmlrpc.client.Fault) as info:
        proxy.ctx.whoami("extra")  # the context is not a param a caller can fill
    assert info.value.faultCode == -32602


def test_context_parameter_detection() -> None:
    assert context_parameter(serving_handlers.greet) == "ctx"
    assert context_parameter(serving_handlers.own_fault) is None

    def keyword_only(a: int, *, context: CallContext) -> int:
        return a

    assert context_parameter(keyword_only) == "context"

    def optional(a: int, ctx: CallContext | None = None) -> int:
        return a

    assert context_parameter(optional) == "ctx"
    with pytest.raises(ContextParameterError, match="positional-only"):
        context_parameter(serving_handlers.positional_context)

    def twice(a: CallContext, b: CallContext) -> None: ...

    with pytest.raises(ContextParameterError, match="twice"):
        context_parameter(twice)


# ---------------------------------------------------------------- 2. the public handler API


def test_the_public_surface() -> None:
    assert rpcd.Fault is Fault and rpcd.CallContext is CallContext
    assert set(rpcd.__all__) >= {"Fault", "CallContext"}


def test_a_handlers_own_fault_passes_through_unchanged(setup: Served) -> None:
    with pytest.raises(xmlrpc.client.Fault) as info:
        setup.daemon.token_proxy().ctx.ownFault()
    assert (info.value.faultCode, info.value.faultString) == (
        serving_handlers.OWN_CODE,
        serving_handlers.OWN_TEXT,
    )
    answer = setup.jsonrpc({"jsonrpc": "2.0", "method": "ctx.ownFault", "id": 9})
    assert answer["error"] == {
        "code": serving_handlers.OWN_CODE,
        "message": serving_handlers.OWN_TEXT,
    }


def test_an_uncaught_exception_is_internal_error_with_the_request_id_only(setup: Served) -> None:
    proxy = setup.daemon.proxy(
        [("Authorization", f"Bearer {LOOPBACK_TOKEN}"), ("X-Request-ID", "crash-1")]
    )
    with pytest.raises(xmlrpc.client.Fault) as info:
        proxy.ctx.crash()
    assert info.value.faultCode == INTERNAL_ERROR
    assert info.value.faultString == "internal error (request id crash-1)"
    answer: dict[str, Any] = setup.jsonrpc({"jsonrpc": "2.0", "method": "ctx.crash", "id": 3})
    assert answer["error"]["code"] == INTERNAL_ERROR
    assert "hunter2" not in str(answer) and "RuntimeError" not in str(answer)
    assert "crash-1" in setup.daemon.logs()  # the traceback went to the log


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
