"""Throwaway config trees pointing at the test peers, and a scan for leaked secrets."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpcd.config import Catalog, build
from rpcd.secrets import SecretStore, resolve_catalog

SITE = """\
version = 1
[connections]
enabled = {enabled}
[[institution]]
id = "uni-a"
name = "University A"
[[institution]]
id = "uni-b"
name = "University B"
[[institution]]
id = "college-c"
name = "College C"
"""

#: Every secret value the connection tests use; none may reach a log record.
SECRETS: set[str] = set()


def secret(value: str) -> str:
    SECRETS.add(value)
    return value


def make_tree(root: Path, files: dict[str, str], *, enabled: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "rpcd.toml").write_text(SITE.format(enabled=str(enabled).lower()))
    for name, text in files.items():
        path = root / "connections.d" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("version = 1\n" + textwrap.dedent(text))
    return root


def load(root: Path) -> Catalog:
    result = build(root)
    assert result.catalog is not None, "\n".join(f.as_text() for f in result.report)
    return result.catalog


def load_with_secrets(root: Path) -> tuple[Catalog, SecretStore]:
    catalog = load(root)
    store, findings = resolve_catalog(catalog)
    errors = [f.as_text() for f in findings if f.severity == "error"]
    assert not errors, errors
    return catalog, store


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture every log record at DEBUG during the test; fail if one holds a secret."""
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        leaked = [s for s in SECRETS if s in text]
        assert not leaked, f"a secret reached the log ({record.name}: {record.levelname})"
