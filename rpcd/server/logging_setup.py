"""Logging for the daemon: text or JSON lines, a request id on every record, secrets masked.

Built on ``rpcd.server.logs`` (the formatters). This module adds:

- ``REQUEST_ID``: a context variable set by ``request_id_middleware`` for the whole of a
  request, so a record logged anywhere below a handler — the dispatcher, the outbound runner,
  a codec — carries ``request_id`` without being passed it;
- a redaction filter on every handler of the root logger that masks each *resolved* secret
  value in every field of a record, and the daemon's handler masks each line it writes again
  (``rpcd.redaction``); ``update_secrets`` gives it the values of a newly loaded catalog on
  every reload (rotated secrets are masked too, old ones still are).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from rpcd.redaction import Redactor, redact_record

__all__ = [
    "REQUEST_ID",
    "RedactionFilter",
    "RequestIdFilter",
    "mask",
    "owns_handler",
    "request_id_middleware",
    "setup_logging",
    "update_secrets",
]

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rpcd_request_id", default=None
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    """Text or JSON lines on stderr, with request ids and secret masking on the handler;
    access lines batched every ``flush_interval`` seconds (``logs.LineHandler``)."""
    from rpcd.server.logs import LineHandler
    from rpcd.server.logs import setup_logging as base_setup

    base_setup(fmt, level, flush_interval)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_request_ids)
        handler.addFilter(_redaction)
        if isinstance(handler, LineHandler):  # every line written, access lines included
            handler.mask = _redaction.mask_line
    if secrets is not None:
        update_secrets(secrets)


def owns_handler(handler: logging.Handler) -> bool:
    """True when ``handler``'s filters are exactly the ones ``setup_logging`` gives it."""
    filters = handler.filters
    return len(filters) == 2 and filters[0] is _request_ids and filters[1] is _redaction


def attach(handler: logging.Handler) -> logging.Handler:
    """Add the request-id and redaction filters to another handler (tests, extra sinks)."""
    handler.addFilter(_request_ids)
    handler.addFilter(_redaction)
    return handler


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the request's id (``X-Request-ID`` when sane, else a new one) to the context."""
    from rpcd.server.http import request_id

    token = REQUEST_ID.set(request_id(request))
    try:
        return await handler(request)
    finally:
        REQUEST_ID.reset(token)
