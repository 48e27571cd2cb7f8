"""A real forward proxy for the outbound proxy tests: Debian's tinyproxy on a free port.

``tinyproxy(tmp, user=..., password=..., connect_ports=...)`` starts it in the foreground
(``-d``) with a config of its own (listening on 127.0.0.1 only, Basic auth when given, the
CONNECT ports it allows) and stops it after. The test skips, with the reason, when tinyproxy
is not installed or does not start (``.ci/install-test-tools`` installs it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class RunningProxy:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def tinyproxy(
    directory: Path,
    *,
    user: str | None = None,
    password: str | None = None,
    connect_ports: Sequence[int] = (),
) -> Iterator[RunningProxy]:
    binary = shutil.which("tinyproxy") or (
        "/usr/bin/tinyproxy" if Path("/usr/bin/tinyproxy").exists() else None
    )
    if binary is None:
        pytest.skip(
            "tinyproxy is not installed (apt-get install tinyproxy; .ci/install-test-tools)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = directory / "tinyproxy.log"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 30",
        "MaxClients 50",
        "LogLevel Connect",
        f'LogFile "{log}"',
        f'PidFile "{directory / "tinyproxy.pid"}"',
        "Allow 127.0.0.1",
        *(f"ConnectPort {p}" for p in connect_ports),
    ]
    if user is not None and password is not None:
        lines.append(f"BasicAuth {user} {password}")
    config = directory / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [binary, "-d", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"tinyproxy did not start (exit {process.poll()}): {log}")
                time.sleep(0.05)
        yield RunningProxy(port, log)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
