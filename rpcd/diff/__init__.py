"""``rpcd diff``: what a change to the config tree does, for review.

Four modules, one job each: ``gitsource`` turns a directory or a git revision into a built
catalog, ``compute`` compares two catalogs (pure), ``render`` prints the result as text,
markdown or versioned JSON, and ``command`` is the ``rpcd diff`` sub-command tying them up.
"""

from __future__ import annotations

from rpcd.diff.compute import (
    KINDS,
    Action,
    Diff,
    EntityChange,
    FieldChange,
    RouteChange,
    Secret,
    diff_catalogs,
    known_institutions,
)
from rpcd.diff.gitsource import GitSourceError, Side, materialise
from rpcd.diff.render import FORMATS, SideInfo, render_json, render_markdown, render_text

__all__ = [
    "FORMATS",
    "KINDS",
    "Action",
    "Diff",
    "EntityChange",
    "FieldChange",
    "GitSourceError",
    "RouteChange",
    "Secret",
    "Side",
    "SideInfo",
    "diff_catalogs",
    "known_institutions",
    "materialise",
    "render_json",
    "render_markdown",
    "render_text",
]
