"""The guard every untrusted XML document passes before a parser sees it.

A parser that picks the encoding itself can be led around a byte-level check: an XML
declaration that says ``UTF-7`` turns ``+ADwAIQ-`` into ``<!`` *inside* the parser, after rpcd
looked for ``<!DOCTYPE`` and found none. So rpcd decides the encoding, from the byte order mark
and the whole XML declaration (parsed here, of any length), out of an allow-list: UTF-8 and
the ASCII-compatible single-byte encodings below (UTF-16 with its BOM where the caller allows
it). It decodes, re-encodes as UTF-8 when needed, and only then looks for ``<!``; the caller's
parser is told the document is UTF-8 and ignores the declaration.

A UTF-8 document is passed on as it is, not decoded here: in UTF-8 a byte below 0x80 is never
part of another character, so ``<!`` in the bytes is ``<!`` in the text, and the parser, told
"UTF-8", refuses a byte that is not.

``<!`` may only start a comment (``<!--``) or a CDATA section (``<![CDATA[``). Anything else
(a ``<!DOCTYPE``, an ``<!ENTITY``, any other declaration) is refused with one fault text,
``REFUSED``, whatever it names: no answer tells an existing file, a directory, a FIFO or a
missing path apart. This follows libxml2's and defusedxml's advice (no DTD at all for
documents from the network) and nginx's choice to decide a body's handling before parsing.
"""

from __future__ import annotations

import re
from typing import Final

from rpcd.errors import ParseError

__all__ = ["REFUSED", "to_utf8"]

#: The one fault text of a document refused for a DTD or any other ``<!`` declaration.
REFUSED: Final = "DTD not allowed: send the document without <!DOCTYPE> or <!ENTITY>"

#: Declared name (lower case) -> Python codec. UTF-8 and ASCII-compatible single-byte ones.
_ALLOWED: Final = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "iso-8859-1": "latin-1",
    "iso8859-1": "latin-1",
    "latin1": "latin-1",
    "latin-1": "latin-1",
    "iso-8859-15": "iso8859-15",
    "windows-1252": "cp1252",
    "cp1252": "cp1252",
}
_UTF16_NAMES: Final = frozenset({"utf-16", "utf16"})

_UTF8_BOM: Final = b"\xef\xbb\xbf"
_UTF32_BOMS: Final = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")

# The XML declaration (XML 1.0 section 2.8), whole: every run possessive and followed by a
# character it cannot take, so it is matched in one pass whatever its length.
_SP = rb"[ \t\r\n]"
_EQ = rb"[ \t\r\n]*+=[ \t\r\n]*+"
_DECL: Final = re.compile(
    rb"<\?xml" + _SP + rb"++version" + _EQ + rb"(?:\"1\.[0-9]++\"|'1\.[0-9]++')"
    rb"(?:"
    + _SP
    + rb"++encoding"
    + _EQ
    + rb"(?:\"([A-Za-z][A-Za-z0-9._-]*+)\"|'([A-Za-z][A-Za-z0-9._-]*+)'))?+"
    rb"(?:"
    + _SP
    + rb"++standalone"
    + _EQ
    + rb"(?:\"(?:yes|no)\"|'(?:yes|no)'))?+"
    + _SP
    + rb"*+\?>"
)
#: ``<!`` that starts neither a comment nor a CDATA section.
_DECLARATION: Final = re.compile(rb"<!(?!--|\[CDATA\[)")


def _declared(body: bytes) -> str | None:
    """The encoding named by the XML declaration at the start of ``body`` (lower case), or
    None without one; a malformed declaration is a ``ParseError``."""
    if not body.startswith(b"<?xml") or body[5:6] not in (b" ", b"\t", b"\r", b"\n"):
        return None
    m = _DECL.match(body)
    if m is None:
        raise ParseError("not well-formed XML: malformed XML declaration (line 1)")
    name = m.group(1) or m.group(2)
    return None if name is None else name.decode("ascii").lower()


def _unsupported(name: str) -> ParseError:
    shown = name if len(name) <= 40 else name[:40] + "..."
    return ParseError(f"unsupported encoding {shown!r}: send UTF-8")


def to_utf8(data: bytes, *, utf16: bool = False) -> bytes:
    """The document as UTF-8 bytes, for a parser told "UTF-8"; else ``ParseError``.

    ``utf16`` also takes UTF-16 with a byte order mark (SOAP and REST peers may send it).
    A UTF-8 document without a BOM comes back as the same object.
    """
    bom: str | None = None
    if data.startswith(_UTF8_BOM):
        bom, data = "utf-8", data[3:]
    elif data.startswith(_UTF32_BOMS):
        raise ParseError("unsupported encoding: send UTF-8")
    elif data.startswith(_UTF16_BOMS):
        if not utf16:
            raise ParseError("unsupported encoding: send UTF-8")
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeError:
            raise ParseError("not well-formed XML: the body is not valid UTF-16") from None
        bom = "utf-16"
    if data.find(b"\x00") != -1:  # never in XML; UTF-16 or UTF-32 without a BOM
        raise ParseError("unsupported encoding: send UTF-8")
    name = _declared(data)
    if bom == "utf-16":
        if name is not None and name not in _UTF16_NAMES:
            raise _unsupported(name)
    elif name is not None:
        codec = _ALLOWED.get(name)
        if codec is None or (bom is not None and codec != "utf-8"):
            raise _unsupported(name)
        if codec != "utf-8":
            try:
                data = data.decode(codec).encode("utf-8")
            except UnicodeError:
                raise ParseError(f"not well-formed XML: the body is not valid {name}") from None
    if data.find(b"<!") != -1 and _DECLARATION.search(data) is not None:
        raise ParseError(REFUSED)
    return data
