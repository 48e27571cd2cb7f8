"""The CONNECT tunnel against scripted proxies on 127.0.0.1: its answer is bounded like any
answer's head, anything but a clean 2xx head is a clear error; and the parsers of what a proxy
or the environment hands us, fuzzed."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcd.connections.headlimits import HeadLimits
from rpcd.connections.proxy import (
    EnvProxies,
    ProxyError,
    ProxyHop,
    connect_status,
    open_tunnel,
)

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
LIMITS = HeadLimits(max_header_bytes=4096, max_headers=16, max_line_bytes=512)
SECRET_AUTH = "Basic c2VjcmV0LXVzZXI6c2VjcmV0LXBhc3N3b3Jk"


async def _through(script: Script) -> tuple[str, bytes]:
    """Open a tunnel through a proxy that runs ``script``; the error text and what the proxy
    received."""
    seen = bytearray()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.extend(await reader.readuntil(b"\r\n\r\n"))
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hop = ProxyHop("127.0.0.1", port, SECRET_AUTH)
    try:
        with pytest.raises(ProxyError) as info:
            await asyncio.wait_for(
                open_tunnel(
                    hop,
                    "target.example",
                    443,
                    ssl.create_default_context(),
                    asyncio.Protocol,
                    LIMITS,
                ),
                10,
            )
    finally:
        server.close()
        await server.wait_closed()
    return str(info.value), bytes(seen)


def _run(script: Script) -> tuple[str, bytes]:
    return asyncio.run(_through(script))


def _sends(data: bytes) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(0.2)

    return script


def test_the_request_is_a_connect_with_the_proxy_credentials() -> None:
    text, seen = _run(_sends(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"))
    assert seen.startswith(b"CONNECT target.example:443 HTTP/1.1\r\n")
    assert f"Proxy-Authorization: {SECRET_AUTH}".encode() in seen
    assert "refused the tunnel (HTTP 403 Forbidden)" in text
    assert SECRET_AUTH.split()[1] not in text


def test_an_endless_status_line_stops_at_the_line_limit() -> None:
    text, _ = _run(_sends(b"HTTP/1.1 200 " + b"x" * 5000))
    assert "over the 512-byte limit" in text and "max_line_bytes" in text


def test_too_many_header_lines_stop_at_the_limit() -> None:
    text, _ = _run(_sends(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 40 + b"\r\n"))
    assert "more than 16 header lines" in text


def test_an_endless_head_stops_at_the_byte_limit() -> None:
    text, _ = _run(_sends(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 400 + b"\r\n" * 1))
    assert text  # a short head that never ends: the proxy closes, and that is said
    text, _ = _run(_sends(b"HTTP/1.1 200 OK\r\n" + (b"X-Pad: " + b"p" * 400 + b"\r\n") * 15))
    assert "4096-byte limit" in text


def test_data_after_the_connect_answer_is_refused() -> None:
    text, _ = _run(_sends(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK\r\n"))
    assert "sent data before the tunnel opened" in text


def test_not_http_and_a_close_are_clear_errors() -> None:
    assert "is not HTTP" in _run(_sends(b"SSH-2.0-OpenSSH\r\n\r\n"))[0]
    assert "closed the connection during CONNECT" in _run(_sends(b""))[0]


def test_a_proxy_that_is_down() -> None:
    async def go() -> str:
        with socket_closed() as port, pytest.raises(ProxyError) as info:
            await open_tunnel(
                ProxyHop("127.0.0.1", port),
                "target.example",
                443,
                ssl.create_default_context(),
                asyncio.Protocol,
                LIMITS,
            )
        return str(info.value)

    assert "cannot connect to the proxy 127.0.0.1" in asyncio.run(go())


class socket_closed:
    """A port on 127.0.0.1 that nothing listens on."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        return None


def test_environment_proxies() -> None:
    env = EnvProxies.from_environ(
        {"HTTPS_PROXY": "proxy.example:3128", "no_proxy": " .campus.example, 10.0.0.1,*x"}
    )
    assert env.https == ProxyHop("proxy.example", 3128)
    assert env.http is None
    assert env.hop("https", "moodle.campus.example") is None
    assert env.hop("https", "campus.example") is None
    assert env.hop("https", "10.0.0.1") is None
    assert env.hop("https", "moodle.other.example") == ProxyHop("proxy.example", 3128)
    assert (
        EnvProxies.from_environ({"HTTPS_PROXY": "p:1", "NO_PROXY": "*"}).hop("https", "a") is None
    )
    # Credentials in an environment URL are not used: proxy credentials are secret references.
    assert EnvProxies.from_environ({"HTTP_PROXY": "http://u:pw@p:8080"}).http == ProxyHop("p", 8080)
    assert EnvProxies.from_environ({"HTTP_PROXY": "socks5://p:1080"}).http is None


# ------------------------------------------------------------------------------ fuzz


@pytest.mark.fuzz
@given(st.binary(max_size=600))
def test_fuzz_connect_status(head: bytes) -> None:
    try:
        status, reason = connect_status(head)
    except ProxyError:
        return
    assert 0 <= status <= 999 and len(reason) <= 80 and reason.isprintable()


@pytest.mark.fuzz
@given(
    st.dictionaries(
        st.sampled_from(["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "no_proxy", "https_proxy"]),
        st.text(max_size=300),
    ),
    st.text(max_size=80),
)
def test_fuzz_environment(environ: dict[str, str], host: str) -> None:
    env = EnvProxies.from_environ(environ)
    assert len(env.no_proxy) <= 256
    for scheme in ("http", "https"):
        hop = env.hop(scheme, host.lower())
        assert hop is None or (hop.authorization is None and 0 < hop.port < 65536)
