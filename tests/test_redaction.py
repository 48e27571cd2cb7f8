"""Secret masking in the daemon's logs: values as written and in their escaped forms, in every
field of a record and in batched access lines, text and JSON; short secrets never masked (and
refused by the daemon at start and at reload); the cost per line hardly grows with the number
of secrets.

The log tests run the handler ``rpcd serve`` installs (``logs.setup_logging``), moved
onto a private logger; the policy tests run a real daemon and the real reload path.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ops_helpers import served
from server_helpers import make_tree, start_daemon

from rpcd.logsafe import one_line
from rpcd.redaction import MASK, Redactor, forms
from rpcd.secrets import SecretRedactingFilter
from rpcd.server.ops import logs
from rpcd.server.ops.logs import AccessItem, LineHandler

#: Quotes, a backslash, a slash, non-ASCII, a newline and an escape: every form differs.
SECRET = 'tok"en\\wi/th-é\n\x1b-0123456789'
ITEM: AccessItem = (1700000000.25, "POST", "/RPC2", 200, "r-1", "loopback", "hello.add", 0.00035)

Setup = Callable[[str], tuple[io.StringIO, logging.Logger, LineHandler]]


@pytest.fixture
def daemon_log(monkeypatch: pytest.MonkeyPatch) -> Setup:
    """``setup(fmt)``: the daemon's stderr handler in that format (its filters and masking,
    fresh secrets), on a private logger; returns what it writes to, the logger, the handler."""
    monkeypatch.setattr(logs, "_redaction", logs.RedactionFilter())

    def setup(fmt: str) -> tuple[io.StringIO, logging.Logger, LineHandler]:
        stream, handler = _stderr_handler(monkeypatch, fmt)
        logger = logging.getLogger(f"rpcd.test.masking.{fmt}")
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
        return stream, logger, handler

    return setup


def _stderr_handler(patch: pytest.MonkeyPatch, fmt: str) -> tuple[io.StringIO, LineHandler]:
    """The handler ``setup_logging`` puts on stderr, taken off the root logger again; the
    stream it writes to replaces stderr."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    patch.setattr(sys, "stderr", stream)
    try:
        logs.setup_logging(fmt, "INFO")
        (handler,) = root.handlers
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    assert isinstance(handler, LineHandler)
    return stream, handler


def _leaks(text: str, secret: str) -> list[str]:
    return [form for form in forms(secret) if form in text]


def test_short_values_are_never_masked(daemon_log: Setup) -> None:
    stream, log, handler = daemon_log("text")
    logs.update_secrets(["a", "\n", "1234567"])
    log.info("a banana\nsplit costs 1234567")
    handler.add_access(ITEM)  # no event loop here: written at once
    handler.add_access((*ITEM[:4], "r-2", *ITEM[5:]))
    out = stream.getvalue()
    assert "a banana\\nsplit costs 1234567" in out and MASK not in out
    lines = out.split("\n")
    assert len(lines) == 4 and lines[3] == ""  # the record, two access lines: none glued
    assert "request_id=r-1" in lines[1] and "request_id=r-2" in lines[2]
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a %s", ("banana",), None)
    SecretRedactingFilter(["a"]).filter(record)
    assert record.getMessage() == "a banana"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_access_lines_mask_the_escaped_forms(daemon_log: Setup, fmt: str) -> None:
    stream, _, handler = daemon_log(fmt)
    logs.update_secrets([SECRET])
    handler.add_access((*ITEM[:5], SECRET, f"m.{SECRET}", ITEM[7]))
    out = stream.getvalue()
    assert _leaks(out, SECRET) == [] and out.count("\n") == 1, out
    assert MASK in out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_field_of_a_record_is_masked(daemon_log: Setup, fmt: str) -> None:
    stream, log, _ = daemon_log(fmt)
    logs.update_secrets([SECRET])
    log.warning("call with %s", SECRET, extra={"peer": SECRET, "rpc_method": f"x{SECRET}x"})
    log.warning("remote said %s", {"error": f"bad wstoken={SECRET}"}, extra={"path": [SECRET]})
    try:
        raise RuntimeError(f"boom {SECRET!r}")
    except RuntimeError:
        log.exception("failed")
    out = stream.getvalue()
    assert _leaks(out, SECRET) == [], out
    assert out.count(MASK) >= 6


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_forms_a_remote_or_a_repr_wrote_are_masked(daemon_log: Setup, fmt: str) -> None:
    stream, log, _ = daemon_log(fmt)
    logs.update_secrets([SECRET])
    written = [
        json.dumps(SECRET),
        json.dumps(SECRET, ensure_ascii=False),
        repr(SECRET),
        repr(SECRET.encode()),
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote_plus(SECRET),
        "&lt;" + SECRET.replace("&", "&amp;") + "&gt;",
    ]
    for text in written:
        log.warning("remote answered: %s", text)
    out = stream.getvalue()
    assert _leaks(out, SECRET) == [], out
    assert out.count(MASK) == len(written)


def test_rotated_values_rebuild_the_matcher_only_when_the_set_changes() -> None:
    redaction = logs.RedactionFilter()
    redaction.update(["first-secret-value"])
    built = redaction._redactor
    redaction.update(["first-secret-value"])  # a reload with the same secrets
    assert redaction._redactor is built
    redaction.update(["second-secret-value"])  # rotated: both are masked from now on
    assert redaction._redactor is not built
    assert redaction.mask("first-secret-value second-secret-value") == f"{MASK} {MASK}"


def test_lone_surrogates_are_searched_too() -> None:
    redactor = Redactor(["s3cret-\udcff-value", "plain-secret-value"])
    text = "a \udcfe b s3cret-\udcff-value c plain-secret-value"
    assert redactor.text(text) == f"a \udcfe b {MASK} c {MASK}"
    assert redactor.text("plain-secret-value") == MASK


def test_masking_cost_hardly_grows_with_the_number_of_secrets() -> None:
    """A property of the matcher (one pass over the text, whatever the count), checked with a
    very generous bound: the old filter's cost grew linearly with the number of secrets."""
    message = "POST /RPC2 200 [request_id=0123456789abcdef peer=loopback rpc_method=hello.add]"

    def per_record(count: int) -> float:
        values = [f"secret-{i:05d}-{'x' * 16}" for i in range(count)]
        flt = SecretRedactingFilter(values)
        best = float("inf")
        for _ in range(5):
            records = [
                logging.LogRecord("x", logging.INFO, __file__, 1, message, None, None)
                for _ in range(200)
            ]
            start = time.perf_counter()
            for record in records:
                flt.filter(record)
            best = min(best, (time.perf_counter() - start) / len(records))
        return best

    one, many = per_record(1), per_record(4096)
    assert many < 8 * one + 20e-6, (one, many)


SHORT_TREE_CONNECTION = """\
version = 1

[class]
id = "short_svc"
plugin = "short"
name = "A connection whose token is short"

[[connection]]
id = "peer"
enabled = true
global = true
type = "XML-RPC"
auth = "token"
endpoint = "http://127.0.0.1:9/RPC2"
credentials = {{ token = {{ file = "{path}" }} }}
"""


def _tree_with_token(tmp_path: Path, token: str) -> tuple[Path, Path]:
    root = make_tree(tmp_path / "tree")
    secret_file = tmp_path / "peer-token"
    secret_file.write_text(token + "\n")
    (root / "connections.d" / "short.toml").write_text(
        SHORT_TREE_CONNECTION.format(path=secret_file)
    )
    return root, secret_file


def test_a_short_secret_stops_the_daemon_from_starting_unless_warn(tmp_path: Path) -> None:
    root, _ = _tree_with_token(tmp_path, "abc")
    log = tmp_path / "refused.log"
    with pytest.raises(RuntimeError, match="did not start"):
        start_daemon(root, log)
    refused = log.read_text()
    assert "error[secret-short]" in refused and "RPCD_SHORT_SECRETS=warn" in refused
    daemon = start_daemon(root, tmp_path / "warned.log", {"RPCD_SHORT_SECRETS": "warn"})
    try:
        assert daemon.alive()
    finally:
        assert daemon.stop() == 0
    assert "warning[secret-short]" in daemon.logs()


def test_a_short_secret_at_reload_keeps_the_old_catalog(tmp_path: Path) -> None:
    root, secret_file = _tree_with_token(tmp_path, "long-enough-token-0123")

    async def run() -> None:
        async with served(root) as ops:
            before = ops.holder.current
            secret_file.write_text("abc\n")  # rotated to a value too short to mask
            result = await ops.reloader.reload()
            assert not result.ok, result
            assert [f["rule"] for f in result.findings] == ["secret-short"], result.findings
            assert ops.holder.current is before
            assert await ops.xmlrpc("hello.add", 2, 3) == 5
            secret_file.write_text("another-long-token-0123\n")
            assert (await ops.reloader.reload()).ok

    asyncio.run(run())


@st.composite
def _secret_and_text(draw: st.DrawFn) -> tuple[str, str]:
    alphabet = st.characters(codec="utf-8", exclude_characters="*")
    secret = draw(st.text(alphabet=alphabet, min_size=8, max_size=24))
    around = st.text(alphabet=alphabet, max_size=20)
    parts = [draw(around)]
    for form in draw(st.lists(st.sampled_from(sorted(forms(secret))), min_size=1, max_size=3)):
        parts += [form, draw(around)]
    return secret, "".join(parts)


@pytest.mark.fuzz
@given(case=_secret_and_text(), fmt=st.sampled_from(["text", "json"]))
def test_no_form_of_a_secret_reaches_a_line(case: tuple[str, str], fmt: str) -> None:
    secret, text = case
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(logs, "_redaction", logs.RedactionFilter())
        stream, handler = _stderr_handler(patch, fmt)
        logs.update_secrets([secret])
        handler.handle(logging.makeLogRecord({"msg": text, "peer": text, "levelno": 20}))
        handler.add_access((*ITEM[:2], "/" + text, *ITEM[3:6], text, ITEM[7]))
    out = stream.getvalue()
    assert out.count("\n") == 2
    line_forms = {f for f in forms(secret) if one_line(f) == f}  # those a line can hold
    assert [f for f in line_forms if f in out] == [], out


def test_rpcd_call_masks_with_the_same_filter(tmp_path: Path) -> None:
    """``rpcd call``'s stderr handler is the same filter: a long secret is masked there too."""
    root, _ = _tree_with_token(tmp_path, "cli-visible-token-0123")
    done = subprocess.run(
        [sys.executable, "-c", _CLI_SNIPPET, str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "cli-visible-token-0123" not in done.stderr and MASK in done.stderr, done.stderr


_CLI_SNIPPET = """
import logging, sys
from rpcd.connections.cli import _load
catalog, store, findings = _load(sys.argv[1])
logging.getLogger("rpcd.test").warning("remote echoed wstoken=cli-visible-token-0123")
"""
