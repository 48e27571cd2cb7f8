"""XML-RPC wire codec: bytes <-> Python values, pure (no I/O), shared by server and client.

Parser: a hardened ``lxml.etree`` parser builds the tree in C, then a small walker with a
dispatch table keyed by tag turns it into values; each thread keeps one parser and feeds it.
Why lxml rather than expat or ``xml.etree``, and what was measured and dropped:
docs/performance.md ("XML-RPC codec").

Fast path (``rpcd/codecs/_xmlrpc_fast.py``): a document of the common flat shapes (scalar
params, or one array/struct level of scalars) that matches a strict regular grammar, checked
whole in C, is decoded without lxml; any other document, and any value that path would have
to refuse, goes to the lxml path below, which gives the exact value or error. Its module
docstring says why the three layers below still hold; ``tests/test_codec_xmlrpc_fast.py``
holds both paths to the same values and errors on generated documents in, at and near the
grammar.

Safety of the general path (as strict as defusedxml, in three layers):

1. Before parsing (``rpcd/codecs/xmlguard.py``): rpcd decides the encoding from the BOM and
   the whole XML declaration, whatever its length: UTF-8 or an ASCII-compatible single-byte
   encoding from an allow-list (a BOM for UTF-16/32, a NUL byte, a malformed declaration or
   any other declared encoding is a ``ParseError``), decodes, and hands over UTF-8. Only then
   is ``<!`` looked for: anything but a comment or CDATA section is refused with one fault
   text, whatever it names. Without a DTD there is no entity but the five predefined ones.
2. The parser itself: told the document is UTF-8 (any declaration is ignored),
   ``resolve_entities=False``, ``load_dtd=False``, ``no_network=True``, ``huge_tree=False``
   (libxml2 then also caps element depth at 256 and text node sizes), and a resolver that
   refuses every URL and file, so the parser can never open anything.
3. After parsing: a document with a doctype is refused again, and every scalar element must
   have no child element (so no entity reference node can hide in text).

Depth: ``max_depth`` counts struct/array nesting: a scalar parameter is depth 0, ``[1]`` is 1,
``[[1]]`` is 2. Deeper is ``LimitExceeded``; so is an integer outside signed 64 bits.

Numbers (``rpcd/codecs/numtext.py``): an int, double or dateTime text is checked by
unambiguous patterns or a plain scan, in time linear in its length, and one longer than
``max_number_chars`` (default 4,300, surrounding whitespace not counted) is ``LimitExceeded``
before anything converts it.

dateTime: input takes ``19980717T14:08:55`` and ISO forms (dashes, fraction, ``Z``/``+01:00``);
naive text gives a naive datetime, zoned text an aware one. Output writes a naive datetime as
``%Y%m%dT%H:%M:%S`` (what every peer reads) and an aware one as ISO 8601 with its offset (the
stdlib cannot read that form); microseconds are dropped, as the stdlib does. UTF-16 input is
refused (``ParseError``): XML-RPC peers send UTF-8, and refusing keeps layer 1 sound.

Serialization builds one list of strings with a dispatch on the exact type (then
``isinstance`` for subclasses) and joins once; plain ints and strings are written inline, a
list of only ints (or only strings) is checked and joined in C, and struct keys are checked
all at once. Errors on output are ``TypeError`` (a type XML-RPC cannot carry, a non-str
struct key), ``ValueError`` (NaN/infinity, a character XML 1.0 forbids, nesting too deep or
recursive) or ``LimitExceeded`` (an int beyond 64 bits); their messages name the type, never
the value.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import json
import math
import re
import threading
import xmlrpc.client
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NoReturn

from lxml import etree

from rpcd.codecs import _xmlrpc_fast, numtext, xmlguard
from rpcd.errors import APPLICATION_ERROR, InvalidRequest, LimitExceeded, ParseError, RemoteFault

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_NUMBER_CHARS",
    "dumps_call",
    "dumps_fault",
    "dumps_response",
    "loads_call",
    "loads_response",
]

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_NUMBER_CHARS = numtext.DEFAULT_MAX_NUMBER_CHARS
#: Output nesting bound: far above what any peer reads, well below Python's recursion limit.
_MAX_DUMP_DEPTH = 256

_I4_MIN, _I4_MAX = -(2**31), 2**31 - 1
_I8_MIN, _I8_MAX = -(2**63), 2**63 - 1

_HEADER = '<?xml version="1.0"?>\n'
#: Apache XML-RPC's extension namespace (``ex:i8``, ``ex:nil``...).
_EX = "{http://ws.apache.org/xmlrpc/namespaces/extensions}"

# ---------------------------------------------------------------------------------------------
# Parsing


def _short(text: str, limit: int = 60) -> str:
    """Quote at most ``limit`` characters of untrusted text, so an error never echoes a flood."""
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)


_UTF8_BOM = b"\xef\xbb\xbf"


class _Refused(Exception):
    """Raised by ``_RefuseAll`` inside the parser; ``_parse`` turns it into ``ParseError``."""


class _RefuseAll(etree.Resolver):
    """A resolver that refuses every URL, file and public id (layer 2).

    lxml asks its resolvers before libxml2 opens anything (an external subset, an external
    entity): raising here refuses it before any file, directory, FIFO or socket is touched.
    """

    def resolve(self, system_url: str, public_id: str, context: object = None) -> NoReturn:
        raise _Refused


def _parser() -> etree.XMLParser:
    """A new hardened parser (layer 2); ``_parse`` keeps one per thread.

    ``encoding="utf-8"``: ``xmlguard`` has decided the encoding and hands over UTF-8, so any
    declaration is ignored. ``collect_ids`` keeps its default: lxml's ``collect_ids=False``
    sets a flag that libxml2 reads as "load the external subset", which opened the file a
    ``<!DOCTYPE x SYSTEM "file:///...">`` names despite ``load_dtd=False``.
    """
    parser = etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        strip_cdata=True,
    )
    parser.resolvers.add(_RefuseAll())
    return parser


#: Each thread's idle parser. Creating a parser and its libxml2 context costs more than
#: parsing a small call, so it is reused; lxml parsers must not be shared across threads.
_tls = threading.local()


_DocInfo: Any = etree.DocInfo


def _parse(data: bytes) -> etree._Element:
    """Parse untrusted bytes with every guard in place; see the module docstring.

    The thread's parser is checked out while in use (a re-entrant call in the same thread
    gets a new one) and goes back only after a clean parse: a parser that failed is dropped,
    so nothing left from a bad document can reach the next one. ``feed`` + ``close`` is the
    cheapest way into a reused parser (docs/performance.md).
    """
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("XML-RPC input must be bytes")
        data = bytes(data)
    body = data.removeprefix(_UTF8_BOM).lstrip(b" \t\r\n")
    if not body:
        raise ParseError("empty body")
    data = xmlguard.to_utf8(data)  # layer 1: encoding decided here, no "<!" but comments
    if body[0] != 60:  # "<"
        raise ParseError("not XML")
    tls = _tls
    parser: etree.XMLParser | None = getattr(tls, "parser", None)
    if parser is None:
        parser = _parser()
    else:
        tls.parser = None
    try:
        parser.feed(data)
        root: etree._Element = parser.close()
    except _Refused:
        raise ParseError(xmlguard.REFUSED) from None
    except etree.XMLSyntaxError as exc:
        log: Any = exc.error_log
        entries = list(log)
        err = entries[-1] if entries else None
        if err is not None and err.type_name == "ERR_RESOURCE_LIMIT":
            if "depth" in err.message:
                raise LimitExceeded("XML nested too deeply") from None
            raise LimitExceeded("XML over a parser limit") from None
        if err is not None:
            msg = f"{err.message.strip()} (line {err.line}, column {err.column})"
        else:
            msg = str(exc)
        raise ParseError(f"not well-formed XML: {msg[:160]}") from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise ParseError(f"unparseable XML ({type(exc).__name__})") from None
    tls.parser = parser
    info: Any = _DocInfo(root)
    if info.internalDTD is not None or info.externalDTD is not None:
        raise ParseError(xmlguard.REFUSED)
    return root


def _tag(el: etree._Element) -> str:
    tag = el.tag
    if isinstance(tag, str):
        return tag
    return "(non-element node)"


def _bad(what: str) -> InvalidRequest:
    return InvalidRequest(what)


def _no_children(el: etree._Element) -> None:
    if len(el):
        raise _bad(f"<{_tag(el)}> must not contain elements")


def _p_int(el: etree._Element, budget: int, limit: int) -> int:
    if len(el):
        _no_children(el)
    return _int_text(el.text, el, limit)


def _int_text(text: str | None, el: etree._Element | str, limit: int) -> int:
    """One integer's text: ASCII digits with optional sign and whitespace, within 64 bits.

    A short plain text goes straight to ``int``; any other is checked first, in one linear
    pass (``numtext``), and never converted when it is too long to be a 64-bit integer.
    """
    if text is None:
        raise _bad(f"empty <{el if isinstance(el, str) else _tag(el)}>")
    if len(text) > 24 or "_" in text or not text.isascii():
        stripped = text.strip(numtext.XML_SPACE)
        numtext.check_length(stripped, limit)
        canonical = numtext.canonical_int(stripped)
        if canonical is None:
            raise _bad(f"bad integer {_short(text)}")
        if len(canonical.lstrip("-")) > 19:
            raise LimitExceeded("integer beyond 64 bits")
        text = canonical
    try:
        value = int(text)
    except ValueError:
        raise _bad(f"bad integer {_short(text)}") from None
    if not _I8_MIN <= value <= _I8_MAX:
        raise LimitExceeded("integer beyond 64 bits")
    return value


def _int_texts(texts: list[str | None], limit: int) -> list[int]:
    """The texts of many plain ``<int>`` elements, converted at once: checks and ``int`` in C.

    Any doubt (a missing text, a long or non-ASCII one, a bad digit, a value beyond 64 bits)
    falls back to ``_int_text`` one by one, which gives the exact error in document order.
    """
    try:
        joined = "".join(texts)  # type: ignore[arg-type]  # TypeError on a None
    except TypeError:
        pass
    else:
        if joined.isascii() and "_" not in joined and max(map(len, texts)) <= 24:  # type: ignore[arg-type]
            try:
                out = list(map(int, texts))  # type: ignore[arg-type]
            except ValueError:
                pass
            else:
                if min(out) >= _I8_MIN and max(out) <= _I8_MAX:
                    return out
    return [_int_text(t, "int", limit) for t in texts]


def _p_bool(el: etree._Element, budget: int, limit: int) -> bool:
    if len(el):
        _no_children(el)
    text = (el.text or "").strip()
    if text == "1":
        return True
    if text == "0":
        return False
    raise _bad(f"bad boolean {_short(text)} (0 or 1 expected)")


def _p_double(el: etree._Element, budget: int, limit: int) -> float:
    if len(el):
        _no_children(el)
    text = el.text or ""
    stripped = text.strip(numtext.XML_SPACE)
    numtext.check_length(stripped, limit)
    if not numtext.is_double(stripped):
        raise _bad(f"bad double {_short(text)}")
    value = float(stripped)
    if math.isinf(value):
        raise _bad("double out of range")
    return value


def _p_string(el: etree._Element, budget: int, limit: int) -> str:
    if len(el):
        _no_children(el)
    return el.text or ""


def _p_base64(el: etree._Element, budget: int, limit: int) -> bytes:
    if len(el):
        _no_children(el)
    text = "".join((el.text or "").split())
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("bad base64") from None


def _p_datetime(el: etree._Element, budget: int, limit: int) -> datetime:
    if len(el):
        _no_children(el)
    text = el.text or ""
    stripped = text.strip(numtext.XML_SPACE)
    numtext.check_length(stripped, limit)
    m = numtext.datetime_match(stripped)
    if m is None:
        raise _bad(f"bad dateTime.iso8601 {_short(text)}")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        tz: timezone | None = None
        if zone == "Z":
            tz = UTC
        elif zone:
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
            tz = timezone(sign * offset)
        micro = int((frac or "0")[:6].ljust(6, "0"))
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz
        )
    except ValueError:
        raise _bad(f"bad dateTime.iso8601 {_short(text)}") from None


def _p_nil(el: etree._Element, budget: int, limit: int) -> None:
    if len(el) or (el.text or "").strip():
        raise _bad("<nil/> must be empty")
    return None


def _item_value(v: etree._Element, budget: int, limit: int) -> Any:
    """One ``<value>`` of an array or struct: ``_value`` with a quicker plain ``<int>``/``<i4>``
    (the usual text converted before anything else is looked at; any other text, empty or
    long, goes to ``_p_int`` for the exact error)."""
    n = len(v)
    if n == 1:
        c = v[0]
        tag = c.tag
        if tag == "int" or tag == "i4":
            text = c.text
            if text is not None and len(text) < 20 and text.isascii() and "_" not in text:
                try:
                    i = int(text)
                except ValueError:
                    raise _bad(f"bad integer {_short(text)}") from None
                if len(c):
                    _no_children(c)
                if not _I8_MIN <= i <= _I8_MAX:
                    raise LimitExceeded("integer beyond 64 bits")
                return i
        elif tag == "string":
            if len(c):
                _no_children(c)
            return c.text or ""
        parse = _DISPATCH.get(tag)
        if parse is None:
            raise _bad(f"unknown value type <{_short(_tag(c))}>")
        return parse(c, budget, limit)
    if n == 0:
        return v.text or ""
    raise _bad("<value> must contain one element")


def _p_array(el: etree._Element, budget: int, limit: int) -> list[Any]:
    budget -= 1
    if budget < 0:
        raise LimitExceeded("values nested too deeply")
    n = len(el)
    if n == 0:
        return []  # <array/>: lenient, some peers send it for an empty array
    data = el[0]
    if n != 1 or data.tag != "data":
        raise _bad("<array> must contain exactly one <data>")
    # The hot loop of big payloads. First, as long as every member is a plain <int>, only
    # collect the texts and convert them all at once in C; at the first other member, carry
    # on with the general loop. The tag filter runs in C (the count check at the end catches
    # any other child), and plain ints and strings skip the dispatch call.
    values = data.iterchildren("value")
    texts: list[str | None] = []
    rest: etree._Element | None = None
    for v in values:
        if len(v) == 1:
            c = v[0]
            if c.tag == "int" and not len(c):
                texts.append(c.text)
                continue
        rest = v
        break
    out: list[Any] = _int_texts(texts, limit) if texts else []
    if rest is not None:
        append = out.append
        for v in itertools.chain((rest,), values):
            append(_item_value(v, budget, limit))
    if len(out) != len(data):
        raise _bad("<data> must contain only <value> elements")
    return out


def _p_struct(el: etree._Element, budget: int, limit: int) -> dict[str, Any]:
    budget -= 1
    if budget < 0:
        raise LimitExceeded("values nested too deeply")
    out: dict[str, Any] = {}
    count = 0
    # Each member's value as an array item's: plain <int> and <string> skip the dispatch call.
    for m in el.iterchildren("member"):
        count += 1
        if len(m) != 2:
            raise _bad("<member> must contain <name> and <value>")
        name = m[0]
        v = m[1]
        if name.tag != "name":
            name, v = v, name  # tolerate <value> before <name>
        if name.tag != "name" or v.tag != "value":
            raise _bad("<member> must contain <name> and <value>")
        if len(name):
            _no_children(name)
        out[name.text or ""] = _item_value(v, budget, limit)
    if count != len(el):
        raise _bad("<struct> must contain only <member> elements")
    return out


_Parse = Callable[[etree._Element, int, int], Any]

_DISPATCH: dict[str, _Parse] = {
    "int": _p_int,
    "i4": _p_int,
    "i8": _p_int,
    "i1": _p_int,
    "i2": _p_int,
    "boolean": _p_bool,
    "string": _p_string,
    "double": _p_double,
    "dateTime.iso8601": _p_datetime,
    "base64": _p_base64,
    "nil": _p_nil,
    "array": _p_array,
    "struct": _p_struct,
    # Apache XML-RPC extensions, in their namespace.
    _EX + "i1": _p_int,
    _EX + "i2": _p_int,
    _EX + "i8": _p_int,
    _EX + "nil": _p_nil,
    _EX + "float": _p_double,
    _EX + "dateTime": _p_datetime,
}


def _value(v: etree._Element, budget: int, limit: int) -> Any:
    """Turn one ``<value>`` element into a Python value; no type tag means string."""
    n = len(v)
    if n == 0:
        return v.text or ""
    if n != 1:
        raise _bad("<value> must contain one element")
    c = v[0]
    tag = c.tag
    if tag == "string":
        if len(c):
            _no_children(c)
        return c.text or ""
    if tag == "int" or tag == "i4":
        if len(c):
            _no_children(c)
        return _int_text(c.text, c, limit)
    parse = _DISPATCH.get(tag)
    if parse is None:
        raise _bad(f"unknown value type <{_short(_tag(c))}>")
    return parse(c, budget, limit)


def _params(el: etree._Element, budget: int, limit: int) -> list[Any]:
    out: list[Any] = []
    for p in el.iterchildren():
        if p.tag != "param":
            raise _bad(f"unexpected <{_short(_tag(p))}> in <params>")
        if len(p) != 1 or p[0].tag != "value":
            raise _bad("<param> must contain one <value>")
        out.append(_value(p[0], budget, limit))
    return out


def loads_call(
    data: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_number_chars: int = DEFAULT_MAX_NUMBER_CHARS,
) -> tuple[str, list[Any]]:
    """Parse a ``<methodCall>`` into ``(method name, params)``.

    Raises ParseError (not XML, DTD/entities, an encoding off the allow-list), InvalidRequest
    (wrong structure or value text) and LimitExceeded (struct/array nesting over
    ``max_depth``, integer beyond 64 bits, a number or dateTime text over
    ``max_number_chars``). A document in the fast grammar skips lxml (see the module
    docstring); same result.
    """
    if max_number_chars < numtext.MIN_MAX_NUMBER_CHARS:
        raise ValueError(f"max_number_chars must be at least {numtext.MIN_MAX_NUMBER_CHARS}")
    fast = _xmlrpc_fast.loads_call(data, max_depth)
    if fast is not _xmlrpc_fast.MISS:
        return fast  # type: ignore[no-any-return]
    return _loads_call_tree(data, max_depth, max_number_chars)


def _loads_call_tree(
    data: bytes, max_depth: int, max_number_chars: int = DEFAULT_MAX_NUMBER_CHARS
) -> tuple[str, list[Any]]:
    """The general path of ``loads_call``: any document, through the hardened lxml parser."""
    root = _parse(data)
    if root.tag != "methodCall":
        raise _bad(f"expected <methodCall>, got <{_short(_tag(root))}>")
    method: str | None = None
    params: list[Any] = []
    for child in root.iterchildren():
        tag = child.tag
        if tag == "methodName":
            if len(child):
                _no_children(child)
            method = (child.text or "").strip()
        elif tag == "params":
            params = _params(child, max_depth, max_number_chars)
        else:
            raise _bad(f"unexpected <{_short(_tag(child))}> in <methodCall>")
    if not method:
        raise _bad("missing or empty <methodName>")
    return method, params


def loads_response(
    data: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_number_chars: int = DEFAULT_MAX_NUMBER_CHARS,
) -> Any:
    """Parse a ``<methodResponse>`` into its value; a ``<fault>`` raises RemoteFault.

    An empty ``<params/>`` (sent by some servers for a void method) reads as None. Errors
    as ``loads_call``'s.
    """
    if max_number_chars < numtext.MIN_MAX_NUMBER_CHARS:
        raise ValueError(f"max_number_chars must be at least {numtext.MIN_MAX_NUMBER_CHARS}")
    fast = _xmlrpc_fast.loads_response(data, max_depth)
    if fast is not _xmlrpc_fast.MISS:
        return fast
    return _loads_response_tree(data, max_depth, max_number_chars)


def _loads_response_tree(
    data: bytes, max_depth: int, max_number_chars: int = DEFAULT_MAX_NUMBER_CHARS
) -> Any:
    """The general path of ``loads_response``: any document, through lxml."""
    root = _parse(data)
    if root.tag != "methodResponse":
        raise _bad(f"expected <methodResponse>, got <{_short(_tag(root))}>")
    if len(root) != 1:
        raise _bad("<methodResponse> must contain one <params> or <fault>")
    body = root[0]
    if body.tag == "params":
        values = _params(body, max_depth, max_number_chars)
        if len(values) > 1:
            raise _bad("<methodResponse> must carry one value")
        return values[0] if values else None
    if body.tag == "fault":
        if len(body) != 1 or body[0].tag != "value":
            raise _bad("<fault> must contain one <value>")
        fault = _value(body[0], max_depth, max_number_chars)
        if not isinstance(fault, dict):
            raise _bad("<fault> value must be a struct")
        code = fault.get("faultCode")
        message = fault.get("faultString", "")
        if not isinstance(message, str):
            message = "" if message is None else str(message)
        if isinstance(code, int) and not isinstance(code, bool):
            raise RemoteFault(code, message)
        # Some servers send a symbolic code ("Server", "Client"): keep it as ``errorcode``.
        raise RemoteFault(APPLICATION_ERROR, message, None if code is None else str(code))
    raise _bad(f"unexpected <{_short(_tag(body))}> in <methodResponse>")


# ---------------------------------------------------------------------------------------------
# Serialization

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _escape(s: str) -> str:
    """Escape text for XML; ``\\r`` becomes ``&#13;`` so the parser's newline folding keeps it."""
    if not (s.isascii() and s.isprintable()):
        m = _INVALID_XML.search(s)
        if m is not None:
            raise ValueError(
                f"string contains U+{ord(m.group()):04X}, a character XML 1.0 does not allow"
            )
    return _replace_specials(s)


def _replace_specials(s: str) -> str:
    if "&" in s:
        s = s.replace("&", "&amp;")
    if "<" in s:
        s = s.replace("<", "&lt;")
    if ">" in s:
        s = s.replace(">", "&gt;")
    if "\r" in s:
        s = s.replace("\r", "&#13;")
    return s


def _d_int(v: int, out: list[str], depth: int) -> None:
    if _I4_MIN <= v <= _I4_MAX:
        out.append(f"<value><int>{int(v)}</int></value>")
    elif _I8_MIN <= v <= _I8_MAX:
        out.append(f"<value><i8>{int(v)}</i8></value>")
    else:
        raise LimitExceeded("integer beyond 64 bits cannot be sent")


def _d_bool(v: bool, out: list[str], depth: int) -> None:
    out.append(
        "<value><boolean>1</boolean></value>" if v else "<value><boolean>0</boolean></value>"
    )


def _d_float(v: float, out: list[str], depth: int) -> None:
    if not math.isfinite(v):
        raise ValueError("cannot marshal NaN or infinity as an XML-RPC double")
    out.append(f"<value><double>{float(v)!r}</double></value>")


def _d_str(v: str, out: list[str], depth: int) -> None:
    out.append(f"<value><string>{_escape(v)}</string></value>")


def _d_bytes(v: bytes | bytearray, out: list[str], depth: int) -> None:
    out.append(f"<value><base64>{base64.b64encode(v).decode('ascii')}</base64></value>")


def _d_binary(v: xmlrpc.client.Binary, out: list[str], depth: int) -> None:
    _d_bytes(v.data, out, depth)


def _d_datetime(v: datetime, out: list[str], depth: int) -> None:
    # XML-RPC dateTime has second precision: microseconds are dropped, as the stdlib does.
    if v.tzinfo is None or v.utcoffset() is None:
        text = f"{v.year:04d}{v.month:02d}{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
    else:
        text = v.isoformat(timespec="seconds")
    out.append(f"<value><dateTime.iso8601>{text}</dateTime.iso8601></value>")


def _d_xdatetime(v: xmlrpc.client.DateTime, out: list[str], depth: int) -> None:
    out.append(f"<value><dateTime.iso8601>{_escape(str(v.value))}</dateTime.iso8601></value>")


def _d_none(v: None, out: list[str], depth: int) -> None:
    out.append("<value><nil/></value>")


#: Below this many items the bulk checks of ``_d_list`` cost more than they save.
_BULK_MIN = 16
_INT_SEP = "</int></value><value><int>"
#: Writes a list of plain ints as ``[1<SEP>2<SEP>3]``: the json module's C encoder renders
#: ints exactly as ``int.__repr__`` does, in about 25% less time than ``join(map(...))``.
_INT_LIST_WRITER = json.JSONEncoder(separators=(_INT_SEP, ":"), check_circular=False)
_STR_SEP = "</string></value><value><string>"


def _clean(s: str) -> bool:
    """True when ``s`` can go into XML as it is: nothing to escape, no forbidden character."""
    return s.isascii() and s.isprintable() and "&" not in s and "<" not in s and ">" not in s


def _join_strings(v: Sequence[str]) -> str | None:
    """Many strings escaped and joined as array members in a few C passes; None if one of
    them holds a character XML forbids (the caller's loop then names it)."""
    whole = "".join(v)
    if _clean(whole):
        return _STR_SEP.join(v)
    if not (whole.isascii() and whole.isprintable()) and _INVALID_XML.search(whole):
        return None
    # No string holds a forbidden character, so none holds "\x00": it marks the boundaries
    # through one escape pass over all of them.
    return _replace_specials("\x00".join(v)).replace("\x00", _STR_SEP)


def _d_list(v: Sequence[Any], out: list[str], depth: int) -> None:
    if depth >= _MAX_DUMP_DEPTH:
        raise ValueError("value nested too deeply (or recursive)")
    depth += 1
    append = out.append
    if len(v) >= _BULK_MIN and (type(v) is list or type(v) is tuple):
        # Lists of one scalar type are common and big: check and write them in C. (Exact
        # types only: they are read twice, and a subclass could answer differently.)
        kinds = set(map(type, v))
        if len(kinds) == 1:
            kind = kinds.pop()
            if kind is int and min(v) >= _I4_MIN and max(v) <= _I4_MAX:
                append("<value><array><data><value><int>")
                append(_INT_LIST_WRITER.encode(v)[1:-1])
                append("</int></value></data></array></value>")
                return
            if kind is str:
                text = _join_strings(v)
                if text is not None:
                    append("<value><array><data><value><string>")
                    append(text)
                    append("</string></value></data></array></value>")
                    return
    append("<value><array><data>")
    for item in v:
        t = type(item)
        if t is int and _I4_MIN <= item <= _I4_MAX:
            append(f"<value><int>{item}</int></value>")
        elif t is str:
            append(f"<value><string>{_escape(item)}</string></value>")
        else:
            _dump(item, out, depth)
    append("</data></array></value>")


def _d_dict(v: dict[Any, Any], out: list[str], depth: int) -> None:
    if depth >= _MAX_DUMP_DEPTH:
        raise ValueError("value nested too deeply (or recursive)")
    depth += 1
    append = out.append
    append("<value><struct>")
    # Keys are mostly plain identifiers: one check over all of them spares a call per key.
    # (A plain dict only: the keys are read twice, and a subclass could answer differently.)
    keys_clean = False
    if type(v) is dict:
        with contextlib.suppress(TypeError):  # a key that is not a str: the loop names it
            keys_clean = _clean("".join(v))
    for key, item in v.items():
        if not keys_clean:
            if not isinstance(key, str):
                raise TypeError(f"struct keys must be str, not {type(key).__name__}")
            key = _escape(key)
        t = type(item)
        if t is str:
            append(
                f"<member><name>{key}</name><value><string>{_escape(item)}</string></value></member>"
            )
        elif t is int and _I4_MIN <= item <= _I4_MAX:
            append(f"<member><name>{key}</name><value><int>{item}</int></value></member>")
        else:
            append(f"<member><name>{key}</name>")
            _dump(item, out, depth)
            append("</member>")
    append("</struct></value>")


_Dump = Callable[[Any, list[str], int], None]

_DUMPERS: dict[type, _Dump] = {
    bool: _d_bool,
    int: _d_int,
    float: _d_float,
    str: _d_str,
    bytes: _d_bytes,
    bytearray: _d_bytes,
    datetime: _d_datetime,
    type(None): _d_none,
    list: _d_list,
    tuple: _d_list,
    dict: _d_dict,
    xmlrpc.client.Binary: _d_binary,
    xmlrpc.client.DateTime: _d_xdatetime,
}

# For subclasses (IntEnum, OrderedDict, str enums...): first match wins, bool before int.
_FALLBACK: tuple[tuple[type, _Dump], ...] = (
    (bool, _d_bool),
    (int, _d_int),
    (float, _d_float),
    (str, _d_str),
    (bytes, _d_bytes),
    (bytearray, _d_bytes),
    (datetime, _d_datetime),
    (dict, _d_dict),
    (list, _d_list),
    (tuple, _d_list),
    (xmlrpc.client.Binary, _d_binary),
    (xmlrpc.client.DateTime, _d_xdatetime),
)


def _dump(value: Any, out: list[str], depth: int) -> None:
    fn = _DUMPERS.get(type(value))
    if fn is None:
        for cls, candidate in _FALLBACK:
            if isinstance(value, cls):
                fn = candidate
                break
        else:
            raise TypeError(f"cannot marshal a value of type {type(value).__name__} to XML-RPC")
    fn(value, out, depth)


#: The document head up to ``<params>`` per method name: a client calls a few names over and
#: over, and this spares the name's checks and escaping on every call.
_CALL_HEADS: dict[str, str] = {}
_CALL_HEADS_MAX = 512


def dumps_call(method: str, params: Sequence[Any]) -> bytes:
    """Serialize a ``<methodCall>`` (the outbound client's request)."""
    head = _CALL_HEADS.get(method) if type(method) is str else None
    if head is None:
        if not isinstance(method, str) or not method:
            raise ValueError("method name must be a non-empty str")
        head = f"{_HEADER}<methodCall><methodName>{_escape(method)}</methodName><params>"
        if type(method) is str and len(_CALL_HEADS) < _CALL_HEADS_MAX:
            _CALL_HEADS[method] = head
    if isinstance(params, (str, bytes, dict)):
        raise TypeError("params must be a sequence of values")
    out = [head]
    append = out.append
    for p in params:
        t = type(p)
        if t is int and _I4_MIN <= p <= _I4_MAX:
            append(f"<param><value><int>{p}</int></value></param>")
        elif t is str:
            append(f"<param><value><string>{_escape(p)}</string></value></param>")
        else:
            append("<param>")
            _dump(p, out, 0)
            append("</param>")
    append("</params></methodCall>\n")
    return "".join(out).encode()


_RESPONSE_HEAD = f"{_HEADER}<methodResponse><params><param>"
_RESPONSE_TAIL = "</param></params></methodResponse>\n"


def dumps_response(value: Any) -> bytes:
    """Serialize a successful ``<methodResponse>`` carrying one value."""
    t = type(value)
    if t is int and _I4_MIN <= value <= _I4_MAX:  # the common small answer: one format
        return f"{_RESPONSE_HEAD}<value><int>{value}</int></value>{_RESPONSE_TAIL}".encode()
    out = [_RESPONSE_HEAD]
    _dump(value, out, 0)
    out.append(_RESPONSE_TAIL)
    return "".join(out).encode("utf-8")


def dumps_fault(code: int, message: str) -> bytes:
    """Serialize a fault response.

    It must always succeed: characters XML 1.0 forbids in ``message`` become U+FFFD instead
    of raising, and a code beyond 64 bits becomes APPLICATION_ERROR.
    """
    message = _INVALID_XML.sub("\ufffd", str(message))
    code = int(code)
    if not _I8_MIN <= code <= _I8_MAX:
        code = APPLICATION_ERROR
    tag = "int" if _I4_MIN <= code <= _I4_MAX else "i8"
    return (
        f"{_HEADER}<methodResponse><fault><value><struct>"
        f"<member><name>faultCode</name><value><{tag}>{code}</{tag}></value></member>"
        f"<member><name>faultString</name><value><string>{_escape(message)}</string></value>"
        "</member></struct></value></fault></methodResponse>\n"
    ).encode()
