"""Read Mahara's connection tables from a live PostgreSQL or MySQL/MariaDB database.

The drivers are an optional extra (``pip install rpcd[import]``: psycopg 3, PyMySQL) and load
only here. Every query is bounded: at most ``max_rows`` rows per table are fetched (one more
is asked for, to tell "exactly the limit" from "over it"). The DSN's password never appears in
a message: errors name the database by ``redacted(dsn)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from rpcd.importers.rows import CONFIG_COLUMNS, CONNECTION_COLUMNS, INSTITUTION_COLUMNS

#: Default cap on the rows read from each table (``--max-rows``): with every text column at
#: its limit, 1,000 rows are about 200 MB; a Mahara site has tens of connections.
DEFAULT_MAX_ROWS = 1_000

SCHEMES = {
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "pgsql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}


def _select(columns: dict[str, tuple[str, int, bool]], table: str, order: str) -> str:
    """A SELECT that lets no text column bring more than its limit + 1 characters over the
    wire (PostgreSQL's text is unbounded): one more than the limit, so the parser can tell
    "at the limit" from "over it" and name the row."""
    parts = [
        f"SUBSTRING({name} FROM 1 FOR {limit + 1}) AS {name}" if kind == "str" else name
        for name, (kind, limit, _nullable) in columns.items()
    ]
    return f"SELECT {', '.join(parts)} FROM {{t}}{table} ORDER BY {order}"


CONNECTION_QUERY = _select(CONNECTION_COLUMNS, "client_connections_institution", "id")
CONFIG_QUERY = _select(CONFIG_COLUMNS, "client_connections_config", "id")
INSTITUTION_QUERY = _select(INSTITUTION_COLUMNS, "institution", "name")
SWITCH_QUERY = "SELECT value FROM {t}config WHERE field = 'webservice_requester_enabled'"


class SourceError(Exception):
    """The database could not be read; the message says why and never holds the password."""


class _Cursor(Protocol):
    description: Any

    def execute(self, query: str, /) -> Any: ...
    def fetchmany(self, size: int, /) -> Any: ...


@dataclass
class RawTables:
    """The rows as the driver returned them (column name -> value), not yet parsed."""

    connections: list[dict[str, object]] = field(default_factory=list)
    config: list[dict[str, object]] = field(default_factory=list)
    institutions: list[dict[str, object]] = field(default_factory=list)
    #: Mahara's master switch (``webservice_requester_enabled``); None when it is not set.
    switch: str | None = None


def redacted(dsn: str) -> str:
    """The DSN without its password (and without query parameters, which may hold one)."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit((parts.scheme, user + host, parts.path, "", ""))
    except ValueError:
        return "(unparsable DSN)"


def dialect(dsn: str) -> str:
    """``postgresql`` or ``mysql``, from the DSN's scheme."""
    scheme = dsn.partition("://")[0].lower()
    if not dsn.count("://") or scheme not in SCHEMES:
        raise SourceError(
            f"the DSN must start with postgresql://, postgres://, mysql:// or mariadb://, "
            f"not {redacted(dsn)!r}"
        )
    return SCHEMES[scheme]


@contextmanager
def _connect(dsn: str) -> Iterator[Any]:
    kind = dialect(dsn)
    if kind == "postgresql":
        try:
            import psycopg
        except ImportError:
            raise SourceError(_missing("psycopg")) from None
        url = "postgresql://" + dsn.partition("://")[2]
        try:
            conn = psycopg.connect(url, connect_timeout=10, autocommit=True)
        except psycopg.Error as exc:
            raise SourceError(_why(dsn, exc)) from None
        try:
            yield conn
        finally:
            conn.close()
        return
    try:
        import pymysql
    except ImportError:
        raise SourceError(_missing("PyMySQL")) from None
    parts = urlsplit(dsn)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    options: dict[str, Any] = {
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": unquote(parts.path.lstrip("/")),
        "charset": "utf8mb4",
        "connect_timeout": 10,
    }
    if "unix_socket" in query:
        options["unix_socket"] = query["unix_socket"]
    else:
        options["host"] = parts.hostname or "localhost"
        options["port"] = parts.port or 3306
    try:
        mconn = pymysql.connect(**options)
    except pymysql.MySQLError as exc:
        raise SourceError(_why(dsn, exc)) from None
    try:
        yield mconn
    finally:
        mconn.close()


def _missing(package: str) -> str:
    return (
        f"the {package} driver is not installed: pip install 'rpcd[import]' "
        "(psycopg 3 for PostgreSQL, PyMySQL for MySQL/MariaDB)"
    )


def _why(dsn: str, exc: BaseException) -> str:
    return f"cannot connect to {redacted(dsn)}: {_reason(dsn, exc)}"


def _reason(dsn: str, exc: BaseException) -> str:
    """The driver's first line of error text, the DSN's password hidden."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = urlsplit(dsn).password
    if password:
        text = text.replace(password, "(hidden)").replace(unquote(password), "(hidden)")
    return text[:300]


def _fetch(cursor: _Cursor, query: str, table: str, max_rows: int) -> list[dict[str, object]]:
    cursor.execute(query)
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchmany(max_rows + 1)
    if len(rows) > max_rows:
        raise SourceError(
            f"{table} has more than {max_rows:,} rows, the limit: pass --max-rows N to raise it"
        )
    return [dict(zip(names, row, strict=True)) for row in rows]


def read_tables(dsn: str, *, prefix: str = "", max_rows: int = DEFAULT_MAX_ROWS) -> RawTables:
    """The three tables and the master switch of the Mahara database at ``dsn``."""
    if prefix and not (prefix.replace("_", "").isalnum() and prefix.isascii()):
        raise SourceError(f"--table-prefix may hold letters, digits and _ only, not {prefix!r}")
    tables = RawTables()
    with _connect(dsn) as conn:
        cursor = conn.cursor()
        step = "client_connections_institution"
        try:
            tables.connections = _fetch(cursor, CONNECTION_QUERY.format(t=prefix), step, max_rows)
            step = "client_connections_config"
            tables.config = _fetch(cursor, CONFIG_QUERY.format(t=prefix), step, max_rows)
            step = "institution"
            tables.institutions = _fetch(cursor, INSTITUTION_QUERY.format(t=prefix), step, max_rows)
            step = "config"
            switch = _fetch(cursor, SWITCH_QUERY.format(t=prefix), step, 1)
        except SourceError:
            raise
        except Exception as exc:  # the driver's own error types differ; say which table
            raise SourceError(
                f"reading {prefix}{step} from {redacted(dsn)} failed: {_reason(dsn, exc)}"
                " (is this a Mahara 16.10+ database? a table prefix: --table-prefix)"
            ) from None
    value = switch[0]["value"] if switch else None
    tables.switch = (
        value.decode() if isinstance(value, bytes) else None if value is None else str(value)
    )
    return tables
