"""REST connections against a Moodle-shaped peer: bracket encoding, wstoken, formats, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peers import REQUESTS, AiohttpPeer, serve
from peers.moodle import PATH, moodle_app
from peers.tree import load_with_secrets, make_tree, no_secret_in_logs, secret

from rpcd.connections import ParameterError, Transport, TransportSettings, connections_for
from rpcd.errors import ConnectionCallError, RemoteFault

__all__ = ["no_secret_in_logs"]

TOKEN = secret("moodle-token-5f1c9a7e")


@pytest.fixture(scope="module")
def moodle() -> Iterator[AiohttpPeer]:
    with serve(moodle_app(TOKEN)) as peer:
        yield peer


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, moodle: AiohttpPeer) -> None:
    monkeypatch.setenv("MOODLE_TOKEN", TOKEN)
    moodle.app[REQUESTS].clear()


def tree(tmp_path: Path, endpoint: str, extra: str = "", function_param: bool = True) -> Path:
    fp = 'function_param = "wsfunction"' if function_param else ""
    return make_tree(
        tmp_path,
        {
            "moodle.toml": f"""
            [class]
            id = "moodle_users"
            plugin = "moodle"
            name = "Moodle users"
            {fp}

            [[connection]]
            id = "main"
            enabled = true
            global = true
            auth = "token"
            endpoint = "{endpoint}"
            credentials = {{ token = {{ env = "MOODLE_TOKEN" }} }}
            {extra}
            """
        },
    )


def call(root: Path, function: str, params: Any, **settings: Any) -> Any:
    catalog, store = load_with_secrets(root)

    async def go() -> Any:
        async with Transport.open(TransportSettings(**settings)) as transport:
            (conn,) = connections_for(
                catalog, "moodle_users", [], secrets=store, transport=transport
            )
            return await conn.call(function, params)

    return asyncio.run(go())


NESTED = {"field": "username", "values": ["ada", "alan"], "options": {"ids": [3], "flag": True}}
FLAT = {
    "field": "username",
    "values[0]": "ada",
    "values[1]": "alan",
    "options[ids][0]": "3",
    "options[flag]": "1",
}


def test_get_puts_everything_in_the_query_string_with_php_brackets(
    tmp_path: Path, moodle: AiohttpPeer
) -> None:
    root = tree(
        tmp_path,
        moodle.url + PATH,
        'parameters = { moodlewsrestformat = "json" }\nhttp_method = "GET"',
    )
    assert call(root, "echo", NESTED) == FLAT
    (req,) = moodle.app[REQUESTS]
    assert req["method"] == "GET" and req["form"] == {}
    assert req["query"]["wstoken"] == TOKEN and req["query"]["wsfunction"] == "echo"
    assert req["query"]["values[1]"] == "alan"


def test_post_sends_a_form_body_with_the_token_inside(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(
        tmp_path,
        moodle.url + PATH,
        'parameters = { moodlewsrestformat = "json" }\nhttp_method = "POST"',
    )
    users = call(root, "core_user_get_users_by_field", {"field": "username", "values": ["ada"]})
    assert users == [{"id": 2, "username": "ada", "email": "ada@uni-a.example", "suspended": None}]
    (req,) = moodle.app[REQUESTS]
    assert req["method"] == "POST" and "wstoken" not in req["query"]
    assert req["form"]["wstoken"] == TOKEN and req["form"]["values[0]"] == "ada"


def test_moodle_xml_answer_is_decoded(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(tmp_path, moodle.url + PATH)  # no moodlewsrestformat: Moodle's default, XML
    users = call(root, "core_user_get_users_by_field", {"field": "username", "values": ["alan"]})
    assert users == [
        {"id": "3", "username": "alan", "email": "alan@uni-a.example", "suspended": None}
    ]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_moodle_http_200_errors_are_remote_faults(
    tmp_path: Path, moodle: AiohttpPeer, fmt: str
) -> None:
    root = tree(
        tmp_path,
        moodle.url + PATH,
        f'parameters = {{ moodlewsrestformat = "{fmt}" }}\nhttp_method = "GET"',
    )
    with pytest.raises(RemoteFault) as info:
        call(root, "core_user_get_users_by_field", {"field": "bogus", "values": ["ada"]})
    assert info.value.errorcode == "invalidparameter"
    assert info.value.message == "Invalid parameter value detected"


def test_wrong_token_is_a_remote_fault_without_the_token(
    tmp_path: Path, moodle: AiohttpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOODLE_TOKEN", secret("wrong-token-77aa"))
    root = tree(tmp_path, moodle.url + PATH)
    with pytest.raises(RemoteFault) as info:
        call(root, "echo", {})
    assert info.value.errorcode == "invalidtoken"
    assert "wrong-token-77aa" not in repr(info.value) + str(info.value)


def test_function_placeholder_and_token_header(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(
        tmp_path,
        moodle.url + "/fn/{function}",
        'token_header = "X-Moodle-Token"\n'
        'parameters = { moodlewsrestformat = "json" }\nhttp_method = "GET"',
        function_param=False,
    )
    assert call(root, "echo", {"a": [1, 2]}) == {"a[0]": "1", "a[1]": "2"}
    (req,) = moodle.app[REQUESTS]
    assert req["headers"]["X-Moodle-Token"] == TOKEN and "wstoken" not in req["query"]


def test_json_payload_goes_in_the_body_which_moodle_never_reads(
    tmp_path: Path, moodle: AiohttpPeer
) -> None:
    root = tree(
        tmp_path,
        moodle.url + PATH,
        'payload = "json"\nparameters = { moodlewsrestformat = "json" }\nhttp_method = "POST"',
    )
    assert call(root, "echo", {"field": "username"}) == {}  # the body is invisible to Moodle
    (req,) = moodle.app[REQUESTS]
    assert req["body"] == b'{"field":"username"}'
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["query"]["wsfunction"] == "echo" and req["query"]["wstoken"] == TOKEN


def test_xml_payload(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(
        tmp_path,
        moodle.url + PATH,
        'payload = "xml"\nparameters = { moodlewsrestformat = "json" }\nhttp_method = "POST"',
    )
    call(root, "echo", {"ids": [1]})
    (req,) = moodle.app[REQUESTS]
    assert req["body"].endswith(
        b"<request><function>echo</function><params><ids><item>1</item></ids></params></request>"
    )


def test_wrong_shape_fails_before_any_request(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(tmp_path, moodle.url + PATH)
    with pytest.raises(ParameterError, match="mapping"):
        call(root, "echo", ["ada"])
    with pytest.raises(ParameterError, match="fixed by connection"):
        root2 = tree(
            tmp_path / "2",
            moodle.url + PATH,
            'parameters = { moodlewsrestformat = "json" }\nhttp_method = "GET"',
        )
        call(root2, "echo", {"moodlewsrestformat": "xml"})
    assert moodle.app[REQUESTS] == []


def test_response_size_limit(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(tmp_path, moodle.url + "/big")
    with pytest.raises(ConnectionCallError, match="over the 100000-byte limit") as info:
        call(root, "x", {}, max_response_bytes=100_000)
    assert TOKEN not in str(info.value)
    assert len(call(root, "x", {})[0]) == 200_000


def test_timeout_is_per_connection(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(tmp_path, moodle.url + "/slow", "timeout = 0.3")
    with pytest.raises(ConnectionCallError, match=r"no answer within 0\.3 s") as info:
        call(root, "x", {})
    assert TOKEN not in str(info.value) and "moodle_users/main" in str(info.value)


def test_http_error_status_and_refused_connection(tmp_path: Path, moodle: AiohttpPeer) -> None:
    with pytest.raises(RemoteFault) as info:
        call(tree(tmp_path, moodle.url + "/down"), "x", {})
    assert info.value.errorcode == "http-503"
    with pytest.raises(ConnectionCallError, match="cannot connect"):
        call(tree(tmp_path / "2", "http://127.0.0.1:9/x"), "x", {})
