"""Number texts from the network: checked in one linear pass, bounded before conversion.

An XML-RPC ``<int>``/``<double>``/``<dateTime.iso8601>`` text or a JSON number arrives before
anyone is authenticated, so accepting or refusing it must cost time linear in its length,
whatever it holds. Two rules give that:

* Every pattern here is unambiguous: each run is possessive (``++``, ``*+``, ``?+``) and is
  followed by a character it cannot take, so the regex engine never tries a second way to
  split a digit run (``\\d+\\.?\\d*`` can split ``1111`` in n ways, and tries all of them
  before refusing ``1111x``).
* A text longer than ``max_number_chars`` (surrounding XML whitespace not counted) is refused
  before anything converts it, as CPython refuses ``int()`` of more than
  ``sys.int_info.default_max_str_digits`` (4,300) digits. The default is that same figure:
  far above any real number (a double written with ``%f`` takes at most 317 characters).
"""

from __future__ import annotations

import re
from typing import Final

from rpcd.errors import LimitExceeded

__all__ = [
    "DEFAULT_MAX_NUMBER_CHARS",
    "MIN_MAX_NUMBER_CHARS",
    "XML_SPACE",
    "canonical_int",
    "check_length",
    "datetime_match",
    "is_double",
]

#: Default of the ``max_number_chars`` setting and of the codecs' keyword argument.
DEFAULT_MAX_NUMBER_CHARS: Final = 4300
#: The setting's floor. The XML-RPC fast path takes doubles of at most 72 characters and
#: ints of at most 20, and JSON numbers under 39 characters skip the checking parse: below
#: this floor those paths would accept texts the checked paths refuse.
MIN_MAX_NUMBER_CHARS: Final = 100

#: The whitespace XML 1.0 allows around a value (``\f`` and ``\v`` are not XML characters).
XML_SPACE: Final = " \t\n\r"

_DOUBLE = re.compile(r"[+-]?+(?:[0-9]++(?:\.[0-9]*+)?+|\.[0-9]++)(?:[eE][+-]?+[0-9]++)?+")
_DATETIME = re.compile(
    r"([0-9]{4})-?+([0-9]{2})-?+([0-9]{2})T([0-9]{2}):?+([0-9]{2}):?+([0-9]{2})"
    r"(?:[.,]([0-9]++))?+(Z|[+-][0-9]{2}(?::?+[0-9]{2})?+)?+"
)


def check_length(text: str, limit: int) -> None:
    """Refuse a number text (already stripped) longer than ``limit`` characters."""
    if len(text) > limit:
        raise LimitExceeded(
            f"a number of {len(text)} characters is over the limit of {limit} "
            "(setting max_number_chars): send at most that many"
        )


def is_double(text: str) -> bool:
    """``text`` (stripped) is a decimal double: sign, digits with one optional dot, exponent."""
    return _DOUBLE.fullmatch(text) is not None


def canonical_int(text: str) -> str | None:
    """``text`` (stripped) without its ``+`` and leading zeros (``"-0042"`` -> ``"-42"``) if it
    is an ASCII integer, ``[+-]?[0-9]+``, else None: a caller can count its digits before
    anything converts it."""
    sign = "-" if text[:1] == "-" else ""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return sign + (digits.lstrip("0") or "0")


def datetime_match(text: str) -> re.Match[str] | None:
    """The groups of an XML-RPC dateTime (stripped): year, month, day, hour, minute, second,
    fraction digits, zone (``Z``, ``+01``, ``+0100`` or ``+01:00``)."""
    return _DATETIME.fullmatch(text)
