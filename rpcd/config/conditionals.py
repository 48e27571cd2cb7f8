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


Trigger = tuple[Any, ...]  # ("present", K) | ("absent", K) | ("value", K, type, C)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The tagged conditionals of one schema node, indexed by what triggers them.

    Most conditionals start with "if key K is present", "if K is absent" or "if K is the
    string (or boolean) C": they can only fail on a table that has (or lacks) K, so a table
    runs the conditionals of its own keys and values, and the few that have no such trigger.
    Where the trigger is the whole ``if``, only the ``then`` runs.
    """

    rules: tuple[TaggedRule, ...]
    untriggered: tuple[TaggedRule, ...]
    by_key: dict[str, tuple[TaggedRule, ...]]
    by_value: dict[tuple[str, type, Any], tuple[TaggedRule, ...]]
    by_absent: tuple[tuple[str, tuple[TaggedRule, ...]], ...]

    def first_broken(self, table: Any) -> str | None:
        """The rule id of a conditional ``table`` breaks, or None (also for a non-table, which
        the model refuses by its type)."""
        if not isinstance(table, dict):
            return None
        for rule in self.untriggered:
            if not rule.holds(table):
                return rule.rule
        by_key, by_value = self.by_key, self.by_value
        for key, value in table.items():
            triggered = by_key.get(key, ())
            kind = type(value)
            if kind is str or kind is bool:
                triggered += by_value.get((key, kind, value), ())
            for rule in triggered:
                if not rule.holds(table):
                    return rule.rule
        for key, rules in self.by_absent:
            if key not in table:
                for rule in rules:
                    if not rule.holds(table):
                        return rule.rule
        return None


def rules_of(kind: FileKind, *pointer: str) -> RuleSet:
    """The tagged conditionals of the schema node at ``pointer`` (its ``allOf`` entries)."""
    node: Any = load_schema(kind)
    for step in pointer:
        node = node[step]
    rules: list[TaggedRule] = []
    untriggered: list[TaggedRule] = []
    indexed: dict[Trigger, list[TaggedRule]] = {}
    for entry in node.get("allOf", ()):
        if "x-rpcd-rule" not in entry:
            continue
        rule = TaggedRule(entry["x-rpcd-rule"], compile_check(entry))
        rules.append(rule)
        found = _triggers(entry["if"]) if "if" in entry else _not_both(entry)
        if found is None:
            untriggered.append(rule)
            continue
        triggers, exact = found
        # when the triggers say exactly when the "if" holds, the "then" alone decides
        then = TaggedRule(rule.rule, compile_check(entry.get("then", {}))) if exact else rule
        for trigger in dict.fromkeys(triggers):
            indexed.setdefault(trigger, []).append(then)
    return RuleSet(
        rules=tuple(rules),
        untriggered=tuple(untriggered),
        by_key={t[1]: tuple(r) for t, r in indexed.items() if t[0] == "present"},
        by_value={t[1:]: tuple(r) for t, r in indexed.items() if t[0] == "value"},
        by_absent=tuple((t[1], tuple(r)) for t, r in indexed.items() if t[0] == "absent"),
    )


def _triggers(test: dict[str, Any]) -> tuple[list[Trigger], bool] | None:
    """What must be true of a table for ``test`` to hold, and whether that is all it tests."""
    keywords = set(test) - _ANNOTATIONS
    required = test.get("required") or []
    properties = test.get("properties", {})
    if keywords == {"required"} and len(required) == 1:
        return [("present", required[0])], True
    if keywords <= {"properties", "required"} and len(properties) == 1:
        ((key, sub),) = properties.items()
        const = sub.get("const") if isinstance(sub, dict) else None
        if set(sub) == {"const"} and type(const) in (str, bool) and required in ([], [key]):
            value: Trigger = ("value", key, type(const), const)
            # "properties" holds for a table without the key, unless "required" asks for it
            return ([value], True) if required else ([value, ("absent", key)], True)
    if keywords == {"not"} and test["not"] == {"required": test["not"].get("required")}:
        absent = test["not"]["required"]
        if len(absent) == 1:
            return [("absent", absent[0])], True
    if keywords == {"anyOf"}:
        branches = [_triggers(branch) for branch in test["anyOf"]]
        if all(branch is not None for branch in branches):
            found = [branch for branch in branches if branch is not None]
            return [t for triggers, _ in found for t in triggers], all(e for _, e in found)
    if required:
        return [("present", required[0])], False
    return None


def _not_both(entry: dict[str, Any]) -> tuple[list[Trigger], bool] | None:
    """A ``not: {required: [A, B, ...]}`` can only fail on a table that has A."""
    required = entry.get("not", {}).get("required") if isinstance(entry.get("not"), dict) else None
    return ([("present", required[0])], False) if required else None


_ANNOTATIONS = frozenset({"x-rpcd-rule", "description"})


def compile_check(node: dict[str, Any]) -> Check:
    """A predicate for one subschema: all its keywords hold (JSON Schema's conjunction).

    Each keyword becomes one small closure, specialised for the one-key and string cases the
    schemas use: the models run every conditional on every connection.
    """
    compiled = (_keyword(node, key) for key in node if key not in _ANNOTATIONS)
    checks = [check for check in compiled if check is not None]
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda v: first(v) and second(v)
    return lambda v: all(check(v) for check in checks)


def _always(value: Any) -> bool:
    return True


def _keyword(node: dict[str, Any], key: str) -> Check | None:
    arg = node[key]
    if key == "if":
        test, then = compile_check(arg), compile_check(node.get("then", {}))
        if "else" not in node:
            return lambda v: not test(v) or then(v)
        otherwise = compile_check(node["else"])
        return lambda v: then(v) if test(v) else otherwise(v)
    if key in ("then", "else"):
        return None  # read with their "if"
    if key == "not":
        inner = compile_check(arg)
        return lambda v: not inner(v)
    if key == "anyOf":
        branches = [compile_check(b) for b in arg]
        return lambda v: any(b(v) for b in branches)
    if key == "oneOf":
        branches = [compile_check(b) for b in arg]
        return lambda v: sum(1 for b in branches if b(v)) == 1
    if key == "required":
        return _required(tuple(arg))
    if key == "properties":
        return _properties([(name, compile_check(sub)) for name, sub in arg.items()])
    if key == "items":
        item = compile_check(arg)
        return lambda v: not isinstance(v, list | tuple) or all(item(i) for i in v)
    if key == "propertyNames":
        names = compile_check(arg)
        return lambda v: not isinstance(v, dict) or all(names(k) for k in v)
    if key == "const":
        return _enum((arg,))
    if key == "enum":
        return _enum(tuple(arg))
    if key == "minProperties":
        return lambda v: not isinstance(v, dict) or len(v) >= arg
    if key == "maxItems":
        return lambda v: not isinstance(v, list | tuple) or len(v) <= arg
    raise ValueError(f"schema keyword {key!r} in an x-rpcd-rule conditional is not supported")


def _required(keys: tuple[str, ...]) -> Check:
    if len(keys) == 1:
        (key,) = keys
        return lambda v: key in v if isinstance(v, dict) else True
    return lambda v: not isinstance(v, dict) or all(k in v for k in keys)


def _properties(subs: list[tuple[str, Check]]) -> Check:
    if len(subs) == 1:
        ((name, sub),) = subs
        return lambda v: not isinstance(v, dict) or name not in v or sub(v[name])
    return lambda v: not isinstance(v, dict) or all(s(v[n]) for n, s in subs if n in v)


def _enum(options: tuple[Any, ...]) -> Check:
    if all(type(option) is str for option in options):
        strings = frozenset(options)
        return lambda v: type(v) is str and v in strings
    return lambda v: any(_same(v, option) for option in options)


def _same(value: Any, expected: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, and ``1`` is ``1.0``."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    if isinstance(value, int | float) and isinstance(expected, int | float):
        return value == expected
    return type(value) is type(expected) and bool(value == expected)
