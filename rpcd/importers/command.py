"""``rpcd import mahara --dsn URL --out DIR [--secrets-out DIR]``.

Reads a Mahara database, writes a config tree that validates (checked before this command
reports success), and lists what a reviewer must know. Exit codes: 0 every row imported,
1 the tree was written but some rows were not imported (each named), or nothing could be
written; 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rpcd.cli import positive_int

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DSN_ENV = "MAHARA_DSN"


def register(sub: Any) -> None:
    from rpcd.importers.source import DEFAULT_MAX_ROWS

    p = sub.add_parser(
        "import",
        help="write a config tree from another system's connections (mahara)",
        description="Reads the connections of another system and writes a config tree.",
    )
    sources = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    m = sources.add_parser(
        "mahara",
        help="Mahara 16.10+: client_connections_institution and client_connections_config",
        description="Reads a live Mahara database (PostgreSQL or MySQL/MariaDB; drivers: "
        "pip install 'rpcd[import]') and writes one class per Mahara connection definition, "
        "one connection per row, the institutions into rpcd.toml. Secrets become references; "
        "--secrets-out writes their values as 0600 files with a checklist.",
    )
    m.add_argument(
        "--dsn",
        metavar="URL",
        help=f"postgresql://user@host:port/db or mysql://user@host:port/db (default: "
        f"${DSN_ENV}; keep the password out of argv: PGPASSWORD, ~/.pgpass or ${DSN_ENV})",
    )
    m.add_argument("--out", metavar="DIR", required=True, type=Path, help="new, empty folder")
    m.add_argument(
        "--secrets-out",
        metavar="DIR",
        type=Path,
        help="write each secret as a 0600 file here (outside --out), with CHECKLIST.txt",
    )
    m.add_argument(
        "--refs",
        choices=["credential", "env"],
        default="credential",
        help="reference secrets as systemd credentials (default) or environment variables",
    )
    m.add_argument("--table-prefix", default="", metavar="P", help="Mahara's dbprefix, if any")
    m.add_argument(
        "--max-rows",
        type=positive_int,
        default=DEFAULT_MAX_ROWS,
        metavar="N",
        help=f"refuse a table with more rows than this (default {DEFAULT_MAX_ROWS:,})",
    )
    m.set_defaults(func=cmd_import_mahara)


def cmd_import_mahara(args: argparse.Namespace) -> int:
    from rpcd.config import build
    from rpcd.importers.mahara import plan_import
    from rpcd.importers.source import SourceError, read_tables
    from rpcd.importers.writer import WriteError, secret_summary, write
    from rpcd.logsafe import one_line
    from rpcd.report import findings_text

    dsn = args.dsn or os.environ.get(DSN_ENV)
    if not dsn:
        sys.stderr.write(f"rpcd import mahara: give --dsn URL (or set {DSN_ENV})\n")
        return EXIT_USAGE
    try:
        tables = read_tables(dsn, prefix=args.table_prefix, max_rows=args.max_rows)
    except SourceError as exc:
        sys.stderr.write(f"rpcd import mahara: {exc}\n")
        return EXIT_FAILED
    plan = plan_import(tables, refs=args.refs)
    try:
        written = write(plan, args.out, args.secrets_out)
    except WriteError as exc:
        sys.stderr.write(f"rpcd import mahara: {exc}\n")
        return EXIT_FAILED
    out = sys.stdout
    out.write(
        f"wrote {len(written.files)} file(s) to {args.out}: {len(plan.institutions)} "
        f"institution(s), {len(plan.classes)} class(es), {len(plan.connections)} "
        f"connection(s); {secret_summary(plan.secrets)}\n"
    )
    for notice in plan.notices:  # names from the database: control characters escaped
        out.write(f"note: {one_line(notice)}\n")
    for skipped in plan.skipped:
        out.write(f"not imported: {one_line(skipped)}\n")
    result = build(args.out)
    if not result.report.valid:  # a bug of the importer: say so, with the findings
        sys.stderr.write(
            "rpcd import mahara: the written tree does not validate (please report this):\n"
            + findings_text(result.report)
        )
        return EXIT_FAILED
    out.write("the tree validates (rpcd validate)\n\n")
    out.write(written.checklist)
    return EXIT_FAILED if plan.skipped else EXIT_OK
