"""The JSON-Schema stage and the pydantic stage agree on every document, and nothing raises.

The schemas in ``schemas/v1`` are the public contract; ``rpcd/config/models.py`` mirrors them.
For a corpus of documents — the example tree, hand-written fixtures, hypothesis-generated valid
documents of every file kind and mutations of them — this module checks that:

* ``jsonschema`` (Draft 7, which explains) and ``models.*File.model_validate`` (which decides,
  ``schema.check``) give the same verdict (a model "valid" that the schema refuses would
  hide findings);
* ``check_file`` and ``build`` never raise, and never report the ``model`` rule (which means the
  two stages disagreed after the broken parts were pruned).
"""

from __future__ import annotations

import copy
import datetime as dt
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tree_helpers import REPO, copy_example

from rpcd.config import build, schema
from rpcd.config.contract import load_schema
from rpcd.config.document import check_file
from rpcd.config.models import CREDENTIAL_KEYS
from rpcd.config.schema import AUTH_FOR_TYPE, PAYLOAD_FOR_TYPE
from rpcd.config.sources import FileKind, SourceFile

Doc = dict[str, Any]
SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("AGREE_N", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def verdicts(kind: FileKind, document: Doc) -> tuple[bool, bool]:
    """(jsonschema, pydantic) — each True when the document is valid."""
    full = schema.full_validator(kind).is_valid(document)
    return full, schema.check(kind, document)[0] is not None


def assert_agree(kind: FileKind, document: Doc) -> bool:
    full, model = verdicts(kind, document)
    assert full == model, (
        f"jsonschema says {full}, pydantic says {model} for {kind.value}: {document!r}"
    )
    return full


def check_never_raises(kind: FileKind, document: Doc, rel: str) -> None:
    """Write ``document`` as TOML, run ``check_file`` on it: no exception, no ``model`` finding."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.toml"
        path.write_text(tomli_w.dumps(document), encoding="utf-8")
        st_ = path.stat()
        source = SourceFile(
            rel, path, kind, (st_.st_size, st_.st_mtime_ns, st_.st_ctime_ns, st_.st_ino)
        )
        result = check_file(source)
        rules = {f.rule for f in result.findings}
        assert "model" not in rules, [f.as_text() for f in result.findings]
        if assert_agree(kind, tomllib.loads(path.read_text(encoding="utf-8"))):
            assert not result.findings, [f.as_text() for f in result.findings]
            assert result.model is not None
        else:
            assert result.findings


# --- strategies: schema-valid documents -------------------------------------------------------

ids = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True)
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
any_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
# A header value: no control characters (soap_action).
header_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
sha256 = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)

scalars = st.one_of(
    any_text,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(identifiers, inner, max_size=3),
    max_leaves=6,
)

secret_refs = st.one_of(
    st.builds(lambda n: {"env": n}, st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)),
    st.builds(lambda n: {"file": "/" + n}, st.from_regex(r"[a-z0-9/._-]{0,12}", fullmatch=True)),
    st.builds(lambda n: {"credential": n}, st.from_regex(r"[A-Za-z0-9_.@-]{1,12}", fullmatch=True)),
)
endpoints = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}{path}",
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z0-9.-]{1,12}(:[0-9]{2,5})?", fullmatch=True),
    st.sampled_from(
        ["", "/", "/webservice/rest/server.php", "/api/{function}", "/xmlrpc?x=1", "/soap#a"]
    ),
)
timeouts = st.one_of(
    st.integers(min_value=1, max_value=3600),
    st.floats(min_value=0.001, max_value=3600, allow_nan=False),
)


def optional(draw: st.DrawFn, data: Doc, key: str, strategy: st.SearchStrategy[Any]) -> None:
    if draw(st.booleans()):
        data[key] = draw(strategy)


@st.composite
def connections(draw: st.DrawFn, class_required: bool = False) -> Doc:
    kind = draw(st.sampled_from(["REST", "XML-RPC", "SOAP"]))
    auth = draw(st.sampled_from(AUTH_FOR_TYPE[kind]))
    conn: Doc = {"id": draw(ids)}
    if class_required or draw(st.booleans()):
        conn["class"] = draw(ids)
    if kind != "REST" or draw(st.booleans()):
        conn["type"] = kind
    optional(draw, conn, "payload", st.sampled_from(PAYLOAD_FOR_TYPE[kind]))
    conn["auth"] = auth
    conn["endpoint"] = draw(endpoints)
    conn["credentials"] = {k: draw(secret_refs) for k in CREDENTIAL_KEYS[auth]}
    for key, strategy in (
        ("enabled", st.booleans()),
        ("priority", st.integers(min_value=1, max_value=2**63 - 1)),
        ("name", names),
        ("version", any_text),
        ("fatal", st.booleans()),
        ("timeout", timeouts),
        ("ca_bundle", names),
        ("config", st.dictionaries(identifiers, values, max_size=3)),
    ):
        optional(draw, conn, key, strategy)
    if draw(st.booleans()):
        conn["global"] = True
        if draw(st.booleans()):
            conn["institutions"] = []
    else:
        optional(draw, conn, "global", st.just(False))
        optional(draw, conn, "institutions", st.lists(ids, max_size=4, unique=True))
    if draw(st.booleans()):
        conn["parameters"] = draw(st.dictionaries(identifiers, values, min_size=1, max_size=3))
        conn["http_method"] = draw(st.sampled_from(["GET", "POST"]))
    else:
        optional(draw, conn, "http_method", st.sampled_from(["GET", "POST"]))
        optional(draw, conn, "parameters", st.just({}))
    if auth == "token":
        placement = draw(st.sampled_from(["", "token_param", "token_header"]))
        if placement == "token_param":
            conn["token_param"] = draw(names)
        elif placement == "token_header":
            conn["token_header"] = draw(st.from_regex(r"[A-Za-z0-9-]{1,16}", fullmatch=True))
    if auth == "wsse":
        optional(draw, conn, "wsse_password_type", st.sampled_from(["digest", "text"]))
    if kind == "SOAP":
        optional(draw, conn, "soap_namespace", names)
        optional(draw, conn, "soap_action", header_text)
    return conn


@st.composite
def fixed_tables(draw: st.DrawFn) -> Doc:
    fixed: Doc = {}
    for key, strategy in (
        ("type", st.sampled_from(["REST", "XML-RPC", "SOAP"])),
        ("payload", st.sampled_from(["url", "json", "xml", "soap"])),
        ("auth", st.sampled_from(["token", "userpass", "oauth1", "wsse", "cert"])),
        ("http_method", st.sampled_from(["GET", "POST"])),
        ("version", any_text),
        ("fatal", st.booleans()),
        ("global", st.booleans()),
        ("timeout", timeouts),
        ("token_param", names),
        ("token_header", st.from_regex(r"[A-Za-z0-9-]{1,16}", fullmatch=True)),
        ("wsse_password_type", st.sampled_from(["digest", "text"])),
        ("soap_namespace", names),
        ("soap_action", header_text),
    ):
        optional(draw, fixed, key, strategy)
    return fixed


@st.composite
def classes(draw: st.DrawFn) -> Doc:
    plugin = draw(ids)
    klass: Doc = {"id": plugin + "_" + draw(ids), "plugin": plugin, "name": draw(names)}
    optional(draw, klass, "fixed", fixed_tables())
    optional(
        draw,
        klass,
        "probe",
        st.builds(
            lambda f, p: {"function": f} if p is None else {"function": f, "params": p},
            names,
            st.none()
            | st.dictionaries(identifiers, values, max_size=2)
            | st.lists(values, max_size=2),
        ),
    )
    field = st.fixed_dictionaries(
        {
            "type": st.sampled_from(["string", "integer", "number", "boolean", "array"]),
            "help": any_text,
        },
        optional={"required": st.booleans()},
    )
    optional(draw, klass, "config_fields", st.dictionaries(identifiers, field, max_size=3))
    optional(draw, klass, "function_param", names)
    return klass


@st.composite
def connection_files(draw: st.DrawFn) -> Doc:
    doc: Doc = {"version": 1}
    with_class = draw(st.booleans())
    if with_class:
        doc["class"] = draw(classes())
    items = draw(st.lists(connections(class_required=not with_class), max_size=3))
    if items or draw(st.booleans()):
        doc["connection"] = items
    return doc


def _unique(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(strategy, max_size=3, unique=True)


hosts = st.from_regex(r"(\*\.)?[a-z0-9.-]{1,12}|\[[0-9a-f:]{2,12}\]", fullmatch=True)
scopes = st.fixed_dictionaries(
    {},
    optional={
        "env_prefixes": _unique(identifiers),
        "credential_prefixes": _unique(st.from_regex(r"[A-Za-z0-9_.@-]{1,12}", fullmatch=True)),
        "file_dirs": _unique(st.from_regex(r"/[a-z0-9/._-]{0,12}", fullmatch=True)),
    },
)


@st.composite
def site_files(draw: st.DrawFn) -> Doc:
    doc: Doc = {"version": 1}
    optional(
        draw, doc, "connections", st.fixed_dictionaries({}, optional={"enabled": st.booleans()})
    )
    optional(
        draw,
        doc,
        "institution",
        st.lists(
            st.fixed_dictionaries(
                {"id": ids, "name": names},
                optional={"secrets": scopes, "endpoint_hosts": _unique(hosts)},
            ),
            max_size=4,
        ),
    )
    return doc


# The type names come from the schema (the contract), not from the model under test.
_METHOD = load_schema(FileKind.SERVICES)["properties"]["service"]["properties"]["method"]
xmlrpc_types = st.sampled_from(_METHOD["items"]["properties"]["signature"]["items"]["enum"])


@st.composite
def methods(draw: st.DrawFn) -> Doc:
    method: Doc = {"name": draw(identifiers)}
    if draw(st.booleans()):
        method["function"] = draw(
            st.from_regex(r"[a-z_][a-z0-9_.]{0,8}:[a-z_][a-z0-9_]{0,8}", fullmatch=True)
        )
    else:
        method["proxy"] = {"class": draw(ids), "function": draw(names)}
    optional(draw, method, "help", any_text)
    optional(draw, method, "signature", st.lists(xmlrpc_types, min_size=1, max_size=4))
    return method


@st.composite
def peers(draw: st.DrawFn) -> Doc:
    auth = draw(st.sampled_from(["token", "userpass", "cert"]))
    peer: Doc = {"id": draw(ids), "auth": auth}
    optional(draw, peer, "name", any_text)
    optional(draw, peer, "institutions", st.lists(ids, max_size=3, unique=True))
    optional(draw, peer, "admin", st.booleans())
    if auth == "token":
        peer["token_sha256"] = draw(sha256)
    elif auth == "cert":
        peer["fingerprint_sha256"] = draw(sha256)
    else:
        peer["username"] = draw(names)
        peer["password_hash"] = "scrypt:16384:8:1:" + draw(
            st.from_regex(r"[A-Za-z0-9+/=]{4,12}:[A-Za-z0-9+/=]{4,12}", fullmatch=True)
        )
    return peer


@st.composite
def service_files(draw: st.DrawFn) -> Doc:
    doc: Doc = {"version": 1}
    if draw(st.booleans()):
        service: Doc = {
            "name": draw(
                st.from_regex(
                    r"[A-Za-z_][A-Za-z0-9_]{0,6}(\.[a-z_][a-z0-9_]{0,4}){0,2}", fullmatch=True
                )
            )
        }
        optional(draw, service, "apiversion", st.integers(min_value=0, max_value=2**63 - 1))
        optional(draw, service, "description", any_text)
        optional(
            draw,
            service,
            "grant",
            st.fixed_dictionaries(
                {},
                optional={
                    "institutions": st.lists(ids, max_size=3, unique=True),
                    "peers": st.lists(ids, max_size=3, unique=True),
                },
            ),
        )
        optional(draw, service, "method", st.lists(methods(), max_size=3))
        doc["service"] = service
    optional(draw, doc, "peer", st.lists(peers(), max_size=3))
    return doc


FILES: dict[FileKind, st.SearchStrategy[Doc]] = {
    FileKind.SITE: site_files(),
    FileKind.CONNECTIONS: connection_files(),
    FileKind.SERVICES: service_files(),
}
kinds_and_docs = st.sampled_from(list(FILES)).flatmap(lambda k: st.tuples(st.just(k), FILES[k]))


# --- mutations --------------------------------------------------------------------------------


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths_of(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths_of(v, (*prefix, i))
    return out


ENUM_POOL = [
    "REST",
    "XML-RPC",
    "SOAP",
    "url",
    "json",
    "xml",
    "soap",
    "token",
    "userpass",
    "oauth1",
    "wsse",
    "cert",
    "GET",
    "POST",
    "get",
    "digest",
    "text",
    "string",
    "integer",
    "array",
    "nil",
    "rest",
]
REPLACEMENTS: list[Any] = [
    "",
    " ",
    "x",
    "abc\n",
    "Upper",
    "literal-secret-value",
    "https://ok.example/",
    "ftp://nope",
    0,
    -1,
    1,
    2.0,
    0.5,
    2**63 - 1,
    -(2**63),
    10**30,
    1e300,
    True,
    False,
    [],
    ["x"],
    ["a", "a"],
    {},
    {"env": "X"},
    {"env": "X", "file": "/y"},
    {"nested": {"deep": [1, {"when": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)}]}},
    dt.datetime(1979, 5, 27, 7, 32),
    dt.date(1979, 5, 27),
    dt.time(7, 32),
]
NEW_KEYS = [
    "typo",
    "enable",
    "class",
    "global",
    "token",
    "password",
    "http_method",
    "type",
    "auth",
    "id",
]


def get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn) -> tuple[FileKind, Doc]:
    kind, doc = draw(kinds_and_docs)
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths_of(doc)))
        target = get(doc, path)
        op = draw(
            st.sampled_from(["delete", "add", "replace", "enum", "empty", "literal", "wrong-auth"])
        )
        if op == "delete" and path:
            parent = get(doc, path[:-1])
            del parent[path[-1]]
        elif op == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(NEW_KEYS))] = copy.deepcopy(
                draw(st.sampled_from(REPLACEMENTS))
            )
        elif op == "enum" and path:
            get(doc, path[:-1])[path[-1]] = draw(st.sampled_from(ENUM_POOL))
        elif op == "empty" and path:
            get(doc, path[:-1])[path[-1]] = copy.deepcopy(draw(st.sampled_from(["", [], {}])))
        elif op == "literal" and path and isinstance(target, dict) and len(target) == 1:
            get(doc, path[:-1])[path[-1]] = "hunter2"  # a secret reference replaced by the secret
        elif op == "wrong-auth" and isinstance(target, dict) and "auth" in target:
            target["auth"] = draw(st.sampled_from(["token", "userpass", "oauth1", "wsse", "cert"]))
        elif path:
            get(doc, path[:-1])[path[-1]] = copy.deepcopy(draw(st.sampled_from(REPLACEMENTS)))
    return kind, doc


# --- the tests --------------------------------------------------------------------------------

REL = {
    FileKind.SITE: "rpcd.toml",
    FileKind.CONNECTIONS: "connections.d/x.toml",
    FileKind.SERVICES: "services.d/x.toml",
}


def example_files() -> list[tuple[FileKind, Path]]:
    out = [(FileKind.SITE, REPO / "rpcd.toml")]
    out += [(FileKind.CONNECTIONS, p) for p in sorted((REPO / "connections.d").rglob("*.toml"))]
    out += [(FileKind.SERVICES, p) for p in sorted((REPO / "services.d").rglob("*.toml"))]
    return out


@pytest.mark.parametrize(
    ("kind", "path"), example_files(), ids=lambda v: getattr(v, "name", str(v))
)
def test_example_files_are_valid_in_both_stages(kind: FileKind, path: Path) -> None:
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    assert verdicts(kind, document) == (True, True)


CONN = {
    "id": "c",
    "auth": "token",
    "endpoint": "https://h.example/",
    "credentials": {"token": {"env": "T"}},
}
KLASS = {"id": "p_c", "plugin": "p", "name": "C"}


def conn_file(**changes: Any) -> Doc:
    """A fresh document (deep-copied: a test that mutates it leaves the others alone)."""
    conn = copy.deepcopy({**CONN, **changes})
    return {
        "version": 1,
        "class": copy.deepcopy(KLASS),
        "connection": [{k: v for k, v in conn.items() if v is not None}],
    }


FIXTURES: list[tuple[str, FileKind, Doc, bool]] = [
    ("minimal connection", FileKind.CONNECTIONS, conn_file(), True),
    ("integral float priority (JSON integer)", FileKind.CONNECTIONS, conn_file(priority=2.0), True),
    ("fractional priority", FileKind.CONNECTIONS, conn_file(priority=1.5), False),
    ("bool priority", FileKind.CONNECTIONS, conn_file(priority=True), False),
    ("zero priority", FileKind.CONNECTIONS, conn_file(priority=0), False),
    ("huge priority", FileKind.CONNECTIONS, conn_file(priority=10**40), True),
    ("huge timeout", FileKind.CONNECTIONS, conn_file(timeout=10**400), False),
    ("int timeout", FileKind.CONNECTIONS, conn_file(timeout=5), True),
    ("zero timeout", FileKind.CONNECTIONS, conn_file(timeout=0), False),
    ("bool timeout", FileKind.CONNECTIONS, conn_file(timeout=False), False),
    ("id with trailing newline", FileKind.CONNECTIONS, conn_file(id="abc\n"), False),
    (
        "endpoint with trailing newline",
        FileKind.CONNECTIONS,
        conn_file(endpoint="https://h\n"),
        False,
    ),
    ("endpoint not http", FileKind.CONNECTIONS, conn_file(endpoint="ftp://h/"), False),
    ("literal token", FileKind.CONNECTIONS, conn_file(credentials={"token": "hunter2"}), False),
    (
        "two secret sources",
        FileKind.CONNECTIONS,
        conn_file(credentials={"token": {"env": "A", "file": "/b"}}),
        False,
    ),
    ("empty credentials", FileKind.CONNECTIONS, conn_file(credentials={}), False),
    (
        "userpass creds with token auth",
        FileKind.CONNECTIONS,
        conn_file(credentials={"username": {"env": "U"}, "password": {"env": "P"}}),
        False,
    ),
    (
        "cert on REST",
        FileKind.CONNECTIONS,
        conn_file(
            auth="cert", credentials={"certificate": {"file": "/c"}, "private_key": {"file": "/k"}}
        ),
        False,
    ),
    (
        "cert on XML-RPC",
        FileKind.CONNECTIONS,
        conn_file(
            type="XML-RPC",
            auth="cert",
            credentials={"certificate": {"file": "/c"}, "private_key": {"file": "/k"}},
        ),
        True,
    ),
    ("soap payload on REST", FileKind.CONNECTIONS, conn_file(payload="soap"), False),
    (
        "json payload on XML-RPC",
        FileKind.CONNECTIONS,
        conn_file(type="XML-RPC", payload="json"),
        False,
    ),
    ("parameters without method", FileKind.CONNECTIONS, conn_file(parameters={"a": 1}), False),
    (
        "parameters with method",
        FileKind.CONNECTIONS,
        conn_file(parameters={"a": 1}, http_method="POST"),
        True,
    ),
    ("empty parameters without method", FileKind.CONNECTIONS, conn_file(parameters={}), True),
    (
        "datetime parameter",
        FileKind.CONNECTIONS,
        conn_file(parameters={"a": dt.datetime(2024, 1, 1)}, http_method="GET"),
        False,
    ),
    (
        "nested datetime in config",
        FileKind.CONNECTIONS,
        conn_file(config={"a": [{"b": dt.date(2024, 1, 1)}]}),
        False,
    ),
    (
        "global with institutions",
        FileKind.CONNECTIONS,
        conn_file(**{"global": True, "institutions": ["a"]}),
        False,
    ),
    (
        "global with empty institutions",
        FileKind.CONNECTIONS,
        conn_file(**{"global": True, "institutions": []}),
        True,
    ),
    ("duplicate institutions", FileKind.CONNECTIONS, conn_file(institutions=["a", "a"]), False),
    (
        "token_param and token_header",
        FileKind.CONNECTIONS,
        conn_file(token_param="t", token_header="X-T"),
        False,
    ),
    ("soap options on REST", FileKind.CONNECTIONS, conn_file(soap_action="x"), False),
    ("wsse type on token auth", FileKind.CONNECTIONS, conn_file(wsse_password_type="text"), False),
    ("lower-case type", FileKind.CONNECTIONS, conn_file(type="rest"), False),
    ("unknown key", FileKind.CONNECTIONS, conn_file(enable=True), False),
    ("no class anywhere", FileKind.CONNECTIONS, {"version": 1, "connection": [dict(CONN)]}, False),
    (
        "class named, no [class]",
        FileKind.CONNECTIONS,
        {"version": 1, "connection": [{**CONN, "class": "p_c"}]},
        True,
    ),
    ("version true", FileKind.CONNECTIONS, {"version": True}, False),
    ("version 2", FileKind.CONNECTIONS, {"version": 2}, False),
    ("version float", FileKind.CONNECTIONS, {"version": 1.0}, True),
    (
        "config field name with newline",
        FileKind.CONNECTIONS,
        {
            "version": 1,
            "class": {**KLASS, "config_fields": {"a\n": {"type": "string", "help": ""}}},
        },
        False,
    ),
    (
        "site empty institution name",
        FileKind.SITE,
        {"version": 1, "institution": [{"id": "a", "name": ""}]},
        False,
    ),
    ("site switch as int", FileKind.SITE, {"version": 1, "connections": {"enabled": 1}}, False),
    (
        "institution secret scope",
        FileKind.SITE,
        {
            "version": 1,
            "institution": [
                {
                    "id": "a",
                    "name": "A",
                    "secrets": {
                        "env_prefixes": ["A_", "LEGACY_A_"],
                        "credential_prefixes": [],
                        "file_dirs": ["/etc/rpcd/secrets/a/"],
                    },
                }
            ],
        },
        True,
    ),
    *[
        (
            f"institution secret scope: {name}",
            FileKind.SITE,
            {"version": 1, "institution": [{"id": "a", "name": "A", "secrets": secrets}]},
            False,
        )
        for name, secrets in [
            ("env prefix with a dash", {"env_prefixes": ["A-"]}),
            ("env prefix twice", {"env_prefixes": ["A_", "A_"]}),
            ("relative folder", {"file_dirs": ["secrets/a"]}),
            ("NUL in a folder", {"file_dirs": ["/etc/\x00"]}),
            ("newline after a credential prefix", {"credential_prefixes": ["a-\n"]}),
            ("a string, not a list", {"env_prefixes": "A_"}),
            ("unknown key", {"env": ["A_"]}),
        ]
    ],
    (
        "institution endpoint hosts",
        FileKind.SITE,
        {
            "version": 1,
            "institution": [
                {"id": "a", "name": "A", "endpoint_hosts": ["*.a.example", "h.b", "[::1]"]}
            ],
        },
        True,
    ),
    *[
        (
            f"institution endpoint hosts: {name}",
            FileKind.SITE,
            {"version": 1, "institution": [{"id": "a", "name": "A", "endpoint_hosts": hosts}]},
            False,
        )
        for name, hosts in [
            ("a URL, not a host", ["https://a.example"]),
            ("a wildcard inside", ["a.*.example"]),
            ("twice", ["a.example", "a.example"]),
            ("newline after", ["a.example\n"]),
            ("a string, not a list", "a.example"),
        ]
    ],
    *[
        (
            f"control character: {name}",
            FileKind.CONNECTIONS,
            conn_file(**fields),
            False,
        )
        for name, fields in [
            ("NUL in the endpoint's host", {"endpoint": "https://h\x00.example/"}),
            ("DEL in the endpoint's path", {"endpoint": "https://h.example/a\x7fb"}),
            ("CR LF in the endpoint", {"endpoint": "https://h.example/\r\nX: 1"}),
            ("tab in the endpoint", {"endpoint": "https://h.example/\tx"}),
            ("NUL in a secret file", {"credentials": {"token": {"file": "/etc/\x00x"}}}),
            ("newline after a secret file", {"credentials": {"token": {"file": "/etc/x\n"}}}),
        ]
    ],
    (
        "SOAP action with a line break",
        FileKind.CONNECTIONS,
        conn_file(type="SOAP", soap_action="urn:a\r\nX-Evil: 1"),
        False,
    ),
    (
        "SOAP action plain",
        FileKind.CONNECTIONS,
        conn_file(type="SOAP", soap_action="urn:a/{function}"),
        True,
    ),
    (
        "peer with plaintext token",
        FileKind.SERVICES,
        {
            "version": 1,
            "peer": [{"id": "p", "auth": "token", "token_sha256": "0" * 64, "token": "x"}],
        },
        False,
    ),
    (
        "peer with two credentials",
        FileKind.SERVICES,
        {
            "version": 1,
            "peer": [{"id": "p", "auth": "token", "token_sha256": "0" * 64, "username": "u"}],
        },
        False,
    ),
    (
        "peer hash upper-case",
        FileKind.SERVICES,
        {"version": 1, "peer": [{"id": "p", "auth": "cert", "fingerprint_sha256": "A" * 64}]},
        False,
    ),
    (
        "method with both targets",
        FileKind.SERVICES,
        {
            "version": 1,
            "service": {
                "name": "s",
                "method": [
                    {"name": "m", "function": "a:b", "proxy": {"class": "c", "function": "f"}}
                ],
            },
        },
        False,
    ),
    (
        "method with neither target",
        FileKind.SERVICES,
        {"version": 1, "service": {"name": "s", "method": [{"name": "m"}]}},
        False,
    ),
    (
        "empty signature",
        FileKind.SERVICES,
        {
            "version": 1,
            "service": {"name": "s", "method": [{"name": "m", "function": "a:b", "signature": []}]},
        },
        False,
    ),
    (
        "float apiversion",
        FileKind.SERVICES,
        {"version": 1, "service": {"name": "s", "apiversion": 3.0}},
        True,
    ),
    (
        "duplicate grant peers",
        FileKind.SERVICES,
        {"version": 1, "service": {"name": "s", "grant": {"peers": ["a", "a"]}}},
        False,
    ),
]


@pytest.mark.parametrize(
    ("kind", "document", "valid"), [f[1:] for f in FIXTURES], ids=[f[0] for f in FIXTURES]
)
def test_fixtures(kind: FileKind, document: Doc, valid: bool) -> None:
    assert verdicts(kind, document) == (valid, valid)


@pytest.mark.parametrize(
    ("kind", "document"), [f[1:3] for f in FIXTURES], ids=[f[0] for f in FIXTURES]
)
def test_fixtures_never_raise(kind: FileKind, document: Doc) -> None:
    check_never_raises(kind, document, REL[kind])


@pytest.mark.slow
@SETTINGS
@given(kinds_and_docs)
def test_generated_documents_are_valid_in_both_stages(case: tuple[FileKind, Doc]) -> None:
    kind, document = case
    assert verdicts(kind, document) == (True, True), document


@pytest.mark.slow
@SETTINGS
@given(mutated())
def test_mutations_agree_and_never_raise(case: tuple[FileKind, Doc]) -> None:
    kind, document = case
    event(f"{kind.value} {'valid' if assert_agree(kind, document) else 'invalid'}")
    check_never_raises(kind, document, REL[kind])


_TREE: list[Path] = []


def example_tree() -> Path:
    """One private copy of the example tree for the whole module (the build test edits one file)."""
    if not _TREE:
        _TREE.append(copy_example(Path(tempfile.mkdtemp(prefix="rpcd-agreement-")) / "tree"))
    return _TREE[0]


TARGET: dict[FileKind, str] = {
    FileKind.SITE: "rpcd.toml",
    FileKind.CONNECTIONS: "connections.d/moodle_users.toml",
    FileKind.SERVICES: "services.d/hello.toml",
}


@pytest.mark.slow
@settings(SETTINGS, max_examples=60)
@given(mutated())
def test_build_never_raises_on_a_mutated_tree(case: tuple[FileKind, Doc]) -> None:
    kind, document = case
    root = example_tree()
    target = root / TARGET[kind]
    original = target.read_bytes()
    try:
        target.write_text(tomli_w.dumps(document), encoding="utf-8")
        result = build(root)
        assert "model" not in result.report.rules()
        assert (result.catalog is None) == (not result.report.valid)
    finally:
        target.write_bytes(original)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["connection"][0].pop("credentials"),
        lambda d: d["connection"][0].update(auth="oauth1"),
        lambda d: d["connection"][0]["credentials"].update(token="plain"),
    ],
)
def test_mutation_of_a_valid_document_is_invalid_in_both(mutate: Callable[[Doc], object]) -> None:
    """The mutation operators do break documents (the property above is not vacuous)."""
    document = conn_file()
    mutate(document)
    assert verdicts(FileKind.CONNECTIONS, document) == (False, False)
