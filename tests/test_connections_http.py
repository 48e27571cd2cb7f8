"""Transport's HTTP/1.1 behaviour on the wire, pinned against raw asyncio peers.

Each test runs its own event loop with a scripted server (``peers.raw.Peer``) on 127.0.0.1:
the script sees every complete request and decides the exact bytes of the answer (or a stall,
a close, garbage), so framing, keep-alive, limits and failures are checked independently of
the HTTP client under ``Transport``. Every failure message is also checked for the token that
each call carries in its query and its Authorization header: it must never be quoted. Hostile
peers (endless heads, framing abuse, broken compression) are in test_connections_hostile.py.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import zlib

import pytest
from peers.raw import (
    HEADERS,
    LABEL,
    SECRET,
    Peer,
    RawConn,
    Script,
    answer_ok,
    answering,
    chunked,
    first,
    head_of,
    ok,
    post,
    refused,
    reply,
    run,
    stall,
    wait_until,
)

from rpcd.connections import Transport, TransportSettings
from rpcd.connections.request import OutboundRequest, Response, endpoint_url
from rpcd.errors import ConnectionCallError

# ------------------------------------------------------------------------------ framing


def test_three_sequential_calls_share_one_connection_and_send_a_well_formed_request() -> None:
    async def calls(peer: Peer, transport: Transport) -> tuple[list[bytes], Peer]:
        bodies = [
            (await post(transport, peer, b"body-%d" % i, path="/path?q=1")).body for i in range(3)
        ]
        return bodies, peer

    bodies, peer = run(answer_ok, calls)
    assert bodies == [b"ok"] * 3
    assert peer.connections == 1
    assert len(peer.requests) == 3
    for i, request in enumerate(peer.requests):
        line, headers, body = head_of(request)
        assert line == "POST /path?q=1 HTTP/1.1"
        assert headers["host"] == f"127.0.0.1:{peer.port}"
        assert headers["content-length"] == str(len(body))
        assert headers["user-agent"].startswith("rpcd/")
        assert headers["authorization"] == f"Bearer {SECRET}"
        assert headers["x-trace"] == "t-1"
        assert body == b"body-%d" % i


def test_a_chunked_answer_is_joined() -> None:
    answer = reply(
        chunked(b"<a>", b"x" * 5000, b"</a>", b"!"), "Transfer-Encoding: chunked", length=False
    )

    async def calls(peer: Peer, transport: Transport) -> bytes:
        return (await post(transport, peer)).body

    assert run(answering(answer), calls) == b"<a>" + b"x" * 5000 + b"</a>!"


def test_an_answer_without_length_is_read_until_close_and_the_next_call_reconnects() -> None:
    body = bytes(range(256)) * 800  # 200 kB, several reads
    answer = b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + body

    async def calls(peer: Peer, transport: Transport) -> tuple[list[bytes], int]:
        bodies = [(await post(transport, peer)).body for _ in range(2)]
        return bodies, peer.connections

    assert run(answering(answer, close=True), calls) == ([body, body], 2)


def test_connection_close_in_the_answer_makes_the_next_call_reconnect() -> None:
    async def calls(peer: Peer, transport: Transport) -> tuple[bytes, bytes, list[int]]:
        one = (await post(transport, peer)).body
        two = (await post(transport, peer)).body
        return one, two, peer.request_conn

    # The peer announces the close but leaves its side open: the client must not reuse it.
    script = first(answering(reply(b"bye", "Connection: close")))
    assert run(script, calls) == (b"bye", b"ok", [1, 2])


def test_an_interim_100_continue_is_skipped_for_the_final_answer() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + reply(b"final", status="200 OK")

    async def calls(peer: Peer, transport: Transport) -> tuple[int, bytes]:
        response = await post(transport, peer)
        await ok(transport, peer)
        return response.status, response.body

    assert run(first(answering(answer)), calls) == (200, b"final")


def test_a_204_has_an_empty_body_and_keeps_the_connection() -> None:
    async def calls(peer: Peer, transport: Transport) -> tuple[int, bytes, int]:
        response = await post(transport, peer)
        await ok(transport, peer)
        return response.status, response.body, peer.connections

    script = first(answering(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"))
    assert run(script, calls) == (204, b"", 1)


def test_the_answers_status_reason_and_headers_are_readable() -> None:
    answer = reply(b"{}", "Content-Type: application/json", "X-Custom: hello", status="201 Created")

    async def calls(peer: Peer, transport: Transport) -> Response:
        return await post(transport, peer)

    response = run(answering(answer), calls)
    assert (response.status, response.reason, response.body) == (201, "Created", b"{}")
    assert response.content_type == "application/json"
    assert response.headers["X-Custom"] == "hello"
    assert response.headers["x-custom"] == "hello"  # case-insensitive


def test_a_two_megabyte_request_body_arrives_intact() -> None:
    body = bytes(range(251)) * (2 * 1024 * 1024 // 251)

    async def calls(peer: Peer, transport: Transport) -> bytes:
        assert (await post(transport, peer, body)).body == b"ok"
        return head_of(peer.requests[0])[2]

    assert run(answer_ok, calls) == body


# ------------------------------------------------------------------------ size and coding


def test_answers_over_the_size_limit_fail_and_the_transport_goes_on() -> None:
    big = b"x" * 5000
    script = first(
        answering(reply(big)),
        answering(reply(chunked(big[:600], big[:600]), "Transfer-Encoding: chunked", length=False)),
    )

    async def calls(peer: Peer, transport: Transport) -> None:
        await refused(transport, peer, r"response of 5000 bytes is over the 1000-byte limit")
        await refused(transport, peer, r"over the 1000-byte limit")
        await ok(transport, peer)

    run(script, calls, TransportSettings(max_response_bytes=1000))


def test_gzip_and_deflate_answers_are_decoded_and_gzip_is_offered() -> None:
    text = b"<methodResponse>" + b"<value>42</value>" * 200 + b"</methodResponse>"
    script = first(
        answering(reply(gzip.compress(text), "Content-Encoding: gzip")),
        answering(reply(zlib.compress(text), "Content-Encoding: deflate")),
        answering(reply(_raw_deflate(text), "Content-Encoding: deflate")),  # as some servers do
    )

    async def calls(peer: Peer, transport: Transport) -> tuple[list[bytes], Peer]:
        return [(await post(transport, peer)).body for _ in range(3)], peer

    bodies, peer = run(script, calls)
    assert bodies == [text, text, text]
    assert "gzip" in head_of(peer.requests[0])[1]["accept-encoding"]


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def test_an_answer_in_a_coding_not_offered_or_corrupt_is_an_error() -> None:
    script = first(
        answering(reply(b"\x1b\x00", "Content-Encoding: br")),
        answering(reply(b"not gzip at all", "Content-Encoding: gzip")),
    )

    async def calls(peer: Peer, transport: Transport) -> None:
        await refused(transport, peer, r"Content-Encoding 'br', not offered")
        await refused(transport, peer, r"gzip response body does not inflate")
        await ok(transport, peer)

    run(script, calls)


@functools.cache
def _bomb() -> bytes:
    return gzip.compress(bytes(50_000_000))  # about 50 kB on the wire


def test_a_compression_bomb_stops_at_the_limit_on_decoded_bytes() -> None:
    bomb = _bomb()
    assert len(bomb) < 1_000_000
    script = first(answering(reply(bomb, "Content-Encoding: gzip")))

    async def calls(peer: Peer, transport: Transport) -> None:
        await refused(transport, peer, r"over the 1000000-byte limit")
        await ok(transport, peer)

    run(script, calls, TransportSettings(max_response_bytes=1_000_000))


# ------------------------------------------------------------------ failures and recovery


def test_a_peer_closing_without_answering_is_an_error_and_the_next_call_works() -> None:
    script = first(lambda conn, request: conn.transport.close())

    async def calls(peer: Peer, transport: Transport) -> None:
        await refused(transport, peer, r"closed the connection without answering")
        await ok(transport, peer)

    run(script, calls)


def test_a_malformed_answer_is_an_error_and_the_next_call_works() -> None:
    script = first(answering(b"NOT HTTP AT ALL\r\n\r\n"))

    async def calls(peer: Peer, transport: Transport) -> None:
        await refused(transport, peer, None)  # any wording
        await ok(transport, peer)

    run(script, calls)


def test_an_idle_connection_closed_by_the_peer_is_replaced_without_error() -> None:
    def script(conn: RawConn, request: bytes) -> None:
        answer_ok(conn, request)
        conn.answer(b"", delay=0.02, close=True)  # the peer's own idle timeout

    async def calls(peer: Peer, transport: Transport) -> int:
        await ok(transport, peer)
        await wait_until(lambda: peer.lost == 1)
        await asyncio.sleep(0.05)  # the close reaches the client
        await ok(transport, peer)
        return peer.connections

    assert run(script, calls) == 2


def _close_unanswered(conn: RawConn, request: bytes) -> None:
    conn.transport.close()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_reused_connection_dropped_unanswered_is_retried_for_get_only(method: str) -> None:
    """The race where the peer closes a kept-alive connection as a request goes out: a GET is
    sent again on a new connection; a POST is not (the peer may have acted on it)."""
    script = first(answer_ok, _close_unanswered)

    async def calls(peer: Peer, transport: Transport) -> tuple[list[bytes], list[int]]:
        prepared = transport.prepare(OutboundRequest(method, peer.url(), headers=HEADERS))
        got = []
        for _ in range(2):
            try:
                response = await transport.send(prepared, None, timeout=5, label=LABEL)
                got.append(response.body)
            except ConnectionCallError as exc:
                assert "closed the connection without answering" in str(exc)
                assert SECRET not in str(exc)
                got.append(b"refused")
        return got, peer.request_conn

    got, conns = run(script, calls)
    if method == "GET":
        assert (got, conns) == ([b"ok", b"ok"], [1, 1, 2])
    else:
        assert (got, conns) == ([b"ok", b"refused"], [1, 1])


def test_a_stalled_answer_times_out_and_the_connection_is_not_reused() -> None:
    half = reply(b"0123456789")[:-5]
    script = first(answering(half))

    async def calls(peer: Peer, transport: Transport) -> list[int]:
        await refused(transport, peer, r"no answer within 0\.2 s", timeout=0.2)
        await ok(transport, peer)
        return peer.request_conn

    assert run(script, calls) == [1, 2]


def test_a_call_cancelled_by_its_caller_raises_cancelled_and_the_next_call_works() -> None:
    async def calls(peer: Peer, transport: Transport) -> None:
        task = asyncio.create_task(post(transport, peer))
        await wait_until(lambda: len(peer.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await ok(transport, peer)

    run(first(stall), calls)


def test_a_header_value_with_a_line_break_never_reaches_the_wire() -> None:
    async def calls(peer: Peer, transport: Transport) -> bytes:
        with pytest.raises(ConnectionCallError, match=r"Authorization.*line break") as info:
            await post(
                transport, peer, headers={"Authorization": f"Bearer {SECRET}\r\nX-Injected: 1"}
            )
        assert SECRET not in str(info.value)
        await asyncio.sleep(0.05)
        return bytes(peer.received)

    assert b"X-Injected" not in run(answer_ok, calls)


# A control character can come from the endpoint (host, path, query), the method, a credential
# or an extra header (name or value): the request builder refuses each before anything is sent,
# with a message that quotes no value (a credential may be one) and no control character.
INJECTIONS = {
    "nul-in-host": ("POST", "http://127.0.0.1\x00.evil:{port}/p", {}, "endpoint URL"),
    "crlf-in-path": ("POST", "http://127.0.0.1:{port}/p\r\nX-Injected: 1", {}, "endpoint URL"),
    "tab-in-query": ("POST", "http://127.0.0.1:{port}/p?q=a\tb", {}, "endpoint URL"),
    "control-in-path": ("POST", "http://127.0.0.1:{port}/p\x01q", {}, "endpoint URL"),
    "del-in-query": ("POST", "http://127.0.0.1:{port}/p?q=\x7f", {}, "endpoint URL"),
    "space-in-path": ("POST", "http://127.0.0.1:{port}/p q", {}, "endpoint URL"),
    "crlf-in-method": ("POST / HTTP/1.1\r\nX-Injected: 1\r\n", "{url}", {}, "method"),
    "control-in-method": ("PO\x01ST", "{url}", {}, "method"),
    "crlf-in-credential": ("POST", "{url}", {"Authorization": f"Bearer {SECRET}\r\nX-I: 1"}, ""),
    "newline-after-credential": ("POST", "{url}", {"Authorization": f"Bearer {SECRET}\n"}, ""),
    "nul-in-credential": ("POST", "{url}", {"Authorization": f"Bearer {SECRET}\x00"}, ""),
    "control-in-header-value": ("POST", "{url}", {"X-Trace": f"{SECRET}\x1b[2J"}, "X-Trace"),
    "del-in-header-value": ("POST", "{url}", {"X-Trace": f"{SECRET}\x7f"}, "X-Trace"),
    "control-in-header-name": ("POST", "{url}", {"X-\x01Trace": SECRET}, "X-\\x01Trace"),
    "colon-in-header-name": ("POST", "{url}", {"X-Injected: 1\r\nX": SECRET}, "not an HTTP"),
    "non-token-header-name": ("POST", "{url}", {"X(Trace)": SECRET}, "not an HTTP token"),
}


@pytest.mark.parametrize("case", INJECTIONS, ids=list(INJECTIONS))
def test_a_control_character_in_any_part_of_the_request_never_reaches_the_wire(
    case: str,
) -> None:
    method, url, headers, named = INJECTIONS[case]

    async def calls(peer: Peer, transport: Transport) -> tuple[str, bytes]:
        target = url.format(port=peer.port, url=peer.url("/p"))
        with pytest.raises(ConnectionCallError) as info:
            request = OutboundRequest(method, target, headers=headers)
            prepared = transport.prepare(request, LABEL)
            await transport.send(prepared, request.payload(), timeout=5.0, label=LABEL)
        await asyncio.sleep(0.05)
        return str(info.value), bytes(peer.received)

    message, received = run(answer_ok, calls)
    assert received == b""
    assert named in message
    assert SECRET not in message
    assert message.isprintable()


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:{port}/p\r\nX-Injected: 1",
        "http://127.0.0.1:{port}/p?q=a\tb",
        "http://127.0.0.1\x00.evil:{port}/p",
        "http://127.0.0.1:{port}/p\x1b[2J",
    ],
    ids=["crlf", "tab", "nul-in-host", "escape"],
)
def test_a_control_character_in_a_configured_endpoint_is_refused_not_dropped(
    endpoint: str,
) -> None:
    """The endpoint as the protocol clients build it (``endpoint_url``): the URL parser would
    drop a tab, CR or LF and send what is left; the request is refused instead."""

    async def calls(peer: Peer, transport: Transport) -> tuple[str, bytes]:
        url = endpoint_url(endpoint.format(port=peer.port))
        with pytest.raises(ConnectionCallError) as info:
            prepared = transport.prepare(OutboundRequest("POST", url), LABEL)
            await transport.send(prepared, None, timeout=5.0, label=LABEL)
        await asyncio.sleep(0.05)
        return str(info.value), bytes(peer.received)

    message, received = run(answer_ok, calls)
    assert received == b""
    assert message == f"{LABEL}: the endpoint URL contains a control character or a space"


def test_a_tab_in_a_header_value_is_allowed() -> None:
    async def calls(peer: Peer, transport: Transport) -> str:
        await post(transport, peer, headers={"X-Trace": "a\tb"})
        return head_of(peer.requests[0])[1]["x-trace"]

    assert run(answer_ok, calls) == "a\tb"


def _stale_together(conn: RawConn, request: bytes) -> None:
    conn.answer(reply(b"first") + reply(b"stale"))


def _stale_later(conn: RawConn, request: bytes) -> None:
    conn.answer(reply(b"first"))
    conn.answer(reply(b"stale"), delay=0.02)  # once the connection is idle in the pool


def _garbage_together(conn: RawConn, request: bytes) -> None:
    conn.answer(reply(b"first") + b"GARBAGE\r\n")


@pytest.mark.parametrize(
    "script",
    [_stale_together, _stale_later, _garbage_together],
    ids=["stale-answer-in-the-same-write", "stale-answer-while-idle", "garbage"],
)
def test_unasked_bytes_after_an_answer_never_reach_the_next_call(script: Script) -> None:
    async def calls(peer: Peer, transport: Transport) -> list[bytes]:
        one = (await post(transport, peer)).body
        await asyncio.sleep(0.1)
        two = (await post(transport, peer)).body
        three = (await post(transport, peer)).body
        return [one, two, three]

    assert run(first(script), calls) == [b"first", b"ok", b"ok"]


# ------------------------------------------------------------------------------- the pool


def test_concurrent_calls_never_open_more_than_the_per_host_limit() -> None:
    def slow(conn: RawConn, request: bytes) -> None:
        conn.answer(reply(b"ok"), delay=0.05)

    async def calls(peer: Peer, transport: Transport) -> tuple[list[bytes], int]:
        responses = await asyncio.gather(*(post(transport, peer) for _ in range(20)))
        return [r.body for r in responses], peer.most_open

    bodies, most_open = run(slow, calls, TransportSettings(pool_limit_per_host=4))
    assert bodies == [b"ok"] * 20
    assert most_open <= 4


def test_an_idle_connection_is_closed_after_the_keepalive_timeout() -> None:
    async def calls(peer: Peer, transport: Transport) -> list[int]:
        await ok(transport, peer)
        await wait_until(lambda: peer.lost == 1)
        await ok(transport, peer)
        return peer.request_conn

    assert run(answer_ok, calls, TransportSettings(keepalive_timeout=0.2)) == [1, 2]


def test_closing_the_transport_closes_its_idle_connections() -> None:
    async def go() -> int:
        async with Peer(answer_ok) as peer:
            async with Transport.open() as transport:
                await ok(transport, peer)
                assert peer.lost == 0
            await wait_until(lambda: peer.lost == 1)
            return peer.connections

    assert asyncio.run(go()) == 1
