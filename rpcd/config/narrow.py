"""jsonschema's errors for a value, computed only where the value is wrong.

``jsonschema`` walks every subschema of a broken connection, all 19 ``if``/``then``
conditionals included, building a validator per step (~450 µs). The errors come only from the
subschemas that fail, and the compiled per-node predicates of ``fastcheck`` say cheaply which
those are. ``iter_errors`` below walks the schema as jsonschema's ``descend`` does (same
keyword order, same path and schema-path steps), skips every node whose predicate holds, and
hands each remaining keyword to jsonschema's own keyword function: the errors are the ones
``Draft7Validator.iter_errors`` yields, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rpcd.config.fastcheck import escape

if TYPE_CHECKING:
    import jsonschema

Predicates = Mapping[str, Callable[[Any], bool]]
# Keywords that add no step to an error's schema path (as in jsonschema's own iter_errors).
_NO_PATH_STEP = frozenset({"if", "$ref"})


def iter_errors(
    validator: jsonschema.Draft7Validator, predicates: Predicates, instance: Any
) -> Iterator[jsonschema.ValidationError]:
    """What ``validator.iter_errors(instance)`` yields, without walking the valid parts."""
    yield from _errors(validator, predicates, validator.schema, "", instance)


def _holds(predicates: Predicates, pointer: str, instance: Any) -> bool:
    check = predicates.get(pointer)
    if check is None:
        return False
    try:
        return check(instance)
    except Exception:  # not proven valid: walk it
        return False


def _errors(
    validator: jsonschema.Draft7Validator,
    predicates: Predicates,
    node: Any,
    pointer: str,
    instance: Any,
) -> Iterator[jsonschema.ValidationError]:
    if not isinstance(node, dict):  # a boolean schema: jsonschema's own handling
        yield from validator.descend(instance, node)
        return
    if _holds(predicates, pointer, instance):
        return
    ref = node.get("$ref")
    if ref is not None:  # draft-07: a $ref ignores its siblings, and adds no path step
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = validator.schema
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            yield from _errors(validator, predicates, target, ref[1:], instance)
        else:
            yield from validator.descend(instance, node)
        return
    for keyword, value in node.items():
        if keyword == "properties" and isinstance(instance, dict) and isinstance(value, dict):
            for name, sub in value.items():
                if name in instance:
                    step = f"{pointer}/properties/{escape(name)}"
                    for error in _errors(validator, predicates, sub, step, instance[name]):
                        error.path.appendleft(name)
                        error.schema_path.appendleft(name)
                        error.schema_path.appendleft(keyword)
                        yield error
        elif keyword == "items" and isinstance(value, dict) and isinstance(instance, list):
            step = f"{pointer}/items"
            for index, item in enumerate(instance):
                for error in _errors(validator, predicates, value, step, item):
                    error.path.appendleft(index)
                    error.schema_path.appendleft(keyword)
                    yield error
        elif keyword == "allOf" and isinstance(value, list):
            for index, sub in enumerate(value):
                step = f"{pointer}/allOf/{index}"
                for error in _errors(validator, predicates, sub, step, instance):
                    error.schema_path.appendleft(index)
                    error.schema_path.appendleft(keyword)
                    yield error
        else:
            check = validator.VALIDATORS.get(keyword)
            if check is None:
                continue
            for error in check(validator, value, instance, node) or ():
                error._set(
                    validator=keyword,
                    validator_value=value,
                    instance=instance,
                    schema=node,
                    type_checker=validator.TYPE_CHECKER,
                )
                if keyword not in _NO_PATH_STEP:
                    error.schema_path.appendleft(keyword)
                yield error
