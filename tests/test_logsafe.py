"""Log forging: whatever a client sends (a method name, a path), a text log keeps one record per
line, and control characters are escaped in every field of every record; JSON lines too.

Against a real ``rpcd serve`` on 127.0.0.1, and the formatters themselves for every control
character (a hypothesis property over hostile texts).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from server_helpers import LOOPBACK_TOKEN, Daemon, make_tree, running, xml_call

from rpcd.logsafe import CONTROLS, one_line
from rpcd.server.ops.logs import (
    AccessItem,
    JsonFormatter,
    TextFormatter,
    access_item_record,
)

AUTH = {"Authorization": f"Bearer {LOOPBACK_TOKEN}"}
FAKE = "2099-01-01 00:00:00,000 INFO rpcd.access: POST /RPC2 200 [forged=1]"
#: Method names that end the access line early and write a made-up one after it. XML 1.0 has
#: no escape character, and its parser reads a raw CR as LF: the character reference keeps it.
XML_METHOD = f"hello.add\n{FAKE}&#13;\u2028x\x85y"
JSON_METHOD = f"hello.add\r{FAKE}\x1b[2K\u2028x\x85y\n{FAKE}"
#: A path that does the same (percent-decoded by the server: CR, U+2028, NEL, ESC).
HOSTILE_PATH = "/nope%0D2099-01-01%2000:00:00,000%20INFO%20forged%E2%80%A8z%C2%85%1B[2K"


def _lines_naming(logs: str, rid: str) -> list[str]:
    return [line for line in logs.split("\n") if rid in line]


def _requests(daemon: Daemon) -> tuple[str, str, str]:
    """Send the three hostile requests; their request ids."""
    status, xml_headers, _ = daemon.post("/RPC2", xml_call(XML_METHOD), headers=AUTH)
    assert status == 200
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": JSON_METHOD, "params": []})
    status, json_headers, _ = daemon.post(
        "/jsonrpc", body.encode(), "application/json", headers=AUTH
    )
    assert status == 200
    status, path_headers, _ = daemon.get(HOSTILE_PATH)
    assert status == 404
    return (
        xml_headers["X-Request-ID"],
        json_headers["X-Request-ID"],
        path_headers["X-Request-ID"],
    )


def _one_record_per_line(logs: str) -> None:
    """Only LF breaks lines, and no line starts with the forged text."""
    assert logs.splitlines() == logs.removesuffix("\n").split("\n"), logs
    assert not any(chr(c) in logs for c in CONTROLS if c != 0x0A), logs
    assert not [line for line in logs.split("\n") if line.startswith("2099-")], logs


def test_method_names_and_paths_with_line_breaks_stay_one_text_line(tmp_path: Path) -> None:
    with running(make_tree(tmp_path / "tree"), tmp_path / "rpcd.log") as daemon:
        xml_rid, json_rid, path_rid = _requests(daemon)
        logs = daemon.logs()
    _one_record_per_line(logs)
    (line,) = _lines_naming(logs, xml_rid)
    assert f"rpc_method=hello.add\\n{FAKE}\\r\\u2028x\\x85y status=" in line
    (line,) = _lines_naming(logs, json_rid)
    assert f"rpc_method=hello.add\\r{FAKE}\\x1b[2K\\u2028x\\x85y\\n2099-" in line
    (line,) = _lines_naming(logs, path_rid)
    assert "GET /nope\\r2099-01-01 00:00:00,000 INFO forged\\u2028z\\x85\\x1b[2K 404" in line


def test_json_log_lines_hold_the_exact_values_on_one_line(tmp_path: Path) -> None:
    env = {"RPCD_LOG_FORMAT": "json"}
    with running(make_tree(tmp_path / "tree"), tmp_path / "rpcd.log", env) as daemon:
        xml_rid, json_rid, path_rid = _requests(daemon)
        logs = daemon.logs()
    _one_record_per_line(logs)
    records = {r.get("request_id"): r for r in map(json.loads, logs.split("\n")[:-1])}
    assert records[xml_rid]["rpc_method"] == XML_METHOD.replace("&#13;", "\r")
    assert records[json_rid]["rpc_method"] == JSON_METHOD[:100]
    assert (
        "/nope\r2099-01-01 00:00:00,000 INFO forged\u2028z\x85\x1b[2K" in records[path_rid]["msg"]
    )


def test_one_line_escapes_exactly_the_control_characters() -> None:
    for code in CONTROLS:
        char = chr(code)
        assert not char.isprintable()  # so the fast path never skips one
        escaped = one_line(f"a{char}b")
        assert escaped.startswith("a\\") and escaped.endswith("b") and escaped.isprintable()
    assert one_line("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert one_line("\x1b[31m\x7f\x85\u2028\u2029\u202e") == (
        "\\x1b[31m\\x7f\\x85\\u2028\\u2029\\u202e"
    )
    kept = "plain ascii, é, 日本, \\n as typed, \u00a0nbsp, \U0001f600"
    assert one_line(kept) == kept


def _record(text: str, exc: BaseException | None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    record = logging.LogRecord(
        "rpcd.test." + text, logging.ERROR, __file__, 1, "msg %s", (text,), exc_info
    )
    record.peer = text
    record.rpc_method = text
    record.path = "/" + text
    return record


hostile = st.text(
    alphabet=st.one_of(
        st.sampled_from(sorted(chr(c) for c in CONTROLS)),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)


@pytest.mark.fuzz
@given(text=hostile, raise_it=st.booleans())
def test_text_records_are_one_line_plus_indented_tracebacks(text: str, raise_it: bool) -> None:
    exc = None
    if raise_it:
        try:
            raise ValueError(text)
        except ValueError as caught:
            exc = caught
    out = TextFormatter().format(_record(text, exc))
    first, *rest = out.split("\n")
    assert len(out.splitlines()) == 1 + len(rest)  # "\n" is the only line break
    assert not any(chr(c) in first for c in CONTROLS)
    assert f"peer={one_line(text)} rpc_method={one_line(text)}" in first
    for line in rest:  # a traceback: tab-indented, escaped
        assert line.startswith("\t") and not any(chr(c) in line[1:] for c in CONTROLS)
    assert bool(rest) == raise_it
    data = json.loads(JsonFormatter().format(_record(text, exc)))
    assert data["peer"] == text and data["msg"] == f"msg {text}"


@pytest.mark.fuzz
@given(fields=st.lists(hostile, min_size=4, max_size=4), status=st.integers(100, 599))
def test_batched_access_lines_are_escaped_like_records(fields: list[str], status: int) -> None:
    path, request_id, peer, rpc_method = fields
    item: AccessItem = (1700000000.5, "POST", path, status, request_id, peer, rpc_method, 0.00035)
    for formatter in (TextFormatter(), JsonFormatter()):
        (line,) = formatter.access_lines([item])
        assert line == formatter.format(access_item_record(item))
        assert "\n" not in line and not any(chr(c) in line for c in CONTROLS)
