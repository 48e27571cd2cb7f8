"""Mahara's rows as typed values, parsed within bounds.

A database row is untrusted input: every column is checked against the length Mahara's
``install.xml`` gives it (``char`` columns 255 or less, ``text small`` 65,535), integers are
bounded and booleans are 0 or 1, so a damaged or hostile row costs time linear in its size and
becomes a ``RowError`` that names the row and the column, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: ``text small`` in Mahara's XMLDB is a MySQL TEXT: at most 65,535 bytes.
TEXT_SMALL = 65_535
#: Longest integer text accepted (Mahara's int columns are LENGTH 10).
INT_DIGITS = 10
#: Most lines in ``parameters`` (one ``key=value`` per line).
MAX_PARAMETER_LINES = 256

# Column -> (kind, limit, nullable). Kinds: "str", "int", "bool".
CONNECTION_COLUMNS: dict[str, tuple[str, int, bool]] = {
    "id": ("int", INT_DIGITS, False),
    "name": ("str", 255, False),
    "plugintype": ("str", 255, False),
    "pluginname": ("str", 255, False),
    "priority": ("int", INT_DIGITS, False),
    "class": ("str", 255, False),
    "connection": ("str", 255, False),
    "institution": ("str", 255, False),
    "url": ("str", TEXT_SMALL, False),
    "username": ("str", 255, True),
    "password": ("str", 255, True),
    "consumer": ("str", 255, True),
    "secret": ("str", 255, True),
    "token": ("str", 255, True),
    "useheader": ("bool", 1, False),
    "header": ("str", 255, True),
    "certificate": ("str", TEXT_SMALL, True),
    "parameters": ("str", TEXT_SMALL, True),
    "type": ("str", 10, False),
    "authtype": ("str", 10, False),
    "json": ("bool", 1, False),
    "enable": ("bool", 1, False),
    "isfatal": ("bool", 1, False),
    "version": ("str", 50, True),
}
CONFIG_COLUMNS: dict[str, tuple[str, int, bool]] = {
    "id": ("int", INT_DIGITS, False),
    "connection": ("int", INT_DIGITS, False),
    "field": ("str", 100, False),
    "value": ("str", TEXT_SMALL, False),
}
INSTITUTION_COLUMNS: dict[str, tuple[str, int, bool]] = {
    "name": ("str", 255, False),
    "displayname": ("str", 255, False),
}


class RowError(ValueError):
    """A row that cannot be read: which table, which row, which column, and why."""

    def __init__(self, table: str, row: str, column: str, problem: str) -> None:
        super().__init__(f"{table} row {row}: column `{column}` {problem}")
        self.table, self.row, self.column = table, row, column


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    """One row of ``client_connections_institution``."""

    id: int
    name: str
    plugintype: str
    pluginname: str
    priority: int
    class_: str
    connection: str
    institution: str
    url: str
    username: str
    password: str
    consumer: str
    secret: str
    token: str
    useheader: bool
    header: str
    certificate: str
    parameters: str
    type: str
    authtype: str
    json: bool
    enable: bool
    isfatal: bool
    version: str


@dataclass(frozen=True, slots=True)
class ConfigRow:
    """One row of ``client_connections_config``: an extra field of one connection."""

    id: int
    connection: int
    field: str
    value: str


@dataclass(frozen=True, slots=True)
class InstitutionRow:
    """One row of ``institution`` (only the columns the import needs)."""

    name: str
    displayname: str


def _text(value: object, limit: int, fail: _Fail) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) > 4 * limit:
            fail(f"is {len(raw):,} bytes, over the limit of {limit:,} characters")
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            fail(f"is not UTF-8 (byte {exc.start})")
    if not isinstance(value, str):
        fail(f"should be text, not {type(value).__name__}")
    assert isinstance(value, str)
    if len(value) > limit:
        fail(f"is {len(value):,} characters, over the limit of {limit:,}")
    if "\x00" in value:
        fail("holds a NUL character")
    return value


def _integer(value: object, fail: _Fail) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if abs(value) >= 10**INT_DIGITS:
            fail(f"is {value}, longer than {INT_DIGITS} digits")
        return value
    if isinstance(value, bytes | bytearray | str):
        text = value.decode("ascii", "replace") if isinstance(value, bytes | bytearray) else value
        digits = text.strip().removeprefix("-")
        if not (0 < len(digits) <= INT_DIGITS and digits.isascii() and digits.isdigit()):
            fail(f"should be a whole number of at most {INT_DIGITS} digits")
        return int(text.strip())
    fail(f"should be a whole number, not {type(value).__name__}")
    raise AssertionError  # unreachable: fail raises


def _flag(value: object, fail: _Fail) -> bool:
    number = _integer(value, fail)
    if number not in (0, 1):
        fail(f"is {number}; Mahara stores 0 or 1 here")
    return number == 1


class _Fail:
    def __init__(self, table: str, row: str, column: str) -> None:
        self.table, self.row, self.column = table, row, column

    def __call__(self, problem: str) -> None:
        raise RowError(self.table, self.row, self.column, problem)


def _parse(
    table: str, raw: Mapping[str, object], columns: Mapping[str, tuple[str, int, bool]]
) -> dict[str, object]:
    row_id = raw.get("id", raw.get("name", "?"))
    label = str(row_id)[:40] if isinstance(row_id, int | str) else "?"
    out: dict[str, object] = {}
    for column, (kind, limit, nullable) in columns.items():
        fail = _Fail(table, label, column)
        if column not in raw:
            fail("is missing from the query result")
        value = raw[column]
        if value is None:
            if not nullable:
                fail("is NULL, which Mahara's schema does not allow")
            out[column] = "" if kind == "str" else 0
            continue
        if kind == "str":
            out[column] = _text(value, limit, fail)
        elif kind == "int":
            out[column] = _integer(value, fail)
        else:
            out[column] = _flag(value, fail)
    return out


def parse_connection(raw: Mapping[str, object]) -> ConnectionRow:
    """A ``client_connections_institution`` row, or a ``RowError``."""
    values = _parse("client_connections_institution", raw, CONNECTION_COLUMNS)
    values["class_"] = values.pop("class")
    return ConnectionRow(**values)  # type: ignore[arg-type]


def parse_config(raw: Mapping[str, object]) -> ConfigRow:
    """A ``client_connections_config`` row, or a ``RowError``."""
    return ConfigRow(**_parse("client_connections_config", raw, CONFIG_COLUMNS))  # type: ignore[arg-type]


def parse_institution(raw: Mapping[str, object]) -> InstitutionRow:
    """An ``institution`` row, or a ``RowError``."""
    return InstitutionRow(**_parse("institution", raw, INSTITUTION_COLUMNS))  # type: ignore[arg-type]


def parse_parameters(text: str, row: int) -> dict[str, str]:
    """Mahara's ``parameters``: one ``key=value`` per line, as its client reads them (a line
    without ``=`` after its first character is ignored there too)."""
    lines = text.splitlines()
    if len(lines) > MAX_PARAMETER_LINES:
        raise RowError(
            "client_connections_institution",
            str(row),
            "parameters",
            f"has {len(lines):,} lines, over the limit of {MAX_PARAMETER_LINES}",
        )
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and key:
            out[key] = value.strip()
    return out
