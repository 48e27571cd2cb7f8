"""Item 4 of issue 14: proxy methods say what happened, take no params, and name positional ones.

The ``lms_site`` class (``serving_helpers``) has two REST connections, uni-a's and uni-b's,
to the echo peer: its ``echo`` function answers with the params it received, anything else
is a Moodle ``invalidtoken`` exception that quotes the token (which rpcd masks).
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Iterator

import pytest
from serving_helpers import EGW_PASSWORD, EGW_USER, LMS_A_TOKEN, LMS_B_TOKEN, Served, served

from rpcd.errors import APPLICATION_ERROR

FIXED = {"wsfunction": "echo", "moodlewsrestformat": "json", "wstoken": "**********"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("proxy")) as s:
        yield s


def _egw(setup: Served) -> xmlrpc.client.ServerProxy:
    """A peer of uni-a and uni-b: both connections apply to it."""
    return setup.daemon.basic_proxy(EGW_USER, EGW_PASSWORD)


def test_a_failed_proxy_call_lists_every_attempt_in_the_fault_string(setup: Served) -> None:
    with pytest.raises(xmlrpc.client.Fault) as info:
        _egw(setup).lms.broken()
    fault = info.value
    assert fault.faultCode == APPLICATION_ERROR  # the remote's own (last) error
    text = fault.faultString
    assert text.startswith("lms.broken failed: tried lms_site/uni-a: Invalid token")
    assert "; lms_site/uni-b: Invalid token" in text
    assert "wstoken=**********" in text  # the remote quoted the token: masked
    assert LMS_A_TOKEN not in text and LMS_B_TOKEN not in text


def test_a_failed_proxy_call_lists_its_attempts_in_json_rpc_error_data(setup: Served) -> None:
    import base64

    basic = base64.b64encode(f"{EGW_USER}:{EGW_PASSWORD}".encode()).decode()
    answer = setup.jsonrpc(
        {"jsonrpc": "2.0", "method": "lms.broken", "params": [], "id": 5},
        {"Authorization": f"Basic {basic}"},
    )
    error = answer["error"]
    attempts = error["data"]["attempts"]
    assert [a["connection"] for a in attempts] == ["lms_site/uni-a", "lms_site/uni-b"]
    assert all(a["errorcode"] == "invalidtoken" and not a["fatal"] for a in attempts)
    assert all(a["reason"].startswith("Invalid token") for a in attempts)
    assert LMS_A_TOKEN not in str(answer) and LMS_B_TOKEN not in str(answer)


def test_a_rest_function_without_arguments_takes_no_params(setup: Served) -> None:
    assert setup.daemon.token_proxy().lms.siteInfo() == FIXED
    for params in ([], {}):
        answer = setup.jsonrpc(
            {"jsonrpc": "2.0", "method": "lms.siteInfo", "params": params, "id": 1}
        )
        assert answer["result"] == FIXED


def test_positional_params_go_out_under_the_declared_names(setup: Served) -> None:
    sent = setup.daemon.token_proxy().lms.lookup("username", "ada")
    assert sent == {**FIXED, "field": "username", "value": "ada"}
    answer = setup.jsonrpc(
        {
            "jsonrpc": "2.0",
            "method": "lms.lookup",
            "params": {"value": "ada", "field": "username"},
            "id": 2,
        }
    )
    assert answer["result"] == sent


def test_one_struct_is_still_sent_as_the_named_params(setup: Served) -> None:
    sent = setup.daemon.token_proxy().lms.siteInfo({"courseid": 7})
    assert sent == {**FIXED, "courseid": "7"}
