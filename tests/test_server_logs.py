"""Structured logs: JSON lines with the request id from the context, secrets masked — also
values that arrive with a reload (rotation), and ones rotated out."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from rpcd.server.ops import logs
from rpcd.server.ops.logs import JsonFormatter


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logs.attach(logging.StreamHandler(out))
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("rpcd.test.logging")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield out
    logger.removeHandler(handler)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_request_id_from_context_and_secrets_masked(stream: io.StringIO) -> None:
    log = logging.getLogger("rpcd.test.logging")
    old, new = "old-secret-value-123", "new-secret-value-456"
    logs.update_secrets([old])
    token = logs.REQUEST_ID.set("req-42")
    try:
        log.info("calling with %s", old)
        log.info("explicit", extra={"request_id": "given"})
    finally:
        logs.REQUEST_ID.reset(token)
    log.info("outside a request")
    logs.update_secrets([new])  # a reload resolved a rotated value
    try:
        raise ValueError(f"boom {new} and {old}")
    except ValueError:
        log.exception("failed")
    records = lines(stream)
    assert records[0]["request_id"] == "req-42"
    assert records[0]["msg"] == "calling with **********"
    assert records[1]["request_id"] == "given"
    assert "request_id" not in records[2]
    text = stream.getvalue()
    assert old not in text and new not in text, text
    assert "boom ********** and **********" in str(records[3]["exc"])
