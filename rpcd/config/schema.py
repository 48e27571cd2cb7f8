"""The bundled JSON Schemas (the public contract) and their findings.

Two validators per schema: a compiled ``fastjsonschema`` function decides quickly that a
document is valid (about 12× faster than ``jsonschema``); only when it says no does
``jsonschema`` walk the document to produce every detailed finding. ``jsonschema`` is the
authority: if the two ever disagree, its answer stands.

Rule ids come from the schemas themselves: a subschema may carry ``x-rpcd-rule``, and an error
raised inside it (or inside its conditional branches) is reported under that rule. Everything
else maps by JSON-Schema keyword: unknown-key, missing-key, wrong-type, invalid-value.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema

from rpcd.config.findings import Finding
from rpcd.config.parse import Path_, format_path
from rpcd.config.sources import FileKind

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "v1"
SUPPORTED_VERSIONS = (1,)
SECRET_KEYS = frozenset(
    {"credentials", "token", "password", "consumer_key", "consumer_secret", "certificate", "private_key"}
)
_STRUCTURAL = frozenset({"properties", "items", "additionalProperties", "patternProperties", "definitions"})
_CONDITIONAL = frozenset({"if", "then", "else", "oneOf", "anyOf", "allOf", "not"})


@cache
def load_schema(kind: FileKind) -> dict[str, Any]:
    with open(SCHEMA_DIR / f"{kind.value}.schema.json", encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


@cache
def fast_validator(kind: FileKind) -> Callable[[Any], Any]:
    # fastjsonschema rewrites the schema it is given: hand it a copy, keep ours pristine.
    return fastjsonschema.compile(copy.deepcopy(load_schema(kind)))  # type: ignore[no-any-return]


@cache
def full_validator(kind: FileKind) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(load_schema(kind))


def is_valid_fast(kind: FileKind, document: dict[str, Any]) -> bool:
    try:
        fast_validator(kind)(document)
    except fastjsonschema.JsonSchemaException:
        return False
    except Exception:  # a document the compiled code cannot handle: let jsonschema decide
        return False
    return True


def schema_errors(kind: FileKind, document: dict[str, Any]) -> list[SchemaProblem]:
    """Every structural problem of ``document``, one per (rule, key path), in document order."""
    schema = load_schema(kind)
    seen: set[tuple[str, Path_]] = set()
    problems: list[SchemaProblem] = []
    for error in full_validator(kind).iter_errors(document):
        for problem in _explain(schema, document, error):
            key = (problem.rule, problem.path)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    return problems


class SchemaProblem:
    """A finding before it has a file and a line."""

    __slots__ = ("message", "path", "rule")

    def __init__(self, rule: str, path: Path_, message: str) -> None:
        self.rule = rule
        self.path = path
        self.message = message

    def to_finding(self, rel: str, position: tuple[int, int] | None) -> Finding:
        line, column = position if position else (None, None)
        return Finding(self.rule, self.message, rel, line, column, format_path(self.path))


def _explain(schema: dict[str, Any], document: Any, error: jsonschema.ValidationError) -> Iterator[SchemaProblem]:
    path: Path_ = tuple(error.absolute_path)
    node, rule = _walk(schema, list(error.schema_path))
    validator = str(error.validator)
    if validator == "additionalProperties":
        allowed = sorted(node.get("properties", {})) if isinstance(node, dict) else []
        extras = [k for k in error.instance if k not in allowed] if isinstance(error.instance, dict) else []
        for key in extras:
            yield SchemaProblem("unknown-key", (*path, key), _unknown_key(key, allowed))
        return
    rule = rule or _DEFAULT_RULE.get(validator, "invalid-value")
    builder = _RULE_MESSAGES.get(rule)
    parent = _get(document, path[:-1]) if path else None
    message = builder(error, path, parent, document) if builder else _generic(error, path, schema)
    yield SchemaProblem(rule, path, message)


_DEFAULT_RULE = {"required": "missing-key", "type": "wrong-type"}


def _walk(schema: dict[str, Any], steps: list[Any]) -> tuple[Any, str | None]:
    """Follow a schema path to the failing keyword's node; return it and the rule in force."""
    node: Any = schema
    rule: str | None = None
    sticky = False
    for step in steps[:-1]:
        node = _deref(schema, node)
        if isinstance(node, dict) and "x-rpcd-rule" in node:
            rule, sticky = node["x-rpcd-rule"], False
        if step in _CONDITIONAL and rule is not None:
            sticky = True
        elif step in _STRUCTURAL and not sticky:
            rule = None
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return node, rule
    node = _deref(schema, node)
    if isinstance(node, dict) and "x-rpcd-rule" in node:
        rule = node["x-rpcd-rule"]
    return node, rule


def _deref(schema: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/"):
        target: Any = schema
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def _get(document: Any, path: Path_) -> Any:
    for part in path:
        try:
            document = document[part]
        except (KeyError, IndexError, TypeError):
            return None
    return document


def is_secret_path(path: Path_) -> bool:
    return any(isinstance(p, str) and p in SECRET_KEYS for p in path)


def show(value: Any, path: Path_) -> str:
    """The offending value for a message, never a secret and never a wall of text."""
    if is_secret_path(path):
        return "(value hidden)"
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _key(path: Path_) -> str:
    return format_path(path) or "the document"


def _unknown_key(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"unknown key `{key}`: did you mean `{close[0]}`?"
    return f"unknown key `{key}`: remove it (allowed here: {', '.join(allowed) or 'none'})"


_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "array": "an array", "object": "a table"}


def _generic(error: jsonschema.ValidationError, path: Path_, schema: dict[str, Any]) -> str:
    validator = str(error.validator)
    expected = error.validator_value
    value = show(error.instance, path)
    where = f"`{_key(path)}`"
    if validator == "required":
        missing = [k for k in expected if isinstance(error.instance, dict) and k not in error.instance]
        return f"{where} is missing required key{'s' if len(missing) > 1 else ''} " + ", ".join(
            f"`{k}`" for k in missing
        )
    if validator == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        return f"{where} must be {' or '.join(_TYPE_NAMES.get(k, k) for k in kinds)}, not {value}"
    if validator == "enum":
        return f"{where} is {value}; use one of: {', '.join(str(v) for v in expected)}"
    if validator == "const":
        return f"{where} is {value}; it must be {json.dumps(expected)}"
    if validator == "pattern":
        return f"{where} is {value}, which is not allowed here: {_describe(schema, error)}"
    if validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        word = {"minimum": "at least", "exclusiveMinimum": "more than", "maximum": "at most",
                "exclusiveMaximum": "less than"}[validator]
        return f"{where} is {value}; it must be {word} {expected}"
    if validator in ("minLength", "minItems", "minProperties"):
        return f"{where} must not be empty"
    if validator == "uniqueItems":
        return f"{where} lists an entry twice; keep one"
    return f"{where}: {error.message if not is_secret_path(path) else validator + ' check failed'}"


def _describe(schema: dict[str, Any], error: jsonschema.ValidationError) -> str:
    node, _ = _walk(schema, list(error.schema_path)[:-1] + ["description"])
    text = node.get("description") if isinstance(node, dict) else None
    return str(text) if text else f"it must match {error.validator_value}"


# --- messages of the rules that the schemas carry (x-rpcd-rule) -------------------------------

Builder = Callable[[jsonschema.ValidationError, Path_, Any, Any], str]


def _auth_for_type(error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any) -> str:
    from rpcd.config.models import AUTH_FOR_TYPE

    item = parent if isinstance(parent, dict) else {}
    kind = item.get("type", "REST")
    return (f"auth = {show(item.get('auth'), ())} is not valid for type = \"{kind}\": "
            f"use one of {', '.join(AUTH_FOR_TYPE.get(kind, ()))} (cert is only for XML-RPC)")


def _payload_for_type(error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any) -> str:
    from rpcd.config.models import PAYLOAD_FOR_TYPE

    item = parent if isinstance(parent, dict) else {}
    kind = item.get("type", "REST")
    return (f"payload = {show(item.get('payload'), ())} is not valid for type = \"{kind}\": "
            f"use {' or '.join(PAYLOAD_FOR_TYPE.get(kind, ()))}")


def _credential_mismatch(error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any) -> str:
    from rpcd.config.models import CREDENTIAL_KEYS

    connection = _get(doc, path[:-1]) if path and path[-1] == "credentials" else parent
    connection = connection if isinstance(connection, dict) else {}
    auth = connection.get("auth")
    creds = _get(doc, path) if path and path[-1] == "credentials" else None
    have = ", ".join(sorted(creds)) if isinstance(creds, dict) and creds else "nothing"
    want = CREDENTIAL_KEYS.get(str(auth))
    if want is None:
        return f"credentials must hold exactly one credential group; found {have}"
    return (f"auth = \"{auth}\" needs credentials with exactly {', '.join(want)}; found {have}: "
            "give one credential group, matching auth")


def _plaintext_secret(error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any) -> str:
    key = path[-1] if path else "secret"
    if len(path) >= 2 and path[0] == "peer":
        hashed = "token_sha256" if key == "token" else "password_hash"
        return (f"`{key}` holds a plaintext secret: peers store hashes only; "
                f"put `{hashed}` from `rpcd hash-secret` here instead")
    return (f"`{_key(path)}` must be a secret reference such as {{ env = \"NAME\" }}, "
            "{ file = \"/path\" } or { credential = \"name\" }, never the secret itself (git would hold it)")


def _peer_credential(error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any) -> str:
    from rpcd.config.models import PEER_CREDENTIAL_KEYS

    peer = _get(doc, path) if isinstance(_get(doc, path), dict) else parent
    auth = peer.get("auth") if isinstance(peer, dict) else None
    want = PEER_CREDENTIAL_KEYS.get(str(auth), ())
    return (f"peer with auth = \"{auth}\" needs exactly {', '.join(want)} "
            "(and no other credential keys); make them with `rpcd hash-secret`")


def _fixed_text(text: str) -> Builder:
    return lambda error, path, parent, doc: text


_RULE_MESSAGES: dict[str, Builder] = {
    "auth-for-type": _auth_for_type,
    "payload-for-type": _payload_for_type,
    "credential-mismatch": _credential_mismatch,
    "plaintext-secret": _plaintext_secret,
    "peer-credential": _peer_credential,
    "parameters-need-method": _fixed_text(
        "`parameters` is not empty, so `http_method` is required: add http_method = \"GET\" or \"POST\""),
    "global-with-institutions": _fixed_text(
        "a global connection serves everyone and lists no institutions: remove `institutions` or set global = false"),
    "token-placement": _fixed_text(
        "token_param / token_header are for auth = \"token\" only, and only one of them may be set"),
    "option-for-type": _fixed_text(
        "this option does not apply here: wsse_password_type needs auth = \"wsse\"; "
        "soap_namespace / soap_action need type = \"SOAP\""),
    "method-target": _fixed_text(
        "a method needs exactly one of `function` (module:callable) or `proxy` ({ class, function })"),
    "missing-class": _fixed_text(
        "this file has no [class], so each connection must name its `class`"),
}
