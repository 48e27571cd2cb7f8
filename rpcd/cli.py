"""The ``rpcd`` command: parse arguments, build the parts, run, return an exit code.

Exit codes: 0 success / valid, 1 invalid or failed, 2 usage error (argparse's own too).
"""

from __future__ import annotations

import argparse
import gc
import getpass
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from rpcd import __version__
from rpcd.config import build
from rpcd.config.pool import available_cpus
from rpcd.report import REPORTERS, findings_github
from rpcd.secrets_hash import scrypt_hash, token_sha256

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


def _root(args: argparse.Namespace) -> Path:
    return Path(args.root_arg or args.root or ".")


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root_arg", nargs="?", metavar="ROOT", help="config root (default: --root or .)"
    )
    parser.add_argument("--root", metavar="DIR", help="config root, when ROOT is not given")


def _settled() -> None:
    """Move everything built so far out of the garbage collector's sight.

    A command that builds a catalog, prints and exits keeps the build's millions of objects to
    the end: without this, the collections that printing triggers, and the one at interpreter
    exit, walk them all for nothing (0.7 s of a 10,000-file validate).
    """
    gc.freeze()


@command("validate")
def cmd_validate(args: argparse.Namespace) -> int:
    root = _root(args)
    if args.resolve_secrets:
        from rpcd.preflight import preflight

        try:
            report = preflight(root)
        except ValueError as exc:
            sys.stderr.write(f"rpcd validate: invalid daemon settings: {exc}\n")
            return EXIT_USAGE
    else:
        jobs = args.jobs or available_cpus()
        report = build(root, check_imports=args.check_imports, jobs=jobs).report
    _settled()
    if args.format == "github":
        sys.stdout.write(findings_github(report, prefix=_github_prefix(root)))
    else:
        sys.stdout.write(REPORTERS[args.format](report))
    if "root-not-found" in report.rules():
        return EXIT_USAGE
    return EXIT_OK if report.valid else EXIT_INVALID


def _github_prefix(root: Path) -> str:
    """The config root relative to the working directory (the repository, in a CI job)."""
    try:
        rel = root.resolve().relative_to(Path.cwd().resolve())
    except (OSError, ValueError):
        return root.as_posix()
    text = rel.as_posix()
    return "" if text == "." else text


@command("show")
def cmd_show(args: argparse.Namespace) -> int:
    result = build(_root(args), jobs=available_cpus())
    _settled()
    if result.catalog is None:
        sys.stderr.write(REPORTERS["text"](result.report))
        return EXIT_INVALID
    data = result.catalog.to_dict()
    if args.format == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        import tomli_w  # only `rpcd show` writes TOML: validate's start-up does not pay for it

        sys.stdout.write(tomli_w.dumps(data))
    return EXIT_OK


@command("hash-secret")
def cmd_hash_secret(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        secret = getpass.getpass("secret (not echoed): ")
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        sys.stderr.write("rpcd hash-secret: no secret on standard input\n")
        return EXIT_USAGE
    if args.kind == "token":
        if len(secret) < 16:
            sys.stderr.write("warning: tokens shorter than 16 characters are easy to guess\n")
        sys.stdout.write(f'token_sha256 = "{token_sha256(secret)}"\n')
    else:
        sys.stdout.write(f'password_hash = "{scrypt_hash(secret)}"\n')
    return EXIT_OK


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number of at least 1, else a usage error saying so."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


class CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: a usage error exits with the command's own code, set as the
    default ``usage_exit_code`` (``rpcd diff`` uses 1, since its 2 means "changes found")."""

    def error(self, message: str) -> NoReturn:
        code = self.get_default("usage_exit_code")
        self.print_usage(sys.stderr)
        self.exit(code if isinstance(code, int) else 2, f"{self.prog}: error: {message}\n")


def build_parser(others: bool = True) -> argparse.ArgumentParser:
    """The parser of every command; with ``others`` false, only of this module's own."""
    parser = argparse.ArgumentParser(
        prog="rpcd",
        description="Configuration-as-code connection manager and RPC daemon.",
        epilog="Exit codes: 0 ok/valid, 1 invalid or failed, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"rpcd {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=CommandParser
    )

    p = sub.add_parser(
        "validate", help="check a config tree; every problem of every file in one run"
    )
    _add_root(p)
    p.add_argument(
        "--format", choices=sorted(REPORTERS), default="text", help="output format (default text)"
    )
    p.add_argument(
        "--import",
        dest="check_imports",
        action="store_true",
        help="also import every handler function",
    )
    p.add_argument(
        "--resolve-secrets",
        action="store_true",
        help="also run rpcd serve's start-up checks: resolve every secret reference with the "
        "daemon's settings (run it as the daemon's user), import every handler",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=positive_int,
        default=0,
        metavar="N",
        help="processes that parse and check files of a big tree (default: one per CPU; "
        "1 checks in this process only)",
    )

    p = sub.add_parser(
        "show", help="print the resolved catalog (defaults filled in, secrets as references)"
    )
    _add_root(p)
    p.add_argument("--format", choices=["toml", "json"], default="toml")

    p = sub.add_parser(
        "hash-secret",
        help="hash a peer credential read from standard input (never from argv)",
        description="Reads one secret from standard input (or a prompt) and prints the line to "
        "paste "
        "into a [[peer]]: sha256 for tokens, scrypt for passwords.",
    )
    kind = p.add_mutually_exclusive_group()
    kind.add_argument(
        "--token", dest="kind", action="store_const", const="token", help="a random token (default)"
    )
    kind.add_argument(
        "--password", dest="kind", action="store_const", const="password", help="a password"
    )
    p.set_defaults(kind="token")

    if others:
        for module_name in SUBCOMMAND_MODULES:
            importlib.import_module(module_name).register(sub)
    return parser


# Each part of rpcd that has commands offers ``register(subparsers)``, which adds its
# sub-parsers with ``set_defaults(func=...)``; a func takes the Namespace, returns the exit code.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "rpcd.diff.command",
    "rpcd.connections.cli",
    "rpcd.server.cli",
    "rpcd.importers.command",
)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `rpcd validate` (CI's command) does not import the daemon's and the client's modules
    # (asyncio, ssl, logging: 30 ms) just to list them in a help text it does not print.
    parser = build_parser(others=not argv or argv[0] not in COMMANDS)
    args = parser.parse_args(argv)
    try:
        func: Command = getattr(args, "func", None) or COMMANDS[args.command]
        return func(args)
    except KeyboardInterrupt:
        return 130
