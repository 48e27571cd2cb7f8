"""The three reporters: text, the versioned JSON document, GitHub Actions annotations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from tree_helpers import REPO, run_cli

from rpcd.config import Finding, Report, Severity
from rpcd.report import findings_github, findings_json, findings_text

FINDINGS_SCHEMA = json.loads((REPO / "schemas" / "findings.schema.json").read_text("utf-8"))
GITHUB_LINE = re.compile(
    r"^::(error|warning)"
    r"(?: ((?:file=[^,:]*,)?(?:line=[1-9][0-9]*,)?(?:col=[1-9][0-9]*,)?title=[^,:]*))?"
    r"::(.*)$"
)


def _report() -> Report:
    report = Report()
    report.extend(
        [
            Finding("toml-syntax", "bad\nvalue: 100% broken\r", "connections.d/a,b:c.toml", 3, 7),
            Finding(
                "service-without-grant",
                "grants nobody",
                "services.d/x.toml",
                4,
                1,
                "service.name",
                Severity.WARNING,
            ),
            Finding("missing-site-file", "rpcd.toml is missing", "rpcd.toml"),
            Finding("root-not-found", "config root /x does not exist"),
        ]
    )
    return report


def test_findings_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(FINDINGS_SCHEMA)


def test_json_document_validates_and_counts() -> None:
    document = json.loads(findings_json(_report()))
    jsonschema.validate(document, FINDINGS_SCHEMA)
    assert document["valid"] is False
    assert (document["error_count"], document["warning_count"]) == (3, 1)
    first = document["diagnostics"][0]
    assert first["file"] is None and first["line"] is None  # root-not-found sorts first


def test_json_schema_rejects_a_broken_document() -> None:
    document = json.loads(findings_json(_report()))
    del document["diagnostics"][0]["rule"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, FINDINGS_SCHEMA)


def test_json_of_a_valid_report() -> None:
    document = json.loads(findings_json(Report()))
    jsonschema.validate(document, FINDINGS_SCHEMA)
    assert document == {
        "format_version": "1.0",
        "valid": True,
        "error_count": 0,
        "warning_count": 0,
        "diagnostics": [],
    }


def test_github_lines_match_the_annotation_syntax() -> None:
    lines = findings_github(_report()).splitlines()
    assert len(lines) == 4
    for line in lines:
        assert GITHUB_LINE.match(line), line
    syntax = next(line for line in lines if "toml-syntax" in line)
    # properties escape % \r \n : , and data escapes % \r \n
    assert "file=connections.d/a%2Cb%3Ac.toml,line=3,col=7,title=rpcd toml-syntax::" in syntax
    assert syntax.endswith("::bad%0Avalue: 100%25 broken%0D")
    warning = next(line for line in lines if line.startswith("::warning"))
    assert warning == (
        "::warning file=services.d/x.toml,line=4,col=1,title=rpcd service-without-grant"
        "::grants nobody (at service.name)"
    )
    assert "::error title=rpcd root-not-found::config root /x does not exist" in lines


def test_github_prefix_puts_the_root_in_front() -> None:
    text = findings_github(_report(), prefix="config")
    assert "file=config/services.d/x.toml," in text
    assert "file=config/rpcd.toml," in text


def test_text_format() -> None:
    text = findings_text(_report())
    lines = text.splitlines()
    assert lines[0] == "<config>: error[root-not-found] config root /x does not exist"
    assert (
        "services.d/x.toml:4:1: warning[service-without-grant] grants nobody (at service.name)"
        in lines
    )
    assert lines[-1] == "3 errors, 1 warning"
    assert findings_text(Report()) == "valid: no problems found\n"


def test_cli_json_on_a_broken_tree_validates(tree: Path) -> None:
    conn = tree / "connections.d" / "moodle_users.toml"
    conn.write_text(conn.read_text().replace("priority = 1", "priority = 0\nprioity = 2"))
    (tree / "services.d" / "x.toml").write_text('version = 1\n[service]\nname = "x"\n')
    proc = run_cli("validate", str(tree), "--format", "json")
    assert proc.returncode == 1
    document = json.loads(proc.stdout)
    jsonschema.validate(document, FINDINGS_SCHEMA)
    rules = {d["rule"] for d in document["diagnostics"]}
    assert {"invalid-value", "unknown-key", "service-without-grant"} <= rules
    assert document["warning_count"] == 1


def test_cli_github_on_a_broken_tree(tree: Path) -> None:
    conn = tree / "connections.d" / "moodle_users.toml"
    conn.write_text(conn.read_text().replace("priority = 1", "priority = 0"))
    proc = run_cli("validate", "tree", "--format", "github", cwd=tree.parent, subprocess_=True)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines and all(GITHUB_LINE.match(line) for line in lines), lines
    assert any(
        line.startswith("::error file=tree/connections.d/moodle_users.toml,line=") for line in lines
    )
