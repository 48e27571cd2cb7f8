"""Differential fuzzing: rpcd's decider (the pydantic models) against jsonschema's Draft 7.

``rpcd.config.schema`` decides "valid?" with the file's pydantic model and asks jsonschema
only to explain a "no". A model "yes" that jsonschema refuses would hide findings; a model
"no" it accepts would leave a refused file without a finding. For every schema in
``schemas/v1``, documents are generated from the schema itself (every property of every
branch, enum and const values, patterns, bounds) and then mutated (nan, ±inf, huge integers,
floats at and next to every bound of the schema, wrong types, extra keys, removed keys, empty
and unusual strings). On every document the model's verdict and ``schema.check`` must say
what ``Draft7Validator(schema)`` says; documents with nan or an infinity are refused before
the schema stage (tests/test_bad_input.py) and skipped here.

Why not the ``hypothesis-jsonschema`` library: its 0.23.1 (the latest) uses hypothesis
internals that current hypothesis no longer has (``many.more``), and it cannot resolve the
recursive ``$ref`` of the connection schema's values. The generator below covers only the
keywords rpcd's schemas use; a schema with another one fails ``test_generator_knows_every_
keyword`` rather than being fuzzed less than it seems.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import sys
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tree_helpers import REPO

from rpcd.config import schema
from rpcd.config.contract import SCHEMA_DIR, load_schema
from rpcd.config.sources import FileKind

KINDS = [kind for kind in FileKind if (SCHEMA_DIR / f"{kind.value}.schema.json").exists()]

# Keywords the generator reads; the rest of what may appear is annotation.
GENERATED = {
    "type",
    "const",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "$ref",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "definitions",
}
ANNOTATIONS = {"$schema", "$id", "title", "description", "default", "examples", "x-rpcd-rule"}
MAX_DEPTH = 4  # a recursive $ref deeper than this generates a scalar

Strategy = st.SearchStrategy[Any]

# The first draw in a fresh checkout builds hypothesis's Unicode tables (seconds on a loaded
# machine), which the too_slow health check takes for a slow strategy. The profile's example
# count and its other health-check settings stay as they are.
SLOW_FIRST_DRAW = settings(
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.too_slow]
)


def keywords(node: Any) -> Iterator[str]:
    """Every keyword used anywhere in a schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            if key in ("properties", "patternProperties", "definitions"):
                for sub in value.values():
                    yield from keywords(sub)
            elif key not in ("enum", "const", "required", "examples", "default"):
                yield from keywords(value)
    elif isinstance(node, list):
        for item in node:
            yield from keywords(item)


def bounds(node: Any) -> set[float]:
    """Every number a bound keyword of the schema names."""
    found: set[float] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                found.add(value)
            elif key not in ("enum", "const"):
                found |= bounds(value)
    elif isinstance(node, list):
        for item in node:
            found |= bounds(item)
    return found


class Generator:
    """Hypothesis strategies for documents shaped by one schema (valid or nearly so)."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.made: dict[tuple[int, int], Strategy] = {}
        near: set[float] = set()
        for b in bounds(root):
            near |= {b, math.nextafter(b, math.inf), math.nextafter(b, -math.inf), b + 1, b - 1}
            if float(b).is_integer():
                near |= {int(b), int(b) + 1, int(b) - 1}
        self.near_bounds = sorted(near)

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.root
            for part in node["$ref"][2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def branches(self, node: dict[str, Any]) -> list[dict[str, Any]]:
        """``node`` and every subschema that may apply to the same value (combinators and
        conditionals), so keys and values of every branch get generated."""
        out = [node]
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(key, []):
                out += self.branches(self.resolve(sub))
        for key in ("if", "then", "else"):
            sub = self.resolve(node.get(key))
            if isinstance(sub, dict):
                out += self.branches(sub)
        return out

    def of(self, node: Any, depth: int = 0) -> Strategy:
        """Values for ``node`` (built once per node and depth: building is the costly part)."""
        key = (id(node), depth)
        if key not in self.made:
            self.made[key] = self.make(node, depth)
        return self.made[key]

    def make(self, node: Any, depth: int) -> Strategy:
        node = self.resolve(node)
        if node is True or node == {} or not isinstance(node, dict):
            return scalars()
        if depth > MAX_DEPTH:
            return scalars()
        parts = self.branches(node)
        options: list[Strategy] = []
        for part in parts:
            if "const" in part:
                options.append(st.just(part["const"]))
            if "enum" in part:
                options.append(st.sampled_from(part["enum"]))
        types: list[str] = []
        for part in parts:
            kind = part.get("type")
            types += kind if isinstance(kind, list) else [kind] if kind else []
        if not types and not options:
            types = ["object"] if any("properties" in p for p in parts) else ["string"]
        for kind in dict.fromkeys(types):
            options.append(self.typed(kind, parts, depth))
        return st.one_of(options)

    def typed(self, kind: str, parts: list[dict[str, Any]], depth: int) -> Strategy:
        def first(key: str) -> Any:
            return next((p[key] for p in parts if key in p), None)

        if kind == "string":
            pattern = first("pattern")
            if pattern is not None:
                return regex(pattern)
            low = first("minLength") or 0
            return st.text(min_size=low, max_size=max(low, 8))
        if kind in ("integer", "number"):
            low = next((v for v in (first("minimum"), first("exclusiveMinimum")) if v), None)
            high = next((v for v in (first("maximum"), first("exclusiveMaximum")) if v), None)
            inside = st.integers(
                min_value=None if low is None else math.ceil(low),
                max_value=None if high is None else math.floor(high),
            )
            anywhere = st.integers(min_value=-(2**64), max_value=2**64)
            if kind == "integer":
                return inside | anywhere
            return inside | anywhere | st.floats(min_value=low, max_value=high) | st.floats()
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "array":
            items = first("items")
            low = first("minItems") or 0
            high = first("maxItems")
            high = min(high, low + 3) if high is not None else low + 3
            return st.lists(self.of(items, depth + 1), min_size=low, max_size=high)
        if kind == "object":
            return self.obj(parts, depth)
        raise AssertionError(f"type {kind!r}")

    def obj(self, parts: list[dict[str, Any]], depth: int) -> Strategy:
        candidates: dict[str, list[Any]] = {}
        required: set[str] = set()
        extra: list[Any] = []
        for part in parts:
            for key, sub in part.get("properties", {}).items():
                candidates.setdefault(key, []).append(sub)
            required |= set(part.get("required", []))
            extra += [(pattern, sub) for pattern, sub in part.get("patternProperties", {}).items()]
            more = part.get("additionalProperties")
            if isinstance(more, dict):
                names = part.get("propertyNames", {}).get("pattern", r"\A[a-z_]{1,8}\Z")
                extra.append((names, more))
        values = {
            key: st.one_of([self.of(sub, depth + 1) for sub in subs])
            for key, subs in candidates.items()
        }

        @st.composite
        def build(draw: st.DrawFn) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key in sorted(values):
                if key in required or draw(st.booleans()):
                    out[key] = draw(values[key])
            for pattern, sub in extra:
                for _ in range(draw(st.integers(0, 1))):
                    out[draw(regex(pattern))] = draw(self.of(sub, depth + 1))
            return out

        return build()


@functools.cache
def example_strings() -> tuple[str, ...]:
    """Every string (value or key) of the example tree: real values for the patterns."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            found.update(value)
            for sub in value.values():
                walk(sub)
        elif isinstance(value, list):
            for sub in value:
                walk(sub)

    for path in [REPO / "rpcd.toml", *sorted(REPO.glob("*.d/**/*.toml"))]:
        walk(tomllib.loads(path.read_text(encoding="utf-8")))
    return tuple(sorted(found))


@functools.cache
def regex(pattern: str) -> Strategy:
    """Strings for ``pattern``: the example tree's matching strings three times in four
    (drawing from a regex costs milliseconds), hypothesis's ``from_regex`` otherwise."""
    compiled = re.compile(pattern)
    known = [text for text in example_strings() if compiled.search(text)]
    generated = st.from_regex(pattern)
    if not known:
        return generated
    pool = st.sampled_from(known)
    return st.one_of(pool, pool, pool, generated)


def scalars() -> Strategy:
    return (
        st.text(max_size=8)
        | st.integers()
        | st.floats()
        | st.booleans()
        | st.lists(st.integers(), max_size=2)
    )


# Replacements that sit on the edges of what a validator compares, types or counts.
ODD: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    5e-324,
    sys.float_info.max,
    2**63,
    -(2**63) - 1,
    10**400,
    True,
    False,
    0,
    1.0,
    "",
    " ",
    "\n",
    "x\n",
    "\u2028",
    "\x00",
    "é",
    "\U0001d7d8",
    [],
    {},
    {"": 1},
    dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    dt.date(2024, 1, 1),
]


# Numbers a comparison can get wrong: non-finite, signed zero, beyond a float, the smallest.
NUMBERS: list[Any] = [math.nan, math.inf, -math.inf, -0.0, 10**400, -(10**400), 5e-324, 1e308]


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def at(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, sub in value.items():
            out += paths(sub, (*prefix, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            out += paths(sub, (*prefix, index))
    return out


def replaced(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    if isinstance(document, dict):
        return {**document, head: replaced(document[head], tuple(rest), new)}
    copy = list(document)
    copy[head] = replaced(copy[head], tuple(rest), new)
    return copy


@st.composite
def mutated(draw: st.DrawFn, base: Strategy, near_bounds: list[float]) -> Any:
    """A document from ``base`` with up to three edits at random places."""
    document = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(paths(document)))
        target = at(document, where)
        numbers = [p for p in paths(document) if is_number(at(document, p))]
        action = draw(st.sampled_from(["odd", "number", "key", "drop", "repeat"]))
        if action == "odd":
            document = replaced(document, where, draw(st.sampled_from(ODD)))
        elif action == "number" and numbers:
            value = draw(st.sampled_from([*near_bounds, *NUMBERS]))
            document = replaced(document, draw(st.sampled_from(numbers)), value)
        elif action == "repeat" and isinstance(target, list) and target:
            # Many items: ``schema.check`` explains the refused ones one by one.
            longer = (target * 9)[:9]
            document = replaced(document, where, longer)
        elif action == "key" and isinstance(target, dict):
            key = draw(st.sampled_from(["", "x", "extra", "Type", "type ", "\u00e9"]))
            document = replaced(document, where, {**target, key: draw(st.sampled_from(ODD))})
        elif action == "drop" and isinstance(target, dict) and target:
            key = draw(st.sampled_from(sorted(target)))
            document = replaced(document, where, {k: v for k, v in target.items() if k != key})
    return document


@functools.cache
def documents_generator(kind: FileKind) -> Generator:
    return Generator(load_schema(kind))


@functools.cache
def documents(kind: FileKind) -> Strategy:
    generator = documents_generator(kind)
    return mutated(generator.of(generator.root), generator.near_bounds)


def finite(value: Any) -> bool:
    """No nan or infinity anywhere in ``value``: those are refused before the schema stage
    (``document._check_numbers``), so the decider never sees them."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, list):
        return all(finite(v) for v in value)
    return True


def holds_null(value: Any) -> bool:
    """TOML has no null: a parsed file never holds None, so no verdict on one is needed."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def assert_agree(kind: FileKind, document: Any) -> None:
    if not isinstance(document, dict) or not finite(document):
        event("refused before the schema stage")
        return
    if holds_null(document):
        event("not TOML (null)")
        return
    expected = schema.full_validator(kind).is_valid(document)
    event(f"{kind.value}: {'valid' if expected else 'invalid'}")
    model, problems = schema.check(kind, document)
    decided = model is not None
    assert decided == expected, (
        f"{kind.value}: jsonschema says {expected}, the model {decided}: {document!r}"
    )
    assert (not problems) == expected, (kind.value, document, [p.message for p in problems])
    if not expected:  # the explanation walks only the refused parts: same findings as a full walk
        full = schema.schema_errors(kind, document)
        assert [(p.rule, p.path, p.message) for p in problems] == [
            (p.rule, p.path, p.message) for p in full
        ]


def assert_edges_agree(kind: FileKind, document: Any) -> None:
    """In a valid document a wrong bound shows: every number in it, in turn, at every edge
    value (beyond a float, signed zero, the schema's bounds and their neighbours)."""
    edges = [*NUMBERS, *documents_generator(kind).near_bounds]
    for path in paths(document):
        if is_number(at(document, path)):
            for value in edges:
                assert_agree(kind, replaced(document, path, value))


@pytest.mark.slow
@pytest.mark.fuzz
@pytest.mark.parametrize("kind", KINDS, ids=[k.value for k in KINDS])
@SLOW_FIRST_DRAW
@given(data=st.data())
def test_decider_agrees_with_draft7(kind: FileKind, data: st.DataObject) -> None:
    """The whole document (the model's verdict and ``schema.check``), and its numbers at
    every edge when it is valid."""
    document = data.draw(documents(kind))
    assert_agree(kind, document)
    if schema.full_validator(kind).is_valid(document):
        assert_edges_agree(kind, document)


@pytest.mark.parametrize("kind", KINDS, ids=[k.value for k in KINDS])
def test_generator_knows_every_keyword(kind: FileKind) -> None:
    """A keyword the generator does not read would be fuzzed less than it seems."""
    unknown = set(keywords(load_schema(kind))) - GENERATED - ANNOTATIONS
    assert not unknown, f"teach the generator {sorted(unknown)}"
