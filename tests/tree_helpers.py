"""Helpers the tests share: the repository root, a copy of the example tree, rpcd's CLI run in
process or as a subprocess, and small lookups in findings and files. Fixtures live in
``conftest.py``; this is a plain module that tests import.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

from rpcd.cli import main
from rpcd.config import Finding, Severity, build

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_PARTS = ("rpcd.toml", "connections.d", "services.d")


def copy_example(dest: Path) -> Path:
    """Copy the example tree into ``dest`` (created) and return it."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in EXAMPLE_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part)
        else:
            shutil.copy2(src, dest / part)
    return dest


def findings(root: Path, *, check_imports: bool = False, infos: bool = False) -> list[Finding]:
    """Every finding of one run over ``root``, in report order; info findings (never a
    problem, e.g. enabled-missing) only with ``infos``."""
    found = build(root, check_imports=check_imports).report
    return [f for f in found if infos or f.severity is not Severity.INFO]


def run_cli(
    *args: str,
    stdin: str | None = None,
    cwd: Path | None = None,
    subprocess_: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``rpcd ARGS``: by default in this process through ``rpcd.cli.main`` (fast, same code),
    with ``subprocess_=True`` as ``python -m rpcd ARGS`` (exit codes, stdin and argv as a user
    or CI sees them), ``env`` added to its environment."""
    if subprocess_ or env is not None:
        return subprocess.run(
            [sys.executable, "-m", "rpcd", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=cwd or REPO,
            env={**os.environ, **(env or {})},
            timeout=60,
            check=False,
        )
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(cwd or REPO),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        mock.patch.object(sys, "stdin", io.StringIO(stdin or "")),
    ):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors and --help
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """The 1-based line number of the ``occurrence``-th line of ``path`` containing ``needle``."""
    seen = 0
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in text:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not found in {path}")


def rules_of(found: Sequence[Finding]) -> set[str]:
    return {f.rule for f in found}
