"""Shared fixtures and the hypothesis profiles of the suite.

``tree`` is a private copy of the example tree at the repository root (rpcd.toml,
connections.d/, services.d/), so a test can break one file and check exactly what is reported.
Plain helpers (``REPO``, ``run_cli``, ``findings``…) are in ``tree_helpers.py``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from tree_helpers import copy_example

# Fuzz tests (``@pytest.mark.fuzz``) take their example count from the active profile: a short
# budget in ``make test`` ("suite"), a long one under ``make fuzz`` ("fuzz", which also loops
# over fresh seeds until its time is up). A fuzz test sets no ``max_examples`` of its own.
settings.register_profile("suite", deadline=None)
settings.register_profile(
    "fuzz",
    max_examples=1_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("RPCD_HYPOTHESIS_PROFILE", "suite"))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A writable copy of the example tree."""
    return copy_example(tmp_path / "tree")


@pytest.fixture(scope="session")
def mahara_servers() -> Iterator[Callable[[str], Any]]:
    """``get(dialect)``: a throwaway PostgreSQL ("postgresql") or MariaDB ("mysql") server
    holding Mahara's connection tables and rows (tests/mahara_helpers.py), started on first
    use and kept for the session; skips the test, with the reason, where it cannot start."""
    import mahara_helpers

    started: dict[str, Any] = {}
    failed: dict[str, str] = {}
    with contextlib.ExitStack() as stack:

        def get(dialect: str) -> Any:
            if dialect in failed:
                pytest.skip(failed[dialect])
            if dialect not in started:
                start = {"postgresql": mahara_helpers.postgres, "mysql": mahara_helpers.mariadb}
                try:
                    server = stack.enter_context(start[dialect]())
                    mahara_helpers.load_rows(server.admin, server.dialect)
                    mahara_helpers.load_rows(server.admin, server.dialect, prefix="mh_")
                except mahara_helpers.Unavailable as exc:
                    failed[dialect] = f"{dialect} cannot start here: {exc}"
                    pytest.skip(failed[dialect])
                started[dialect] = server
            return started[dialect]

        yield get
