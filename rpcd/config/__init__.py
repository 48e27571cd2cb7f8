"""Config files → Catalog. No network, nothing from server, connections or cli."""

from rpcd.config.catalog import BuildResult, Catalog, FileCache, ResolvedConnection, build
from rpcd.config.findings import Finding, Report, Severity

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
