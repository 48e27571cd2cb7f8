"""The sd_notify protocol, written against systemd's spec (no libsystemd).

A service of ``Type=notify`` / ``Type=notify-reload`` tells the service manager its state with
datagrams of ``KEY=VALUE`` lines sent to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET``
(a path, or an abstract socket when it starts with ``@``). See sd_notify(3):

- ``READY=1`` once serving (and again after a reload);
- ``RELOADING=1`` *and* ``MONOTONIC_USEC=<CLOCK_MONOTONIC in µs>`` in one datagram when a reload
  begins (``Type=notify-reload`` requires both, or systemd ignores the reload notification);
- ``STOPPING=1`` when shutting down;
- ``STATUS=<one line>`` free text shown by ``systemctl status``;
- ``WATCHDOG=1`` at least every ``$WATCHDOG_USEC`` µs (we send at half) when ``WatchdogSec=``
  is set and ``$WATCHDOG_PID`` is unset or names this process.

Without ``$NOTIFY_SOCKET`` every call is a no-op, so the daemon runs the same outside systemd.
Sending never raises: a lost notification must not take the daemon down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier", "monotonic_usec", "watchdog_interval"]

log = logging.getLogger("rpcd.sdnotify")


def monotonic_usec() -> int:
    """``CLOCK_MONOTONIC`` in microseconds: the clock systemd compares MONOTONIC_USEC with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None when off.

    Off when ``WATCHDOG_USEC`` is unset or not a positive integer, or when ``WATCHDOG_PID`` is
    set to another process (the watchdog is then meant for that one, e.g. a wrapper).
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    if not raw.isdigit() or int(raw) <= 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(raw) / 1_000_000 / 2


def _address(value: str) -> str | bytes | None:
    if value.startswith("@"):  # abstract namespace: a leading NUL byte instead of '@'
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock: and other forms are not supported here


class Notifier:
    """Sends sd_notify datagrams; every method is a no-op when there is no ``$NOTIFY_SOCKET``."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _address(raw) if raw else None
        if raw and self._address is None:
            log.warning("NOTIFY_SOCKET %r is not a unix socket path: notifications are off", raw)
        self._interval = watchdog_interval(env)
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        return self._interval if self.enabled else None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram (``notify(READY=1, STATUS="x")``)."""
        if self._address is None or not fields:
            return False
        lines = []
        for key, value in fields.items():
            text = str(value).replace("\n", " ")  # a value is one line
            lines.append(f"{key}={text}")
        payload = ("\n".join(lines) + "\n").encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self._address)
        except OSError as exc:
            log.warning("sd_notify failed: %s", exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify(READY=1, **_status(status))

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` and ``MONOTONIC_USEC`` together, as notify-reload requires."""
        return self.notify(RELOADING=1, MONOTONIC_USEC=monotonic_usec(), **_status(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify(STOPPING=1, **_status(status))

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def start_watchdog(self) -> asyncio.Task[None] | None:
        """Ping ``WATCHDOG=1`` every half ``WATCHDOG_USEC`` from the event loop, as a task.

        The ping comes from the loop itself, so a blocked loop stops the pings and systemd
        restarts the service — which is the point of the watchdog.
        """
        interval = self.watchdog_interval
        if interval is None or self._watchdog is not None:
            return self._watchdog
        self._watchdog = asyncio.get_running_loop().create_task(
            self._ping(interval), name="rpcd-sd-watchdog"
        )
        return self._watchdog

    async def stop_watchdog(self) -> None:
        task, self._watchdog = self._watchdog, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _ping(self, interval: float) -> None:
        while True:
            self.watchdog()
            await asyncio.sleep(interval)


def _status(status: str | None) -> dict[str, str]:
    return {} if status is None else {"STATUS": status}
