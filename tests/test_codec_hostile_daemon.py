"""The codec attacks of issue 12 (points 1, 2, 18) against a real daemon and a real remote.

Each is sent as the issue describes it. Times are only compared with a generous linear bound
(20x the time of a tenth of the work, plus a floor), and every wait has a timeout, so the old
quadratic checks and the FIFO hang fail here in bounded time instead of freezing the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from peers import serve
from peers.tree import load_with_secrets
from peers.tree import make_tree as make_conn_tree
from server_helpers import Daemon, example_daemon, fault_of, make_tree, running, xml_call

from rpcd.connections import Transport, connections_for
from rpcd.errors import INVALID_REQUEST, PARSE_ERROR, CodecError
from tests.codec_helpers import deadline

BEARER = {"Authorization": "Bearer rpcd-dev-loopback-token"}
FLOOR = 2.0  # seconds: the bound's floor, for a loaded machine


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("codec-hostile")
    with example_daemon(base) as d:
        yield d


def post(
    daemon: Daemon, path: str, body: bytes, timeout: float, headers: dict[str, str] | None = None
) -> tuple[float, int, bytes]:
    """(seconds, status, body) of one POST on a fresh connection, or TimeoutError."""
    url = urlsplit(daemon.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
    content_type = "application/json" if path == "/jsonrpc" else "text/xml"
    try:
        start = time.perf_counter()
        conn.request("POST", path, body, {"Content-Type": content_type, **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        return time.perf_counter() - start, response.status, data
    finally:
        conn.close()


def double_call(text: str) -> bytes:
    return xml_call("hello.echo", f"<param><value><double>{text}</double></value></param>")


# ---------------------------------------------------------------------------------------------
# point 1


def test_a_long_double_without_credentials_cannot_freeze_the_daemon(daemon: Daemon) -> None:
    """The issue's request: ``<double>`` of 24,000 digits then ``x``, no credentials (it took
    30-45 s of event loop). It is answered with a fault within 20x the time of 2,000 digits
    (quadratic work takes 144x), and ``/healthz`` answers meanwhile."""
    small = min(post(daemon, "/RPC2", double_call("1" * 2_000 + "x"), 60)[0] for _ in range(3))
    bound = 20 * small + FLOOR
    answer: dict[str, Any] = {}

    def hostile() -> None:
        try:
            answer["post"] = post(daemon, "/RPC2", double_call("1" * 24_000 + "x"), bound)
        except OSError as exc:
            answer["error"] = exc

    thread = threading.Thread(target=hostile)
    thread.start()
    try:
        healthy = daemon_answers(daemon, bound)
    finally:
        thread.join(bound + 5)
    assert healthy, f"/healthz had no answer within {bound:.1f} s: the event loop was blocked"
    assert "error" not in answer, f"no answer within {bound:.1f} s: {answer.get('error')!r}"
    _, status, body = answer["post"]
    assert status == 200
    code, message = fault_of(body)
    assert code == INVALID_REQUEST and "max_number_chars" in message


def daemon_answers(daemon: Daemon, timeout: float) -> bool:
    url = urlsplit(daemon.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def test_max_number_chars_is_a_setting_and_the_check_is_linear(tmp_path: Path) -> None:
    """With the limit raised past the text, the syntax check itself refuses 24,000 digits then
    ``x`` within the same linear bound; a limit below the floor is refused at start."""
    env = {"RPCD_MAX_NUMBER_CHARS": "1000000"}
    with running(make_tree(tmp_path / "tree"), tmp_path / "rpcd.log", env) as d:
        small = min(post(d, "/RPC2", double_call("1" * 2_000 + "x"), 60)[0] for _ in range(3))
        bound = 20 * small + FLOOR
        _, status, body = post(d, "/RPC2", double_call("1" * 24_000 + "x"), bound)
        assert status == 200
        assert fault_of(body) == (INVALID_REQUEST, f"bad double {('1' * 60)!r}...")
        _, _, body = post(d, "/RPC2", double_call("0." + "5" * 20_000), 60, BEARER)
        assert b"<double>0.5555555555555556</double>" in body
    from rpcd.settings import Settings

    with pytest.raises(ValueError, match="max_number_chars"):
        Settings(max_number_chars=99)


# ---------------------------------------------------------------------------------------------
# point 2


@pytest.fixture
def targets(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """An existing file, a directory, a missing path and a FIFO nobody writes to."""
    (tmp_path / "file").write_text("secret: 42\n")
    (tmp_path / "dir").mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    yield {
        "file": tmp_path / "file",
        "dir": tmp_path / "dir",
        "missing": tmp_path / "x",
        "fifo": fifo,
    }
    # Had a reader blocked on the FIFO (the old daemon), a writer lets it go.
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def utf7_probe(target: Path) -> bytes:
    """The issue's attack: the declaration padded past 200 bytes declares UTF-7, in which
    ``+ADwAIQ-`` is ``<!``: a DOCTYPE naming ``target``, invisible to a byte search."""
    return (
        f"<?xml version='1.0'{' ' * 300}encoding='UTF-7'?>"
        f'+ADwAIQ-DOCTYPE methodCall SYSTEM "file://{target}"+AD4-'
        "<methodCall><methodName>hello.echo</methodName><params/></methodCall>"
    ).encode()


def doctype_probe(target: Path) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE methodCall SYSTEM "file://{target}">'
        "<methodCall><methodName>hello.echo</methodName><params/></methodCall>"
    ).encode()


@pytest.mark.parametrize("probe", [utf7_probe, doctype_probe])
def test_a_dtd_probe_gets_one_answer_and_a_fifo_hangs_nothing(
    daemon: Daemon, targets: dict[str, Path], probe: Any
) -> None:
    answers: dict[str, tuple[int, str]] = {}
    for name, path in targets.items():
        try:
            _, status, body = post(daemon, "/RPC2", probe(path), 10)
        except TimeoutError:
            pytest.fail(f"no answer within 10 s for a DOCTYPE naming the {name}")
        assert status == 200
        answers[name] = fault_of(body)
    assert len(set(answers.values())) == 1, answers
    code, message = answers["file"]
    assert code == PARSE_ERROR and "secret" not in message
    assert daemon_answers(daemon, 5)


# ---------------------------------------------------------------------------------------------
# point 18


def jsonrpc_call(params: str, id: int = 1) -> str:
    return f'{{"jsonrpc":"2.0","method":"hello.echo","params":{params},"id":{id}}}'


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (jsonrpc_call("[1e999]"), INVALID_REQUEST),
        (jsonrpc_call('[{"x":[-1E400]}]'), INVALID_REQUEST),
        (f"[{jsonrpc_call('[1]', 1)},{jsonrpc_call('[1e999]', 2)}]", INVALID_REQUEST),
        (jsonrpc_call("[NaN]"), PARSE_ERROR),
        (jsonrpc_call("[-Infinity]"), PARSE_ERROR),
    ],
)
def test_json_non_finite_numbers_are_refused_before_the_handler(
    daemon: Daemon, body: str, code: int
) -> None:
    """``params: [1e999]`` reached ``hello.echo`` as ``inf`` and ended as -32603 with a
    traceback in the log; now the codec refuses it, as XML-RPC refuses ``1e400``."""
    before = daemon.logs()
    _, status, answer = post(daemon, "/jsonrpc", body.encode(), 30, BEARER)
    assert status == 200
    error = json.loads(answer)
    if isinstance(error, list):  # a batch: the member over the limit answers on its own
        # (issue 14), the other one runs
        assert error[0] == {"jsonrpc": "2.0", "result": 1, "id": 1}, error
        error = error[1]
        assert error["id"] == 2
    else:  # a single request keeps its id when one could be read (issue 14)
        assert error["id"] == (1 if code == INVALID_REQUEST else None), error
    assert error["error"]["code"] == code, error
    assert "Traceback" not in daemon.logs()[len(before) :]


# ---------------------------------------------------------------------------------------------
# point 1, outbound: a remote answering with the hostile double


def hostile_peer(digits: int) -> web.Application:
    body = (
        "<?xml version='1.0'?><methodResponse><params><param><value><double>"
        + "1" * digits
        + "x</double></value></param></params></methodResponse>"
    ).encode()

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="text/xml")

    app = web.Application()
    app.router.add_post("/RPC2", answer)
    return app


def outbound_call(root: Path) -> float:
    """Seconds one call to the connection in ``root`` took to fail with a codec error."""
    catalog, store = load_with_secrets(root)

    async def go() -> None:
        async with Transport.open() as transport:
            (conn,) = connections_for(
                catalog, "test_remote", [], secrets=store, transport=transport
            )
            await conn.call("anything", [1])

    start = time.perf_counter()
    with pytest.raises(CodecError):
        asyncio.run(go())
    return time.perf_counter() - start


def test_a_remote_answering_a_long_double_is_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_TOKEN", "remote-token-0123456789")
    seconds = []
    for digits in (2_000, 24_000):
        with serve(hostile_peer(digits)) as peer:
            root = make_conn_tree(
                tmp_path / str(digits),
                {
                    "remote.toml": f"""
                    [class]
                    id = "test_remote"
                    plugin = "test"
                    name = "A hostile XML-RPC remote"

                    [[connection]]
                    id = "main"
                    enabled = true
                    global = true
                    type = "XML-RPC"
                    auth = "token"
                    endpoint = "{peer.url}/RPC2"
                    credentials = {{ token = {{ env = "REMOTE_TOKEN" }} }}
                    """
                },
            )
            if not seconds:
                seconds.append(min(outbound_call(root) for _ in range(3)))
            else:
                with deadline(20 * seconds[0] + FLOOR):
                    seconds.append(outbound_call(root))
    assert len(seconds) == 2
