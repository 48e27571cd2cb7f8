"""Generate docs/configuration.md from the JSON Schemas: ``python -m rpcd.config.docgen``.

The schemas are the contract and already describe every key; this module turns them into one
reference page: a section per file kind, a table per TOML table (key, type, required, default,
allowed values, description, rule ids), and the tables that the schemas' conditionals encode
(which auth and payload go with which type, the credential group per auth, the peer credential
per auth). Defaults come from the pydantic models and the catalog (the schemas carry no
``default`` keyword: the models hold them).

``tests/test_docgen.py`` fails when the committed page differs from this output (run ``make docs``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from rpcd.config import models
from rpcd.config.catalog import (
    DEFAULT_HTTP_METHOD,
    DEFAULT_OAUTH_PLACEMENT,
    DEFAULT_TOKEN_PARAM,
    DEFAULT_WSSE_PASSWORD_TYPE,
)
from rpcd.config.contract import load_schema
from rpcd.config.sources import FileKind

Node = dict[str, Any]
Section = tuple[str, ...]

FILES: tuple[tuple[FileKind, str, str], ...] = (
    (FileKind.SITE, "rpcd.toml", "The site file at the root of the tree."),
    (
        FileKind.CONNECTIONS,
        "connections.d/*.toml",
        "Connection classes and their instances, in any number of files at any depth. A file "
        "under `connections.d/<institution-id>/` belongs to that institution (rule "
        "`folder-ownership`): it may hold only that institution's connections.",
    ),
    (
        FileKind.SERVICES,
        "services.d/*.toml",
        "Published services and the peers allowed to call them, in any number of files.",
    ),
)

# The model that mirrors each table: defaults are read from it, and every schema key must be
# one of its fields (docgen fails loudly otherwise: the models mirror the schemas).
MODELS: dict[tuple[FileKind, Section], type[BaseModel]] = {
    (FileKind.SITE, ()): models.SiteFile,
    (FileKind.SITE, ("connections",)): models.ConnectionsSwitch,
    (FileKind.SITE, ("institution",)): models.Institution,
    (FileKind.CONNECTIONS, ()): models.ConnectionsFile,
    (FileKind.CONNECTIONS, ("class",)): models.ConnectionClass,
    (FileKind.CONNECTIONS, ("class", "fixed")): models.Fixed,
    (FileKind.CONNECTIONS, ("class", "probe")): models.Probe,
    (FileKind.CONNECTIONS, ("class", "config_fields", "<name>")): models.ConfigField,
    (FileKind.CONNECTIONS, ("connection",)): models.ConnectionEntry,
    (FileKind.CONNECTIONS, ("connection", "credentials")): models.Credentials,
    (FileKind.SERVICES, ()): models.ServicesFile,
    (FileKind.SERVICES, ("service",)): models.Service,
    (FileKind.SERVICES, ("service", "grant")): models.Grant,
    (FileKind.SERVICES, ("service", "method")): models.Method,
    (FileKind.SERVICES, ("service", "method", "proxy")): models.Proxy,
    (FileKind.SERVICES, ("peer",)): models.Peer,
}

# Defaults that the catalog fills in (the model keeps None: "not written").
EFFECTIVE_DEFAULTS: dict[tuple[FileKind, Section, str], str] = {
    (FileKind.CONNECTIONS, ("connection",), "class"): "the file's `[class]`",
    (FileKind.CONNECTIONS, ("connection",), "payload"): "by type: "
    + ", ".join(f"{t} `{p}`" for t, p in models.DEFAULT_PAYLOAD.items()),
    (FileKind.CONNECTIONS, ("connection",), "http_method"): f"`{DEFAULT_HTTP_METHOD}`",
    (FileKind.CONNECTIONS, ("connection",), "token_param"): f"`{DEFAULT_TOKEN_PARAM}` "
    "(token auth without `token_header`)",
    (
        FileKind.CONNECTIONS,
        ("connection",),
        "wsse_password_type",
    ): f"`{DEFAULT_WSSE_PASSWORD_TYPE}` (wsse auth)",
    (
        FileKind.CONNECTIONS,
        ("connection",),
        "oauth_placement",
    ): f"`{DEFAULT_OAUTH_PLACEMENT}` (oauth1 auth)",
    (FileKind.SERVICES, ("service", "method"), "run"): "`thread`",
    (FileKind.CONNECTIONS, ("connection",), "ca_bundle"): "the system trust store only",
    (FileKind.CONNECTIONS, ("connection",), "type"): "`REST`",
    (FileKind.SERVICES, ("service",), "grant"): "nobody may call",
}

# Rules across files (stage 4, rpcd/config/rules.py): which keys they look at. The schema's own
# rules (x-rpcd-rule) are read from the schemas.
CROSS_FILE_RULES: dict[tuple[FileKind, Section, str], tuple[str, ...]] = {
    (FileKind.SITE, ("institution",), "id"): ("duplicate-id",),
    (FileKind.CONNECTIONS, ("class",), "id"): (
        "duplicate-id",
        "class-id-prefix",
        "folder-ownership",
    ),
    (FileKind.CONNECTIONS, ("class",), "plugin"): ("class-id-prefix",),
    (FileKind.CONNECTIONS, ("class",), "fixed"): ("fixed-attribute",),
    (FileKind.CONNECTIONS, ("class",), "config_fields"): ("config-field",),
    (FileKind.CONNECTIONS, ("class",), "function_param"): ("function-placement",),
    (FileKind.CONNECTIONS, ("connection",), "id"): ("duplicate-id",),
    (FileKind.CONNECTIONS, ("connection",), "class"): ("unknown-class",),
    (FileKind.CONNECTIONS, ("connection",), "global"): ("global-not-alone", "folder-ownership"),
    (FileKind.CONNECTIONS, ("connection",), "institutions"): (
        "unknown-institution",
        "institution-overlap",
        "folder-ownership",
    ),
    (FileKind.CONNECTIONS, ("connection",), "endpoint"): ("function-placement",),
    (FileKind.CONNECTIONS, ("connection",), "config"): ("config-field",),
    (FileKind.SERVICES, ("service",), "name"): ("duplicate-id",),
    (FileKind.SERVICES, ("service",), "grant"): ("service-without-grant",),
    (FileKind.SERVICES, ("service", "grant"), "institutions"): ("unknown-institution",),
    (FileKind.SERVICES, ("service", "grant"), "peers"): ("unknown-peer",),
    (FileKind.SERVICES, ("service", "method"), "name"): ("duplicate-id",),
    (FileKind.SERVICES, ("service", "method"), "function"): ("import-failed",),
    (FileKind.SERVICES, ("service", "method", "proxy"), "class"): ("unknown-proxy-class",),
    (FileKind.SERVICES, ("peer",), "id"): ("duplicate-id",),
    (FileKind.SERVICES, ("peer",), "institutions"): ("unknown-institution",),
    (FileKind.SERVICES, ("peer",), "token_sha256"): ("duplicate-credential",),
    (FileKind.SERVICES, ("peer",), "username"): ("duplicate-credential",),
    (FileKind.SERVICES, ("peer",), "fingerprint_sha256"): ("duplicate-credential",),
}


# --- reading the schemas ----------------------------------------------------------------------


def deref(root: Node, node: Node) -> Node:
    while "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def is_table(node: Node) -> bool:
    return node.get("type") == "object" and "properties" in node


def child_tables(root: Node, node: Node, section: Section) -> Iterator[tuple[Section, Node, str]]:
    """Every TOML table below ``node``: (section path, schema node, how it is written)."""
    for key, raw in node.get("properties", {}).items():
        sub = deref(root, raw)
        path = (*section, key)
        if raw.get("$ref") == "#/definitions/secret_ref":
            continue
        if is_table(sub):
            yield path, sub, "table"
        elif sub.get("type") == "array" and is_table(deref(root, sub.get("items", {}))):
            yield path, deref(root, sub["items"]), "array"
        elif sub.get("type") == "object" and isinstance(sub.get("additionalProperties"), dict):
            inner = deref(root, sub["additionalProperties"])
            if is_table(inner):
                yield (*path, "<name>"), inner, "named"


def all_tables(root: Node) -> Iterator[tuple[Section, Node, str]]:
    yield (), root, "root"
    queue = list(child_tables(root, root, ()))
    while queue:
        section, node, how = queue.pop(0)
        yield section, node, how
        queue[0:0] = list(child_tables(root, node, section))


def header(section: Section, how: str, arrays: set[Section]) -> str:
    if how == "root":
        return "Top level"
    dotted = ".".join(section)
    if how == "array" and section not in arrays:
        return f"`[[{dotted}]]`"
    return f"`[[{dotted}]]`" if how == "array" else f"`[{dotted}]`"


def pattern_text(pattern: str) -> str:
    # "(?!\n)$" makes Python's `$` mean end of string, as in ECMA-262; a reader needs only "$".
    return pattern.replace("(?!\\n)$", "$")


def type_text(root: Node, raw: Node) -> str:
    if raw.get("$ref") == "#/definitions/secret_ref":
        return "secret reference"
    if raw.get("$ref") == "#/definitions/value":
        return "any value"
    node = deref(root, raw)
    if node.get("not") == {}:
        return "(not allowed)"
    if "const" in node and "type" not in node:
        return _json_type(node["const"])
    if "enum" in node:
        kinds = sorted({_json_type(v) for v in node["enum"]})
        return " or ".join(kinds)
    kind = node.get("type")
    if isinstance(kind, list):
        if "string" in kind and "object" in kind:
            return "any value"
        return " or ".join(str(_TYPES.get(k, k)) for k in kind)
    if kind == "array":
        items = node.get("items", {})
        return f"array of {_plural(type_text(root, items))}" if items else "array"
    if kind == "object":
        if is_table(node):
            return "table"
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return f"table of {_plural(type_text(root, extra))}"
        return "table"
    return _TYPES.get(str(kind), str(kind))


_TYPES = {"object": "table", "array": "array"}


def _plural(text: str) -> str:
    if text == "any value":
        return "values"
    if text in ("table", "secret reference", "string", "integer", "number", "boolean"):
        return text + "s"
    return text


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def allowed_text(root: Node, raw: Node) -> str:
    node = deref(root, raw)
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        inner = allowed_text(root, node["items"])
        parts = [f"each: {inner}"] if inner else []
        if node.get("uniqueItems"):
            parts.append("no duplicates")
        if "minItems" in node:
            parts.append(f"at least {node['minItems']} item{'s' if node['minItems'] > 1 else ''}")
        return "; ".join(parts)
    parts = []
    if "const" in node:
        parts.append(f"`{json.dumps(node['const'])}`")
    if "enum" in node:
        parts.append(", ".join(f"`{v}`" for v in node["enum"]))
    if "pattern" in node:
        parts.append(f"matches `{pattern_text(node['pattern'])}`")
    if node.get("minLength") == 1:
        parts.append("not empty")
    bounds = []
    if "minimum" in node:
        bounds.append(f"≥ {node['minimum']}")
    if "exclusiveMinimum" in node:
        bounds.append(f"> {node['exclusiveMinimum']}")
    if "maximum" in node:
        bounds.append(f"≤ {node['maximum']}")
    if bounds:
        parts.append(", ".join(bounds))
    names = node.get("propertyNames", {})
    if isinstance(names, dict) and "pattern" in names:
        parts.append(f"names match `{pattern_text(names['pattern'])}`")
    return "; ".join(parts)


def schema_rules(root: Node, table: Node, key: str) -> list[str]:
    """Rule ids the schema attaches to ``key``: on the key itself, or on a conditional naming it."""
    raw = table["properties"][key]
    found: list[str] = []
    for node in (raw, deref(root, raw)):
        rule = node.get("x-rpcd-rule")
        if rule and rule not in found:
            found.append(rule)
    for entry in table.get("allOf", []):
        rule = entry.get("x-rpcd-rule")
        if rule and rule not in found and key in _mentioned(entry):
            found.append(rule)
    return found


def _mentioned(node: Any) -> set[str]:
    """Keys a conditional talks about (in ``properties``, ``required``), however deep."""
    out: set[str] = set()
    if isinstance(node, dict):
        out |= set(node.get("properties", {}))
        required = node.get("required", [])
        if isinstance(required, list):
            out |= set(required)
        for k, v in node.items():
            if k not in ("properties", "required", "x-rpcd-rule", "description"):
                out |= _mentioned(v)
            elif k == "properties":
                for sub in v.values():
                    out |= _mentioned(sub) & {"type", "auth"}  # nested keys of the same table
    elif isinstance(node, list):
        for v in node:
            out |= _mentioned(v)
    return out


def conditional_required(root: Node) -> dict[Section, dict[str, str]]:
    """Keys required only under a condition: section → key → condition, from the conditionals."""
    found: dict[Section, dict[str, list[str]]] = {}

    def add(section: Section, key: str, condition: str) -> None:
        found.setdefault(section, {}).setdefault(key, []).append(condition)

    for section, table, _ in all_tables(root):
        for entry in table.get("allOf", []):
            if "if" not in entry or "then" not in entry:
                continue
            condition = condition_text(entry["if"])
            then = entry["then"]
            for key in then.get("required", []):
                add(section, key, condition)
            # a condition at this level may require keys of a child table or of its items
            for child, node in then.get("properties", {}).items():
                for key in node.get("required", []):
                    add((*section, child), key, condition)
                for key in node.get("items", {}).get("required", []):
                    if section == () and condition.endswith("is not set"):
                        table_key = condition.split("`")[1]
                        add((*section, child), key, f"the file has no `[{table_key}]`")
                    else:
                        add((*section, child), key, condition)
    return {s: {k: " or ".join(v) for k, v in keys.items()} for s, keys in found.items()}


def credential_users(root: Node) -> dict[str, list[str]]:
    """Credential key → the auth values whose group holds it (from the conditionals)."""
    users: dict[str, list[str]] = {}
    for entry in root.get("definitions", {}).get("connection", {}).get("allOf", []):
        if entry.get("x-rpcd-rule") == "credential-mismatch" and "if" in entry:
            auth = entry["if"]["properties"]["auth"]["const"]
            for key in entry["then"]["properties"]["credentials"]["required"]:
                users.setdefault(key, []).append(auth)
    return users


def condition_text(node: Node) -> str:
    if "anyOf" in node:
        return " or ".join(condition_text(x) for x in node["anyOf"])
    if "not" in node:
        inner = node["not"]
        required = inner.get("required", [])
        if len(required) == 1 and len(inner) == 1:
            return f"`{required[0]}` is not set"
        return "not (" + condition_text(inner) + ")"
    parts: list[str] = []
    properties = node.get("properties", {})
    for key, sub in properties.items():
        if "const" in sub:
            parts.append(f"{key} = {json.dumps(sub['const'])}")
        elif sub.get("minProperties") == 1:
            parts.append(f"`{key}` is not empty")
    for key in node.get("required", []):
        if key not in properties:
            parts.append(f"`{key}` is set")
    return " and ".join(parts) or json.dumps(node)


# --- defaults from the models -----------------------------------------------------------------


def model_field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info
    raise LookupError(
        f"{model.__name__} has no field for the schema key `{key}`: models.py must mirror the "
        "schema"
    )


def default_text(kind: FileKind, section: Section, key: str, node: Node) -> str:
    special = EFFECTIVE_DEFAULTS.get((kind, section, key))
    if special is not None:
        return special
    model = MODELS.get((kind, section))
    if model is None or node.get("not") == {}:
        return "—"
    info = model_field(model, key)
    if info.is_required():
        return "—"
    value = info.get_default(call_default_factory=True)
    if value is None or isinstance(value, BaseModel):
        return "—"
    return f"`{toml_value(value)}`"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{}"
            if not value
            else "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    return str(value)


# --- the page ---------------------------------------------------------------------------------


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def key_table(
    kind: FileKind, root: Node, section: Section, table: Node, conditional: dict[str, str]
) -> list[str]:
    model = MODELS.get((kind, section))
    required = set(table.get("required", []))
    lines = [
        "| key | type | required | default | allowed values | description | rules |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, raw in table["properties"].items():
        if model is not None and raw.get("not") != {}:
            model_field(model, key)  # every key of the schema is a field of the model
        node = deref(root, raw)
        if key in required:
            req = "yes"
        elif key in conditional:
            req = f"when {conditional[key]}"
        else:
            req = "no"
        rules = schema_rules(root, table, key) + list(
            CROSS_FILE_RULES.get((kind, section, key), ())
        )
        description = raw.get("description") or node.get("description", "")
        if raw.get("$ref") == "#/definitions/secret_ref" and "description" not in raw:
            auths = credential_users(root).get(key, [])
            description = (
                "A [secret reference](#secret-reference); the credential of auth "
                + " and ".join(f"`{a}`" for a in auths)
            )
        lines.append(
            "| "
            + " | ".join(
                cell(x)
                for x in (
                    f"`{key}`",
                    type_text(root, raw),
                    req,
                    default_text(kind, section, key, node),
                    allowed_text(root, raw),
                    description,
                    ", ".join(f"`{r}`" for r in rules),
                )
            )
            + " |"
        )
    return lines


def type_matrix(connection: Node) -> list[str]:
    """Which auth and payload go with which type, read from the connection's conditionals."""
    auth: dict[str, list[str]] = {}
    payload: dict[str, list[str]] = {}
    for entry in connection.get("allOf", []):
        rule = entry.get("x-rpcd-rule")
        if rule not in ("auth-for-type", "payload-for-type"):
            continue
        kind = _type_of(entry["if"])
        allowed = entry["then"]["properties"]["auth" if rule == "auth-for-type" else "payload"]
        values = allowed.get("enum", [allowed.get("const")])
        (auth if rule == "auth-for-type" else payload)[kind] = [str(v) for v in values]
    lines = [
        "| type | auth | payload (default first) |",
        "| --- | --- | --- |",
    ]
    for kind in connection["properties"]["type"]["enum"]:
        default = models.DEFAULT_PAYLOAD[kind]
        ordered = [default, *[p for p in payload.get(kind, []) if p != default]]
        shown = ", ".join(f"`{p}`" for p in ordered)
        lines.append(
            f"| `{kind}`{' (default)' if kind == 'REST' else ''} | "
            + ", ".join(f"`{a}`" for a in auth.get(kind, []))
            + f" | {shown} |"
        )
    return lines


def _type_of(condition: Node) -> str:
    if "anyOf" in condition:
        return str(condition["anyOf"][0]["properties"]["type"]["const"])
    return str(condition["properties"]["type"]["const"])


def credential_groups(connection: Node, credentials: Node) -> list[str]:
    lines = ["| auth | credentials keys | what it is |", "| --- | --- | --- |"]
    for entry in connection.get("allOf", []):
        if entry.get("x-rpcd-rule") != "credential-mismatch" or "if" not in entry:
            continue
        auth = entry["if"]["properties"]["auth"]["const"]
        keys = entry["then"]["properties"]["credentials"]["required"]
        lines.append(
            f"| `{auth}` | {', '.join(f'`{k}`' for k in keys)} | {cell(AUTH_NOTES.get(auth, ''))} |"
        )
    return lines


AUTH_NOTES = {
    "token": "a web-service token, sent as the `token_param` parameter "
    f"(default `{DEFAULT_TOKEN_PARAM}`) or in the `token_header` header "
    "(`Authorization` gets `Bearer <token>`)",
    "userpass": "HTTP Basic user name and password",
    "oauth1": "OAuth 1.0a, HMAC-SHA1, two-legged: consumer key and secret",
    "wsse": 'WS-Security UsernameToken (SOAP); PasswordDigest unless `wsse_password_type = "text"`',
    "cert": "X.509 client certificate and its private key for TLS (XML-RPC only)",
}


def peer_credentials(peer: Node) -> list[str]:
    lines = ["| auth | keys | none of |", "| --- | --- | --- |"]
    for entry in peer.get("allOf", []):
        if entry.get("x-rpcd-rule") != "peer-credential":
            continue
        auth = entry["if"]["properties"]["auth"]["const"]
        keys = entry["then"]["required"]
        banned = [x["required"][0] for x in entry["then"].get("not", {}).get("anyOf", [])]
        lines.append(
            f"| `{auth}` | {', '.join(f'`{k}`' for k in keys)} | "
            f"{', '.join(f'`{k}`' for k in banned)} |"
        )
    return lines


def other_conditions(table: Node) -> list[str]:
    """The conditionals not already shown as a matrix, one sentence each."""
    lines = []
    for entry in table.get("allOf", []):
        rule = entry.get("x-rpcd-rule", "")
        if rule in ("auth-for-type", "payload-for-type", "credential-mismatch", "peer-credential"):
            continue
        lines.append(f"- {conditional_sentence(entry)} (`{rule}`)")
    return lines


def conditional_sentence(entry: Node) -> str:
    if "oneOf" in entry:
        keys = [x["required"][0] for x in entry["oneOf"]]
        return "exactly one of " + " and ".join(f"`{k}`" for k in keys)
    if "not" in entry and "if" not in entry:
        keys = entry["not"].get("required", [])
        return "not both " + " and ".join(f"`{k}`" for k in keys)
    condition = condition_text(entry["if"])
    return f"when {condition}: {consequence_text(entry['then'])}"


def consequence_text(node: Node) -> str:
    parts: list[str] = []
    for key, sub in node.get("properties", {}).items():
        if "const" in sub:
            parts.append(f"{key} must be {json.dumps(sub['const'])}")
        elif sub.get("maxItems") == 0:
            parts.append(f"`{key}` must be empty")
        elif "items" in sub and "required" in sub["items"]:
            parts.append(
                f"every `{key}` entry needs "
                + ", ".join(f"`{k}`" for k in sub["items"]["required"])
            )
    for key in node.get("required", []):
        if key not in node.get("properties", {}):
            parts.append(f"`{key}` is required")
    return " and ".join(parts) or json.dumps(node)


def secret_reference(root: Node) -> list[str]:
    ref = root["definitions"]["secret_ref"]
    lines = [
        "### Secret reference",
        "",
        ref["description"],
        "",
        "```toml",
        'credentials = { token = { env = "MOODLE_TOKEN" } }',
        'credentials = { username = { file = "/etc/rpcd/sis.user" }, '
        'password = { credential = "sis-password" } }',
        "```",
        "",
        "| form | value | allowed values | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for key, node in ref["properties"].items():
        lines.append(
            f'| `{{ {key} = "…" }}` | string | {cell(allowed_text(root, node))} | '
            f"{cell(node['description'])} |"
        )
    lines += [
        "",
        f"Rule: `{ref['x-rpcd-rule']}` (a literal string, or not exactly one of the three keys).",
    ]
    return lines


def render() -> str:
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `make docs` (python -m rpcd.config.docgen) from "
        "schemas/v1/*.schema.json;",
        "     do not edit by hand: tests/test_docgen.py fails when this page is stale. -->",
        "",
        "A config root holds `rpcd.toml`, `connections.d/` and `services.d/`. Every file starts "
        "with "
        "`version = 1`. Files are checked in four stages — TOML syntax, these JSON Schemas, the "
        "typed "
        "models, the rules across files — and every problem of every file is reported in one run "
        "(`rpcd validate`).",
        "",
        "The schemas in `schemas/v1/` are the contract (JSON Schema draft-07). Point your editor "
        "at "
        "them with a first line such as `#:schema ./schemas/v1/rpcd.schema.json` (taplo / Even "
        "Better "
        "TOML) and it checks the file as you type.",
        "",
        "How to read the tables:",
        "",
        "- Every table refuses keys it does not list (`unknown-key`). A missing required key is "
        "`missing-key`, a value of the wrong type `wrong-type`, a value outside its allowed set "
        "`invalid-value`; the *rules* column names the other rule ids that look at the key. "
        "[rules.md](rules.md) explains every rule id.",
        "- *integer* follows JSON Schema: `2` and `2.0` are both the integer 2. *number* is any "
        "finite "
        "number. Dates and times are not accepted anywhere.",
        "- Patterns match the whole value (`^…$`, no trailing newline).",
        "- *default* is what rpcd uses when the key is left out; — means there is none (the key is "
        'required, or leaving it out means "not set").',
        "",
        "## Contents",
        "",
    ]
    body: list[str] = []
    for kind, title, intro in FILES:
        root = load_schema(kind)
        anchor = title.replace(".", "").replace("/", "").replace("*", "")
        out.append(f"- [{title}](#{anchor})")
        body += [
            "",
            f"## {title}",
            "",
            intro,
            "",
            f"{root['description']} Schema: `schemas/v1/{kind.value}.schema.json` (`$id` "
            f"{root['$id']}).",
            "",
        ]
        conditional = conditional_required(root)
        arrays = {section for section, _, how in all_tables(root) if how == "array"}
        for section, table, how in all_tables(root):
            body += [f"### {header(section, how, arrays)}", ""]
            if how != "root" and table.get("description"):
                body += [table["description"], ""]
            elif how == "root":
                body += ["Keys outside any table.", ""]
            body += key_table(kind, root, section, table, conditional.get(section, {}))
            extra = other_conditions(table)
            if kind is FileKind.CONNECTIONS and section == ("connection",):
                body += [
                    "",
                    "#### Which auth and payload go with which type",
                    "",
                    "From the schema's conditionals (`auth-for-type`, `payload-for-type`); "
                    "`cert` is for "
                    "XML-RPC only.",
                    "",
                    *type_matrix(table),
                    "",
                    "#### Credential groups",
                    "",
                    "`credentials` holds exactly the group that `auth` names, nothing else "
                    "(`credential-mismatch`); every value is a [secret "
                    "reference](#secret-reference).",
                    "",
                    *credential_groups(table, deref(root, table["properties"]["credentials"])),
                ]
            if kind is FileKind.SERVICES and section == ("peer",):
                body += [
                    "",
                    "#### Peer credentials per auth",
                    "",
                    "A peer stores hashes only (make them with `rpcd hash-secret`); `token` and "
                    "`password` keys are refused (`plaintext-secret`). Rule `peer-credential`:",
                    "",
                    *peer_credentials(table),
                ]
            if extra:
                body += ["", "Conditions:", "", *extra]
            body.append("")
        if kind is FileKind.CONNECTIONS:
            body += secret_reference(root)
    return "\n".join(out + body).rstrip() + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
