"""Findings are data: a rule id, where, what is wrong and how to fix it. Reporters print them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"  # worth knowing, never a problem (e.g. enabled-missing)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in one place. ``path`` is the key path (``connection[2].credentials.token``)."""

    rule: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str = ""
    severity: Severity = Severity.ERROR

    def location(self) -> str:
        """``FILE:LINE:COL`` as far as known, else the file and key path."""
        if self.file is None:
            return self.path or "<config>"
        if self.line is None:
            return f"{self.file}:{self.path}" if self.path else self.file
        return f"{self.file}:{self.line}:{self.column or 1}"

    def as_text(self) -> str:
        where = self.location()
        extra = f" (at {self.path})" if self.path and self.line is not None else ""
        return f"{where}: {self.severity.value}[{self.rule}] {self.message}{extra}"

    def as_dict(self) -> dict[str, str | int | None]:
        """Where and what, as JSON data (the findings document, ``/v1/status``)."""
        return {
            "rule": self.rule,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
        }

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file or "", self.line or 0, self.column or 0, self.path, self.rule)


@dataclass(slots=True)
class Report:
    """Every finding of one run, from every file."""

    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def extend(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(findings)

    def __iter__(self) -> Iterator[Finding]:
        return iter(sorted(self.findings, key=Finding.sort_key))

    def __len__(self) -> int:
        return len(self.findings)

    @property
    def error_count(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warning_count(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.WARNING)

    @property
    def info_count(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.INFO)

    @property
    def valid(self) -> bool:
        return self.error_count == 0

    def rules(self) -> set[str]:
        return {f.rule for f in self.findings}
