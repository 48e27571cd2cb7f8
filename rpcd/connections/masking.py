"""A connection's own credentials masked in everything its remote sends back.

A remote that quotes the request it received (a Moodle exception repeating ``wstoken=…``, an
XML-RPC fault string with the ``Authorization`` header, a reason phrase, a SOAP fault quoting
the envelope) would otherwise hand the connection's credential to whoever reads the answer: a
``/v1/call`` caller, ``rpcd call`` output, the inbound caller of a proxy method, a log line.
``Connection.call`` passes every error it raises and every result it returns through the
connection's ``Masker``, the one place where remote texts enter rpcd.

What is masked: each resolved credential value of the connection and the forms it takes on
the wire or in a remote's echo (``forms``), plus derived values sent as they are (HTTP Basic's
base64 blob). A value of at least ``MIN_SECRET_LENGTH`` characters becomes ``MASK`` in place;
a shorter authenticating value cannot be masked without showing where it was, so a text that
contains it is withheld whole. Short identities (a username, an OAuth consumer key) are not
secrets and are left alone, as the log filter does.
"""

from __future__ import annotations

import html
import json
import urllib.parse
from collections.abc import Iterable
from typing import Any

from rpcd.config import ResolvedConnection
from rpcd.errors import Fault, RemoteFault, RpcdError
from rpcd.secrets import IDENTITY_KEYS, MASK, MIN_SECRET_LENGTH, SecretStore

__all__ = ["Masker", "connection_masker", "forms"]


def forms(value: str) -> set[str]:
    """The ways ``value`` appears in text a remote sends back.

    As written, its UTF-8 bytes read as Latin-1 (how HTTP reason phrases and headers are
    decoded), and percent-encoded as a query or form parameter (``+`` and ``%20`` for a
    space); each of those also JSON-escaped (ASCII-only, UTF-8, and with PHP's escaped
    slash), XML-escaped (text and attribute) and as Python's ``repr`` writes it: the answer's
    own encoding of a string that quotes the request.
    """
    found: set[str] = set()
    for base in {
        value,
        value.encode("utf-8", "surrogatepass").decode("latin-1"),
        urllib.parse.quote_plus(value, safe=""),
        urllib.parse.quote(value, safe=""),
    }:
        found.update((base, html.escape(base, quote=False), html.escape(base), repr(base)[1:-1]))
        for ascii_only in (True, False):
            escaped = json.dumps(base, ensure_ascii=ascii_only)[1:-1]
            found.update((escaped, escaped.replace("/", "\\/")))
    found.discard("")
    return found


class Masker:
    """Masks one connection's credentials in remote texts, results and errors.

    Holds the values themselves (built once per connection and catalog generation), so it
    prints as a count and cannot be pickled, like the ``Connection`` that owns it.
    """

    __slots__ = ("_long", "_needles", "_short", "label")

    def __init__(self, label: str, secrets: Iterable[str], identities: Iterable[str] = ()) -> None:
        """``secrets`` authenticate (tokens, passwords, derived blobs); ``identities`` only
        name (usernames, consumer keys): masked when long enough, else left as they are."""
        self.label = label
        long: set[str] = set()
        short: set[str] = set()
        for value in secrets:
            if value:
                (long if len(value) >= MIN_SECRET_LENGTH else short).update(forms(value))
        for value in identities:
            if len(value) >= MIN_SECRET_LENGTH:
                long.update(forms(value))
        # Longest first, so a value containing another is masked whole.
        self._long = tuple(sorted(long, key=len, reverse=True))
        self._short = tuple(sorted(short - long, key=len, reverse=True))
        self._needles = tuple(
            f.encode("utf-8", "surrogatepass") for f in (*self._long, *self._short)
        )

    def text(self, text: str) -> str:
        """``text`` with every form of a credential replaced by ``MASK``; withheld whole when
        it holds a short one."""
        for form in self._short:
            if form in text:
                return (
                    f"(text withheld: it contains a credential of {self.label} too short to mask)"
                )
        for form in self._long:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def value(self, value: Any) -> Any:
        """``value`` (a decoded answer: lists, dicts, scalars) with its strings and keys
        masked; lists and dicts are changed in place (they were just decoded, rpcd owns
        them). Iterative: the codecs' depth limit is a setting."""
        if isinstance(value, str):
            return self.text(value)
        stack = [value]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                for i, item in enumerate(node):
                    if isinstance(item, str):
                        node[i] = self.text(item)
                    elif isinstance(item, list | dict):
                        stack.append(item)
            elif isinstance(node, dict):
                for key, item in list(node.items()):
                    if isinstance(item, str):
                        node[key] = item = self.text(item)
                    elif isinstance(item, list | dict):
                        stack.append(item)
                    if isinstance(key, str):
                        clean = self.text(key)
                        if clean != key:
                            del node[key]
                            node[clean] = item
        return value

    def result(self, value: Any, body: bytes) -> Any:
        """A successful call's result: walked only when the raw answer holds a form of a
        credential (one substring search per form on the bytes), so a normal answer costs
        nothing more."""
        for needle in self._needles:
            if needle in body:
                return self.value(value)
        return value

    def exception(self, exc: RpcdError) -> RpcdError:
        """``exc`` with its texts masked (changed in place, type kept) and its chain cut: a
        chained exception's text is the remote's too, and is not masked."""
        if not self._needles:
            return exc
        if isinstance(exc, Fault):
            exc.message = self.text(exc.message)
            exc.args = (exc.code, exc.message)
            if isinstance(exc, RemoteFault):
                if exc.errorcode is not None:
                    exc.errorcode = self.text(exc.errorcode)
                if exc.detail is not None:
                    exc.detail = self.value(exc.detail)
        else:
            exc.args = tuple(self.text(a) if isinstance(a, str) else a for a in exc.args)
        exc.__cause__ = exc.__context__ = None
        exc.__suppress_context__ = True
        return exc

    def __repr__(self) -> str:
        return f"<Masker {self.label}: {len(self._needles)} forms>"

    def __reduce__(self) -> Any:  # a pickle would carry the secrets
        raise TypeError("Masker objects cannot be pickled")


def connection_masker(
    conn: ResolvedConnection, secrets: SecretStore, derived: Iterable[str] = ()
) -> Masker:
    """The masker of ``conn``: every credential value of it that resolved (identity keys as
    identities), plus ``derived`` values its auth sends."""
    values: list[str] = list(derived)
    identities: list[str] = []
    for key, ref in conn.credentials.items():
        if ref in secrets:
            value = secrets.get(ref).get_secret_value()
            (identities if key in IDENTITY_KEYS else values).append(value)
    return Masker(conn.full_id, values, identities)
