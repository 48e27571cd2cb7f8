"""Exact-shape fast path of the XML-RPC decoder: common documents without lxml.

Most XML-RPC documents have one of a few flat shapes: scalar params, or one level of array
or struct holding scalars. Such a document, when it matches a strict *regular* grammar (a
small subset of XML 1.0, checked in full, byte for byte, by anchored regular expressions
running in C), is decoded here in a few passes over the text, without building a tree.
Anything else (another shape, a nested value, a comment, an attribute, a character
reference, a CDATA section, a ``\\r`` inside a text, an encoding other than UTF-8, a body
over 8 MiB, a value this path would have to reject...) makes these functions return
``MISS``, and the caller runs the general lxml path, which gives the exact value or error.

Why this keeps every guarantee of the general path:

* The grammar has no ``<!`` and no ``&`` other than the five predefined entity references,
  so no DTD, no entity declaration and no expansion can match; nesting is at most one
  array/struct level (``max_depth`` below 1 is a ``MISS``).
* The text is decoded as strict UTF-8 first, and text characters are XML 1.0 ``Char``
  minus ``<``, ``&``, ``>`` and ``\\r`` (so no ``]]>``, no control character, and no line-end
  normalization that could change a value): what matches is well-formed XML whose texts
  libxml2 would hand over unchanged, once the five entity references are replaced.
* A value is produced only where the general path produces the same value: ints are 1 to 19
  digits and within 64 bits (whatever the tag), booleans ``0``/``1``, doubles at most 72
  characters (below the floor of ``max_number_chars``, so never one the general path refuses
  for its length) and finite; empty ``<int>``, long or odd texts, ``<value/>``, etc. are a
  ``MISS``.
* No pattern can split a run (of digits, of whitespace) two ways: each repeat is possessive,
  bounded, or ends the match. Matching or failing costs time linear in the text, whatever it
  holds.
* The body size cap keeps every libxml2 limit of the general path (``huge_tree=False``:
  10,000,000 characters a text node) out of reach, so no ``LimitExceeded`` is skipped.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

#: Returned when the document is not in the fast grammar: use the general path.
MISS: Final = object()

_MAX_BODY = 8 << 20

# Possessive quantifiers throughout (``*+``): every repeat here is followed by a character it
# cannot take, so giving back is never needed, and not saving the states to give back from
# makes a long run three times cheaper (and flat in memory).
_S = r"[ \t\r\n]*+"  # whitespace between tags (dropped by both paths)
_TS = r"[ \t\n]*+"  # whitespace inside a number's text
#: XML 1.0 Char minus "<", "&", ">" and "\r".
_CH = "[\t\n\x20-\x25\x27-\x3b\x3d\x3f-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
_TEXT = rf"{_CH}*+(?:&(?:amp|lt|gt|quot|apos);{_CH}*+)*+"
_NUM = rf"{_TS}[-+]?[0-9]{{1,19}}{_TS}"
#: A double of at most 72 characters (32 digits each side of the dot, a 4-digit exponent):
#: longer ones, rare, go to the general path and its ``max_number_chars`` check, whose floor
#: (``numtext.MIN_MAX_NUMBER_CHARS``) is above 72. Each run possessive, so no digit run is
#: ever split two ways: the check is linear however long the text.
_DOUBLE = (
    rf"{_TS}[-+]?+(?:[0-9]{{1,32}}+(?:\.[0-9]{{0,32}}+)?+|\.[0-9]{{1,32}}+)"
    rf"(?:[eE][-+]?+[0-9]{{1,4}}+)?+{_TS}"
)


def _scalar_pattern(capture: bool) -> str:
    """One ``<value>`` holding a scalar.

    With ``capture``, its groups are: 1 the int/i4/i8 tag, 2 its text, 3 a ``<string>``'s
    text, 4 a boolean's text, 5 a double's text, 6 ``<nil/>``, 7 the text of an untyped
    value. At most one of 2, 4, 5, 6 is non-empty (they are never empty when they match);
    3 and 7 are strings, one of them always "". Without, it has no group at all: a repeat of
    it then runs without saving any mark.
    """
    g = "(" if capture else "(?:"
    ints = (
        rf"<(?P<tag>int|i4|i8)>({_NUM})</(?P=tag)>"
        if capture
        else rf"<int>{_NUM}</int>|<i4>{_NUM}</i4>|<i8>{_NUM}</i8>"
    )
    return (
        rf"<value>(?:{_S}(?:{ints}|<string>{g}{_TEXT})</string>"
        rf"|<boolean>{g}{_TS}[01]{_TS})</boolean>|<double>{g}{_DOUBLE})</double>|{g}<nil/>))"
        rf"{_S}|{g}{_TEXT}))</value>"
    )


_SCALAR = _scalar_pattern(capture=True)
_ITEM = rf"{_S}{_SCALAR}"
_MEMBER = rf"{_S}<member>{_S}<name>({_TEXT})</name>{_S}{_SCALAR}{_S}</member>"
#: A plain int member for the bulk path: at most 18 digits, so always within 64 bits.
_INT_ITEM = rf"{_S}<value>{_S}<int>{_TS}[-+]?[0-9]{{1,18}}{_TS}</int>{_S}</value>"

#: One pass over a run of items: ``findall`` tries an item at each position, else takes a
#: run of whitespace into the next-to-last group, else *all the rest* into the last group.
#: Every character ends up in some match, so the run is in the grammar exactly when the last
#: group stays empty; and a run that is not costs one match for all its rest (not one per
#: character, which a hostile body could turn into millions of tuples).
_ITEMS_RE = re.compile(rf"{_ITEM}|([ \t\r\n]+)|(.+)", re.DOTALL)
_MEMBERS_RE = re.compile(rf"{_MEMBER}|([ \t\r\n]+)|(.+)", re.DOTALL)
_INT_ITEMS_RE = re.compile(rf"(?:{_INT_ITEM})*+{_S}")
#: The same run as written by rpcd and by the stdlib (no blank inside a member, "\n" or
#: nothing between members): a third cheaper to check, so tried first.
_TIGHT_INT_ITEMS_RE = re.compile(r"\n?(?:<value><int>-?[0-9]{1,18}</int></value>\n?)*+")
#: Above this many characters, a run is first checked whole (in C, allocating nothing), so
#: a big run spoiled near its end costs little before the general path takes over.
_CHECK_FIRST = 1 << 15
_BARE_SCALAR = _scalar_pattern(capture=False)
_ITEMS_ONLY_RE = re.compile(rf"(?:{_S}{_BARE_SCALAR})*+{_S}")
_MEMBERS_ONLY_RE = re.compile(
    rf"(?:{_S}<member>{_S}<name>{_TEXT}</name>{_S}{_BARE_SCALAR}{_S}</member>)*+{_S}"
)
#: The numbers of a run of plain int items (a literal first: the search skips ahead in C).
_INT_TEXT_RE = re.compile(r"<int>([^<]*)</int>")

_DECL = (
    r"(?:<\?xml[ \t\r\n]++version[ \t\r\n]*+=[ \t\r\n]*+(?:'1\.0'|\"1\.0\")"
    r"(?:[ \t\r\n]++encoding[ \t\r\n]*+=[ \t\r\n]*+(?:'[uU][tT][fF]-8'|\"[uU][tT][fF]-8\"))?+"
    r"[ \t\r\n]*+\?>)?"
)
_CALL_HEAD = re.compile(
    rf"{_DECL}{_S}<methodCall>{_S}<methodName>({_TEXT})</methodName>{_S}<params>"
)
_CALL_TAIL = re.compile(rf"{_S}</params>{_S}</methodCall>{_S}")
_RESPONSE_HEAD = re.compile(rf"{_DECL}{_S}<methodResponse>{_S}<params>")
_RESPONSE_TAIL = re.compile(rf"{_S}</params>{_S}</methodResponse>{_S}")
#: The most common response of all: one scalar, checked whole in one call.
_SCALAR_RESPONSE = re.compile(
    rf"{_DECL}{_S}<methodResponse>{_S}<params>{_S}<param>{_S}{_SCALAR}{_S}</param>{_S}"
    rf"</params>{_S}</methodResponse>{_S}"
)
_PARAM_SCALAR = re.compile(rf"{_S}<param>{_S}{_SCALAR}{_S}</param>")
_PARAM_ARRAY = re.compile(rf"{_S}<param>{_S}<value>{_S}<array>{_S}<data>")
_ARRAY_END = re.compile(rf"</data>{_S}</array>{_S}</value>{_S}</param>")
_PARAM_STRUCT = re.compile(rf"{_S}<param>{_S}<value>{_S}<struct>")
_STRUCT_END = re.compile(rf"</struct>{_S}</value>{_S}</param>")

_I8_MIN, _I8_MAX = -(2**63), 2**63 - 1


def _unescape(s: str) -> str:
    # "&amp;" last, so "&amp;lt;" gives "&lt;".
    return (
        s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&amp;", "&")
    )


class _Miss(Exception):
    """A value the fast path leaves to the general one (its error message is the exact one)."""


def _scalar(num: str, string: str, boolean: str, double: str, nil: str, untyped: str) -> Any:
    if num:
        value = int(num)
        if not _I8_MIN <= value <= _I8_MAX:
            raise _Miss
        return value
    if boolean:
        return boolean.strip() == "1"
    if double:  # its syntax was checked by the grammar
        real = float(double)
        if math.isinf(real):
            raise _Miss
        return real
    if nil:
        return None
    s = string or untyped
    if "&" in s:
        return _unescape(s)
    return s


def _items(text: str, start: int, end: int) -> list[Any] | None:
    """The array members in ``text[start:end]``, or None if they are not in the grammar."""
    if (
        _TIGHT_INT_ITEMS_RE.fullmatch(text, start, end) is not None
        or _INT_ITEMS_RE.fullmatch(text, start, end) is not None
    ):
        return list(map(int, _INT_TEXT_RE.findall(text, start, end)))
    if end - start > _CHECK_FIRST and _ITEMS_ONLY_RE.fullmatch(text, start, end) is None:
        return None
    out: list[Any] = []
    append = out.append
    for _tag, num, string, boolean, double, nil, untyped, blank, junk in _ITEMS_RE.findall(
        text, start, end
    ):
        if num:
            i = int(num)
            if not _I8_MIN <= i <= _I8_MAX:
                return None
            append(i)
        elif boolean or double or nil:
            append(_scalar(num, string, boolean, double, nil, untyped))
        elif junk:
            return None
        elif not blank:
            value = string or untyped
            append(_unescape(value) if "&" in value else value)
    return out


def _members(text: str, start: int, end: int) -> dict[str, Any] | None:
    """The struct members in ``text[start:end]``, or None if they are not in the grammar."""
    if end - start > _CHECK_FIRST and _MEMBERS_ONLY_RE.fullmatch(text, start, end) is None:
        return None
    out: dict[str, Any] = {}
    for name, _tag, num, string, boolean, double, nil, untyped, blank, junk in _MEMBERS_RE.findall(
        text, start, end
    ):
        if num:
            value: Any = int(num)
            if not _I8_MIN <= value <= _I8_MAX:
                return None
        elif boolean or double or nil:
            value = _scalar(num, string, boolean, double, nil, untyped)
        elif junk:
            return None
        elif blank:
            continue
        else:
            value = string or untyped
            if "&" in value:
                value = _unescape(value)
        out[_unescape(name) if "&" in name else name] = value
    return out


def _decode(data: bytes) -> str | None:
    if type(data) is not bytes or len(data) > _MAX_BODY:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _params(text: str, pos: int, tail: re.Pattern[str], max_depth: int) -> list[Any] | None:
    """The params from ``pos`` (just after ``<params>``) to the end, or None."""
    params: list[Any] = []
    while True:
        if tail.fullmatch(text, pos) is not None:
            return params
        m = _PARAM_SCALAR.match(text, pos)
        if m is not None:
            params.append(_scalar(*m.groups("")[1:]))
            pos = m.end()
            continue
        if max_depth < 1:
            return None
        m = _PARAM_ARRAY.match(text, pos)
        if m is not None:
            close = text.find("</data>", m.end())
            if close < 0:
                return None
            items = _items(text, m.end(), close)
            m = _ARRAY_END.match(text, close) if items is not None else None
            if m is None:
                return None
            params.append(items)
            pos = m.end()
            continue
        m = _PARAM_STRUCT.match(text, pos)
        if m is not None:
            close = text.find("</struct>", m.end())
            if close < 0:
                return None
            members = _members(text, m.end(), close)
            m = _STRUCT_END.match(text, close) if members is not None else None
            if m is None:
                return None
            params.append(members)
            pos = m.end()
            continue
        return None


def loads_call(data: bytes, max_depth: int) -> Any:
    """``(method, params)`` of a call in the fast grammar, else ``MISS``."""
    text = _decode(data)
    if text is None:
        return MISS
    head = _CALL_HEAD.match(text)
    if head is None:
        return MISS
    method = head[1]
    if "&" in method:
        method = _unescape(method)
    method = method.strip()
    if not method:
        return MISS
    try:
        params = _params(text, head.end(), _CALL_TAIL, max_depth)
    except _Miss:
        return MISS
    if params is None:
        return MISS
    return method, params


def loads_response(data: bytes, max_depth: int) -> Any:
    """The value of a one-param response in the fast grammar, else ``MISS``."""
    text = _decode(data)
    if text is None:
        return MISS
    m = _SCALAR_RESPONSE.fullmatch(text)
    if m is not None:
        try:
            return _scalar(*m.groups("")[1:])
        except _Miss:
            return MISS
    head = _RESPONSE_HEAD.match(text)
    if head is None:
        return MISS
    try:
        params = _params(text, head.end(), _RESPONSE_TAIL, max_depth)
    except _Miss:
        return MISS
    if params is None or len(params) != 1:
        return MISS
    return params[0]
