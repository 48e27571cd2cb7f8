"""The schema's per-type rules as predicates the models run: written once, in the schema.

A rule such as "auth must suit type" or "token_param needs auth token" is a JSON-Schema
conditional (``if``/``then``, ``not``, ``oneOf``) tagged ``x-rpcd-rule`` in ``schemas/v1``.
``rules_of`` compiles the tagged conditionals of one schema node into plain Python predicates
over the raw TOML table, with JSON Schema's meaning, so the pydantic models decide with the
schema's own rules instead of a second copy. Only the few keywords such conditionals need are
understood; any other raises at import, so a schema edit can never be silently ignored.
``tests/test_schema_differential.py`` holds the result to jsonschema's Draft 7.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rpcd.config.contract import load_schema
from rpcd.config.sources import FileKind

Check = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class TaggedRule:
    """One tagged conditional: its rule id and whether a table satisfies it."""

    rule: str
    holds: Check


def rules_of(kind: FileKind, *pointer: str) -> tuple[TaggedRule, ...]:
    """The tagged conditionals of the schema node at ``pointer`` (its ``allOf`` entries)."""
    node: Any = load_schema(kind)
    for step in pointer:
        node = node[step]
    return tuple(
        TaggedRule(entry["x-rpcd-rule"], _compile(entry))
        for entry in node.get("allOf", ())
        if "x-rpcd-rule" in entry
    )


def first_broken(rules: tuple[TaggedRule, ...], table: Any) -> str | None:
    """The rule id of the first conditional ``table`` breaks, or None."""
    for rule in rules:
        if not rule.holds(table):
            return rule.rule
    return None


_ANNOTATIONS = frozenset({"x-rpcd-rule", "description"})


def _compile(node: dict[str, Any]) -> Check:
    """A predicate for one subschema: all its keywords hold (JSON Schema's conjunction)."""
    compiled = (_keyword(node, key) for key in node if key not in _ANNOTATIONS)
    checks = [check for check in compiled if check is not None]
    if len(checks) == 1:
        return checks[0]
    return lambda value: all(check(value) for check in checks)


def _keyword(node: dict[str, Any], key: str) -> Check | None:
    arg = node[key]
    if key == "if":
        test, then = _compile(arg), _compile(node.get("then", {}))
        otherwise = _compile(node.get("else", {}))
        return lambda v: then(v) if test(v) else otherwise(v)
    if key in ("then", "else"):
        return None  # read with their "if"
    if key == "not":
        inner = _compile(arg)
        return lambda v: not inner(v)
    if key == "anyOf":
        branches = [_compile(b) for b in arg]
        return lambda v: any(b(v) for b in branches)
    if key == "oneOf":
        branches = [_compile(b) for b in arg]
        return lambda v: sum(1 for b in branches if b(v)) == 1
    if key == "required":
        keys = tuple(arg)
        return lambda v: not isinstance(v, dict) or all(k in v for k in keys)
    if key == "properties":
        subs = [(name, _compile(sub)) for name, sub in arg.items()]
        return lambda v: not isinstance(v, dict) or all(s(v[n]) for n, s in subs if n in v)
    if key == "items":
        item = _compile(arg)
        return lambda v: not isinstance(v, list | tuple) or all(item(i) for i in v)
    if key == "propertyNames":
        names = _compile(arg)
        return lambda v: not isinstance(v, dict) or all(names(k) for k in v)
    if key == "const":
        return lambda v: _same(v, arg)
    if key == "enum":
        return lambda v: any(_same(v, option) for option in arg)
    if key == "minProperties":
        return lambda v: not isinstance(v, dict) or len(v) >= arg
    if key == "maxItems":
        return lambda v: not isinstance(v, list | tuple) or len(v) <= arg
    raise ValueError(f"schema keyword {key!r} in an x-rpcd-rule conditional is not supported")


def _same(value: Any, expected: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, and ``1`` is ``1.0``."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    if isinstance(value, int | float) and isinstance(expected, int | float):
        return value == expected
    return type(value) is type(expected) and bool(value == expected)
