"""Failed password checks, limited per client address and per user name.

A password is the one inbound credential a caller can guess (tokens and session keys are
random, certificates are checked by TLS), and each guess costs the daemon an scrypt (about
50 ms and 16 MiB). So, as fail2ban or nginx's ``limit_req`` would, rpcd counts failed
password checks (HTTP Basic and ``system.login``) per key in a sliding window: at most
``auth_fail_limit`` within ``auth_fail_window`` seconds per client address and per user
name; past it a password check is refused with 429 and ``Retry-After`` before any scrypt
runs, right or wrong password alike (so the 429 is no oracle either).

Keys are fixed-size: the address (an IPv6 client by its /64, what one host is usually given)
and a hash of the user name, whether or not a peer has that name (else the limit's answer
would tell which names exist). The table holds at most ``auth_fail_table_size`` keys, the
least recently failed forgotten first (nginx's ``limit_req_zone`` does the same when its
zone is full), so rotating addresses or names cannot grow memory without bound.

Behind a reverse proxy every request comes from the proxy's address: list it in
``trusted_proxies`` and the client address is taken from ``X-Forwarded-For``, the rightmost
entry that is not itself a trusted proxy (what nginx's ``real_ip_recursive on`` picks).
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp.web import BaseRequest

    from rpcd.settings import Settings

__all__ = [
    "MAX_FORWARDED_HOPS",
    "PasswordThrottle",
    "client_address",
    "trusted_networks",
    "via_trusted_proxy",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: ``X-Forwarded-For`` entries looked at, from the right (a longer chain is cut there).
MAX_FORWARDED_HOPS = 16


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def trusted_networks(names: Iterable[str]) -> tuple[Network, ...]:
    """The ``trusted_proxies`` setting as networks."""
    return tuple(ipaddress.ip_network(n, strict=False) for n in names)


def via_trusted_proxy(request: BaseRequest, trusted: tuple[Network, ...]) -> bool:
    """Whether the connection's peer is one of the ``trusted`` proxies (an IPv4-mapped IPv6
    peer counts as its IPv4 address)."""
    address = _address(request.remote or "")
    return address is not None and _trusted(address, trusted)


def client_address(request: BaseRequest, trusted: tuple[Network, ...]) -> str:
    """The client's address: the connection's peer, or, when that peer is a trusted proxy,
    the rightmost ``X-Forwarded-For`` entry that is not a trusted proxy."""
    peer = request.remote or ""
    address = _address(peer)
    if address is None or not _trusted(address, trusted):
        return peer
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", ()))
    hops = forwarded.split(",")[-MAX_FORWARDED_HOPS:] if forwarded else []
    for hop in reversed(hops):
        hop_address = _address(hop)
        if hop_address is None:
            break  # garbage from beyond the last trusted proxy: stop at what we know
        address = hop_address
        if not _trusted(address, trusted):
            break
    return str(address)


def _trusted(address: Address, trusted: tuple[Network, ...]) -> bool:
    return any(address in network for network in trusted)


def _address_key(text: str) -> bytes:
    address = _address(text)
    if address is None:
        return b"a?" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:16]
    if isinstance(address, ipaddress.IPv6Address):
        return b"a6" + address.packed[:8]  # the /64
    return b"a4" + address.packed


def _user_key(username: str) -> bytes:
    return b"u" + hashlib.sha256(username.encode("utf-8", "surrogatepass")).digest()[:16]


class PasswordThrottle:
    """Failed password checks per key (client address, user name) in a sliding window."""

    def __init__(
        self,
        limit: int,
        window: float,
        max_keys: int,
        trusted_proxies: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.trusted = trusted_networks(trusted_proxies)
        self._clock = clock
        # key -> times of its failures (oldest first); keys in the order they last failed
        self._failures: OrderedDict[bytes, list[float]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordThrottle:
        return cls(
            settings.auth_fail_limit,
            settings.auth_fail_window,
            settings.auth_fail_table_size,
            settings.trusted_proxies,
        )

    def __len__(self) -> int:
        return len(self._failures)

    def keys(self, request: BaseRequest | None, username: str) -> tuple[bytes, ...]:
        """The keys a password check for ``username`` over ``request`` counts against."""
        user = _user_key(username)
        if request is None:
            return (user,)
        return (_address_key(client_address(request, self.trusted)), user)

    def retry_after(self, keys: Iterable[bytes]) -> float:
        """Seconds until every key may fail again; 0 when a check may run now."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            times = self._failures.get(key)
            if times is not None and len(times) >= self.limit:
                wait = max(wait, times[-self.limit] + self.window - now)
        return wait

    def failed(self, keys: Iterable[bytes]) -> None:
        """Count one failed check against each key (forgetting the stalest keys when full)."""
        now = self._clock()
        horizon = now - self.window
        table = self._failures
        for key in keys:
            times = table.pop(key, None)
            kept = [t for t in times if t > horizon] if times else []
            kept.append(now)
            table[key] = kept[-self.limit :]  # re-inserted last: the most recent failure
        while len(table) > self.max_keys:
            table.popitem(last=False)
