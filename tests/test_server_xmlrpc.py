"""XML-RPC against a real daemon with the standard library's client: types, system methods,
faults, authentication and access filtering."""

from __future__ import annotations

import base64
import xmlrpc.client
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from server_helpers import (
    BASIC_PASSWORD,
    BASIC_USER,
    MOODLE_PASSWORD,
    MOODLE_USER,
    OUTSIDER_TOKEN,
    Daemon,
    example_daemon,
    fault_of,
    xml_call,
)

from rpcd.errors import (
    APPLICATION_ERROR,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SYSTEM_ERROR,
)

HELLO = [
    "hello.add",
    "hello.echo",
    "hello.findUser",
    "hello.helloWorld",
    "hello.slowEcho",
    "hello.sum",
]
SYSTEM = [
    "system.getCapabilities",
    "system.listMethods",
    "system.listServices",
    "system.login",
    "system.logout",
    "system.methodHelp",
    "system.methodSignature",
    "system.multicall",
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("xmlrpc")
    env = {"RPCD_HANDLER_TIMEOUT": "1", "RPCD_MAX_MULTICALL": "10"}
    with example_daemon(base, env) as d:
        yield d


def fault(call: object) -> tuple[int, str]:
    assert isinstance(call, xmlrpc.client.Fault), call
    return call.faultCode, call.faultString


def raises_fault(fn: object, *args: object) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


# --- types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        0,
        -(2**31),
        2**31 - 1,
        True,
        False,
        "",
        "  leading and trailing  ",
        "line\nbreak\ttab\n",
        "ünïcödé ✓ <&>",
        1.5,
        -0.0,
        1e300,
        datetime(2024, 2, 29, 23, 59, 58),
        b"\x00\x01binary\xff",
        {"a": 1, "nested": {"list": [1, "two", None, 3.0]}},
        [1, [2, [3, []]], {}],
        None,
    ],
    ids=repr,
)
def test_echo_round_trips_every_type(daemon: Daemon, value: object) -> None:
    assert daemon.token_proxy().hello.echo(value) == value


@pytest.mark.parametrize("number", [2**31, -(2**31) - 1, 2**63 - 1, -(2**63)])
def test_i8_beyond_i4_comes_back_as_i8(daemon: Daemon, number: int) -> None:
    # xmlrpc.client refuses to send i8, so the call is written by hand.
    status, _, body = daemon.post(
        "/RPC2",
        xml_call("hello.echo", f"<param><value><i8>{number}</i8></value></param>"),
        headers=_bearer(),
    )
    assert status == 200
    assert f"<i8>{number}</i8>".encode() in body
    assert xmlrpc.client.loads(body)[0] == (number,)


def test_integer_beyond_64_bits_is_a_fault(daemon: Daemon) -> None:
    body = xml_call("hello.echo", f"<param><value><i8>{2**64}</i8></value></param>")
    status, _, answer = daemon.post("/RPC2", body, headers=_bearer())
    assert status == 200
    assert fault_of(answer)[0] == INVALID_REQUEST


def test_datetime_with_zone_and_untyped_string(daemon: Daemon) -> None:
    stamp = "<dateTime.iso8601>2024-01-02T03:04:05+02:00</dateTime.iso8601>"
    params = f"<param><value>{stamp}</value></param>"
    _, _, body = daemon.post("/RPC2", xml_call("hello.echo", params), headers=_bearer())
    assert b"2024-01-02T03:04:05+02:00" in body
    _, _, body = daemon.post(
        "/RPC2",
        xml_call("hello.echo", "<param><value>  untyped  </value></param>"),
        headers=_bearer(),
    )
    assert xmlrpc.client.loads(body)[0] == ("  untyped  ",)


def test_carriage_returns_survive(daemon: Daemon) -> None:
    # xmlrpc.client sends "\r" raw (XML then folds it into "\n"), so the request is written
    # by hand with &#13;; rpcd's answer escapes it the same way.
    params = "<param><value><string>a\r\nb&#13;&#10;c&#13;</string></value></param>"
    _, _, body = daemon.post("/RPC2", xml_call("hello.echo", params), headers=_bearer())
    assert xmlrpc.client.loads(body)[0] == ("a\nb\r\nc\r",)


def _bearer(token: str = "rpcd-dev-loopback-token") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- system methods ---------------------------------------------------------------------------


def test_list_methods_for_a_granted_peer(daemon: Daemon) -> None:
    assert daemon.token_proxy().system.listMethods() == HELLO + SYSTEM


def test_list_methods_is_filtered_per_caller(daemon: Daemon) -> None:
    outsider = daemon.token_proxy(OUTSIDER_TOKEN)  # college-c: directory.people only
    assert outsider.system.listMethods() == ["directory.people.count", *SYSTEM]
    anonymous = daemon.proxy()
    assert anonymous.system.listMethods() == [
        "system.getCapabilities",
        "system.listMethods",
        "system.login",
    ]


def test_mnet_slash_alias(daemon: Daemon) -> None:
    proxy = daemon.token_proxy()
    assert getattr(proxy, "system/listMethods")() == HELLO + SYSTEM
    assert getattr(proxy, "hello/add")(2, 3) == 5


def test_method_help_and_signature(daemon: Daemon) -> None:
    proxy = daemon.token_proxy()
    assert proxy.system.methodHelp("hello.add") == "Adds two integers."
    assert proxy.system.methodSignature("hello.add") == [["int", "int", "int"]]
    assert proxy.system.methodSignature("hello.echo") == "undef"
    assert proxy.system.methodSignature("system.methodHelp") == [["string", "string"]]
    assert "session" in proxy.system.methodHelp("system.login")


def test_introspection_hides_what_the_caller_may_not_call(daemon: Daemon) -> None:
    outsider = daemon.token_proxy(OUTSIDER_TOKEN)
    hidden = raises_fault(outsider.system.methodHelp, "hello.add")
    unknown = raises_fault(outsider.system.methodHelp, "hello.nope")
    assert hidden.faultCode == unknown.faultCode == METHOD_NOT_FOUND


def test_get_capabilities_anonymous(daemon: Daemon) -> None:
    caps = daemon.proxy().system.getCapabilities()
    for name in ("faults_interop", "introspection", "multicall", "nil", "i8"):
        assert caps[name]["specUrl"].startswith("http")
    assert caps["faults_interop"]["specVersion"] == 20010516


def test_list_services(daemon: Daemon) -> None:
    assert daemon.token_proxy().system.listServices() == [
        {
            "name": "hello",
            "apiversion": 1,
            "description": "Greetings and small arithmetic, for trying rpcd out",
            "methods": [
                "hello.helloWorld",
                "hello.add",
                "hello.echo",
                "hello.sum",
                "hello.slowEcho",
                "hello.findUser",
            ],
        }
    ]
    services = daemon.token_proxy(OUTSIDER_TOKEN).system.listServices()
    assert [(s["name"], s["apiversion"], s["methods"]) for s in services] == [
        ("directory.people", 2, ["directory.people.count"])
    ]


def test_multicall(daemon: Daemon) -> None:
    multi = xmlrpc.client.MultiCall(daemon.token_proxy())
    multi.hello.add(1, 2)
    multi.hello.nope()
    multi.hello.helloWorld("Ada", "Lovelace")
    multi.hello.add("x", 1)
    multi.hello.sum(["x"])
    results = multi()
    assert results[0] == 3
    with pytest.raises(xmlrpc.client.Fault) as info:
        results[1]
    assert info.value.faultCode == METHOD_NOT_FOUND
    assert results[2] == "Hello, Ada Lovelace!"
    codes = [r for r in results.results]
    assert codes[3]["faultCode"] == INVALID_PARAMS
    assert codes[4] == {"faultCode": 4001, "faultString": "sum takes an array of numbers"}


def test_nested_multicall_is_refused_per_call(daemon: Daemon) -> None:
    proxy = daemon.token_proxy()
    results = proxy.system.multicall(
        [
            {
                "methodName": "system.multicall",
                "params": [[{"methodName": "hello.add", "params": [1, 1]}]],
            },
            {"methodName": "hello.add", "params": [2, 2]},
        ]
    )
    assert results[0]["faultCode"] == INVALID_REQUEST
    assert results[1] == [4]


def test_multicall_over_the_limit(daemon: Daemon) -> None:
    calls = [{"methodName": "hello.add", "params": [1, 1]}] * 11
    assert raises_fault(daemon.token_proxy().system.multicall, calls).faultCode == INVALID_REQUEST


# --- faults -----------------------------------------------------------------------------------


def test_parse_error(daemon: Daemon) -> None:
    status, _, body = daemon.post("/RPC2", b"\x00\xffthis is not xml", headers=_bearer())
    assert status == 200 and fault_of(body)[0] == PARSE_ERROR
    status, _, body = daemon.post(
        "/RPC2", b"<methodCall><methodName>x</methodName>", headers=_bearer()
    )
    assert status == 200 and fault_of(body)[0] == PARSE_ERROR


def test_invalid_request(daemon: Daemon) -> None:
    _, _, body = daemon.post("/RPC2", b"<methodResponse/>", headers=_bearer())
    assert fault_of(body)[0] == INVALID_REQUEST
    _, _, body = daemon.post(
        "/RPC2", xml_call("hello.echo", "<param><value><blob/></value></param>"), headers=_bearer()
    )
    assert fault_of(body)[0] == INVALID_REQUEST


def test_unknown_and_forbidden_are_indistinguishable(daemon: Daemon) -> None:
    outsider = daemon.token_proxy(OUTSIDER_TOKEN)
    forbidden = raises_fault(outsider.hello.add, 1, 2)
    unknown = raises_fault(outsider.hello.nope, 1, 2)
    assert forbidden.faultCode == unknown.faultCode == METHOD_NOT_FOUND
    assert forbidden.faultString.replace("hello.add", "X") == unknown.faultString.replace(
        "hello.nope", "X"
    )


def test_signature_mismatch(daemon: Daemon) -> None:
    proxy = daemon.token_proxy()
    assert raises_fault(proxy.hello.add, 1).faultCode == INVALID_PARAMS
    assert raises_fault(proxy.hello.add, "1", 2).faultCode == INVALID_PARAMS
    assert raises_fault(proxy.hello.add, True, 2).faultCode == INVALID_PARAMS
    # No declared signature: the function's own arity is checked.
    assert raises_fault(proxy.hello.echo).faultCode == INVALID_PARAMS
    assert raises_fault(proxy.hello.echo, 1, 2).faultCode == INVALID_PARAMS


def test_handler_exception_is_internal_error_without_details(daemon: Daemon) -> None:
    error = raises_fault(daemon.token_proxy().hello.slowEcho, "not a number")
    assert error.faultCode == INTERNAL_ERROR
    assert "request id" in error.faultString
    for leak in ("Traceback", "ValueError", "float", "examples", ".py"):
        assert leak not in error.faultString
    request_id = error.faultString.rsplit(" ", 1)[-1].rstrip(")")
    assert "Traceback" in daemon.logs() and request_id in daemon.logs()


def test_application_fault_passes_through(daemon: Daemon) -> None:
    error = raises_fault(daemon.token_proxy().hello.sum, ["x", 1])
    assert (error.faultCode, error.faultString) == (4001, "sum takes an array of numbers")
    assert APPLICATION_ERROR == -32500  # the code for faults without their own


def test_handler_timeout(daemon: Daemon) -> None:
    error = raises_fault(daemon.token_proxy().hello.slowEcho, 3, "late")
    assert error.faultCode == SYSTEM_ERROR
    assert daemon.token_proxy().hello.slowEcho(0.01, "quick") == "quick"


# --- authentication ---------------------------------------------------------------------------


def test_unauthenticated_call_is_401_with_challenge(daemon: Daemon) -> None:
    with pytest.raises(xmlrpc.client.ProtocolError) as info:
        daemon.proxy().hello.add(1, 2)
    assert info.value.errcode == 401
    assert info.value.headers["WWW-Authenticate"].startswith('Basic realm="rpcd"')


def test_wrong_token_is_anonymous(daemon: Daemon) -> None:
    proxy = daemon.token_proxy("wrong-token-0123456789")
    assert proxy.system.listMethods() == [
        "system.getCapabilities",
        "system.listMethods",
        "system.login",
    ]
    with pytest.raises(xmlrpc.client.ProtocolError) as info:
        proxy.hello.add(1, 2)
    assert info.value.errcode == 401


def test_basic_user_and_password(daemon: Daemon) -> None:
    assert daemon.basic_proxy(BASIC_USER, BASIC_PASSWORD).hello.add(20, 22) == 42
    with pytest.raises(xmlrpc.client.ProtocolError) as info:
        daemon.basic_proxy(BASIC_USER, "wrong-password").hello.add(1, 2)
    assert info.value.errcode == 401


def test_login_failure_is_401(daemon: Daemon) -> None:
    with pytest.raises(xmlrpc.client.ProtocolError) as info:
        daemon.proxy().system.login({"username": MOODLE_USER, "password": "wrong"})
    assert info.value.errcode == 401
    assert "WWW-Authenticate" in info.value.headers


def test_login_session_logout(daemon: Daemon) -> None:
    session = daemon.proxy().system.login(
        {"domain": "default", "username": MOODLE_USER, "password": MOODLE_PASSWORD}
    )
    assert set(session) == {"sessionid", "kp3"}
    proxy = daemon.basic_proxy(session["sessionid"], session["kp3"])
    assert proxy.directory.people.count() == 42
    assert "hello.add" not in proxy.system.listMethods()  # uni-b is not granted hello
    assert proxy.system.logout() == {"GOODBYE": "XOXO"}
    with pytest.raises(xmlrpc.client.ProtocolError) as info:
        proxy.directory.people.count()
    assert info.value.errcode == 401


def test_login_with_two_strings_and_logout_by_params(daemon: Daemon) -> None:
    session = daemon.proxy().system.login(MOODLE_USER, MOODLE_PASSWORD)
    proxy = daemon.basic_proxy(session["sessionid"], session["kp3"])
    assert proxy.system.logout(session) == {"GOODBYE": "XOXO"}
    assert daemon.basic_proxy(session["sessionid"], session["kp3"]).system.listMethods() == [
        "system.getCapabilities",
        "system.listMethods",
        "system.login",
    ]


def test_forged_session_is_refused(daemon: Daemon) -> None:
    session = daemon.proxy().system.login(MOODLE_USER, MOODLE_PASSWORD)
    raw, sig = session["sessionid"].split(".")
    forged = (
        base64.urlsafe_b64encode(
            base64.urlsafe_b64decode(raw + "==").replace(b"moodle-uni-b", b"loopback")
        )
        .rstrip(b"=")
        .decode()
    )
    with pytest.raises(xmlrpc.client.ProtocolError):
        daemon.basic_proxy(f"{forged}.{sig}", session["kp3"]).hello.add(1, 2)
    with pytest.raises(xmlrpc.client.ProtocolError):
        daemon.basic_proxy(session["sessionid"], "0" * 32).directory.people.count()


def test_other_paths_and_request_id(daemon: Daemon) -> None:
    for path in ("/xmlrpc", "/xmlrpc.php"):
        status, headers, body = daemon.post(path, xml_call("system.listMethods"))
        assert status == 200 and b"system.login" in body
        assert headers["X-Request-ID"]
    status, headers, _ = daemon.post(
        "/RPC2", xml_call("system.listMethods"), headers={"X-Request-ID": "abc-123"}
    )
    assert headers["X-Request-ID"] == "abc-123"


def test_status_and_probes(daemon: Daemon, tmp_path: Path) -> None:
    assert daemon.get("/healthz")[0] == 200
    assert daemon.get("/readyz")[0] == 200
    assert daemon.get("/v1/status")[0] == 401
    status, _, body = daemon.get("/v1/status", headers=_bearer())
    assert status == 200 and b"content_hash" in body


def test_proxy_method_without_its_secret_is_a_clean_fault(daemon: Daemon) -> None:
    # hello.findUser is served by moodle_users; its uni-a token (env) is not set in the tests.
    error = raises_fault(
        daemon.token_proxy().hello.findUser, {"field": "username", "values": ["ada"]}
    )
    assert error.faultCode != INTERNAL_ERROR
    assert "MOODLE_UNI_A_TOKEN" in error.faultString or "secret" in error.faultString
    assert "Traceback" not in error.faultString
