"""The bundled JSON Schemas (the public contract) and their findings.

One validator decides "valid?": the pydantic model of the file, which runs on every file
anyway. Only when it says no does ``jsonschema`` walk what it refused, to produce every
detailed finding; the tests hold the two to the same verdict on every document.

Rule ids come from the schemas themselves: a subschema may carry ``x-rpcd-rule``, and an error
raised inside it (or inside its conditional branches) is reported under that rule. Everything
else maps by JSON-Schema keyword: unknown-key, missing-key, wrong-type, invalid-value.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from rpcd.config.conditionals import Check, compile_check
from rpcd.config.contract import load_schema, rule_table
from rpcd.config.findings import Finding
from rpcd.config.models import CREDENTIAL_KEYS, MODELS
from rpcd.config.parse import Path_, format_path
from rpcd.config.sources import FileKind

if TYPE_CHECKING:  # imported lazily: only a tree with an invalid file pays for jsonschema
    import jsonschema

SUPPORTED_VERSIONS = (1,)
SECRET_KEYS = frozenset(
    {
        "credentials",
        "token",
        "password",
        "consumer_key",
        "consumer_secret",
        "certificate",
        "private_key",
    }
)
# The schema's per-type tables, for messages that say what would be valid.
AUTH_FOR_TYPE = rule_table(FileKind.CONNECTIONS, "auth-for-type", "type")
PAYLOAD_FOR_TYPE = rule_table(FileKind.CONNECTIONS, "payload-for-type", "type")
PEER_CREDENTIAL_KEYS = rule_table(FileKind.SERVICES, "peer-credential", "auth")
_STRUCTURAL = frozenset(
    {"properties", "items", "additionalProperties", "patternProperties", "definitions"}
)
_CONDITIONAL = frozenset({"if", "then", "else", "oneOf", "anyOf", "allOf", "not"})


# --- the decider ------------------------------------------------------------------------------


@cache
def full_validator(kind: FileKind) -> jsonschema.protocols.Validator:
    """jsonschema's validator for ``kind``, built once: it explains what the decider refused."""
    import jsonschema

    schema = load_schema(kind)
    validator: jsonschema.protocols.Validator = jsonschema.validators.validator_for(schema)(schema)
    return validator


def _refusals(exc: ValidationError) -> list[Path_]:
    return [tuple(p for p in error["loc"] if isinstance(p, str | int)) for error in exc.errors()]


@cache
def _split_keys(kind: FileKind) -> tuple[str, ...]:
    """Top-level arrays of ``kind`` whose items have a schema of their own."""
    properties = load_schema(kind).get("properties", {})
    return tuple(
        key
        for key, sub in properties.items()
        if isinstance(sub, dict)
        and sub.get("type") == "array"
        and isinstance(sub.get("items"), dict)
    )


@cache
def _shell_validator(kind: FileKind) -> jsonschema.protocols.Validator:
    """The whole schema with every split array's ``items`` accepting anything.

    A document is valid iff this accepts it and every item passes its item schema (``items``
    is a conjunction over the items, and nothing else in the schema changes).
    """
    import jsonschema

    schema = json.loads(json.dumps(load_schema(kind)))
    for key in _split_keys(kind):
        schema["properties"][key]["items"] = {}
    validator: jsonschema.protocols.Validator = jsonschema.validators.validator_for(schema)(schema)
    return validator


def check(kind: FileKind, document: dict[str, Any]) -> tuple[BaseModel | None, list[SchemaProblem]]:
    """The model of ``document`` and no findings when the model accepts it; else ``None`` and
    the schema findings of what it refused.

    The models run on every file anyway and agree with the schema on every document
    (tests/test_schema_model_agreement.py, tests/test_schema_differential.py), so they decide
    "valid?"; jsonschema runs only on what they refuse, to explain it. When every refusal lies
    inside items of the top-level arrays (``[[connection]]``, institutions, peers), jsonschema
    walks only those items, and the rest of the document with the arrays' items unchecked; the
    items' error paths are re-based on the whole document.
    """
    try:
        return MODELS[kind].model_validate(document), []
    except ValidationError as exc:
        return None, _explain_refused(kind, document, _refusals(exc))


def _explain_refused(
    kind: FileKind, document: dict[str, Any], refused: list[Path_]
) -> list[SchemaProblem]:
    keys = _split_keys(kind)
    bad_indexes: dict[str, list[int]] = {}
    for path in refused:
        if len(path) < 2 or path[0] not in keys or not isinstance(path[1], int):
            return schema_errors(kind, document)
        bad_indexes.setdefault(str(path[0]), []).append(path[1])
    good_doc = dict(document)
    bad_doc = dict(document)
    for key, indexes in bad_indexes.items():
        bad = bad_indexes[key] = sorted(set(indexes))
        bad_set = set(bad)
        items = document[key]
        good_doc[key] = [item for i, item in enumerate(items) if i not in bad_set]
        bad_doc[key] = [items[i] for i in bad]
    if not _shell_validator(kind).is_valid(good_doc):
        return schema_errors(kind, document)

    def rebase(path: Path_) -> Path_:
        if len(path) >= 2 and path[0] in bad_indexes and isinstance(path[1], int):
            return (path[0], bad_indexes[str(path[0])][path[1]], *path[2:])
        return path

    located: list[_Located] = []
    for key in keys:
        for i in bad_indexes.get(key, ()):
            located += _item_errors(kind, key, i, document[key][i])
    located += [
        (error, rebase(tuple(error.absolute_path)), ())
        for error in _shell_validator(kind).iter_errors(bad_doc)
    ]
    return _problems(kind, document, located)


# A jsonschema error, its key path in the document, and the schema path its own starts from.
_Located = tuple["jsonschema.ValidationError", Path_, tuple[Any, ...]]


@cache
def _item_validators(
    kind: FileKind, key: str
) -> tuple[jsonschema.protocols.Validator, tuple[tuple[int, Check | None, Any], ...]]:
    """For the items of the top-level array ``key``: a validator of their schema without its
    ``allOf``, and each ``allOf`` entry with its predicate (``conditionals.compile_check``, or
    None when it has none) and its own validator."""
    import jsonschema

    root = load_schema(kind)
    items = _deref(root, root["properties"][key]["items"])
    make = jsonschema.validators.validator_for(root)
    definitions = {"definitions": root.get("definitions", {})}  # for the entries' own $refs
    whole = make({**{k: v for k, v in items.items() if k != "allOf"}, **definitions})
    entries = []
    for j, entry in enumerate(items.get("allOf", ())):
        try:
            holds: Check | None = compile_check(entry)
        except ValueError:
            holds = None
        entries.append((j, holds, make({**entry, **definitions})))
    return whole, tuple(entries)


def _item_errors(kind: FileKind, key: str, index: int, item: Any) -> list[_Located]:
    """jsonschema's errors of one refused item, walking only the conditionals it breaks.

    The item's schema is walked without its ``allOf`` of per-type conditionals; of those, only
    the ones the item breaks (by the predicates the models run) are walked, in their order,
    as the whole schema would have walked them last. Same errors, same schema paths.
    """
    whole, entries = _item_validators(kind, key)
    at = ("properties", key, "items")
    located: list[_Located] = [
        (error, (key, index, *error.absolute_path), at) for error in whole.iter_errors(item)
    ]
    for j, holds, validator in entries:
        if holds is None or not holds(item):
            located += [
                (error, (key, index, *error.absolute_path), (*at, "allOf", j))
                for error in validator.iter_errors(item)
            ]
    return located


def schema_errors(kind: FileKind, document: dict[str, Any]) -> list[SchemaProblem]:
    """Every structural problem of ``document``, one per (rule, key path), in document order:
    the whole document walked by jsonschema."""
    errors = full_validator(kind).iter_errors(document)
    return _problems(kind, document, [(e, tuple(e.absolute_path), ()) for e in errors])


def _problems(
    kind: FileKind, document: dict[str, Any], located: list[_Located]
) -> list[SchemaProblem]:
    schema = load_schema(kind)
    seen: set[tuple[str, Path_]] = set()
    problems: list[SchemaProblem] = []
    for error, path, at in located:
        for problem in _explain(schema, document, error, path, at):
            key = (problem.rule, problem.path)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    return _drop_echoes(problems)


_PLAIN = frozenset({"wrong-type", "invalid-value", "unknown-key", "missing-key"})


def _drop_echoes(problems: list[SchemaProblem]) -> list[SchemaProblem]:
    """Drop findings that only echo a more basic one, so each mistake is reported once.

    A value of the wrong type makes every check on it or inside it meaningless (a connection
    written as a string also "lacks" its keys), and a rule tagged by the schema (auth-for-type on
    ``auth = "tokn"``) says nothing more than the plain finding at the same key path.
    """
    wrong_types = {p.path for p in problems if p.rule == "wrong-type"}
    plain_paths = {p.path for p in problems if p.rule in _PLAIN}
    kept = []
    for problem in problems:
        # under a wrong type: at a path that starts with one (its own only if not wrong-type
        # itself); one set lookup per level, not one comparison per other problem
        path = problem.path
        under_wrong_type = any(path[:k] in wrong_types for k in range(len(path))) or (
            path in wrong_types and problem.rule != "wrong-type"
        )
        if under_wrong_type:
            continue
        if problem.rule not in _PLAIN and problem.path in plain_paths:
            continue
        kept.append(problem)
    return kept


class SchemaProblem:
    """A finding before it has a file and a line."""

    __slots__ = ("message", "path", "rule")

    def __init__(self, rule: str, path: Path_, message: str) -> None:
        self.rule = rule
        self.path = path
        self.message = message

    def to_finding(self, rel: str, position: tuple[int | None, int | None] | None) -> Finding:
        line, column = position if position else (None, None)
        return Finding(self.rule, self.message, rel, line, column, format_path(self.path))


def _explain(
    schema: dict[str, Any],
    document: Any,
    error: jsonschema.ValidationError,
    path: Path_,
    at: tuple[Any, ...] = (),
) -> Iterator[SchemaProblem]:
    """The finding of one jsonschema error; ``at`` is the schema path of the validator's own
    schema inside the whole schema."""
    node, rule = _walk(schema, [*at, *error.schema_path])
    validator = str(error.validator)
    if validator == "additionalProperties":
        allowed = sorted(node.get("properties", {})) if isinstance(node, dict) else []
        extras = (
            [k for k in error.instance if k not in allowed]
            if isinstance(error.instance, dict)
            else []
        )
        for key in extras:
            yield SchemaProblem("unknown-key", (*path, key), _unknown_key(key, allowed))
        return
    if validator == "type" and path and path[-1] in SECRET_KEYS:
        # A literal where a secret reference (or a credentials table) belongs.
        rule = "plaintext-secret" if isinstance(error.instance, str | int | float) else "wrong-type"
    rule = rule or _DEFAULT_RULE.get(validator, "invalid-value")
    builder = _RULE_MESSAGES.get(rule)
    parent = _get(document, path[:-1]) if path else None
    message = (
        builder(error, path, parent, document) if builder else _generic(error, path, schema, at)
    )
    yield SchemaProblem(rule, _retarget(rule, path, document), message)


def _retarget(rule: str, path: Path_, document: Any) -> Path_:
    """Point a conditional rule's finding at the key that triggered it, not at its table."""
    keys = _TRIGGERS.get(rule)
    if not keys:
        return path
    owner = _owner(path, document)
    item = _get(document, owner)
    if isinstance(item, dict):
        for key in keys:
            if key in item:
                return (*owner, key)
    return path


def _owner(path: Path_, document: Any) -> Path_:
    """The table a conditional's error belongs to: the path itself, or its parent when the
    error landed on one of the table's scalar keys (a failed `const` on auth, type, ...)."""
    return path if isinstance(_get(document, path), dict) else path[:-1]


# Rules whose schema error lands on the table (a failed `required`) or on another key (a failed
# `const` on auth/type): the keys that caused them, in the order a reader would look.
_TRIGGERS: dict[str, tuple[str, ...]] = {
    "parameters-need-method": ("parameters",),
    "token-placement": ("token_header", "token_param"),
    "option-for-type": ("wsse_password_type", "oauth_placement", "soap_namespace", "soap_action"),
    "method-target": ("run",),
    "endpoint-or-endpoints": ("endpoints", "endpoint"),
    "proxy-credentials": ("username", "password"),
}


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


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "an array",
    "object": "a table",
}


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _generic(
    error: jsonschema.ValidationError, path: Path_, schema: dict[str, Any], at: tuple[Any, ...]
) -> str:
    validator = str(error.validator)
    expected: Any = error.validator_value
    value = show(error.instance, path)
    where = f"`{_key(path)}`"
    if validator == "required":
        missing = [
            k for k in expected if isinstance(error.instance, dict) and k not in error.instance
        ]
        plural = "s" if len(missing) > 1 else ""
        return (
            f"{where} is missing required key{plural} "
            + ", ".join(f"`{k}`" for k in missing)
            + f": add {'them' if plural else 'it'}"
        )
    if validator == "type":
        kinds = [str(k) for k in (expected if isinstance(expected, list) else [expected])]
        wanted = " or ".join(_TYPE_NAMES.get(k, k) for k in kinds)
        hint = ""
        if isinstance(error.instance, str) and not is_secret_path(path):
            bare = error.instance.strip()
            boolean = bare in ("true", "false") and "boolean" in kinds
            number = re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", bare) and {"integer", "number"} & set(
                kinds
            )
            if boolean or number:
                hint = f": write {bare} without quotes"
        return f"{where} must be {wanted}, not {value} ({_toml_type(error.instance)}){hint}"
    if validator == "enum":
        choices = ", ".join(json.dumps(v) for v in expected)
        close = difflib.get_close_matches(str(error.instance), [str(v) for v in expected], n=1)
        hint = (
            f"did you mean {json.dumps(close[0])}? " if close and not is_secret_path(path) else ""
        )
        return f"{where} is {value}: {hint}use one of {choices}"
    if validator == "const":
        return f"{where} is {value}; it must be {json.dumps(expected)}"
    if validator == "pattern":
        pattern = str(expected).replace("(?!\\n)", "")  # the guard against a trailing newline
        return f"{where} is {value}: it must match {pattern} ({_describe(schema, error, at)})"
    if validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        word = {
            "minimum": "at least",
            "exclusiveMinimum": "more than",
            "maximum": "at most",
            "exclusiveMaximum": "less than",
        }[validator]
        return f"{where} is {value}; it must be {word} {expected}"
    if validator in ("minLength", "minItems", "minProperties"):
        return f"{where} must not be empty: give a value or remove the key"
    if validator in ("maxItems", "maxProperties"):
        return f"{where} has too many entries (at most {expected})"
    if validator == "uniqueItems":
        return f"{where} lists an entry twice; keep one"
    return f"{where}: {error.message if not is_secret_path(path) else validator + ' check failed'}"


def _describe(
    schema: dict[str, Any], error: jsonschema.ValidationError, at: tuple[Any, ...]
) -> str:
    node, _ = _walk(schema, [*at, *list(error.schema_path)[:-1], "description"])
    text = node.get("description") if isinstance(node, dict) else None
    return str(text).rstrip(".") if text else "see the schema"


# --- messages of the rules that the schemas carry (x-rpcd-rule) -------------------------------

Builder = Callable[["jsonschema.ValidationError", Path_, Any, Any], str]


def _auth_for_type(error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any) -> str:
    item = parent if isinstance(parent, dict) else {}
    kind = item.get("type", "REST")
    return (
        f'auth = {show(item.get("auth"), ())} is not valid for type = "{kind}": '
        f"use one of {', '.join(AUTH_FOR_TYPE.get(kind, ()))} (cert is only for XML-RPC)"
    )


def _payload_for_type(error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any) -> str:
    item = parent if isinstance(parent, dict) else {}
    kind = item.get("type", "REST")
    return (
        f'payload = {show(item.get("payload"), ())} is not valid for type = "{kind}": '
        f"use {' or '.join(PAYLOAD_FOR_TYPE.get(kind, ()))}"
    )


def _credential_mismatch(
    error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any
) -> str:
    creds_path = path if path and path[-1] == "credentials" else (*path, "credentials")
    connection = _get(doc, creds_path[:-1])
    connection = connection if isinstance(connection, dict) else {}
    auth = connection.get("auth")
    creds = _get(doc, creds_path)
    have = ", ".join(sorted(creds)) if isinstance(creds, dict) and creds else "nothing"
    want = CREDENTIAL_KEYS.get(str(auth))
    if want is None:
        return f"credentials must hold exactly one credential group; found {have}"
    extra = sorted(set(creds) - set(want)) if isinstance(creds, dict) else []
    missing = [k for k in want if not isinstance(creds, dict) or k not in creds]
    fix = []
    if missing:
        fix.append("add " + ", ".join(missing))
    if extra:
        fix.append("remove " + ", ".join(extra))
    return (
        f'auth = "{auth}" needs credentials with exactly {" and ".join(want)}; found {have}: '
        + " and ".join(fix)
        + " (or change auth to match the credentials)"
    )


def _plaintext_secret(error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any) -> str:
    key = path[-1] if path else "secret"
    if len(path) >= 2 and path[0] == "peer":
        hashed = "token_sha256" if key == "token" else "password_hash"
        flag = "--token" if key == "token" else "--password"
        return (
            f"the peer's `{key}` holds a plaintext secret: peers store hashes only; remove "
            "it and set "
            f"`{hashed}` to the output of `rpcd hash-secret {flag}`"
        )
    refs = '{ env = "NAME" }, { file = "/path" } or { credential = "name" }'
    validator = str(error.validator)
    if validator == "maxProperties" and isinstance(error.instance, dict):
        both = " and ".join(sorted(error.instance))
        return (
            f"`{_key(path)}` names {both}: a secret reference names exactly one place "
            f"({refs}); keep one"
        )
    if validator == "minProperties":
        return f"`{_key(path)}` is an empty table: name where the secret lives with {refs}"
    return (
        f"`{_key(path)}` holds a literal value (hidden here): a secret must be a reference such as "
        f"{refs}, never the secret itself (git would hold it); move the value out of the file"
    )


def _peer_credential(error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any) -> str:
    peer = _get(doc, path)
    peer = peer if isinstance(peer, dict) else parent if isinstance(parent, dict) else {}
    auth = peer.get("auth")
    want = PEER_CREDENTIAL_KEYS.get(str(auth), ())
    every = ("token_sha256", "username", "password_hash", "fingerprint_sha256")
    missing = [k for k in want if k not in peer]
    extra = [k for k in every if k in peer and k not in want]
    fix = []
    if missing:
        fix.append("add " + ", ".join(missing))
    if extra:
        fix.append("remove " + ", ".join(extra))
    name = f"peer `{peer['id']}`" if isinstance(peer.get("id"), str) else "this peer"
    return (
        f'{name} has auth = "{auth}", which needs exactly {" and ".join(want)}: '
        + (" and ".join(fix) or "fix the credential keys")
        + " (hashes come from `rpcd hash-secret`)"
    )


def _method_target(error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any) -> str:
    method = _get(doc, path)
    method = method if isinstance(method, dict) else {}
    name = f"method `{method['name']}`" if isinstance(method.get("name"), str) else "this method"
    if "run" in method and "proxy" in method and "function" not in method:
        return (
            f"{name} is a proxy method, and `run` only applies to a `function` (a proxy call is "
            "always awaited on the event loop): remove run"
        )
    if "function" in method and "proxy" in method:
        return (
            f"{name} has both `function` and `proxy`: a method is served by exactly one of them; "
            "remove one"
        )
    return (
        f'{name} has neither `function` nor `proxy`: add function = "module:callable" or '
        'proxy = { class = "...", function = "..." }'
    )


def _token_placement(error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any) -> str:
    owner = path[:-1] if path and path[-1] == "auth" else path
    item = _get(doc, owner)
    item = item if isinstance(item, dict) else {}
    if "token_param" in item and "token_header" in item:
        return (
            "token_param and token_header are both set: the token goes either in a parameter or "
            "in a header; remove one"
        )
    key = "token_header" if "token_header" in item else "token_param"
    auth = show(item.get("auth"), ())
    return f'{key} only applies to auth = "token", not auth = {auth}: remove {key}'


def _option_for_type(error: jsonschema.ValidationError, path: Path_, parent: Any, doc: Any) -> str:
    item = _get(doc, _owner(path, doc))
    item = item if isinstance(item, dict) else {}
    if "wsse_password_type" in item and item.get("auth") != "wsse":
        return (
            'wsse_password_type only applies to auth = "wsse", not auth = '
            f"{show(item.get('auth'), ())}: "
            "remove it"
        )
    if "oauth_placement" in item and item.get("auth") != "oauth1":
        return (
            'oauth_placement only applies to auth = "oauth1", not auth = '
            f"{show(item.get('auth'), ())}: remove it"
        )
    if item.get("oauth_placement") == "body":
        return (
            'oauth_placement = "body" puts the signature in a form body, so it needs '
            'payload = "url" (or no payload) and http_method = "POST": set both, or use '
            '"header" or "query"'
        )
    present = [k for k in ("soap_namespace", "soap_action", "soap_qualified") if k in item] or [
        "soap_namespace / soap_action / soap_qualified"
    ]
    keys, verb, them = (
        " and ".join(present),
        ("apply" if len(present) > 1 else "applies"),
        "them" if len(present) > 1 else "it",
    )
    kind = item.get("type")
    given = f"type = {show(kind, ())}" if kind is not None else "no type (so REST)"
    return (
        f'{keys} only {verb} to type = "SOAP", and this connection has {given}: '
        f'set type = "SOAP" or remove {them}'
    )


def _fixed_text(text: str) -> Builder:
    return lambda error, path, parent, doc: text


_RULE_MESSAGES: dict[str, Builder] = {
    "auth-for-type": _auth_for_type,
    "payload-for-type": _payload_for_type,
    "credential-mismatch": _credential_mismatch,
    "plaintext-secret": _plaintext_secret,
    "peer-credential": _peer_credential,
    "parameters-need-method": _fixed_text(
        '`parameters` is not empty, so `http_method` is required: add http_method = "GET" or "POST"'
    ),
    "global-with-institutions": _fixed_text(
        "a global connection serves everyone and lists no institutions: remove "
        "`institutions` or set global = false"
    ),
    "token-placement": _token_placement,
    "option-for-type": _option_for_type,
    "method-target": _method_target,
    "endpoint-or-endpoints": _fixed_text(
        "a connection has one `endpoint` or a list `endpoints = [primary, standby, ...]`, "
        "not both and not neither: keep one of them (put the single endpoint first in "
        "`endpoints`)"
    ),
    "proxy-credentials": _fixed_text(
        "proxy authentication needs both `username` and `password` (secret references): "
        "add the missing one, or remove both for a proxy without authentication"
    ),
    "missing-class": _fixed_text(
        "this file has no [class], so this connection must name its class: add class = "
        '"<class id>" '
        "(or declare a [class] in this file)"
    ),
}
