"""REST wire codec: request bodies and response decoding. Pure functions, no I/O.

Requests
--------
``php_form_pairs`` / ``php_urlencode``
    Form and query-string encoding with PHP bracket notation, which Moodle's REST server
    expects (it reads ``$_GET``/``$_POST`` only, never a JSON body)::

        {"field": "id", "values": [1, 2]}          -> field=id, values[0]=1, values[1]=2
        {"criteria": [{"key": "id", "value": 5}]}  -> criteria[0][key]=id, criteria[0][value]=5
        {"options": {"ids": [3]}}                  -> options[ids][0]=3

    Scalars: ``str`` unchanged; ``bool`` -> ``"1"``/``"0"`` (PHP casts ``"1"``/``"0"`` to
    true/false, and Moodle's PARAM_BOOL accepts exactly these); ``None`` -> ``""``;
    ``int`` -> decimal; finite ``float``/``Decimal`` -> their shortest decimal text.
    ``bytes`` and every other type are refused with ``TypeError`` (decode or base64 them
    first); NaN and infinities with ``ValueError``. An **empty list or dict emits nothing**:
    PHP form encoding cannot express an empty array, so the remote sees the parameter as
    missing (Moodle then applies its default, or reports the parameter as missing).
    Nested keys may be ``str`` or ``int`` and may not be empty or contain ``[``/``]``;
    a top-level key may contain brackets, so pre-flattened names (``"values[0]"``) pass.

``json_body``
    Compact UTF-8 JSON; tuples become arrays; ``bytes``, NaN and infinities are refused.

``xml_body``
    A small documented XML shape for REST services that take XML::

        <?xml version="1.0" encoding="UTF-8"?>
        <request>
          <function>core_user_get_users</function>
          <params>
            <criteria><item><key>id</key><value>5</value></item></criteria>
            <flag>1</flag>
            <note null="true"/>
          </params>
        </request>

    (shown indented; the bytes carry no whitespace between elements). A mapping becomes
    child elements named by its keys (which must be XML NCNames, else ``ValueError``), a
    list becomes one ``<item>`` child per element (so empty and one-element lists keep
    their shape), ``None`` an empty element with ``null="true"``; scalars are written as
    for the form encoding (``bool`` -> ``1``/``0``, a valid ``xsd:boolean`` as well).

Responses
---------
``decode_response(content_type, body)`` picks the decoder from the media type (parameters
such as ``charset`` are ignored): ``application/json``, ``text/json``, ``*/*+json`` -> JSON;
``application/xml``, ``text/xml``, ``*/*+xml`` -> XML; anything else is sniffed: a body
starting (after whitespace / BOM) with ``{`` or ``[`` is JSON, with ``<`` XML, else the
UTF-8 text is returned as a ``str``.

JSON: Moodle reports errors with HTTP 200 as ``{"exception", "errorcode", "message",
"debuginfo"?}``; that shape raises ``RemoteFault(APPLICATION_ERROR, message,
errorcode=errorcode)`` (``debuginfo`` is deliberately not carried).

XML goes through ``xmlguard`` (the encoding decided by rpcd from an allow-list; a DTD, entity
declaration or other ``<!`` declaration refused with one text) and is parsed with defusedxml
(DTDs, entities and external references refused again). Then:

* Moodle's format: ``<RESPONSE>`` holding one ``<VALUE>`` (-> ``str``, ``null="null"`` ->
  ``None``), ``<SINGLE>`` (-> ``dict`` of ``<KEY name="...">`` -> value) or ``<MULTIPLE>``
  (-> ``list``), nested arbitrarily; an empty ``<RESPONSE/>`` or ``<KEY/>`` -> ``None``.
  Values stay strings: Moodle's XML carries no types.
* ``<EXCEPTION class="..."><ERRORCODE/><MESSAGE/><DEBUGINFO/></EXCEPTION>`` raises
  ``RemoteFault(APPLICATION_ERROR, MESSAGE, errorcode=ERRORCODE)``.
* Any other XML: the root element is converted and returned (its own tag is dropped):
  an element with only text -> that text (``""`` when empty); an element with children
  and/or attributes -> ``dict`` of child local name -> converted child, a repeated child
  name -> ``list`` (so one occurrence is a scalar, two or more a list), attributes under
  ``"@name"``, and non-blank text next to children or attributes under ``"#text"``.
  Namespaces are dropped (local names only); comments, processing instructions and
  text between children are ignored.

Bounds and errors: nesting deeper than ``max_depth`` (containers for JSON, elements for
XML) raises ``LimitExceeded``; bytes that are not UTF-8 / well-formed raise ``ParseError``
with a short message that quotes at most a few dozen characters of the body.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from rpcd.codecs import xmlguard
from rpcd.errors import APPLICATION_ERROR, LimitExceeded, ParseError, RemoteFault

__all__ = [
    "MAX_DEPTH",
    "decode_response",
    "json_body",
    "parse_xml",
    "php_form_pairs",
    "php_urlencode",
    "xml_body",
]

MAX_DEPTH = 64
"""Default nesting bound for decoding (and for encoding, against cyclic input)."""

_SNIPPET = 40

# --------------------------------------------------------------------------- helpers


def _snippet(body: bytes | str) -> str:
    """At most ``_SNIPPET`` characters of a body, for error messages."""
    head = body[:_SNIPPET]
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    more = "..." if len(body) > _SNIPPET else ""
    return repr(text) + more


def _path(prefix: str, key: object) -> str:
    return f"{prefix}[{key}]" if prefix else str(key)


def _scalar_text(value: Any, path: str, *, true: str = "1", false: str = "0") -> str:
    """Text of a scalar for the form / XML bodies; never quotes the value in an error."""
    if isinstance(value, str):
        return str.__str__(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return true if value else false
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"parameter {path!r}: NaN and infinities cannot be sent")
        return repr(float(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"parameter {path!r}: NaN and infinities cannot be sent")
        return format(value, "f")
    if isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(
            f"parameter {path!r} is {type(value).__name__}: decode it to str (or base64 it) first"
        )
    raise TypeError(f"parameter {path!r}: cannot encode a {type(value).__name__}")


def _check_depth(depth: int, max_depth: int, path: str) -> None:
    if depth > max_depth:
        raise LimitExceeded(f"parameter {path!r} is nested deeper than {max_depth} levels")


# ------------------------------------------------------------------------ form / query


def php_form_pairs(
    params: Mapping[str, Any], *, max_depth: int = MAX_DEPTH
) -> list[tuple[str, str]]:
    """Flatten ``params`` into ``(name, value)`` pairs in PHP bracket notation.

    Order follows the mappings' iteration order and list order. See the module docstring
    for the scalar rules; an empty list or dict emits no pair at all.
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"REST parameters must be a mapping, not {type(params).__name__}")
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise TypeError(f"parameter names must be str, not {type(key).__name__}")
        name = str(key)
        if not name:
            raise ValueError("parameter names must not be empty")
        _flatten(pairs, name, value, 1, max_depth)
    return pairs


def _flatten(pairs: list[tuple[str, str]], name: str, value: Any, depth: int, limit: int) -> None:
    if isinstance(value, Mapping):
        _check_depth(depth, limit, name)
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise TypeError(f"parameter {name!r}: keys must be str or int")
            text = str(key)
            if not text or "[" in text or "]" in text:
                raise ValueError(f"parameter {name!r}: key {text!r} is empty or has a bracket")
            _flatten(pairs, f"{name}[{text}]", item, depth + 1, limit)
    elif isinstance(value, list | tuple):
        _check_depth(depth, limit, name)
        for index, item in enumerate(value):
            _flatten(pairs, f"{name}[{index}]", item, depth + 1, limit)
    else:
        pairs.append((name, _scalar_text(value, name)))


def php_urlencode(params: Mapping[str, Any], *, max_depth: int = MAX_DEPTH) -> str:
    """``application/x-www-form-urlencoded`` text of :func:`php_form_pairs`."""
    return urllib.parse.urlencode(php_form_pairs(params, max_depth=max_depth))


# ------------------------------------------------------------------------------- JSON


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite():
        return float(value)
    raise TypeError(f"cannot encode a {type(value).__name__} as JSON")


def json_body(params: Any) -> bytes:
    """Compact UTF-8 JSON of ``params``."""
    try:
        text = json.dumps(
            params,
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
            default=_json_default,
        )
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("parameters contain a lone surrogate, not valid UTF-8") from None
    except RecursionError:
        raise LimitExceeded("parameters are nested too deeply (or cyclic)") from None
    except ValueError as exc:
        # json's own messages ("Circular reference detected", "Out of range float values
        # are not JSON compliant") name no value.
        raise ValueError(f"cannot encode parameters as JSON: {exc}") from None


# -------------------------------------------------------------------------- XML shared

_NAME_START = (
    "A-Z_a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_NCNAME = re.compile(f"[{_NAME_START}][{_NAME_START}\\-.0-9\u00b7\u0300-\u036f\u203f-\u2040]*")
_XML_INVALID = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def check_ncname(name: object, what: str = "element name") -> str:
    """``name`` if it is a valid XML NCName (no colon), else ``TypeError``/``ValueError``."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be str, not {type(name).__name__}")
    if not _NCNAME.fullmatch(name):
        raise ValueError(f"{what} {name[:_SNIPPET]!r} is not a valid XML name")
    return name


def xml_text(text: str, path: str = "") -> str:
    """Escape character data; ``\\r`` as ``&#13;`` so it survives parsing.

    Characters XML 1.0 cannot carry at all (NUL, most C0 controls, lone surrogates) are a
    ``ValueError`` naming ``path`` only, never the value.
    """
    if _XML_INVALID.search(text):
        where = f"parameter {path!r}" if path else "text"
        raise ValueError(f"{where} contains a character XML 1.0 cannot represent")
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def xml_attr(text: str, path: str = "") -> str:
    """Escape an attribute value (double-quoted), keeping whitespace characters exact."""
    return xml_text(text, path).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")


class _DepthLimitedBuilder:
    """A TreeBuilder target that refuses elements nested deeper than ``max_depth``."""

    def __init__(self, max_depth: int) -> None:
        self._builder = ET.TreeBuilder()
        self._depth = 0
        self._max = max_depth

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        self._depth += 1
        if self._depth > self._max:
            raise LimitExceeded(f"XML is nested deeper than {self._max} elements")
        return self._builder.start(tag, attrs)

    def end(self, tag: str) -> ET.Element:
        self._depth -= 1
        return self._builder.end(tag)

    def data(self, data: str) -> None:
        self._builder.data(data)

    def close(self) -> ET.Element:
        return self._builder.close()


def parse_xml(body: bytes, *, max_depth: int = MAX_DEPTH) -> ET.Element:
    """Parse untrusted XML: ``xmlguard`` first, then defusedxml.

    ``xmlguard`` decides the encoding (UTF-8, UTF-16 with a BOM, or an allowed single-byte
    one), hands over UTF-8 and refuses any ``<!`` but a comment or CDATA; expat is told the
    document is UTF-8, and defusedxml still refuses DTDs, entities and external references.
    Every refused declaration gets the one text ``xmlguard.REFUSED``. Raises ``ParseError``
    (short message, no more than a few dozen characters of the body) or ``LimitExceeded``
    when elements nest deeper than ``max_depth``.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"XML body must be bytes, not {type(body).__name__}")
    data = xmlguard.to_utf8(bytes(body), utf16=True)
    parser = DefusedXMLParser(
        target=_DepthLimitedBuilder(max_depth),
        encoding="utf-8",
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    try:
        parser.feed(data)
        root: ET.Element = parser.close()
    except LimitExceeded:
        raise
    except DefusedXmlException:  # DTD, entity, external reference: one text for all
        raise ParseError(xmlguard.REFUSED) from None
    except ET.ParseError as exc:
        raise ParseError(f"not well-formed XML ({exc}); starts {_snippet(body)}") from None
    except (ValueError, LookupError, UnicodeError) as exc:
        # e.g. an unknown encoding in the XML declaration
        raise ParseError(
            f"unreadable XML ({type(exc).__name__}); starts {_snippet(body)}"
        ) from None
    return root


def local_name(tag: str) -> str:
    """An element's tag without its namespace."""
    return tag.rpartition("}")[2]


# -------------------------------------------------------------------------------- XML body


def xml_body(function: str, params: Mapping[str, Any], *, max_depth: int = MAX_DEPTH) -> bytes:
    """The ``<request><function/><params/></request>`` document (module docstring)."""
    if not isinstance(function, str):
        raise TypeError(f"function name must be str, not {type(function).__name__}")
    if not isinstance(params, Mapping):
        raise TypeError(f"REST parameters must be a mapping, not {type(params).__name__}")
    out = ['<?xml version="1.0" encoding="UTF-8"?><request><function>']
    out.append(xml_text(function, "function"))
    out.append("</function><params>")
    _xml_children(out, params, "", 1, max_depth)
    out.append("</params></request>")
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:  # pragma: no cover - lone surrogates are refused earlier
        raise ValueError("parameters are not valid Unicode") from None


def _xml_children(
    out: list[str], mapping: Mapping[Any, Any], prefix: str, depth: int, limit: int
) -> None:
    for key, value in mapping.items():
        path = _path(prefix, key)
        _xml_element(out, check_ncname(key, f"parameter name {path!r}"), value, path, depth, limit)


def _xml_element(out: list[str], name: str, value: Any, path: str, depth: int, limit: int) -> None:
    if value is None:
        out.append(f'<{name} null="true"/>')
    elif isinstance(value, Mapping):
        _check_depth(depth, limit, path)
        out.append(f"<{name}>")
        _xml_children(out, value, path, depth + 1, limit)
        out.append(f"</{name}>")
    elif isinstance(value, list | tuple):
        _check_depth(depth, limit, path)
        out.append(f"<{name}>")
        for index, item in enumerate(value):
            _xml_element(out, "item", item, _path(path, index), depth + 1, limit)
        out.append(f"</{name}>")
    else:
        out.append(f"<{name}>{xml_text(_scalar_text(value, path), path)}</{name}>")


# ---------------------------------------------------------------------------- decoding

_JSON_TYPES = frozenset({"application/json", "text/json"})
_XML_TYPES = frozenset({"application/xml", "text/xml"})


def _media_type(content_type: str | None) -> str:
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def decode_response(content_type: str | None, body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode a REST response body to Python, raising ``RemoteFault`` for Moodle errors."""
    media = _media_type(content_type)
    if media in _JSON_TYPES or media.endswith("+json"):
        return _decode_json(body, max_depth)
    if media in _XML_TYPES or media.endswith("+xml"):
        return _decode_xml(body, max_depth)
    head = body.lstrip(b"\xef\xbb\xbf").lstrip()[:1]
    if head in (b"{", b"["):
        return _decode_json(body, max_depth)
    if head == b"<":
        return _decode_xml(body, max_depth)
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError(
            f"response ({media or 'no content type'}) is not UTF-8 text; starts {_snippet(body)}"
        ) from None


# ---- JSON


class _NonFinite(ValueError):
    """A JSON number that is not a finite double (``1e999``, ``NaN``, ``Infinity``)."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(f"a number out of range ({_short_text(text)})")
    return value


def _no_constant(name: str) -> float:
    raise _NonFinite(f"the literal {name}")


def _short_text(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}…"


def _decode_json(body: bytes, max_depth: int) -> Any:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError(f"JSON response is not UTF-8; starts {_snippet(body)}") from None
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise LimitExceeded(f"JSON is nested deeper than {max_depth} levels") from None
    except _NonFinite as exc:
        raise ParseError(f"JSON response holds {exc}, which JSON does not allow") from None
    except ValueError as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "invalid"
        raise ParseError(f"not valid JSON ({msg}); starts {_snippet(text)}") from None
    _json_depth(value, max_depth)
    if (
        isinstance(value, dict)
        and "exception" in value
        and ("errorcode" in value or "message" in value)
    ):
        errorcode = value.get("errorcode")
        message = value.get("message")
        raise RemoteFault(
            APPLICATION_ERROR,
            str(message if message is not None else errorcode or value["exception"]),
            errorcode=None if errorcode is None else str(errorcode),
        )
    return value


def _json_depth(value: Any, max_depth: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise LimitExceeded(f"JSON is nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


# ---- XML


def _decode_xml(body: bytes, max_depth: int) -> Any:
    root = parse_xml(body, max_depth=max_depth)
    if root.tag == "RESPONSE":
        return _moodle_response(root)
    if root.tag == "EXCEPTION":
        raise _moodle_exception(root)
    return xml_to_python(root)


def _moodle_exception(root: ET.Element) -> RemoteFault:
    errorcode = root.findtext("ERRORCODE")
    message = root.findtext("MESSAGE")
    if not message:
        message = errorcode or root.get("class") or "remote exception"
    return RemoteFault(APPLICATION_ERROR, message, errorcode=errorcode or None)


def _only_child(element: ET.Element) -> ET.Element | None:
    children = list(element)
    if len(children) > 1:
        raise ParseError(f"Moodle <{element.tag}> holds {len(children)} elements, expected one")
    return children[0] if children else None


def _moodle_response(root: ET.Element) -> Any:
    child = _only_child(root)
    return None if child is None else _moodle_value(child)


def _moodle_value(element: ET.Element) -> Any:
    tag = element.tag
    if element.get("null") == "null":
        return None
    if tag == "VALUE":
        return element.text or ""
    if tag == "MULTIPLE":
        return [_moodle_value(child) for child in element]
    if tag == "SINGLE":
        result: dict[str, Any] = {}
        for key in element:
            name = key.get("name")
            if key.tag != "KEY" or name is None:
                raise ParseError(f"Moodle <SINGLE> holds <{key.tag[:_SNIPPET]}>, expected <KEY>")
            child = _only_child(key)
            result[name] = None if child is None else _moodle_value(child)
        return result
    raise ParseError(f"unexpected <{tag[:_SNIPPET]}> in a Moodle response")


def add_child(result: dict[str, Any], name: str, value: Any) -> None:
    """Put a child element's value under its name: the second of a name makes a list."""
    if name not in result:
        result[name] = value
    elif isinstance(result[name], list):
        result[name].append(value)
    else:
        result[name] = [result[name], value]


def xml_to_python(element: ET.Element) -> Any:
    """The generic element conversion described in the module docstring."""
    children = list(element)
    attrs = element.attrib
    text = element.text or ""
    if not children and not attrs:
        return text
    result: dict[str, Any] = {f"@{local_name(name)}": value for name, value in attrs.items()}
    for child in children:
        add_child(result, local_name(child.tag), xml_to_python(child))
    if text.strip():
        result["#text"] = text
    return result
