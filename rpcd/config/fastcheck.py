"""A JSON Schema (draft-07, the keywords rpcd's schemas use) compiled to a Python predicate.

Why not fastjsonschema's code: it raises and catches an exception for every ``if`` that does
not hold and copies ``set(data.keys())`` for every subschema, about 65 µs per connection for
the 19 conditionals of ``connections.schema.json``; this code says yes or no with plain
boolean tests, about 6 times faster. Each keyword is checked exactly as ``jsonschema``'s
Draft7Validator checks it (the authority; tests/test_schema_model_agreement.py compares the
two verdicts), and a schema with a keyword not handled here raises ``Unsupported`` at compile
time, so the caller falls back to fastjsonschema instead of guessing.
"""

from __future__ import annotations

import math
import re
from typing import Any

_TYPE_TESTS = {
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "string": "isinstance({v}, str)",
    "boolean": "isinstance({v}, bool)",
    "null": "{v} is None",
    "integer": "_is_integer({v})",
    "number": "_is_number({v})",
}


class Unsupported(Exception):
    """The schema uses a keyword (or a form of one) this compiler does not handle."""


def _is_integer(value: Any) -> bool:
    """jsonschema's draft-07 ``integer``: an int that is not a bool, or an integral float."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(one: Any, two: Any) -> bool:
    """jsonschema's own ``equal`` (1 is not true), imported only for non-scalar values."""
    from jsonschema._utils import equal

    return bool(equal(one, two))


def _unique(items: list[Any]) -> bool:
    """jsonschema's ``uniqueItems``; strings (the usual case) without importing it."""
    if all(type(item) is str for item in items):
        return len(set(items)) == len(items)
    from jsonschema._utils import uniq

    return bool(uniq(items))


RUNTIME: dict[str, Any] = {
    "_is_integer": _is_integer,
    "_is_number": _is_number,
    "_equal": _equal,
    "_unique": _unique,
    "_re": re,
}


class _Compiler:
    def __init__(self, root: dict[str, Any], every_node: bool = False) -> None:
        self.root = root
        self.every_node = every_node  # one function per schema node, none inlined
        self.pointers = _pointers(root) if every_node else {}
        self.nodes: dict[str, str] = {}  # JSON pointer → function name (every_node only)
        self.lines: list[str] = []
        self.constants: list[str] = []
        self.functions: dict[int, str] = {}  # id(schema node) → function name
        self._keep: list[Any] = []  # nodes whose id() is a key above stay alive

    def constant(self, code: str) -> str:
        name = f"_C{len(self.constants)}"
        self.constants.append(f"{name} = {code}")
        return name

    def resolve(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                raise Unsupported(f"$ref {ref!r}")
            target: Any = self.root
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise Unsupported(f"$ref {ref!r} does not resolve")
                target = target[part]
            node = target
            seen += 1
            if seen > 50:
                raise Unsupported("$ref cycle")
        return node

    def function(self, node: Any) -> str:
        """The name of a function ``f(value) -> bool`` for ``node`` (compiled once per node)."""
        node = self.resolve(node)
        key = id(node)
        if key in self.functions:
            return self.functions[key]
        name = f"_f{len(self.functions)}"
        self.functions[key] = name
        self._keep.append(node)
        if key in self.pointers:
            self.nodes[self.pointers[key]] = name
        body = self.body(node, "v")
        self.lines.append(f"def {name}(v):")
        self.lines.extend(f"    {line}" for line in body)
        self.lines.append("    return True")
        self.lines.append("")
        return name

    def test(self, node: Any, var: str) -> str:
        """An expression that is true when ``var`` is valid under ``node``."""
        node = self.resolve(node)
        if node is True or node == {}:
            return "True"
        if node is False:
            return "False"
        if self.every_node:
            return f"{self.function(node)}({var})"
        simple = self.simple(node, var)
        if simple is not None:
            return simple
        return f"{self.function(node)}({var})"

    def simple(self, node: Any, var: str) -> str | None:
        """An inline expression for a schema without loops: leaf keywords, ``properties``,
        ``required`` and the combinators over such schemas (the per-type conditionals of a
        connection). ``None`` when the node needs a function (loops over keys or items)."""
        if not isinstance(node, dict):
            raise Unsupported(f"schema {node!r}")
        keys = _HANDLED.intersection(node) | _NOT_HANDLED.intersection(node)
        if not keys <= _INLINE:
            return None
        parts = self.leaf_checks(node, var)
        table: list[str] = []
        for key, sub in node.get("properties", {}).items():
            test = self.test(sub, f"{var}[{key!r}]")
            if test != "True":
                table.append(f"{key!r} not in {var} or ({test})")
        table += [f"{key!r} in {var}" for key in node.get("required", [])]
        if "minProperties" in node:
            table.append(f"len({var}) >= {int(node['minProperties'])}")
        if "maxProperties" in node:
            table.append(f"len({var}) <= {int(node['maxProperties'])}")
        if table:
            joined = " and ".join(f"({t})" for t in table)
            parts.append(
                joined
                if node.get("type") == "object"
                else f"not isinstance({var}, dict) or ({joined})"
            )
        if "maxItems" in node or "minItems" in node:
            sizes = [f"len({var}) >= {int(node['minItems'])}"] if "minItems" in node else []
            sizes += [f"len({var}) <= {int(node['maxItems'])}"] if "maxItems" in node else []
            parts.append(f"not isinstance({var}, list) or ({' and '.join(sizes)})")
        for sub in node.get("allOf", []):
            parts.append(self.test(sub, var))
        if "anyOf" in node:
            parts.append(" or ".join(f"({self.test(s, var)})" for s in node["anyOf"]) or "False")
        if "oneOf" in node:
            count = " + ".join(f"({self.test(s, var)})" for s in node["oneOf"]) or "0"
            parts.append(f"({count}) == 1")
        if "not" in node:
            parts.append(f"not ({self.test(node['not'], var)})")
        if "if" in node:
            then = self.test(node["then"], var) if "then" in node else "True"
            otherwise = self.test(node["else"], var) if "else" in node else "True"
            parts.append(f"({then}) if ({self.test(node['if'], var)}) else ({otherwise})")
        return " and ".join(f"({p})" for p in parts) if parts else "True"

    def leaf_checks(self, node: dict[str, Any], var: str) -> list[str]:
        out: list[str] = []
        if "type" in node:
            out.append(self.type_test(node["type"], var))
        if "const" in node:
            out.append(self.equals(node["const"], var))
        if "enum" in node:
            out.append(self.enum(node["enum"], var))
        string = f"isinstance({var}, str)"
        if "pattern" in node:
            pattern = self.constant(f"_re.compile({node['pattern']!r})")
            out.append(f"not {string} or {pattern}.search({var}) is not None")
        if "minLength" in node:
            out.append(f"not {string} or len({var}) >= {int(node['minLength'])}")
        if "maxLength" in node:
            out.append(f"not {string} or len({var}) <= {int(node['maxLength'])}")
        for keyword, op in _BOUNDS.items():
            if keyword in node:
                bound = node[keyword]
                if not _is_number(bound) or not math.isfinite(bound):
                    raise Unsupported(f"{keyword} {bound!r}")
                # Not ``v >= bound``: Draft 7 fails a value only when the comparison says
                # it is out of range, and nan compares false, so nan passes every bound.
                out.append(f"not _is_number({var}) or not ({var} {op} {bound!r})")
        return out

    def type_test(self, kind: Any, var: str) -> str:
        kinds = kind if isinstance(kind, list) else [kind]
        tests = []
        for k in kinds:
            if k not in _TYPE_TESTS:
                raise Unsupported(f"type {k!r}")
            tests.append(_TYPE_TESTS[k].format(v=var))
        return " or ".join(tests) if tests else "False"

    def equals(self, value: Any, var: str) -> str:
        if isinstance(value, str):
            return f"{var} == {value!r} and isinstance({var}, str)"
        if isinstance(value, bool):
            return f"{var} is {value!r}"
        if value is None:
            return f"{var} is None"
        if _is_number(value):
            return f"_is_number({var}) and {var} == {value!r}"
        return f"_equal({var}, {self.constant(repr(value))})"

    def enum(self, values: Any, var: str) -> str:
        if not isinstance(values, list):
            raise Unsupported("enum")
        if values and all(isinstance(v, str) for v in values):
            choices = self.constant(f"frozenset({sorted(set(values))!r})")
            return f"isinstance({var}, str) and {var} in {choices}"
        return " or ".join(f"({self.equals(v, var)})" for v in values) or "False"

    def body(self, node: dict[str, Any], v: str) -> list[str]:
        """Statements that ``return False`` when ``v`` is not valid under ``node``."""
        if not isinstance(node, dict):
            raise Unsupported(f"schema {node!r}")
        out: list[str] = []
        unknown = _NOT_HANDLED.intersection(node)
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))
        for check in self.leaf_checks(node, v):
            out.append(f"if not ({check}): return False")
        is_object = node.get("type") == "object"
        obj: list[str] = []
        properties = node.get("properties", {})
        if not isinstance(properties, dict):
            raise Unsupported("properties")
        for key, sub in properties.items():
            test = self.test(sub, "x")
            if test != "True":
                obj.append(f"x = {v}.get({key!r}, _MISSING)")
                obj.append(f"if x is not _MISSING and not ({test}): return False")
        if "required" in node:
            for key in node["required"]:
                obj.append(f"if {key!r} not in {v}: return False")
        patterns = node.get("patternProperties", {})
        for pattern, sub in patterns.items():
            compiled = self.constant(f"_re.compile({pattern!r})")
            test = self.test(sub, "x")
            obj.append(f"for k, x in {v}.items():")
            obj.append(f"    if {compiled}.search(k) and not ({test}): return False")
        if "additionalProperties" in node:
            extra = node["additionalProperties"]
            known = self.constant(f"frozenset({sorted(properties)!r})")
            joined = "|".join(patterns)
            matcher = self.constant(f"_re.compile({joined!r})") if joined else None
            other = f"k not in {known}" + (f" and not {matcher}.search(k)" if matcher else "")
            if extra is False:
                if matcher is None:
                    obj.append(f"if not {known}.issuperset({v}): return False")
                else:
                    obj.append(f"for k in {v}:")
                    obj.append(f"    if {other}: return False")
            else:
                test = self.test(extra, "x")
                if test != "True":
                    obj.append(f"for k, x in {v}.items():")
                    obj.append(f"    if {other} and not ({test}): return False")
        if "propertyNames" in node:
            test = self.test(node["propertyNames"], "k")
            obj.append(f"for k in {v}:")
            obj.append(f"    if not ({test}): return False")
        obj += _size_statements(node, v, "minProperties", "maxProperties")
        out += _guard(obj, f"isinstance({v}, dict)", is_object)
        arr: list[str] = []
        if "items" in node:
            items = node["items"]
            if isinstance(items, list):
                raise Unsupported("items as a list")
            test = self.test(items, "x")
            if test != "True":
                arr.append(f"for x in {v}:")
                arr.append(f"    if not ({test}): return False")
        arr += _size_statements(node, v, "minItems", "maxItems")
        if node.get("uniqueItems") is True:
            arr.append(f"if not _unique({v}): return False")
        if "contains" in node:
            test = self.test(node["contains"], "x")
            arr.append(f"if not any({test} for x in {v}): return False")
        out += _guard(arr, f"isinstance({v}, list)", node.get("type") == "array")
        for sub in node.get("allOf", []):
            out.append(f"if not ({self.test(sub, v)}): return False")
        if "anyOf" in node:
            tests = " or ".join(f"({self.test(s, v)})" for s in node["anyOf"])
            out.append(f"if not ({tests or 'False'}): return False")
        if "oneOf" in node:
            tests = ", ".join(f"({self.test(s, v)})" for s in node["oneOf"])
            out.append(f"if sum(1 for t in ({tests},) if t) != 1: return False")
        if "not" in node:
            out.append(f"if {self.test(node['not'], v)}: return False")
        if "if" in node:
            condition = self.test(node["if"], v)
            then = self.test(node["then"], v) if "then" in node else "True"
            otherwise = self.test(node["else"], v) if "else" in node else "True"
            out.append(f"if ({condition}):")
            out.append(f"    if not ({then}): return False")
            out.append(f"elif not ({otherwise}): return False")
        return out


# Each bound keyword and the comparison that makes a value fail it (as jsonschema writes it).
_BOUNDS = {"minimum": "<", "maximum": ">", "exclusiveMinimum": "<=", "exclusiveMaximum": ">="}
# Draft-07 assertions this compiler does not generate (any other unknown key is an annotation,
# ignored by jsonschema too, such as rpcd's own ``x-rpcd-rule``).
_NOT_HANDLED = frozenset({"multipleOf", "additionalItems", "dependencies"})


# Keywords that compile to an expression (no loop); see ``_Compiler.simple``.
_INLINE = frozenset(
    {
        "type",
        "const",
        "enum",
        "pattern",
        "minLength",
        "maxLength",
        *_BOUNDS,
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minItems",
        "maxItems",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
    }
)

# Every keyword the compiler generates: the inline ones, and those that need a loop or a call.
_HANDLED = _INLINE | {
    "$ref",
    "patternProperties",
    "additionalProperties",
    "propertyNames",
    "items",
    "uniqueItems",
    "contains",
}


def _size_statements(node: dict[str, Any], v: str, low: str, high: str) -> list[str]:
    """``return False`` statements for a size keyword pair (minItems/maxItems, ...) on ``v``."""
    lines = []
    if low in node:
        lines.append(f"if len({v}) < {int(node[low])}: return False")
    if high in node:
        lines.append(f"if len({v}) > {int(node[high])}: return False")
    return lines


def _guard(lines: list[str], condition: str, implied: bool) -> list[str]:
    """Checks of keywords that apply to one JSON type (a table, an array): skipped for others."""
    if not lines or implied:
        return lines
    return [f"if {condition}:", *(f"    {line}" for line in lines)]


def _pointers(schema: Any) -> dict[int, str]:
    """``id(node)`` → the JSON pointer where each schema node is written (first place)."""
    found: dict[int, str] = {}

    def walk(node: Any, pointer: str) -> None:
        if isinstance(node, dict):
            found.setdefault(id(node), pointer)
            for key, value in node.items():
                walk(value, f"{pointer}/{escape(key)}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{pointer}/{index}")

    walk(schema, "")
    return found


def escape(key: str) -> str:
    """A key as one JSON-pointer step."""
    return key.replace("~", "~0").replace("/", "~1")


def generate_nodes(schema: dict[str, Any]) -> str:
    """Python source defining ``NODES``: JSON pointer → ``f(value) -> bool``, for every schema
    node reachable from the root (so a caller can tell which parts of a value are valid)."""
    compiler = _Compiler(schema, every_node=True)
    compiler.function(schema)
    table = ", ".join(f"{pointer!r}: {name}" for pointer, name in sorted(compiler.nodes.items()))
    head = ["_MISSING = object()", *compiler.constants, ""]
    return "\n".join([*head, *compiler.lines, f"NODES = {{{table}}}", ""])


def generate(schema: dict[str, Any], entry: Any = None) -> str:
    """Python source defining ``VALIDATE(value) -> bool`` for ``entry`` (default: ``schema``).

    ``entry`` is a node inside ``schema`` (its ``$ref``s resolve against ``schema``).
    Raises ``Unsupported`` when the schema needs a keyword not handled here.
    """
    compiler = _Compiler(schema)
    name = compiler.function(schema if entry is None else entry)
    head = ["_MISSING = object()", *compiler.constants, ""]
    return "\n".join([*head, *compiler.lines, f"VALIDATE = {name}", ""])
