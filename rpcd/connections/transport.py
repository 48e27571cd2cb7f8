"""The process's one outbound HTTP client: a pooled keep-alive aiohttp session.

Tuning (why): no cookie jar (``DummyCookieJar``: calls are stateless, and a jar costs a lookup
per request and would leak one peer's cookies into the next call); a connector with a bounded
pool and DNS cache; ``trust_env=False`` (no proxy or ``.netrc`` credentials picked up behind the
operator's back). Decompression costs nothing unless a peer sends ``Content-Encoding``, and
the size limit counts decoded bytes, so a compression bomb stops at the limit.

Per call (measured with ``bench/client.py``, callgrind instruction counts and CPU time): the
per-connection timeout is a shared coarse timer (``_Deadlines``) rather than aiohttp's
per-request ``TimerHandle``; the response is awaited and released directly rather than through
``async with``; an answer whose body is already buffered when its head is read (the usual case
for an RPC answer: ``content.is_eof()``) is taken with ``content.read_nowait()`` instead of
``resp.read()`` (two coroutines, the trace hooks and a wait for the finished body writer), and
is not ``release``d again when aiohttp has already put the connection back in the pool at the
end of the body (together 20k instructions a call: ``send_prepared`` went from 349k to 328k
with the event loop at concurrency 1, the default bare ``session.post`` being 358k); XML-RPC
and SOAP send a ``Prepared`` target (URL parsed, headers with the User-Agent and credentials in
a ``CIMultiDict``, made once per connection and function), so aiohttp does not parse the URL or
convert a header dict per call, and the session has no default headers to merge.

Left at aiohttp's defaults after measuring: ``skip_auto_headers`` (it costs more than the
headers it skips), ``auto_decompress`` (free when nothing is compressed: no change in
instructions); ``compress``, ``chunked``, ``expect100``, ``version`` and ``trace_configs``
are unset, aiohttp's fast paths (a ``bytes`` body gets a Content-Length, no chunking, no
100-continue wait, no trace objects). Kept although it costs: the per-host connection limit
(without it a call is under 1 % cheaper, but one slow peer could then take the whole pool).

What is left is aiohttp's own per-request work, which no ``ClientSession`` option removes
(about 115 Python function calls a request on Python 3.11, most of the 328k instructions): a
``ClientRequest`` built in ten ``update_*`` steps (the headers copied twice: the session's
merge and the request's own), a ``ClientResponse``, a new ``HttpResponseParser`` per request, a
``StreamWriter`` and a ``Task`` that writes the body (started eagerly only on Python 3.12+),
the pool's bookkeeping (a ``ConnectionKey`` built and hashed, a ``Connection`` wrapper), an
empty ``SimpleCookie`` from the cookie jar, and a future for the answer.

TLS verification is always on. Each connection gets an ``SSLContext`` built once and cached:
the system store plus the connection's ``ca_bundle`` (trust is only ever added), plus the client
certificate for ``cert`` auth. ``ssl`` loads a certificate only from files: a ``file`` or
systemd ``credential`` reference is loaded in place; a certificate from an environment variable
is written to a fresh private directory (0700, files 0600), loaded, and deleted at once, so the
key rests on disk only for the moment ``load_cert_chain`` reads it.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import math
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from rpcd import __version__
from rpcd.connections.auth import CertAuth
from rpcd.connections.request import OutboundRequest, Response
from rpcd.errors import ConnectionCallError

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Prepared",
    "Response",
    "Transport",
    "TransportSettings",
]

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TransportSettings:
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    pool_limit: int = 256
    pool_limit_per_host: int = 64
    keepalive_timeout: float = 30.0
    dns_cache_seconds: int = 300
    user_agent: str = f"rpcd/{__version__}"


class Transport:
    """Owns the session; ``async with Transport.open() as t`` (one per process)."""

    def __init__(self, session: aiohttp.ClientSession, settings: TransportSettings) -> None:
        self._session = session
        self.settings = settings
        self._ssl: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
        # ``connections_for``'s Connection objects, per (catalog, secret store) generation:
        # owned here so that they live exactly as long as the session they are bound to.
        self.connection_cache: dict[tuple[int, int], Any] = {}
        self._deadlines = _Deadlines()

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: TransportSettings | None = None) -> AsyncIterator[Transport]:
        settings = settings or TransportSettings()
        connector = aiohttp.TCPConnector(
            limit=settings.pool_limit,
            limit_per_host=settings.pool_limit_per_host,
            keepalive_timeout=settings.keepalive_timeout,
            ttl_dns_cache=settings.dns_cache_seconds,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            raise_for_status=False,
        )
        try:
            yield cls(session, settings)
        finally:
            await session.close()

    # ------------------------------------------------------------------------------ TLS

    def ssl_context(self, ca_bundle: str | None, cert: CertAuth | None) -> ssl.SSLContext:
        """The verified context for this trust + client certificate, built once."""
        cert_key: str | None = None
        if cert is not None:
            info = cert.client_cert()
            pem_cert, pem_key = cert.pem()
            # The fingerprint makes a rotated certificate (after a reload) a new context.
            fingerprint = hashlib.sha256(f"{pem_cert}\0{pem_key}".encode()).hexdigest()
            cert_key = f"{info.certificate}|{info.private_key}|{fingerprint}"
        key = (ca_bundle, cert_key)
        ctx = self._ssl.get(key)
        if ctx is None:
            ctx = _build_context(ca_bundle, cert)
            self._ssl[key] = ctx
        return ctx

    # -------------------------------------------------------------------------- sending

    def prepare(self, request: OutboundRequest) -> Prepared:
        """What of ``request`` stays the same from call to call (method, URL, headers), in the
        form aiohttp takes without converting: see ``Prepared``."""
        headers = CIMultiDict(request.headers)
        if "User-Agent" not in headers:
            headers["User-Agent"] = self.settings.user_agent
        if request.form is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return Prepared(request.method, request.target(), headers)

    async def send(
        self,
        request: OutboundRequest,
        *,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        max_bytes: int | None = None,
        label: str = "",
    ) -> Response:
        """Send one request; network/TLS/timeout/size failures are ``ConnectionCallError``.

        Messages name the connection and host only: a URL may carry a token in its query.
        """
        return await self.send_prepared(
            self.prepare(request),
            request.payload(),
            timeout=timeout,
            ssl_context=ssl_context,
            max_bytes=max_bytes,
            label=label,
        )

    async def send_prepared(
        self,
        prepared: Prepared,
        body: bytes | None,
        *,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        max_bytes: int | None = None,
        label: str = "",
    ) -> Response:
        """``send`` for a target prepared once (``prepare``) and a body built for this call."""
        limit = self.settings.max_response_bytes if max_bytes is None else max_bytes
        method, url = prepared.method, prepared.url
        deadlines = self._deadlines
        task = asyncio.current_task()
        if task is not None:  # the usual case: a shared deadline timer (see ``_Deadlines``)
            timer, cancelling = _NO_TIMEOUT, task.cancelling()
            slot = deadlines.add(task, timeout)
        else:  # not inside a task: let aiohttp keep the time
            timer, cancelling = _client_timeout(timeout), 0
            slot = None
        try:
            # Awaited directly rather than ``async with``: the body is read in full here and
            # the response released in ``finally`` (what the context manager would do).
            resp = await self._session.request(
                method,
                url,
                data=body,
                headers=prepared.headers,
                timeout=timer,
                ssl=ssl_context if ssl_context is not None and prepared.https else True,
                allow_redirects=False,
            )
            try:
                resp_headers = resp.headers
                length = resp_headers.get("Content-Length")  # checked by aiohttp's parser
                if length is not None and int(length) > limit:
                    raise ConnectionCallError(
                        f"{_where(label, method, url)}: response of {length} bytes "
                        f"is over the {limit}-byte limit"
                    )
                if length is not None and "Content-Encoding" not in resp_headers:
                    # Announced, within the limit, not inflated. Taken from ``resp.content``
                    # rather than ``resp.read()`` (which adds the trace hooks and a wait for
                    # the body writer, done by then), and without awaiting when the whole
                    # body is already buffered, the usual case for an RPC answer.
                    content = resp.content
                    body = content.read_nowait() if content.is_eof() else await content.read()
                else:
                    body = await _read_limited(resp, limit, label, method, url)
                return Response(
                    resp.status,
                    resp.reason or "",
                    resp_headers.get("Content-Type"),
                    resp_headers,
                    body,
                )
            finally:
                # At the end of the body aiohttp has already put the connection back in the
                # pool (``closed``); ``release`` would only mark the reader closed again.
                if not resp.closed:
                    resp.release()
        except ConnectionCallError:
            raise
        except TimeoutError:
            where = _where(label, method, url)
            raise ConnectionCallError(f"{where}: no answer within {timeout:g} s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise ConnectionCallError(
                f"{_where(label, method, url)}: TLS certificate verification failed "
                f"({_ssl_reason(exc.certificate_error)})"
            ) from None
        except aiohttp.ClientSSLError as exc:
            raise ConnectionCallError(
                f"{_where(label, method, url)}: TLS handshake failed ({_ssl_reason(exc)})"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or type(exc.os_error).__name__
            where = _where(label, method, url)
            raise ConnectionCallError(f"{where}: cannot connect ({reason})") from None
        except (aiohttp.ClientError, OSError) as exc:
            reason = _client_reason(exc)
            if prepared.https and _dropped(exc):
                # TLS 1.3 servers refuse a missing/untrusted client certificate after the
                # handshake, so the client only sees the connection drop (a clean close or a
                # reset, depending on timing).
                reason += " (TLS: the server may require a client certificate)"
            raise ConnectionCallError(f"{_where(label, method, url)}: {reason}") from None
        except asyncio.CancelledError:
            if task is not None and deadlines.expired(task) and task.uncancel() <= cancelling:
                where = _where(label, method, url)
                raise ConnectionCallError(f"{where}: no answer within {timeout:g} s") from None
            raise
        finally:
            if slot is not None and task is not None:
                slot.discard(task)
                if deadlines.pending:
                    deadlines.expired(task)


class Prepared:
    """A request's method, URL and headers, made once and sent many times.

    The URL is a parsed ``yarl.URL`` and the headers a ``CIMultiDict`` with the User-Agent in
    it, which aiohttp takes as they are; from a str and a dict it would parse and copy them
    on every call. ``Connection`` keeps one per function for XML-RPC and SOAP, whose URL and
    headers (credentials included) do not depend on the call's parameters; it lives as long
    as the Connection, that is one catalog and secret generation, and its ``repr`` shows
    neither query nor headers (either may carry a credential).
    """

    __slots__ = ("headers", "https", "method", "url")

    def __init__(self, method: str, url: URL, headers: CIMultiDict[str]) -> None:
        self.method, self.url, self.headers = method, url, headers
        self.https = url.scheme == "https"

    def __repr__(self) -> str:
        return f"Prepared({self.method} {self.url.scheme}://{self.url.host}{self.url.path})"

    def __reduce__(self) -> Any:  # a pickle would carry the credentials
        raise TypeError("Prepared requests cannot be pickled")


def _dropped(exc: BaseException) -> bool:
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return True
    return isinstance(exc, aiohttp.ClientOSError) and exc.errno == errno.ECONNRESET


def _where(label: str, method: str, url: URL) -> str:
    """Connection, method and host for a message (never the path or query: a token may be
    there). Built only when something failed."""
    where = f"{label + ': ' if label else ''}{method} {url.scheme}://{url.host}"
    if url.port and not url.is_default_port():
        where += f":{url.port}"
    return where


_NO_TIMEOUT = aiohttp.ClientTimeout()  # the call's deadline is ``_Deadlines``'s business


class _Deadlines:
    """Per-call timeouts at the cost of two set operations.

    aiohttp's own timeout (or ``asyncio.timeout``) schedules a ``TimerHandle`` per call and
    cancels it when the answer comes: a Python object, a heap push, and a cancelled entry
    left in the loop's heap until it surfaces (measured: about 4 % of a call's instructions,
    more at high concurrency where the heap is deeper). Here calls whose deadlines fall in the
    same slot share one loop timer: a set of tasks per slot, the timer cancelling those still
    in it when it fires. Slots are 1 s for timeouts of 5 s and more (aiohttp rounds those to
    the second as well), 50 ms from 0.5 s, 5 ms below: a call times out at most one slot
    late, never early. Cancellation follows ``asyncio.timeout``: the task is uncancelled and
    the caller gets a timeout error, unless someone else cancelled it too.
    """

    __slots__ = ("_slots", "pending")

    def __init__(self) -> None:
        self._slots: dict[float, set[asyncio.Task[Any]]] = {}
        self.pending: set[asyncio.Task[Any]] = set()  # cancelled by a deadline, not yet seen

    def add(self, task: asyncio.Task[Any], seconds: float) -> set[asyncio.Task[Any]]:
        """Register ``task``; the returned set is the slot (``discard`` the task when done)."""
        step = 1.0 if seconds >= 5.0 else 0.05 if seconds >= 0.5 else 0.005
        now = time.monotonic()
        at = math.ceil((now + seconds) / step) * step
        slot = self._slots.get(at)
        if slot is None:
            slot = self._slots[at] = set()
            asyncio.get_running_loop().call_later(max(0.0, at - now), self._fire, at)
        slot.add(task)
        return slot

    def _fire(self, at: float) -> None:
        for task in self._slots.pop(at, ()):
            if not task.done():
                self.pending.add(task)
                task.cancel()

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether this task's cancellation was its deadline (and forget it)."""
        if task in self.pending:
            self.pending.discard(task)
            return True
        return False


@functools.lru_cache(maxsize=64)
def _client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """One (immutable) ``ClientTimeout`` per distinct connection timeout."""
    return aiohttp.ClientTimeout(total=seconds)


async def _read_limited(
    resp: aiohttp.ClientResponse, limit: int, label: str, method: str, url: URL
) -> bytes:
    """A body of unannounced length (or one being inflated), read up to ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            resp.close()  # drop the connection: the rest of the body is not wanted
            where = _where(label, method, url)
            raise ConnectionCallError(f"{where}: response is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    inner = getattr(exc, "os_error", None) or getattr(exc, "certificate_error", None)
    if isinstance(inner, ssl.SSLError) and inner.reason:
        return str(inner.reason)
    return type(inner or exc).__name__


def _client_reason(exc: BaseException) -> str:
    """A short reason that never quotes a URL (aiohttp's messages often do)."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientOSError) and exc.strerror:
        return f"connection error ({exc.strerror})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({_ssl_reason(exc)})"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response body was cut short or malformed"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    return type(exc).__name__


def _build_context(ca_bundle: str | None, cert: CertAuth | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()  # CERT_REQUIRED + hostname check, system store
    if ca_bundle:
        try:
            ctx.load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionCallError(
                f"ca_bundle {ca_bundle}: cannot load ({_ssl_reason(exc)})"
            ) from None
    if cert is not None:
        _load_client_cert(ctx, cert)
    return ctx


def _load_client_cert(ctx: ssl.SSLContext, cert: CertAuth) -> None:
    info = cert.client_cert()
    what = f"client certificate {info.certificate} / key {info.private_key}"
    try:
        if info.cert_path and info.key_path:
            ctx.load_cert_chain(info.cert_path, info.key_path)
            return
        directory = tempfile.mkdtemp(prefix="rpcd-cert-")  # mode 0700
        try:
            pem_cert, pem_key = cert.pem()
            cert_file = _write_private(directory, "cert.pem", info.cert_path, pem_cert)
            key_file = _write_private(directory, "key.pem", info.key_path, pem_key)
            ctx.load_cert_chain(cert_file, key_file)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionCallError(f"{what}: cannot load ({_ssl_reason(exc)})") from None


def _write_private(directory: str, name: str, existing: str | None, text: str) -> str:
    if existing:
        return existing
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    return path
