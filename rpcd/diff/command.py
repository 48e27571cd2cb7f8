"""``rpcd diff BASE HEAD``: what a change does, for review. Exit codes as Terraform's
``plan -detailed-exitcode`` so CI can tell "no change" from "changes" from "broken"."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rpcd.diff.actions import handler_modules
from rpcd.diff.compute import diff_catalogs, known_institutions
from rpcd.diff.gitsource import GitSourceError, Side, materialise
from rpcd.diff.handlers import changed_modules
from rpcd.diff.render import FORMATS, SideInfo, render_json, render_markdown, render_text
from rpcd.report import findings_text

EXIT_SAME, EXIT_ERROR, EXIT_CHANGED = 0, 1, 2

EPILOG = """\
BASE and HEAD are each a directory (a config root) or a git revision of the repository the
command runs in (a branch, tag, commit, origin/main, HEAD~1 ...). A revision is read from git's
object store: the work tree and the index are never touched. Both sides are validated first.
Secrets appear only as references (env:NAME, file:/path, credential:name); rpcd diff never
reads a secret, and a peer's credential hash is never printed ("credential rotated").

exit codes (as terraform plan -detailed-exitcode):
  0  no change
  1  error: an invalid side (its findings are printed), an unknown revision, bad arguments
  2  changes found (CI: treat 2 as success when posting the diff)
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="what changes between two trees or git revisions (entities and routing)",
        description="Compare two config trees: institutions, classes, connections, services, "
        "methods, peers and the master switch (only changed fields, old → new), and the "
        "effective routing per class and institution.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Usage errors exit 1, not argparse's 2: here 2 means "changes found" (rpcd.cli.CommandParser).
    parser.set_defaults(usage_exit_code=EXIT_ERROR)
    parser.add_argument("base", metavar="BASE", help="directory or git revision before the change")
    parser.add_argument("head", metavar="HEAD", help="directory or git revision after the change")
    parser.add_argument(
        "--format", choices=FORMATS, default="text", help="output format (default text)"
    )
    parser.add_argument("--institution", metavar="I", help="only what changes for institution I")
    parser.add_argument(
        "--root-in-repo",
        metavar="PATH",
        help="for revisions: where the config root is inside the repository "
        "(default: the current directory's place in it)",
    )
    parser.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="text colours (auto: on a terminal)",
    )
    parser.set_defaults(func=run)


def _info(side: Side) -> SideInfo:
    catalog = side.result.catalog
    return SideInfo(side.label, side.revision, catalog.content_hash if catalog else None)


def _color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def run(args: argparse.Namespace) -> int:
    cwd = Path.cwd()
    try:
        with ExitStack() as stack:
            base = stack.enter_context(materialise(args.base, cwd, args.root_in_repo))
            head = stack.enter_context(materialise(args.head, cwd, args.root_in_repo))
            return _compare(args, base, head)
    except GitSourceError as exc:
        sys.stderr.write(f"rpcd diff: {exc}\n")
        return EXIT_ERROR


def _compare(args: argparse.Namespace, base: Side, head: Side) -> int:
    invalid = False
    for name, side in (("BASE", base), ("HEAD", head)):
        if side.result.catalog is None:
            invalid = True
            report = findings_text(side.result.report)
            sys.stderr.write(f"rpcd diff: {name} ({side.label}) is invalid:\n{report}")
    if invalid or base.result.catalog is None or head.result.catalog is None:
        return EXIT_ERROR
    if args.institution is not None and args.institution not in known_institutions(
        base.result.catalog, head.result.catalog
    ):
        sys.stderr.write(
            f"rpcd diff: institution {args.institution!r} is declared on neither side\n"
        )
        return EXIT_ERROR
    modules = changed_modules(
        base, head, handler_modules(head.result.catalog), Path.cwd(), args.root_in_repo
    )
    diff = diff_catalogs(base.result.catalog, head.result.catalog, args.institution, modules)
    infos = (_info(base), _info(head))
    if args.format == "json":
        sys.stdout.write(render_json(diff, *infos))
    elif args.format == "markdown":
        sys.stdout.write(render_markdown(diff, *infos))
    else:
        sys.stdout.write(render_text(diff, *infos, color=_color(args.color)))
    return EXIT_SAME if diff.empty else EXIT_CHANGED
