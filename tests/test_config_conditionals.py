"""rpcd/config/conditionals.py: the models run the schema's own tagged conditionals."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcd.config import models
from rpcd.config.conditionals import compile_check, rules_of
from rpcd.config.contract import SCHEMA_DIR, load_schema
from rpcd.config.sources import FileKind

KINDS = [kind for kind in FileKind if (SCHEMA_DIR / f"{kind.value}.schema.json").exists()]
READ_BY_MODELS = {
    (FileKind.CONNECTIONS, ()): models.CONNECTIONS_FILE_RULES,
    (FileKind.CONNECTIONS, ("definitions", "connection")): models.CONNECTION_RULES,
    (
        FileKind.SERVICES,
        ("properties", "service", "properties", "method", "items"),
    ): models.METHOD_RULES,
    (FileKind.SERVICES, ("properties", "peer", "items")): models.PEER_RULES,
    (FileKind.CONNECTIONS, ("definitions", "proxy")): models.PROXY_RULES,
    (FileKind.SITE, ("properties", "proxy")): models.SITE_PROXY_RULES,
}


def _tagged_allof_owners(node: Any, pointer: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    owners: set[tuple[str, ...]] = set()
    if isinstance(node, dict):
        if any("x-rpcd-rule" in entry for entry in node.get("allOf", ())):
            owners.add(pointer)
        for key, value in node.items():
            owners |= _tagged_allof_owners(value, (*pointer, key))
    return owners


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_every_tagged_conditional_is_run_by_a_model(kind: FileKind) -> None:
    """A conditional added to the schema is decided by the model, with no edit in models.py,
    as long as it sits in an allOf the models read; a new place must be added to models.py."""
    for pointer in _tagged_allof_owners(load_schema(kind)):
        assert (kind, pointer) in READ_BY_MODELS, f"no model reads the conditionals at {pointer}"
        read = [rule.rule for rule in READ_BY_MODELS[kind, pointer].rules]
        assert read == [rule.rule for rule in rules_of(kind, *pointer).rules]


def test_the_models_refuse_with_the_rule_of_the_broken_conditional() -> None:
    conn = {
        "id": "c",
        "type": "SOAP",
        "auth": "oauth1",
        "endpoint": "https://h.example/",
        "credentials": {"consumer_key": {"env": "K"}, "consumer_secret": {"env": "S"}},
    }
    assert models.CONNECTION_RULES.first_broken(conn) == "auth-for-type"
    conn |= {"auth": "token", "credentials": {"token": {"env": "T"}}, "token_param": "t"}
    assert models.CONNECTION_RULES.first_broken(conn) is None
    conn["auth"] = "wsse"
    conn["credentials"] = {"username": {"env": "U"}, "password": {"env": "P"}}
    assert models.CONNECTION_RULES.first_broken(conn) == "token-placement"


@pytest.mark.parametrize(
    ("schema", "value", "holds"),
    [
        ({"const": True}, True, True),
        ({"const": True}, 1, False),  # JSON: true is not 1
        ({"const": 1}, 1.0, True),  # JSON: 1 is 1.0
        ({"enum": ["a", "b"]}, "b", True),
        ({"required": ["a"]}, "not a table", True),  # keywords of tables ignore other types
        ({"maxItems": 0}, [], True),
        ({"maxItems": 0}, ["x"], False),
        ({"minProperties": 1}, {}, False),
        ({"propertyNames": {"enum": ["a"]}}, {"a": 1, "b": 2}, False),
        ({"items": {"required": ["k"]}}, [{"k": 1}, {}], False),
        ({"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}, {"a": 1, "b": 2}, False),
        ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, {"a": 1}, False),
        ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, {"c": 1}, True),
    ],
)
def test_keywords_mean_what_json_schema_says(
    schema: dict[str, Any], value: Any, holds: bool
) -> None:
    assert compile_check(schema)(value) is holds


def test_a_keyword_it_does_not_know_fails_loudly() -> None:
    with pytest.raises(ValueError, match="'pattern' in an x-rpcd-rule conditional"):
        compile_check({"if": {"required": ["a"]}, "then": {"properties": {"a": {"pattern": "x"}}}})


_WORDS = ["REST", "XML-RPC", "SOAP", "token", "userpass", "oauth1", "wsse", "cert", "url"]
_WORDS += ["xml", "json", "soap", "body", "header", "GET", "POST", "digest"]
_VALUES = st.sampled_from([*_WORDS, True, False, 1, [], ["a"], {}])
_KEYS = ["type", "auth", "payload", "http_method", "global", "institutions", "token_param"]
_KEYS += ["token_header", "wsse_password_type", "oauth_placement", "soap_namespace", "run"]
_KEYS += ["soap_action", "soap_qualified", "parameters", "function", "proxy", "class"]
_CREDENTIALS = st.dictionaries(
    st.sampled_from(["token", "username", "password", "consumer_key", "certificate"]),
    st.just({"env": "X"}),
)


@pytest.mark.fuzz
@given(
    table=st.dictionaries(st.sampled_from(_KEYS), _VALUES),
    credentials=st.none() | _CREDENTIALS,
)
def test_the_index_agrees_with_running_every_conditional(
    table: dict[str, Any], credentials: dict[str, Any] | None
) -> None:
    """The trigger index (``RuleSet.first_broken``) says "broken" exactly when running every
    conditional in full does."""
    if credentials is not None:
        table["credentials"] = credentials
    for rules in READ_BY_MODELS.values():
        broken = [rule.rule for rule in rules.rules if not rule.holds(table)]
        found = rules.first_broken(table)
        assert (found is None) == (not broken)
        assert found is None or found in broken
