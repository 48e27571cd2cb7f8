"""Typed, frozen models of the config files (pydantic v2).

They decide whether a file is valid (``schema.check``; jsonschema only explains a refusal),
so they accept exactly what ``schemas/v1/*.schema.json`` accepts — same keys, types and bounds
(``tests/test_schema_model_agreement.py`` and ``tests/test_schema_differential.py`` hold them
to it). The per-type rules are not written here: the models run the schema's own tagged
conditionals (``conditionals.rules_of``), so such a rule is changed in the schema alone.
Cross-file rules live in ``rules.py``; these models only know one document.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

from rpcd.config.conditionals import RuleSet, rules_of
from rpcd.config.contract import rule_table
from rpcd.config.sources import FileKind

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*(?!\n)$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(?!\n)$"
CREDENTIAL_PATTERN = r"^[A-Za-z0-9_.@-]+(?!\n)$"
# An absolute path without control characters (a NUL would make open() raise, not fail).
FILE_PATTERN = r"^/[^\x00-\x1f\x7f]*(?!\n)$"
# An http(s) URL without whitespace or control characters (C0, DEL) anywhere: they have no
# place in a request line. The host run stops at the first / ? or #, so no text can be split
# two ways between the two runs (matching stays linear in the length).
ENDPOINT_PATTERN = r"^https?://[^\s\x00-\x1f\x7f/?#]+(?:[/?#][^\s\x00-\x1f\x7f]*)?(?!\n)$"
# An endpoint host an institution's folder may call: a name (``*.`` for any name under a
# domain) or a bracketed IPv6 address. The two forms start differently: no ambiguity.
HOST_PATTERN = r"^(?:(?:\*\.)?[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?!\n)$"
# An outbound proxy: plain http, a host and port, no path and no ``user:password@`` (its
# credentials are secret references). The host run stops at the first / ? # or @.
PROXY_URL_PATTERN = r"^http://[^\s\x00-\x1f\x7f/?#@]+/?(?!\n)$"
MAX_ENDPOINTS = 8  # standby endpoints of one connection (the schema's maxItems)
MAX_NO_PROXY = 256  # no_proxy host patterns (the schema's maxItems)
# A header value: no control characters (CR/LF would start a new header).
HEADER_VALUE_PATTERN = r"^[^\x00-\x1f\x7f]*(?!\n)$"

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


def _list_to_tuple(value: Any) -> Any:
    """TOML arrays arrive as lists; the frozen models keep tuples (strict mode: exact types)."""
    return tuple(value) if isinstance(value, list) else value


Frozen = BeforeValidator(_list_to_tuple)


def _json_integer(value: Any) -> Any:
    """JSON Schema's ``integer`` is any number with no fractional part, so ``2.0`` is one.

    TOML writes ``priority = 2.0`` as a float; the schema accepts it, so the model does too (and
    keeps an ``int``). ``true`` stays a boolean, which neither accepts as a number.
    """
    if type(value) is float and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
# The schemas' ``version`` is ``{"type": "integer", "const": 1}``: 1 or 1.0, never ``true``.
FormatVersion = Annotated[JsonInt, Field(ge=1, le=1)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]
Value = TypeAliasType("Value", "str | int | float | bool | list[Value] | dict[str, Value]")


class Model(BaseModel):
    """Frozen, strict (TOML types are exact), unknown keys refused."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        populate_by_name=True,
        regex_engine="python-re",  # the engine jsonschema uses: both agree on every pattern
    )


def _fail(rule: str, message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(rule, message, ctx)


def _schema_rules(rules: RuleSet, data: Any) -> Any:
    """Refuse a raw table that breaks one of the schema's tagged conditionals (``rules_of``)."""
    broken = rules.first_broken(data)
    if broken is not None:
        raise _fail(broken, "breaks the schema's {name} conditional", name=broken)
    return data


# The per-type rules, read from the schema's tagged conditionals (``conditionals.rules_of``).
CONNECTIONS_FILE_RULES = rules_of(FileKind.CONNECTIONS)
CONNECTION_RULES = rules_of(FileKind.CONNECTIONS, "definitions", "connection")
METHOD_RULES = rules_of(FileKind.SERVICES, "properties", "service", "properties", "method", "items")
PEER_RULES = rules_of(FileKind.SERVICES, "properties", "peer", "items")
PROXY_RULES = rules_of(FileKind.CONNECTIONS, "definitions", "proxy")
SITE_PROXY_RULES = rules_of(FileKind.SITE, "properties", "proxy")


def _unique(items: tuple[str, ...], what: str) -> tuple[str, ...]:
    if len(set(items)) != len(items):
        raise _fail("invalid-value", "{what} lists an entry twice", what=what)
    return items


# --- secrets ----------------------------------------------------------------------------------


class SecretRef(Model):
    """Where a secret lives, never the secret: exactly one of env, file, credential."""

    env: Annotated[str, StringConstraints(pattern=ENV_PATTERN)] | None = None
    file: Annotated[str, StringConstraints(pattern=FILE_PATTERN)] | None = None
    credential: Annotated[str, StringConstraints(pattern=CREDENTIAL_PATTERN)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if len(self.model_fields_set) != 1:
            raise _fail(
                "plaintext-secret", "a secret reference has exactly one of env, file, credential"
            )
        return self

    @property
    def kind(self) -> str:
        return next(iter(self.model_fields_set))

    @property
    def target(self) -> str:
        value = getattr(self, self.kind)
        assert isinstance(value, str)
        return value

    def __str__(self) -> str:
        """``env:NAME``, ``file:/path``, ``credential:name`` — how diffs and logs show it."""
        return f"{self.kind}:{self.target}"


# The per-auth and per-type tables are the schema's own (``contract.rule_table``).
CREDENTIAL_KEYS = rule_table(FileKind.CONNECTIONS, "credential-mismatch", "auth")


class Credentials(Model):
    """One credential group; which keys are present must match the connection's ``auth``."""

    token: SecretRef | None = None
    username: SecretRef | None = None
    password: SecretRef | None = None
    consumer_key: SecretRef | None = None
    consumer_secret: SecretRef | None = None
    certificate: SecretRef | None = None
    private_key: SecretRef | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Credentials:
        if not self.model_fields_set:
            raise _fail("credential-mismatch", "credentials is empty")
        return self

    def refs(self) -> dict[str, SecretRef]:
        return {k: getattr(self, k) for k in sorted(self.model_fields_set)}


# --- outbound proxies -------------------------------------------------------------------------


class ProxyServer(Model):
    """An outbound HTTP proxy: its URL and, optionally, Basic credentials by reference."""

    url: Annotated[str, StringConstraints(pattern=PROXY_URL_PATTERN)]
    username: SecretRef | None = None
    password: SecretRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _both_or_neither(cls, data: Any) -> Any:
        return _schema_rules(PROXY_RULES, data)

    def refs(self) -> dict[str, SecretRef]:
        """The credential references, by key (none without proxy authentication)."""
        found = {"username": self.username, "password": self.password}
        return {k: v for k, v in found.items() if v is not None}


class SiteProxy(ProxyServer):
    """The site-wide proxy of rpcd.toml, with the hosts that are called directly."""

    no_proxy: (
        Annotated[
            tuple[Annotated[str, StringConstraints(pattern=HOST_PATTERN)], ...],
            Frozen,
            Field(max_length=MAX_NO_PROXY),
        ]
        | None
    ) = None

    @model_validator(mode="before")
    @classmethod
    def _both_or_neither(cls, data: Any) -> Any:
        return _schema_rules(SITE_PROXY_RULES, data)

    @model_validator(mode="after")
    def _unique_hosts(self) -> SiteProxy:
        if self.no_proxy is not None:
            _unique(self.no_proxy, "no_proxy")
        return self


# --- connections.d ----------------------------------------------------------------------------

ConnType = Literal["REST", "XML-RPC", "SOAP"]
Payload = Literal["url", "json", "xml", "soap"]


def _known_auth(value: str) -> str:
    if value not in CREDENTIAL_KEYS:
        raise ValueError(f"auth must be one of {', '.join(sorted(CREDENTIAL_KEYS))}")
    return value


#: An outbound auth type: one the schema declares (its credential table's keys), so a new type
#: is added in the schema and in rpcd/connections/auth.py, not written again here.
Auth = Annotated[str, AfterValidator(_known_auth)]
HttpMethod = Literal["GET", "POST"]
Timeout = Annotated[float, Field(gt=0, le=3600)]

DEFAULT_PAYLOAD = {"REST": "url", "XML-RPC": "xml", "SOAP": "soap"}


class ConnectionEntry(Model):
    """One connection instance as written in a file (defaults applied by the catalog)."""

    id: Id
    class_: Id | None = Field(default=None, alias="class")
    enabled: bool = False
    priority: Annotated[JsonInt, Field(ge=1)] = 1
    name: NonEmpty | None = None
    version: str | None = None
    global_: bool = Field(default=False, alias="global")
    institutions: Annotated[tuple[Id, ...], Frozen] = ()
    fatal: bool = False
    type: ConnType = "REST"
    payload: Payload | None = None
    auth: Auth
    endpoint: Annotated[str, StringConstraints(pattern=ENDPOINT_PATTERN)] | None = None
    endpoints: (
        Annotated[
            tuple[Annotated[str, StringConstraints(pattern=ENDPOINT_PATTERN)], ...],
            Frozen,
            Field(min_length=1, max_length=MAX_ENDPOINTS),
        ]
        | None
    ) = None
    credentials: Credentials
    parameters: dict[str, Value] = {}
    http_method: HttpMethod | None = None
    timeout: Timeout = 30.0
    token_param: NonEmpty | None = None
    token_header: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]+(?!\n)$")] | None = None
    ca_bundle: NonEmpty | None = None
    proxy: Literal[False] | ProxyServer | None = None
    wsse_password_type: Literal["digest", "text"] | None = None
    oauth_placement: Literal["header", "query", "body"] | None = None
    soap_namespace: NonEmpty | None = None
    soap_action: Annotated[str, StringConstraints(pattern=HEADER_VALUE_PATTERN)] | None = None
    soap_qualified: bool | None = None
    config: dict[str, Value] = {}

    @model_validator(mode="before")
    @classmethod
    def _per_type(cls, data: Any) -> Any:
        return _schema_rules(CONNECTION_RULES, data)

    @model_validator(mode="after")
    def _unique_institutions(self) -> ConnectionEntry:
        _unique(self.institutions, "institutions")
        if self.endpoints is not None:
            _unique(self.endpoints, "endpoints")
        return self

    @property
    def effective_payload(self) -> str:
        return self.payload or DEFAULT_PAYLOAD[self.type]

    @property
    def urls(self) -> tuple[str, ...]:
        """Every endpoint in the order tried: ``endpoints``, or the one ``endpoint``."""
        if self.endpoints is not None:
            return self.endpoints
        return (self.endpoint,) if self.endpoint is not None else ()


class Fixed(Model):
    """Attributes a class fixes for all its instances (the plugin's hints)."""

    type: ConnType | None = None
    payload: Payload | None = None
    auth: Auth | None = None
    http_method: HttpMethod | None = None
    version: str | None = None
    fatal: bool | None = None
    global_: bool | None = Field(default=None, alias="global")
    timeout: Timeout | None = None
    token_param: NonEmpty | None = None
    token_header: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]+(?!\n)$")] | None = None
    wsse_password_type: Literal["digest", "text"] | None = None
    soap_namespace: NonEmpty | None = None
    soap_action: Annotated[str, StringConstraints(pattern=HEADER_VALUE_PATTERN)] | None = None
    soap_qualified: bool | None = None


class Probe(Model):
    function: NonEmpty
    params: dict[str, Value] | list[Value] = {}


class ConfigField(Model):
    type: Literal["string", "integer", "number", "boolean", "array"]
    required: bool = False
    help: str


ConfigFieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(?!\n)$")]


class ConnectionClass(Model):
    id: Id
    plugin: Id
    name: NonEmpty
    fixed: Fixed = Fixed()
    probe: Probe | None = None
    config_fields: dict[ConfigFieldName, ConfigField] = {}
    function_param: NonEmpty | None = None


class ConnectionsFile(Model):
    version: FormatVersion
    class_: ConnectionClass | None = Field(default=None, alias="class")
    connection: Annotated[tuple[ConnectionEntry, ...], Frozen] = ()

    @model_validator(mode="before")
    @classmethod
    def _class_named(cls, data: Any) -> Any:
        return _schema_rules(CONNECTIONS_FILE_RULES, data)


# --- rpcd.toml --------------------------------------------------------------------------------


class InstitutionSecrets(Model):
    """Where the secrets of an institution's folder may live (rules.py, scopes.py); a key
    left out keeps its default, derived from the institution's id."""

    env_prefixes: (
        Annotated[tuple[Annotated[str, StringConstraints(pattern=ENV_PATTERN)], ...], Frozen] | None
    ) = None
    credential_prefixes: (
        Annotated[tuple[Annotated[str, StringConstraints(pattern=CREDENTIAL_PATTERN)], ...], Frozen]
        | None
    ) = None
    file_dirs: (
        Annotated[tuple[Annotated[str, StringConstraints(pattern=FILE_PATTERN)], ...], Frozen]
        | None
    ) = None

    @model_validator(mode="after")
    def _unique_lists(self) -> InstitutionSecrets:
        for name in ("env_prefixes", "credential_prefixes", "file_dirs"):
            items = getattr(self, name)
            if items is not None:
                _unique(items, f"secrets.{name}")
        return self


class Institution(Model):
    id: Id
    name: NonEmpty
    secrets: InstitutionSecrets | None = None
    endpoint_hosts: (
        Annotated[tuple[Annotated[str, StringConstraints(pattern=HOST_PATTERN)], ...], Frozen]
        | None
    ) = None

    @model_validator(mode="after")
    def _unique_hosts(self) -> Institution:
        if self.endpoint_hosts is not None:
            _unique(self.endpoint_hosts, "endpoint_hosts")
        return self


class ConnectionsSwitch(Model):
    enabled: bool = True


class SiteFile(Model):
    version: FormatVersion
    connections: ConnectionsSwitch = ConnectionsSwitch()
    institution: Annotated[tuple[Institution, ...], Frozen] = ()
    proxy: SiteProxy | None = None


# --- services.d -------------------------------------------------------------------------------

XmlRpcType = Literal[
    "int",
    "i4",
    "i8",
    "boolean",
    "string",
    "double",
    "dateTime.iso8601",
    "base64",
    "struct",
    "array",
    "nil",
]


ParamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(?!\n)$")]


class Proxy(Model):
    class_: Id = Field(alias="class")
    function: NonEmpty


class Method(Model):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(?!\n)$")]
    function: (
        Annotated[
            str,
            StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*(?!\n)$"),
        ]
        | None
    ) = None
    proxy: Proxy | None = None
    help: str = ""
    signature: Annotated[tuple[XmlRpcType, ...], Frozen, Field(min_length=1)] | None = None
    #: Names of the params, in order: JSON-RPC by-name calls, proxy named params.
    params: Annotated[tuple[ParamName, ...], Frozen] | None = None
    #: Who may call this method, in place of the service's grant.
    grant: Grant | None = None
    run: Literal["thread", "inline"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_target(cls, data: Any) -> Any:
        return _schema_rules(METHOD_RULES, data)

    @model_validator(mode="after")
    def _unique_params(self) -> Method:
        if self.params is not None:
            _unique(self.params, "params")
        return self


class Grant(Model):
    institutions: Annotated[tuple[Id, ...], Frozen] = ()
    peers: Annotated[tuple[Id, ...], Frozen] = ()
    #: Anyone may call, callers without credentials too (rule anonymous-grant warns).
    anonymous: bool = False

    @model_validator(mode="after")
    def _unique_lists(self) -> Grant:
        _unique(self.institutions, "grant.institutions")
        _unique(self.peers, "grant.peers")
        return self


class Service(Model):
    name: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(?!\n)$")
    ]
    apiversion: Annotated[JsonInt, Field(ge=0)] = 1
    description: str = ""
    grant: Grant | None = None
    method: Annotated[tuple[Method, ...], Frozen] = ()

    def grant_for(self, method: Method | None = None) -> Grant | None:
        """The grant that decides who may call ``method``: its own, else the service's."""
        if method is not None and method.grant is not None:
            return method.grant
        return self.grant


Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}(?!\n)$")]


class Peer(Model):
    id: Id
    name: str | None = None
    institutions: Annotated[tuple[Id, ...], Frozen] = ()
    auth: Literal["token", "userpass", "cert"]
    token_sha256: Sha256Hex | None = None
    username: NonEmpty | None = None
    password_hash: (
        Annotated[
            str,
            StringConstraints(
                pattern=r"^scrypt:[0-9]+:[0-9]+:[0-9]+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+(?!\n)$"
            ),
        ]
        | None
    ) = None
    fingerprint_sha256: Sha256Hex | None = None
    admin: bool = False

    @model_validator(mode="before")
    @classmethod
    def _credential_for_auth(cls, data: Any) -> Any:
        return _schema_rules(PEER_RULES, data)

    @model_validator(mode="after")
    def _unique_institutions(self) -> Peer:
        _unique(self.institutions, "institutions")
        return self


class ServicesFile(Model):
    version: FormatVersion
    service: Service | None = None
    peer: Annotated[tuple[Peer, ...], Frozen] = ()


MODELS: dict[FileKind, type[BaseModel]] = {
    FileKind.SITE: SiteFile,
    FileKind.CONNECTIONS: ConnectionsFile,
    FileKind.SERVICES: ServicesFile,
}
