"""docs/configuration.md is generated from the schemas (``make docs``) and must not go stale."""

from __future__ import annotations

import subprocess
import sys

from tree_helpers import REPO

from rpcd.config.contract import load_schema
from rpcd.config.docgen import render
from rpcd.config.sources import FileKind

PAGE = REPO / "docs" / "configuration.md"


def test_configuration_reference_is_up_to_date() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale: run `make docs` and commit the result"
    )


def test_docgen_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rpcd.config.docgen"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == render()


def _keys(node: object) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        found |= set(node.get("properties", {}))
        for value in node.values():
            found |= _keys(value)
    elif isinstance(node, list):
        for value in node:
            found |= _keys(value)
    return found


def test_every_schema_key_and_rule_is_documented() -> None:
    page = render()
    for kind in FileKind:
        schema = load_schema(kind)
        for key in _keys(schema):
            assert f"| `{key}` |" in page or f"{{ {key} = " in page, (
                f"{kind.value}: key {key} missing"
            )
        rules = {r for r in _rules(schema)}
        for rule in rules:
            assert f"`{rule}`" in page, f"rule {rule} missing"


def _rules(node: object) -> set[str]:
    if isinstance(node, dict):
        own = {node["x-rpcd-rule"]} if "x-rpcd-rule" in node else set()
        return own.union(*(_rules(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_rules(v) for v in node))
    return set()


def test_matrix_follows_the_schema() -> None:
    """The type/auth/payload table is read from the conditionals, not written by hand."""
    page = render()
    assert "| `XML-RPC` | `token`, `userpass`, `cert` | `xml` |" in page
    assert "| `REST` (default) | `token`, `userpass`, `oauth1` | `url`, `json`, `xml` |" in page
    assert "| `wsse` | `username`, `password` |" in page
    assert "| `priority` | integer | no | `1` | ≥ 1 |" in page
