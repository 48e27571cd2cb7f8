"""The bundled JSON Schemas as data: loading them, and the tables their rules encode.

The schemas (``schemas/v1``) are the contract. A per-type rule such as "which auth goes with
which type" is written once, as the schema's ``if``/``then`` conditionals tagged with
``x-rpcd-rule``; ``rule_table`` reads the table back from them, so the models that decide and
the messages that explain use the schema's own lists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from rpcd.config.sources import FileKind

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "v1"


@cache
def load_schema(kind: FileKind) -> dict[str, Any]:
    text = (SCHEMA_DIR / f"{kind.value}.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def rule_table(kind: FileKind, rule: str, key: str) -> dict[str, tuple[str, ...]]:
    """For each conditional of ``rule``: the value of ``key`` its ``if`` tests → what its
    ``then`` allows (an ``enum`` or ``const`` of one property, or the keys it requires)."""
    table: dict[str, tuple[str, ...]] = {}
    for node in _tagged(load_schema(kind), rule):
        table[_const(node["if"], key)] = _allowed(node["then"])
    return table


def _tagged(node: Any, rule: str) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("x-rpcd-rule") == rule and "if" in node:
            yield node
        for value in node.values():
            yield from _tagged(value, rule)
    elif isinstance(node, list):
        for value in node:
            yield from _tagged(value, rule)


def _const(node: Any, key: str) -> str:
    """The ``const`` an ``if`` compares ``key`` with (inside ``anyOf`` too)."""
    if isinstance(node, dict):
        const = node.get("properties", {}).get(key, {}).get("const")
        if isinstance(const, str):
            return const
        branches = node.get("anyOf", [])
    else:
        branches = node if isinstance(node, list) else []
    for branch in branches:
        found = _const(branch, key)
        if found:
            return found
    return ""


def _allowed(then: dict[str, Any]) -> tuple[str, ...]:
    properties = then.get("properties")
    if not properties:
        return tuple(then["required"])
    (sub,) = properties.values()
    if "enum" in sub:
        return tuple(sub["enum"])
    if "const" in sub:
        return (sub["const"],)
    return tuple(sub["required"])
