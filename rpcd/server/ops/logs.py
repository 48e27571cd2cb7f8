"""The daemon's logging: one line per record (text or JSON), request ids, secrets masked.

Log lines name peers, methods and request ids; never tokens, passwords or the session key.

In the text format a record's fields are on its one line, whatever they hold: the message,
every extra field and the logger name pass through ``rpcd.logsafe.one_line`` (a newline becomes
``\\n``, an escape character ``\\x1b``, a line separator ``\\u2028``), so a method name or
path sent by a client cannot start a made-up line. A traceback or stack follows on lines
that each begin with a tab (as PostgreSQL writes a multi-line message), its own control
characters escaped too: only a record's first line starts at column 0. The JSON format is
one line by construction (``json.dumps`` escapes every control character, DEL, and, ASCII
only, U+2028/U+2029).

``REQUEST_ID`` is bound by the request skeleton (``rpcd.server.edge.request``) for the whole
of a request, so every record logged below it carries ``request_id``. A redaction filter on
the daemon's handler masks each *resolved* secret value in every field of a record, and the
handler masks each line it writes again (``rpcd.redaction``); ``update_secrets`` gives it the
values of every newly loaded catalog (rotated secrets are masked too, old ones still are).

The access log (``write_access``, one line per request) queues the line's values on the
daemon's ``LineHandler``, which formats, masks and writes them in batches; with any other
logging configuration the line is an ordinary ``rpcd.access`` record (``access_item_record``).
A new log field: the formatters here (and ``AccessItem`` for an access-line field).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from rpcd.logsafe import one_line
from rpcd.redaction import Redactor, redact_record

__all__ = [
    "REQUEST_ID",
    "AccessItem",
    "JsonFormatter",
    "LineHandler",
    "RedactionFilter",
    "RequestIdFilter",
    "TextFormatter",
    "access_item_record",
    "attach",
    "mask",
    "setup_logging",
    "update_secrets",
    "write_access",
]

_EXTRA = ("request_id", "peer", "rpc_method", "status", "duration_ms", "path")
_MISSING = object()


class JsonFormatter(logging.Formatter):
    _second: tuple[int, str] = (-1, "")

    def _ts(self, record: logging.LogRecord) -> str:
        return self._ts_of(record.created)

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self._ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        attrs = vars(record)
        for key in _EXTRA:
            value = attrs.get(key, _MISSING)
            if value is not _MISSING:
                data[key] = value
        # exc_text first: the secret-redacting filter leaves its masked traceback there.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, default=str)

    def access_lines(self, items: Iterable[AccessItem]) -> list[str]:
        """What ``format`` makes of the access log's records for these values."""
        return [
            json.dumps(
                {
                    "ts": self._ts_of(created),
                    "level": "info",
                    "logger": "rpcd.access",
                    "msg": f"{method} {path} {status}",
                    "request_id": request_id,
                    "peer": peer,
                    "rpc_method": rpc_method,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                }
            )
            for created, method, path, status, request_id, peer, rpc_method, seconds in items
        ]

    def _ts_of(self, created: float) -> str:
        second = int(created)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)))
            self._second = cached
        return f"{cached[1]}.{int((created - second) * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    _second: tuple[int, str] = (-1, "")

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``logging.Formatter``'s default text, the strftime part cached for the second."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime(self.default_time_format, self.converter(second)))
            self._second = cached
        return f"{cached[1]},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        """``Formatter.format`` for this format string, every field on one line (escaped),
        then the traceback and stack, if any, on tab-indented lines."""
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        attrs = vars(record)
        line = f"{record.asctime} {record.levelname} {record.name}: {record.message}"
        extras = " ".join(f"{k}={attrs[k]}" for k in _EXTRA if k in attrs)
        if extras:
            line = f"{line} [{extras}]"
        if not line.isprintable():  # one C-level check; rare: built again from escaped fields
            line = (
                f"{record.asctime} {_field(record.levelname)} {_field(record.name)}: "
                f"{one_line(record.message)}"
            )
            extras = " ".join(f"{k}={_field(attrs[k])}" for k in _EXTRA if k in attrs)
            if extras:
                line = f"{line} [{extras}]"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += _continued(record.exc_text)
        if record.stack_info:
            line += _continued(self.formatStack(record.stack_info))
        return line

    def access_lines(self, items: Iterable[AccessItem]) -> list[str]:
        """What ``format`` makes of the access log's records for these values, built in one
        loop: the duration with integer arithmetic (``round`` and a float's repr each cost
        more than the rest of the line), the timestamp text cached for the second; the texts
        of a request checked for control characters at once, escaped only when they hold
        one."""
        out: list[str] = []
        append = out.append
        cached_second, cached_text = self._second
        strftime, converter, time_format = time.strftime, self.converter, self.default_time_format
        for item in items:
            created, method, path, status, request_id, peer, rpc_method, seconds = item
            if not f"{method}{path}{request_id}{peer}{rpc_method}".isprintable():
                _, method, path, _, request_id, peer, rpc_method, _ = _escaped(item)
            second = int(created)
            if second != cached_second:
                cached_second, cached_text = second, strftime(time_format, converter(second))
            hundredths = int(seconds * 100_000 + 0.5)  # of a millisecond
            append(
                f"{cached_text},{int((created - second) * 1000):03d} INFO rpcd.access: "
                f"{method} {path} {status} [request_id={request_id} peer={peer} "
                f"rpc_method={rpc_method} status={status} "
                f"duration_ms={hundredths // 100}.{hundredths % 100:02d}]"
            )
        self._second = (cached_second, cached_text)
        return out


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The daemon's stderr handler: records are written at once, access lines in batches.

    ``add_access`` (the access log, on the event loop) queues one request's values; they are
    formatted and written together ``flush_interval`` seconds after the first of them (like
    nginx's ``access_log ... buffer= flush=``): one loop over the batch, one secret-masking
    pass and one ``write`` for every request answered meanwhile, instead of a formatter call
    and a write per request (at 0: at the end of the loop's current pass). A full queue
    (``MAX_PENDING``), any other record, ``flush`` and ``close`` (``logging.shutdown`` at
    exit; the daemon flushes on shutdown too) write the queued lines first, so the order of
    lines is kept. Lines still queued when the process is killed (SIGKILL) are lost: at most
    ``flush_interval`` seconds of access lines.

    The queue is a deque: appended on the loop without the handler's lock, drained under it
    from any thread without losing an entry.
    """

    MAX_PENDING = 4096

    def __init__(self, stream: Any = None, flush_interval: float = 0.0) -> None:
        super().__init__(stream)
        self.flush_interval = flush_interval
        self._access: collections.deque[AccessItem] = collections.deque()
        self._scheduled = False
        #: Applied to each batch of access lines (the redaction filter's masking).
        self.mask: Callable[[str], str] | None = None

    def add_access(self, item: AccessItem) -> None:
        queue = self._access
        queue.append(item)
        if self._scheduled and len(queue) < self.MAX_PENDING:
            return
        self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: write now
            loop = None
        if loop is None or len(self._access) >= self.MAX_PENDING:
            self.flush()
            return
        self._scheduled = True
        if self.flush_interval > 0:
            loop.call_later(self.flush_interval, self.flush)
        else:
            loop.call_soon(self.flush)

    def _write_pending(self) -> None:
        """Under the lock: format, mask and write the queued access lines."""
        self._scheduled = False
        queue = self._access
        if not queue:
            return
        items = [queue.popleft() for _ in range(len(queue))]
        formatter = self.formatter
        if isinstance(formatter, TextFormatter | JsonFormatter):
            lines = formatter.access_lines(items)
        else:  # another formatter: through it, record by record
            lines = [self.format(access_item_record(item)) for item in items]
        lines.append("")
        text = "\n".join(lines)
        if self.mask is not None:
            text = self.mask(text)
        self.stream.write(text)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            if self.mask is not None:
                msg = self.mask(msg)
            self._write_pending()  # Handler.handle holds the lock
            self.stream.write(msg + self.terminator)
            self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


#: One access line's values: created (unix time), method, path, status, request id, peer,
#: RPC method, duration (seconds).
AccessItem = tuple[float, str, str, int, str, str, str, float]


def _escaped(item: AccessItem) -> AccessItem:
    """``item`` with its texts on one line (``logsafe.one_line``)."""
    created, method, path, status, request_id, peer, rpc_method, seconds = item
    return (
        created,
        one_line(method),
        one_line(path),
        status,
        one_line(request_id),
        one_line(peer),
        one_line(rpc_method),
        seconds,
    )


def _field(value: object) -> object:
    """An extra field's value for the text format: a text on one line, numbers as they are."""
    if isinstance(value, int | float):
        return value
    return one_line(value if isinstance(value, str) else str(value))


def _continued(block: str) -> str:
    """A traceback or stack as continuation lines: each after a newline and a tab, escaped."""
    return "".join(f"\n\t{one_line(line)}" for line in block.split("\n"))


def access_item_record(item: AccessItem) -> logging.LogRecord:
    """The access log's record for these values (what ``logging`` would be given)."""
    created, method, path, status, request_id, peer, rpc_method, seconds = item
    fields = {
        "request_id": request_id,
        "peer": peer,
        "rpc_method": rpc_method,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
    }
    record = access.makeRecord(
        access.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %s",
        (method, path, status),
        None,
        extra=fields,
    )
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    return record


REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rpcd_request_id", default=None
)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` from the context to records that do not carry one already."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            rid = REQUEST_ID.get()
            if rid is not None:
                record.request_id = rid
        return True


class RedactionFilter(logging.Filter):
    """Masks resolved secret values; the set of values grows on every reload.

    Values seen before are kept (a rotated-out secret is still a secret), bounded to the most
    recent ``MAX_VALUES``. The matcher (``rpcd.redaction.Redactor``) is built again only when
    that set changes.
    """

    MAX_VALUES = 4096

    def __init__(self) -> None:
        super().__init__()
        self._values: dict[str, None] = {}  # insertion-ordered set
        self._redactor = Redactor()

    def update(self, values: Iterable[str]) -> None:
        before = set(self._values)
        for value in values:
            if value:
                self._values.pop(value, None)
                self._values[value] = None
        while len(self._values) > self.MAX_VALUES:
            del self._values[next(iter(self._values))]
        if set(self._values) != before:
            self._redactor = Redactor(self._values)

    def mask(self, text: str) -> str:
        """``text`` with every form of every secret value masked."""
        return self._redactor.text(text)

    def mask_line(self, text: str) -> str:
        """Formatted log lines with every form of a secret value that can be in one masked
        (what the daemon's handler does to each line it writes)."""
        return self._redactor.line(text)

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, self._redactor)
        return True


_redaction = RedactionFilter()
_request_ids = RequestIdFilter()


def _plain_values(store: Any) -> list[str]:
    """The values to mask of a ``SecretStore`` (or an iterable of strings)."""
    if store is None:
        return []
    plain = getattr(store, "redaction_values", None)
    if callable(plain):
        return [str(v) for v in plain()]
    return [str(v) for v in store]


#: What the redaction filter of every handler would make of a text.
mask = _redaction.mask


def update_secrets(store: Any) -> None:
    """Mask the values of ``store`` (a ``SecretStore``) in every log record from now on."""
    _redaction.update(_plain_values(store))


def setup_logging(
    fmt: str = "text", level: str = "INFO", secrets: Any = None, flush_interval: float = 0.0
) -> None:
    """Route rpcd's and aiohttp's records to stderr, text or JSON, through one ``LineHandler``
    (access lines batched every ``flush_interval`` seconds) with request ids and secret masking."""
    handler = attach(LineHandler(sys.stderr, flush_interval))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.mask = _redaction.mask_line  # every line written, access lines included
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if secrets is not None:
        update_secrets(secrets)


def owns_handler(handler: logging.Handler) -> bool:
    """True when ``handler``'s filters are exactly the ones ``setup_logging`` gives it."""
    filters = handler.filters
    return len(filters) == 2 and filters[0] is _request_ids and filters[1] is _redaction


_H = TypeVar("_H", bound=logging.Handler)


def attach(handler: _H) -> _H:
    """Add the request-id and redaction filters to a handler (the daemon's, tests, extra sinks)."""
    handler.addFilter(_request_ids)
    handler.addFilter(_redaction)
    return handler


access = logging.getLogger("rpcd.access")
_checked: tuple[LineHandler, logging.Formatter | None] | None = None  # handler, its formatter


def write_access(item: AccessItem) -> None:
    """One access line: queued on the daemon's ``LineHandler`` when it is the line's only sink
    (formatted, masked and written in batches), else an ordinary ``rpcd.access`` record."""
    if not access.isEnabledFor(logging.INFO):
        return
    handlers = logging.root.handlers
    checked = _checked
    if (  # the handler checked last time, unchanged: skip the checks
        checked is not None
        and len(handlers) == 1
        and handlers[0] is checked[0]
        and checked[0].formatter is checked[1]
        and len(checked[0].filters) == 2
        and not access.handlers
        and access.propagate
    ):
        handler: LineHandler | None = checked[0]
    else:
        handler = _daemon_handler()
    if handler is None:
        access.handle(access_item_record(item))
    else:
        handler.add_access(item)


def _daemon_handler() -> LineHandler | None:
    """The root's one ``LineHandler`` when an access record would reach only it (and only
    through the filters ``setup_logging`` gave it): then the line can skip ``logging``."""
    global _checked
    _checked = None
    if access.handlers or access.filters or not access.propagate:
        return None
    root = access.parent
    if root is not logging.root or root.filters:
        return None
    handlers = root.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if type(handler) is not LineHandler or handler.level > logging.INFO:
        return None
    if handler.mask is None or not owns_handler(handler):
        return None
    _checked = (handler, handler.formatter)
    return handler
