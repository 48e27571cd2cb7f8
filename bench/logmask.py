"""Secret masking in log lines: the cost per line with 1, 64 and 4,096 secrets.

Run: ``.venv/bin/python bench/logmask.py`` (about 20 s). Prints the best-of-N CPU time
(``time.process_time``) per line, in µs, of:

- "log line": one record logged through the daemon's own handler (``setup_logging``: request
  id and redaction filters, text format, the line masked again, written to a null stream);
  what a line costs the daemon, and what issue 12 measured (11 µs with one secret, 239 µs
  with 4,096 before ``rpcd/redaction.py``);
- "access line": one request's access line as the daemon writes it (queued, formatted in a
  batch of 100, the batch masked as one text, written to a null stream);
- "mask only": ``Redactor.line`` on a formatted access line, the matcher alone;

and, for comparison, the two ways considered and not taken, on the same access line: a loop
of ``in`` + ``str.replace`` per secret (what rpcd did before) and one compiled regex
alternation of every secret, longest first. The last column is the ratio to 1 secret.
Secrets are random URL-safe tokens of 32 characters; the line holds none of them (the usual
case: every secret must be looked for, and nothing is replaced).
"""

from __future__ import annotations

import io
import logging
import re
import secrets
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rpcd.redaction import Redactor
from rpcd.server.ops import logs
from rpcd.server.ops.logs import LineHandler

REPEAT = 5
TARGET_SECONDS = 0.05  # per repeat
COUNTS = (1, 64, 4096)
LINE = (
    "2026-01-01 12:00:00,123 INFO rpcd.access: POST /RPC2 200 [request_id=0f1e2d3c4b5a6978 "
    "peer=mahara-prod rpc_method=hello.helloWorld status=200 duration_ms=0.42]"
)


def best_us(fn: Callable[[], Any]) -> float:
    """Best time per call in µs: calibrate ``number`` to ~TARGET_SECONDS, take the min."""
    timer = timeit.Timer(fn, timer=time.process_time)
    number = 1
    while timer.timeit(number) < TARGET_SECONDS / 4:
        number *= 4
    number = max(1, int(number * (TARGET_SECONDS / max(timer.timeit(number), 1e-9))))
    return min(timer.repeat(REPEAT, number)) / number * 1e6


def access_batch(logger: logging.Logger, size: int = 100) -> Callable[[], None]:
    """Queue ``size`` access lines on the logger's handler and write them as one batch."""
    (handler,) = logger.handlers
    assert isinstance(handler, LineHandler)
    item = (time.time(), "POST", "/RPC2", 200, "0f1e2d3c4b5a6978", "mahara-prod", "hello.add", 4e-4)

    def run() -> None:
        for _ in range(size):
            handler._access.append(item)
        handler.flush()

    return run


def daemon_logger(values: list[str]) -> logging.Logger:
    """A logger whose only handler is the one ``rpcd serve`` installs, writing to nowhere."""
    root = logging.getLogger()
    saved, stderr = list(root.handlers), sys.stderr
    logs._redaction = logs.RedactionFilter()  # fresh secrets
    sys.stderr = io.StringIO()
    try:
        logs.setup_logging("text", "INFO")
        (handler,) = root.handlers
    finally:
        root.handlers[:] = saved
        sys.stderr = stderr
    handler.setStream(open("/dev/null", "w"))  # noqa: SIM115 - lives as long as the bench
    logs.update_secrets(values)
    logger = logging.getLogger("rpcd.bench.logmask")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def replace_loop(values: list[str]) -> Callable[[str], str]:
    ordered = sorted(values, key=len, reverse=True)

    def mask(text: str) -> str:
        for value in ordered:
            if value in text:
                text = text.replace(value, "**********")
        return text

    return mask


def alternation(values: list[str]) -> Callable[[str], str]:
    pattern = re.compile("|".join(map(re.escape, sorted(values, key=len, reverse=True))))
    return lambda text: pattern.sub("**********", text)


def main() -> None:
    rows: dict[str, dict[int, float]] = {}
    for count in COUNTS:
        values = [secrets.token_urlsafe(24) for _ in range(count)]
        logger = daemon_logger(values)
        peer = "mahara-prod"
        rows.setdefault("log line (rpcd)", {})[count] = best_us(
            lambda: logger.info("call %s from %s", "hello.helloWorld", peer)  # noqa: B023
        )
        batch = access_batch(logger)
        rows.setdefault("access line (rpcd, batched)", {})[count] = best_us(batch) / 100
        redactor = Redactor(values)
        rows.setdefault("mask only (rpcd)", {})[count] = best_us(lambda: redactor.line(LINE))  # noqa: B023
        loop = replace_loop(values)
        rows.setdefault("mask: str.replace loop", {})[count] = best_us(lambda: loop(LINE))  # noqa: B023
        regex = alternation(values)
        rows.setdefault("mask: regex alternation", {})[count] = best_us(lambda: regex(LINE))  # noqa: B023
    head = "".join(f"{n:>10,}" for n in COUNTS)
    print(f"{'µs per line, by number of secrets':<34}{head} {'4096/1':>8}")
    print("-" * (34 + 10 * len(COUNTS) + 9))
    for label, by_count in rows.items():
        cells = "".join(f"{by_count[n]:>10.2f}" for n in COUNTS)
        print(f"{label:<34}{cells} {by_count[COUNTS[-1]] / by_count[COUNTS[0]]:>7.1f}×")


if __name__ == "__main__":
    main()
