"""``rpcd call`` and ``rpcd check``: outbound calls from the command line.

Values on the command line (``--param k=v`` and positional PARAMS) are JSON when they parse
as JSON (``5``, ``true``, ``[1,2]``, ``{"a":1}``), else plain strings; quote a JSON string
(``'"5"'``) to force a string. Secrets are resolved as the daemon does; logs go to stderr
through the redacting filter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the heavy modules (config, aiohttp) load only when a command runs
    from rpcd.config import Catalog, Finding
    from rpcd.connections.runner import CallOutcome
    from rpcd.connections.transport import TransportSettings
    from rpcd.secrets import SecretStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def register(sub: Any) -> None:
    p = sub.add_parser(
        "call",
        help="call a function over a class's connections (tried in priority order)",
        description="Runs FUNCTION over the connections of CLASS that apply to the given "
        "institutions, as the daemon's call API does, and prints the outcome as JSON.",
    )
    p.add_argument("class_id", metavar="CLASS")
    p.add_argument("function", metavar="FUNCTION")
    p.add_argument("values", nargs="*", metavar="PARAMS", help="positional parameters (XML-RPC)")
    p.add_argument(
        "--param", action="append", default=[], metavar="K=V", help="a named parameter (repeat)"
    )
    p.add_argument(
        "--json", dest="json_file", metavar="FILE", help="all parameters as JSON (- = stdin)"
    )
    p.add_argument(
        "--institution",
        action="append",
        default=[],
        metavar="I",
        help="caller's institution (repeat)",
    )
    p.add_argument("--root", metavar="DIR", default=".", help="config root (default .)")
    p.set_defaults(func=cmd_call)

    p = sub.add_parser(
        "check",
        help="probe every enabled connection (each class's probe call), print a table",
        description="Runs each class's probe on every enabled connection concurrently. "
        "Exit 1 if any probe fails, or if nothing was checked (no connection, no probe, or "
        "the master switch off).",
    )
    p.add_argument(
        "class_id",
        nargs="?",
        metavar="CLASS[/ID]",
        help="only this class, or only its connection ID (probed even when it or the master "
        "switch is off, to test it before enabling it)",
    )
    p.add_argument("--root", metavar="DIR", default=".", help="config root (default .)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_check)


# ------------------------------------------------------------------------------- shared


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _params(args: argparse.Namespace) -> Any:
    given = [bool(args.values), bool(args.param), args.json_file is not None]
    if sum(given) > 1:
        raise UsageError("give parameters one way: PARAMS, --param K=V or --json FILE")
    if args.json_file is not None:
        try:
            text = (
                sys.stdin.read()
                if args.json_file == "-"
                else Path(args.json_file).read_text(encoding="utf-8")
            )
            return json.loads(text)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--json {args.json_file}: {exc}") from None
    if args.param:
        named: dict[str, Any] = {}
        for item in args.param:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise UsageError(f"--param {item!r}: expected KEY=VALUE")
            named[key] = _value(raw)
        return named
    if args.values:
        return [_value(v) for v in args.values]
    return None


def _load(root: str) -> tuple[Catalog, SecretStore, list[Finding]] | None:
    from rpcd.config import build
    from rpcd.report import REPORTERS
    from rpcd.secrets import SecretRedactingFilter, resolve_catalog

    result = build(Path(root))
    if result.catalog is None:
        sys.stderr.write(REPORTERS["text"](result.report))
        return None
    store, findings = resolve_catalog(result.catalog)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SecretRedactingFilter(store))
    handler.setFormatter(_OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    return result.catalog, store, findings


class _OneLineFormatter(logging.Formatter):
    """A record is one line on stderr: control characters from remote texts are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        from rpcd.logsafe import one_line

        return one_line(super().format(record))


def _transport_settings(command: str) -> TransportSettings | None:
    """The outbound limits as the daemon uses them (``RPCD_OUTBOUND_*``, the settings file);
    None, with the reason on stderr, when the settings are invalid."""
    from rpcd.connections.transport import TransportSettings
    from rpcd.settings import load_settings

    try:
        return TransportSettings.from_settings(load_settings())
    except ValueError as exc:
        sys.stderr.write(f"rpcd {command}: invalid settings: {exc}\n")
        return None


def _ready(
    command: str, root: str
) -> tuple[TransportSettings, Catalog, SecretStore, list[Finding]] | int:
    """The outbound settings, the catalog and its secrets, or the exit code that says why not."""
    outbound = _transport_settings(command)
    if outbound is None:
        return EXIT_USAGE
    loaded = _load(root)
    if loaded is None:
        return EXIT_FAILED
    return (outbound, *loaded)


def _warn(findings: Sequence[Finding], full_ids: set[str]) -> None:
    """Secret findings of the connections in use (others are not this command's business)."""
    for f in findings:
        owner = f.path.split(".credentials.", 1)[0].split(".proxy.", 1)[0]
        if owner in full_ids or f.path.startswith("proxy."):  # the site proxy's too
            sys.stderr.write(f.as_text() + "\n")


# --------------------------------------------------------------------------------- call


def cmd_call(args: argparse.Namespace) -> int:
    try:
        params = _params(args)
    except UsageError as exc:
        sys.stderr.write(f"rpcd call: {exc}\n")
        return EXIT_USAGE
    ready = _ready("call", args.root)
    if isinstance(ready, int):
        return ready
    outbound, catalog, store, findings = ready
    if args.class_id not in catalog.classes:
        known = ", ".join(sorted(catalog.classes)) or "none"
        sys.stderr.write(f"rpcd call: no connection class {args.class_id!r} (declared: {known})\n")
        return EXIT_USAGE
    _warn(findings, {c.full_id for c in catalog.instances(args.class_id)})
    outcome = asyncio.run(_call(catalog, store, args, params, outbound))
    sys.stdout.write(json.dumps(outcome.to_dict(), indent=2, default=_json_default) + "\n")
    return EXIT_OK if outcome.ok else EXIT_FAILED


async def _call(
    catalog: Catalog,
    store: SecretStore,
    args: argparse.Namespace,
    params: Any,
    outbound: TransportSettings,
) -> CallOutcome:
    from rpcd.connections.runner import call_class
    from rpcd.connections.transport import Transport

    async with Transport.open(outbound) as transport:
        return await call_class(
            catalog,
            args.class_id,
            args.function,
            params,
            args.institution,
            secrets=store,
            transport=transport,
        )


def _json_default(value: Any) -> Any:
    """XML-RPC results may hold bytes and datetimes; JSON shows them as text."""
    if isinstance(value, bytes | bytearray):
        import base64

        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


# -------------------------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    ready = _ready("check", args.root)
    if isinstance(ready, int):
        return ready
    outbound, catalog, store, findings = ready
    class_id, _, conn_id = (args.class_id or "").partition("/")
    if args.class_id is not None and class_id not in catalog.classes:
        sys.stderr.write(f"rpcd check: no connection class {class_id!r}\n")
        return EXIT_USAGE
    if conn_id and f"{class_id}/{conn_id}" not in catalog.connections:
        known = ", ".join(c.id for c in catalog.instances(class_id)) or "none"
        sys.stderr.write(
            f"rpcd check: class {class_id!r} has no connection {conn_id!r} (it has: {known})\n"
        )
        return EXIT_USAGE
    if not catalog.connections_enabled and not conn_id:  # one named connection: probe it
        sys.stderr.write(
            "rpcd check: nothing checked: client connections are disabled by the master switch "
            "([connections] enabled = false in rpcd.toml)\n"
        )
        return EXIT_FAILED
    targets = [
        c
        for c in sorted(catalog.connections.values(), key=lambda c: (c.class_id, c.priority, c.id))
        if (c.enabled or conn_id)  # a connection named on its own is probed even when off
        and (args.class_id is None or c.class_id == class_id)
        and (not conn_id or c.id == conn_id)
    ]
    _warn(findings, {c.full_id for c in targets})
    rows = asyncio.run(_check(catalog, store, targets, outbound))
    if args.format == "json":
        sys.stdout.write(json.dumps({"format_version": 1, "results": rows}, indent=2) + "\n")
    else:
        sys.stdout.write(_table(rows))
    if not any(r["ok"] is not None for r in rows):
        sys.stderr.write(
            "rpcd check: nothing checked: "
            + ("no enabled connection" if not rows else "no class of these has a probe")
            + " (a check that checks nothing fails)\n"
        )
        return EXIT_FAILED
    return EXIT_FAILED if any(r["ok"] is False for r in rows) else EXIT_OK


async def _check(
    catalog: Catalog, store: SecretStore, targets: list[Any], outbound: TransportSettings
) -> list[dict[str, Any]]:
    from rpcd.connections.probe import probe_endpoints
    from rpcd.connections.transport import Transport

    progress = _Progress(len(targets))
    async with Transport.open(outbound) as transport:

        async def probe(resolved: Any) -> list[dict[str, Any]]:
            rows = [r.to_row() for r in await probe_endpoints(catalog, store, transport, resolved)]
            progress.step(resolved.full_id)
            return rows

        found = await asyncio.gather(*(probe(t) for t in targets))
        rows = [row for group in found for row in group]
    progress.done()
    return list(rows)


class _Progress:
    """``[3/10] class/id`` on stderr, only when stderr is a terminal."""

    def __init__(self, total: int) -> None:
        self.total, self.count = total, 0
        self.tty = sys.stderr.isatty()

    def step(self, label: str) -> None:
        self.count += 1
        if self.tty:
            sys.stderr.write(f"\r\x1b[K[{self.count}/{self.total}] {label}")
            sys.stderr.flush()

    def done(self) -> None:
        if self.tty and self.total:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no enabled connections\n"
    body = [
        (
            r["connection"],
            {True: "ok", False: "FAIL", None: "skip"}[r["ok"]],
            "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f} ms",
            r["error"] or "",
        )
        for r in rows
    ]
    head = ("CONNECTION", "OK", "LATENCY", "ERROR")
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line[:3])) + "  " + line[3]
        for line in [head, *body]
    ]
    failed = sum(1 for r in rows if r["ok"] is False)
    lines.append(f"{len(rows)} connection(s), {failed} failed")
    return "\n".join(s.rstrip() for s in lines) + "\n"
