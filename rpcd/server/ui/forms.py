"""The console's untrusted inputs, parsed in linear time within bounds.

A form body (``application/x-www-form-urlencoded``) becomes at most ``MAX_FIELDS`` fields,
each value at most ``MAX_VALUE_CHARS`` characters, only the names a form expects; a query
value (a filter, a page number) is bounded the same way. Anything else is a ``FormError``
whose text says what is wrong, shown to the user as a 400 page.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qsl

__all__ = [
    "MAX_FIELDS",
    "MAX_FILTER_CHARS",
    "MAX_VALUE_CHARS",
    "FormError",
    "filter_text",
    "page_number",
    "parse_form",
]

#: Fields one console form may send (the sign-in form has the most: five).
MAX_FIELDS = 8
#: Characters of one form value (a token, a password, a CSRF token).
MAX_VALUE_CHARS = 1024
#: Characters of a filter typed into a page's filter box.
MAX_FILTER_CHARS = 100
#: Digits of a page number.
MAX_PAGE_DIGITS = 6


class FormError(ValueError):
    """A form or query value the console refuses; the message is for the user."""


def parse_form(body: bytes, allowed: Collection[str]) -> dict[str, str]:
    """The fields of a urlencoded ``body``; a name outside ``allowed``, a repeated name, too
    many fields, an over-long value or bytes that are not UTF-8 are a ``FormError``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("the form is not UTF-8 text") from None
    if text.count("&") >= MAX_FIELDS:
        raise FormError(f"the form has more than {MAX_FIELDS} fields")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise FormError(f"the form has more than {MAX_FIELDS} fields") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise FormError(f"unexpected form field {name[:40]!r}")
        if name in fields:
            raise FormError(f"form field {name!r} given twice")
        if len(value) > MAX_VALUE_CHARS:
            raise FormError(f"form field {name!r} is longer than {MAX_VALUE_CHARS} characters")
        fields[name] = value
    return fields


def filter_text(value: str | None, what: str) -> str:
    """A filter box's text, stripped; over ``MAX_FILTER_CHARS`` characters is a ``FormError``."""
    if value is None:
        return ""
    if len(value) > MAX_FILTER_CHARS:
        raise FormError(f"the {what} filter is longer than {MAX_FILTER_CHARS} characters")
    return value.strip()


def page_number(value: str | None, what: str = "page") -> int:
    """A 1-based page number; anything but a short run of digits ≥ 1 is a ``FormError``."""
    if value is None or value == "":
        return 1
    if len(value) > MAX_PAGE_DIGITS or not value.isascii() or not value.isdigit():
        raise FormError(f"{what} must be a whole number from 1 (got {value[:20]!r})")
    number = int(value)
    if number < 1:
        raise FormError(f"{what} must be a whole number from 1 (got {value[:20]!r})")
    return number
