"""Literal credentials in an endpoint URL: found for ``validate``, masked for ``rpcd show``.

``https://user:pass@host/`` and ``?wstoken=…`` put a usable secret in git, in every log line
that prints the URL and in ``rpcd show``. Both are refused as ``plaintext-secret``; the
credential goes in ``credentials`` as a reference instead. The URL is cut with ``str``
methods only (no regex), so the work is linear in its length.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus

__all__ = [
    "MASK",
    "TOKEN_PARAMS",
    "EndpointSecret",
    "endpoint_host",
    "literal_secrets",
    "mask_endpoint",
]

MASK = "**********"
#: Query (and form) parameter names that carry a credential, compared case-insensitively;
#: a connection's own ``token_param`` counts too.
TOKEN_PARAMS = frozenset(
    {"wstoken", "token", "access_token", "apikey", "api_key", "key", "password", "secret"}
)


@dataclass(frozen=True, slots=True)
class EndpointSecret:
    """Where a literal credential sits in an endpoint: ``userinfo``, or a parameter's name."""

    where: str  # "userinfo" | "query" | "fragment"
    name: str = ""


@dataclass(frozen=True, slots=True)
class _Parts:
    head: str  # "https://"
    userinfo: str | None
    host: str  # host[:port]
    rest: str  # path
    query: str | None
    fragment: str | None


def _split(url: str) -> _Parts:
    scheme, sep, after = url.partition("://")
    if not sep:
        return _Parts("", None, "", url, None, None)
    cut = len(after)
    for mark in "/?#":
        at = after.find(mark)
        if at != -1 and at < cut:
            cut = at
    authority, tail = after[:cut], after[cut:]
    userinfo: str | None = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
    tail, hash_, fragment = tail.partition("#")
    path, question, query = tail.partition("?")
    return _Parts(
        scheme + sep,
        userinfo,
        authority,
        path,
        query if question else None,
        fragment if hash_ else None,
    )


@functools.lru_cache(maxsize=256)
def _names_of(extra: tuple[str | None, ...]) -> frozenset[str]:
    return TOKEN_PARAMS | {name.casefold() for name in extra if name}


def _names(extra: Iterable[str | None]) -> frozenset[str]:
    return _names_of(tuple(extra))


def _param_name(pair: str) -> str:
    """A query pair's name as a server reads it: percent-decoded, ``token[]`` as ``token``."""
    name = unquote_plus(pair.partition("=")[0]).casefold()
    return name.partition("[")[0].strip()


def _secret_pairs(text: str, names: frozenset[str]) -> list[tuple[int, str]]:
    """``(index, name)`` of each ``name=value`` pair with a credential name and a value."""
    found = []
    for index, pair in enumerate(text.replace(";", "&").split("&")):
        name = _param_name(pair)
        if name in names and pair.partition("=")[2]:
            found.append((index, name))
    return found


def is_secret_param(name: str, extra: Iterable[str | None] = ()) -> bool:
    """Whether a parameter called ``name`` carries a credential."""
    return name.casefold().partition("[")[0].strip() in _names(extra)


def literal_secrets(url: str, extra: Iterable[str | None] = ()) -> list[EndpointSecret]:
    """Every literal credential in ``url`` (``extra``: more parameter names, e.g. the
    connection's ``token_param``). Never returns a value."""
    if "@" not in url and "?" not in url and "#" not in url:
        return []  # the usual endpoint: nothing can hold a credential
    parts = _split(url)
    names = _names(extra)
    found: list[EndpointSecret] = []
    if parts.userinfo:
        found.append(EndpointSecret("userinfo"))
    for where, text in (("query", parts.query), ("fragment", parts.fragment)):
        if text:
            found.extend(EndpointSecret(where, name) for _, name in _secret_pairs(text, names))
    return found


def _mask_pairs(text: str, names: frozenset[str]) -> str:
    hits = {index for index, _ in _secret_pairs(text, names)}
    if not hits:
        return text
    pairs = text.replace(";", "&").split("&")
    return "&".join(
        f"{pair.partition('=')[0]}={MASK}" if i in hits else pair for i, pair in enumerate(pairs)
    )


def mask_endpoint(url: str, extra: Iterable[str | None] = ()) -> str:
    """``url`` with every literal credential replaced by ``MASK`` (unchanged when it has none)."""
    if not literal_secrets(url, extra):
        return url
    parts = _split(url)
    names = _names(extra)
    out = parts.head + (f"{MASK}@" if parts.userinfo else "") + parts.host + parts.rest
    if parts.query is not None:
        out += "?" + _mask_pairs(parts.query, names)
    if parts.fragment is not None:
        out += "#" + _mask_pairs(parts.fragment, names)
    return out


def endpoint_host(url: str) -> str:
    """The host an endpoint calls, lower-case, without user information or port (an IPv6
    address keeps its brackets)."""
    host = _split(url).host.lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """Whether ``host`` is one of ``patterns``: a name, ``*.domain`` (any name under it, not
    the domain itself) or a bracketed IPv6 address, compared without case."""
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False
