"""``rpcd serve [ROOT] [--root DIR] [--listen HOST:PORT] [--settings FILE]``.

Starts only on a valid tree: otherwise prints the same findings as ``rpcd validate`` and
exits 1; the same when the tree does not load within ``reload_timeout`` (a handler module
whose import hangs), naming the module. Exit 0 after a SIGTERM/SIGINT shutdown, 2 on a
usage or settings error.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # aiohttp, pydantic and the config load only when `serve` runs
    from rpcd.config import Report
    from rpcd.server.core.loading import Loaded
    from rpcd.settings import Settings

__all__ = ["cmd_serve", "prepare", "register"]


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the published services (XML-RPC, JSON-RPC, /v1 API)")
    p.add_argument("root_arg", nargs="?", metavar="ROOT", help="config root (default: --root or .)")
    p.add_argument("--root", metavar="DIR", help="config root, when ROOT is not given")
    p.add_argument("--listen", metavar="HOST:PORT", help="default 127.0.0.1:8080 or RPCD_LISTEN")
    p.add_argument("--settings", metavar="FILE", help="TOML settings file (or RPCD_SETTINGS_FILE)")
    p.set_defaults(func=cmd_serve)


def prepare(args: argparse.Namespace) -> tuple[Settings, Loaded] | int:
    """Settings and a loaded catalog, or the exit code after printing why not."""
    from pydantic import ValidationError

    from rpcd.config import Report
    from rpcd.report import REPORTERS
    from rpcd.server.core.loading import load
    from rpcd.server.ops.coredump import forbid_core_dumps
    from rpcd.server.ops.logs import setup_logging, update_secrets
    from rpcd.settings import load_settings

    try:  # first: no core of this process may hold the secrets it is about to read
        cores_off = forbid_core_dumps()
    except OSError as exc:
        sys.stderr.write(f"rpcd serve: cannot turn core dumps off: {exc}\n")
        return 1
    try:
        settings = load_settings(args.settings, listen=args.listen)
    except (ValidationError, ValueError) as exc:
        sys.stderr.write(f"rpcd serve: invalid settings: {exc}\n")
        return 2
    try:  # read now, so a missing or short token file is a settings error, not a traceback
        settings.metrics_token_bytes()
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"rpcd serve: invalid settings: metrics token: {exc}\n")
        return 2
    setup_logging(settings.log_format, settings.log_level, flush_interval=settings.access_log_flush)
    logging.getLogger("rpcd.server").debug("%s", cores_off)
    root = Path(args.root_arg or args.root or ".")
    loaded = _load_in_time(
        functools.partial(
            load,
            root,
            strict_secrets=settings.strict_secrets,
            short_secrets=settings.short_secrets,
            settings=settings,
        ),
        settings.reload_timeout,
    )
    if isinstance(loaded, str):
        sys.stderr.write(f"rpcd serve: {loaded}\n")
        return 1
    if isinstance(loaded, Report):
        sys.stderr.write(REPORTERS["text"](loaded))
        return 2 if "root-not-found" in loaded.rules() else 1
    update_secrets(loaded.secrets)  # the log filter masks every resolved value
    return settings, loaded


def _load_in_time(build_catalog: Callable[[], Loaded | Report], timeout: float) -> Any:
    """The first catalog, built as a reload builds one: on a thread of its own, for at most
    ``reload_timeout`` seconds; past that, why not (the module whose import hangs, and where)."""
    import concurrent.futures

    from rpcd.server.ops.reload_build import BuildThread, where

    build = BuildThread(build_catalog, name="rpcd-load")
    build.start()
    try:
        return build.future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        module, place = where(build)
        waits = f"importing module `{module}` ({place})" if module else f"at {place}"
        return (
            f"the catalog did not load within reload_timeout ({timeout:g} s): it is still "
            f"{waits}. A handler module must not block when imported (network, locks, "
            "input), and a secret file must not hang: fix it, then start again"
        )


def _announce(url: str) -> None:
    print(f"rpcd: listening on {url}", flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    prepared = prepare(args)
    if isinstance(prepared, int):
        return prepared
    settings, loaded = prepared
    root = Path(args.root_arg or args.root or ".")
    from rpcd.server.ops.loops import run
    from rpcd.server.ops.run import serve

    return run(serve(settings, loaded, announce=_announce, root=root), settings.event_loop)
