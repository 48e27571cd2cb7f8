"""Config files → Catalog. No network, nothing from server, connections or cli."""

from rpcd.config.catalog import BuildResult, Catalog, ResolvedConnection, build
from rpcd.config.findings import Finding, Report, Severity
from rpcd.config.incremental import FileCache

__all__ = [
    "BuildResult",
    "Catalog",
    "FileCache",
    "Finding",
    "Report",
    "ResolvedConnection",
    "Severity",
    "build",
]
