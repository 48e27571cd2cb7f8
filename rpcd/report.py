"""Reporters: the same findings as text, one JSON document, or GitHub Actions annotations."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable

from rpcd.config.findings import Report, Severity

FINDINGS_FORMAT_VERSION = "1.0"


def findings_text(report: Report) -> str:
    lines = [f.as_text() for f in report]
    errors, warnings = report.error_count, report.warning_count
    if errors or warnings:
        lines.append(
            f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
        )
    else:
        lines.append("valid: no problems found")
    if report.info_count:
        lines[-1] += f" ({report.info_count} info)"
    return "\n".join(lines) + "\n"


def findings_json(report: Report) -> str:
    """The versioned findings document (schemas/findings.schema.json), like Terraform's
    ``validate -json``."""
    document = {
        "format_version": FINDINGS_FORMAT_VERSION,
        "valid": report.valid,
        "error_count": report.error_count,
        "warning_count": report.warning_count,
        "diagnostics": [{"severity": f.severity.value, **f.as_dict()} for f in report],
    }
    return json.dumps(document, indent=2) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def findings_github(report: Report, prefix: str = "") -> str:
    """GitHub Actions workflow commands: ``::error file=F,line=L,col=C,title=T::message``.

    GitHub wants file paths relative to the repository; findings are relative to the config
    root, so ``prefix`` (the root as seen from the working directory) is put in front.
    """
    lines = []
    for f in report:
        props = []
        if f.file:
            path = posixpath.join(prefix, f.file) if prefix else f.file
            props.append(f"file={_escape_property(path)}")
        if f.line:
            props.append(f"line={f.line}")
        if f.column:
            props.append(f"col={f.column}")
        props.append(f"title={_escape_property('rpcd ' + f.rule)}")
        message = f.message + (f" (at {f.path})" if f.path else "")
        level = "notice" if f.severity is Severity.INFO else f.severity.value  # GitHub's name
        lines.append(f"::{level} {','.join(props)}::{_escape_data(message)}")
    return "\n".join(lines) + ("\n" if lines else "")


REPORTERS: dict[str, Callable[[Report], str]] = {
    "text": findings_text,
    "json": findings_json,
    "github": findings_github,
}
