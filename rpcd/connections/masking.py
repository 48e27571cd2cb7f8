"""A connection's own credentials masked in everything its remote sends back.

A remote that quotes the request it received (a Moodle exception repeating ``wstoken=…``, an
XML-RPC fault string with the ``Authorization`` header, a reason phrase, a SOAP fault quoting
the envelope) would otherwise hand the connection's credential to whoever reads the answer: a
``/v1/call`` caller, ``rpcd call`` output, the inbound caller of a proxy method, a log line.
``BoundConnection.call`` passes every error it raises and every result it returns through the
connection's ``Masker``, the one place where remote texts enter rpcd.

What is masked: each resolved credential value of the connection and the forms a remote
writes it back in (``bases``, each in every escaped form of ``rpcd.redaction.forms``), plus
derived values sent as they are (HTTP Basic's base64 blob). A value of at least
``MIN_SECRET_LENGTH`` characters becomes ``MASK`` in place (``Redactor``: one Aho-Corasick
pass); a shorter authenticating value cannot be masked without showing where it was, so a
text that contains it is withheld whole. Identities (a username, an OAuth consumer key) are
not secrets: masked in error texts from ``MIN_SECRET_LENGTH`` up, as the log filter does, and
never in a successful result, where an account name is the remote's data.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from typing import Any

from rpcd.config import ResolvedConnection
from rpcd.errors import Fault, RemoteFault, RpcdError
from rpcd.redaction import Redactor, forms
from rpcd.secrets import IDENTITY_KEYS, MIN_SECRET_LENGTH, SecretStore

__all__ = ["Masker", "bases", "connection_masker"]


def bases(value: str) -> set[str]:
    """``value`` as a remote may quote it before escaping it for its answer: as written, its
    UTF-8 bytes read as Latin-1 (how HTTP reason phrases and headers are decoded), and
    percent-encoded as a query or form parameter (``+`` and ``%20`` for a space)."""
    return {
        value,
        value.encode("utf-8", "surrogatepass").decode("latin-1"),
        urllib.parse.quote_plus(value, safe=""),
        urllib.parse.quote(value, safe=""),
    }


class Masker:
    """Masks one connection's credentials in remote texts, results and errors.

    Holds the values themselves (built once per connection and catalog generation), so it
    prints as a count and cannot be pickled, like the ``BoundConnection`` that owns it.
    """

    __slots__ = ("_data", "_needles", "_short", "_text", "label")

    def __init__(self, label: str, secrets: Iterable[str], identities: Iterable[str] = ()) -> None:
        """``secrets`` authenticate (tokens, passwords, derived blobs); ``identities`` only
        name (usernames, consumer keys): masked in error texts when long enough, never in
        a result (where an account name is data) and never when short."""
        self.label = label
        long = [v for v in secrets if len(v) >= MIN_SECRET_LENGTH]
        short = [v for v in secrets if 0 < len(v) < MIN_SECRET_LENGTH]
        named = [v for v in identities if len(v) >= MIN_SECRET_LENGTH]
        written = {b for v in long for b in bases(v)}
        self._text = Redactor(written | {b for v in named for b in bases(v)})
        # Results are masked for the authenticating values only.
        self._data = Redactor(written) if named else self._text
        short_forms = {f for v in short for b in bases(v) for f in forms(b)}
        self._short = tuple(sorted(short_forms, key=len, reverse=True))
        secret_forms = {f for b in written for f in forms(b)} | short_forms
        self._needles = tuple(f.encode("utf-8", "surrogatepass") for f in secret_forms)

    def text(self, text: str) -> str:
        """``text`` with every form of a credential replaced by ``MASK``; withheld whole when
        it holds a short one."""
        return self._masked(text, self._text)

    def _masked(self, text: str, redactor: Redactor) -> str:
        for form in self._short:
            if form in text:
                return (
                    f"(text withheld: it contains a credential of {self.label} too short to mask)"
                )
        return redactor.text(text)

    def value(self, value: Any, *, identities: bool = True) -> Any:
        """``value`` (a decoded answer: lists, dicts, scalars) with its strings and keys
        masked (``identities=False``: the authenticating values only); lists and dicts are
        changed in place (they were just decoded, rpcd owns them). Iterative: the codecs'
        depth limit is a setting."""
        redactor = self._text if identities else self._data

        def mask(text: str) -> str:
            return self._masked(text, redactor)

        if isinstance(value, str):
            return mask(value)
        stack = [value]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                for i, item in enumerate(node):
                    if isinstance(item, str):
                        node[i] = mask(item)
                    elif isinstance(item, list | dict):
                        stack.append(item)
            elif isinstance(node, dict):
                for key, item in list(node.items()):
                    if isinstance(item, str):
                        node[key] = item = mask(item)
                    elif isinstance(item, list | dict):
                        stack.append(item)
                    if isinstance(key, str):
                        clean = mask(key)
                        if clean != key:
                            del node[key]
                            node[clean] = item
        return value

    def result(self, value: Any, body: bytes) -> Any:
        """A successful call's result, masked for the authenticating values: walked only when
        the raw answer holds a form of one (one substring search per form on the bytes), so a
        normal answer costs nothing more."""
        find = body.find  # not ``needle in body``: bytes' ``in`` tries the needle as an int
        for needle in self._needles:  # first and raises (and clears) a TypeError each time
            if find(needle) >= 0:
                return self.value(value, identities=False)
        return value

    def exception(self, exc: RpcdError) -> RpcdError:
        """``exc`` with its texts masked (changed in place, type kept) and its chain cut: a
        chained exception's text is the remote's too, and is not masked."""
        if not (self._text or self._short):
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
