"""``rpcd validate --resolve-secrets``: the checks ``rpcd serve`` makes before it starts.

A tree that validates can still fail to start: a reference names an env variable that is not
set, a credential that is not loaded, a file the daemon's user cannot read, a secret too short
to mask, a handler that does not import. This runs the daemon's own load
(``rpcd.server.core.loading.load``, with the daemon's settings) and reports what it refuses,
as findings; a secret's value is never printed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rpcd.config import Report, build


def preflight(root: Path) -> Report:
    """The findings of the daemon's start-up checks on ``root``; valid means ``serve`` loads it.

    The daemon's settings come from ``RPCD_*`` and ``RPCD_SETTINGS_FILE`` as for ``serve``; a
    ``ValueError`` says they are invalid."""
    from pydantic import ValidationError

    from rpcd.secrets import resolve_catalog, short_secret_findings
    from rpcd.server.core.loading import load
    from rpcd.settings import load_settings

    try:
        settings = load_settings()
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
    quiet = logging.getLogger("rpcd")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # load() logs its findings too; here they are the report
    try:
        loaded = load(
            root,
            strict_secrets=settings.strict_secrets,
            short_secrets=settings.short_secrets,
            settings=settings,
        )
    finally:
        quiet.setLevel(level)
    if isinstance(loaded, Report):
        return loaded
    # Loaded: nothing refused. Report the build's warnings and infos, as validate does, and
    # the secrets' warnings (a disabled connection's unresolved reference, for one).
    report = build(root, previous=loaded.cache, check_imports=True).report
    _, found = resolve_catalog(loaded.catalog)
    report.extend(short_secret_findings(found, settings.short_secrets))
    return report
