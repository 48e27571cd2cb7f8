"""Mahara's connection rows → a config tree plan (pure: no I/O, no database).

Mahara keeps one row per connection instance in ``client_connections_institution``: the
plugin's connection definition (plugin + connection name) becomes an rpcd class, each row an
instance of it, every column mapped; ``client_connections_config`` rows become the instance's
``[connection.config]`` (and the class declares them as ``config_fields``). Mahara's own site
institution, ``mahara``, is where its screens put connections for everyone: those become
``global = true``.

Secrets (token, username and password, OAuth consumer key and secret, certificate) never enter
the tree: each becomes a reference in the scope of the connection's institution (a systemd
credential ``<institution>-<class>-<key>`` or an env name ``<INSTITUTION>_<CLASS>_<KEY>``),
and the value travels beside the plan for ``--secrets-out``.

Where a row breaks one of rpcd's rules that Mahara's forms let through (two globals in a class,
a global beside per-institution rows, an institution twice in a class), the row is written
disabled, with a comment that says what rpcd requires; the notice names the row.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rpcd.config.endpoints import is_secret_param, literal_secrets
from rpcd.importers.rows import (
    ConfigRow,
    ConnectionRow,
    RowError,
    parse_config,
    parse_connection,
    parse_institution,
    parse_parameters,
)
from rpcd.importers.source import RawTables

#: Mahara's own site institution: a connection there serves every user (rpcd: global).
SITE_INSTITUTION = "mahara"
TYPES = {"rest": "REST", "soap": "SOAP", "xmlrpc": "XML-RPC"}
AUTHS = {"token": "token", "user": "userpass", "oauth1": "oauth1", "wsse": "wsse", "cert": "cert"}
AUTH_FOR_TYPE = {
    "REST": {"token", "userpass", "oauth1"},
    "SOAP": {"token", "userpass", "wsse"},
    "XML-RPC": {"token", "userpass", "cert"},
}
#: Mahara's REST client always names the function in this parameter.
REST_FUNCTION_PARAM = "wsfunction"
_ENDPOINT = re.compile(r"https?://[^\s\x00-\x1f\x7f/?#]+(?:[/?#][^\s\x00-\x1f\x7f]*)?")
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
_CONFIG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

RefKind = Literal["credential", "env"]


@dataclass(frozen=True, slots=True)
class Secret:
    """One secret reference the tree makes, and the value Mahara held for it."""

    kind: RefKind
    name: str  # the credential or env name the reference names
    value: str | None  # None: Mahara holds no value for it (the checklist says so)
    connection: str  # class/id
    source: str  # where Mahara kept it: "row 4, column token"

    @property
    def reference(self) -> dict[str, str]:
        return {self.kind: self.name}


@dataclass
class PlannedConnection:
    """One ``[[connection]]`` to write: its table, its comments, and the folder it goes in."""

    class_id: str
    data: dict[str, Any]
    comments: list[str]
    institution_folder: str | None  # connections.d/<institution>/, or None for the class file
    row: int
    #: credential key -> (the value Mahara held or None, where it held it); named by _scope
    pending: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    #: Written as a TOML comment: a row no written connection can hold (see _place).
    commented_out: bool = False


@dataclass
class PlannedClass:
    id: str
    data: dict[str, Any]
    comments: list[str]


@dataclass
class ImportPlan:
    """Everything the writer needs; nothing here has been written yet."""

    switch: bool
    institutions: list[tuple[str, str]] = field(default_factory=list)
    classes: dict[str, PlannedClass] = field(default_factory=dict)
    connections: list[PlannedConnection] = field(default_factory=list)
    secrets: list[Secret] = field(default_factory=list)
    #: What a reviewer must know: rows disabled, values dropped, rows left out (by row).
    notices: list[str] = field(default_factory=list)
    #: Rows that could not be imported at all (the tree is written without them).
    skipped: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    """An rpcd id (``[a-z0-9][a-z0-9_-]*``) from a Mahara name."""
    out = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    return out[:64].strip("-_") or "x"


def env_name(*parts: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", "_".join(parts).upper()).strip("_")


def class_id_for(row: ConnectionRow) -> str:
    """``<plugin>_<connection>``, as rule class-id-prefix wants (Mahara's own advice too)."""
    plugin = slug(row.pluginname).replace("-", "_")
    conn = slug(row.connection).replace("-", "_")
    return conn if conn.startswith(plugin + "_") else f"{plugin}_{conn}"


def plan_import(tables: RawTables, *, refs: RefKind = "credential") -> ImportPlan:
    """Map Mahara's tables to a plan for a tree that validates."""
    plan = ImportPlan(switch=(tables.switch or "").strip() == "1")
    if not plan.switch:
        plan.notices.append(
            "Mahara's master switch (webservice_requester_enabled) is off, so rpcd.toml has "
            "[connections] enabled = false: set it to true when the tree is ready"
        )
    known = _institutions(tables.institutions, plan)
    rows = _rows(tables.connections, plan)
    config = _config(tables.config, plan)
    by_class: dict[str, list[ConnectionRow]] = defaultdict(list)
    for row in rows:
        by_class[class_id_for(row)].append(row)
    for class_id in sorted(by_class):
        members = sorted(by_class[class_id], key=lambda r: (r.priority, r.id))
        _plan_class(plan, class_id, members, config, known, refs)
    return plan


def _institutions(raw: Iterable[Mapping[str, object]], plan: ImportPlan) -> dict[str, str]:
    """Mahara institution name → rpcd id, declared in ``plan.institutions``."""
    known: dict[str, str] = {}
    for item in raw:
        try:
            inst = parse_institution(item)
        except RowError as exc:
            plan.skipped.append(f"{exc}: the institution is not imported")
            continue
        if inst.name == SITE_INSTITUTION:
            continue
        _declare(plan, known, inst.name, inst.displayname)
    return known


def _declare(plan: ImportPlan, known: dict[str, str], name: str, display: str) -> str:
    ident = slug(name)
    taken = {i for i, _ in plan.institutions}
    if ident in taken and known.get(name) != ident:
        ident = f"{ident}-{len(taken)}"
    if ident != name:
        plan.notices.append(
            f"institution {name!r} is `{ident}` in rpcd (ids are lower-case letters, digits, "
            "_ and -)"
        )
    known[name] = ident
    plan.institutions.append((ident, display or name))
    return ident


def _rows(raw: Iterable[Mapping[str, object]], plan: ImportPlan) -> list[ConnectionRow]:
    rows = []
    for item in raw:
        try:
            rows.append(parse_connection(item))
        except RowError as exc:
            plan.skipped.append(f"{exc}: the row is not imported")
    return rows


def _config(raw: Iterable[Mapping[str, object]], plan: ImportPlan) -> dict[int, list[ConfigRow]]:
    out: dict[int, list[ConfigRow]] = defaultdict(list)
    for item in raw:
        try:
            row = parse_config(item)
        except RowError as exc:
            plan.skipped.append(f"{exc}: the field is not imported")
            continue
        out[row.connection].append(row)
    return out


def _plan_class(
    plan: ImportPlan,
    class_id: str,
    rows: list[ConnectionRow],
    config: Mapping[int, list[ConfigRow]],
    known: dict[str, str],
    refs: RefKind,
) -> None:
    first = rows[0]
    data: dict[str, Any] = {
        "id": class_id,
        "plugin": slug(first.pluginname).replace("-", "_"),
        "name": f"{first.connection} ({first.plugintype}/{first.pluginname})"[:200],
    }
    comments = [
        f"Mahara connection definition `{first.connection}` of plugin "
        f"{first.plugintype}/{first.pluginname} (class {first.class_})."
    ]
    ids: set[str] = set()
    planned = []
    for row in rows:
        conn = _plan_row(plan, class_id, row, config.get(row.id, []), refs, ids)
        if conn is not None:  # else left out, and named in plan.skipped
            planned.append((row, conn))
    kept = [row for row, _ in planned]
    global_rows = [r for r in kept if r.institution == SITE_INSTITUTION]
    fields: dict[str, dict[str, str]] = {}
    has_rest = False
    served: dict[str, int] = {}
    for row, conn in planned:
        has_rest = has_rest or conn.data.get("type") == "REST"
        for key in conn.data.get("config", {}):
            fields[key] = {"type": "string", "help": "from Mahara's client_connections_config"}
        _place(plan, conn, row, kept, global_rows, served, known, class_id, refs)
        plan.connections.append(conn)
    if has_rest:
        data["function_param"] = REST_FUNCTION_PARAM
        comments.append("Mahara's REST client names the function in wsfunction.")
    if fields:
        data["config_fields"] = fields
    plan.classes[class_id] = PlannedClass(class_id, data, comments)


def _place(
    plan: ImportPlan,
    conn: PlannedConnection,
    row: ConnectionRow,
    rows: list[ConnectionRow],
    global_rows: list[ConnectionRow],
    served: dict[str, int],
    known: dict[str, str],
    class_id: str,
    refs: RefKind,
) -> None:
    """Global or per-institution, and the rule conflicts Mahara lets through."""
    full = f"{class_id}/{conn.data['id']}"
    if row.institution == SITE_INSTITUTION:
        if len(rows) == 1:
            conn.data["global"] = True
            conn.comments.append("Mahara's site institution: every user → global")
            _scope(plan, conn, None, refs)
            return
        why = (
            f"Mahara row {row.id} is a second site-wide (global) connection of class "
            f"`{class_id}` (row {global_rows[0].id} is the first)"
            if row is not global_rows[0]
            else f"Mahara row {row.id} is site-wide (global) but class `{class_id}` has other "
            "connections"
        )
        if row is global_rows[0] and len(global_rows) == len(rows):
            conn.data["global"] = True
            conn.comments.append("Mahara's site institution: every user → global")
            _scope(plan, conn, None, refs)
            return
        conn.data["enabled"] = False
        conn.commented_out = True
        rule = (
            "a global connection must be the only instance of its class, disabled ones "
            "included (rule global-not-alone), so this row is written as a commented-out, "
            "disabled [[connection]]; to use it, give it institutions (or remove the others) "
            "and uncomment it"
        )
        conn.comments.append(f"NOT ACTIVE (import): {why}; {rule}.")
        plan.notices.append(f"{why}: `{full}` is written commented out; {rule}")
        _scope(plan, conn, None, refs)
        return
    inst = known.get(row.institution)
    if inst is None:
        inst = _declare(plan, known, row.institution, row.institution)
        plan.notices.append(
            f"Mahara row {row.id} names institution {row.institution!r}, which is not in the "
            f"institution table: declared in rpcd.toml as `{inst}`"
        )
    if inst in served:
        _disable(
            plan,
            conn,
            full,
            f"Mahara row {row.id} serves institution `{inst}`, which "
            f"row {served[inst]} of class `{class_id}` already serves",
            "an institution appears in at most one instance of a class (rule "
            "institution-overlap): it is disabled and serves no institution; merge the two "
            "or remove one",
        )
        _scope(plan, conn, None, refs)
        return
    served[inst] = row.id
    conn.data["institutions"] = [inst]
    conn.institution_folder = inst
    _scope(plan, conn, inst, refs)


def _disable(plan: ImportPlan, conn: PlannedConnection, full: str, why: str, rule: str) -> None:
    conn.data["enabled"] = False
    conn.data.pop("institutions", None)
    conn.comments.append(f"DISABLED by the import: {why}; {rule}.")
    plan.notices.append(f"{why}: `{full}` written disabled, with a comment; {rule}")


def _scope(plan: ImportPlan, conn: PlannedConnection, inst: str | None, refs: RefKind) -> None:
    """Name the connection's secret references in its institution's scope (rule secret-scope):
    credentials ``<inst>-<class>-<key>`` and env ``<INST>_<CLASS>_<KEY>`` for an institution,
    ``<class>-<id>-<key>`` in a site file; the values go to ``plan.secrets``."""
    base = [inst, conn.class_id] if inst else [conn.class_id, conn.data["id"]]
    full = f"{conn.class_id}/{conn.data['id']}"
    credentials: dict[str, dict[str, str]] = {}
    for key, (value, source) in conn.pending.items():
        dashed = "-".join([*base, key.replace("_", "-")])
        name = env_name(*base, key) if refs == "env" else dashed
        secret = Secret(refs, name, value, full, source)
        plan.secrets.append(secret)
        credentials[key] = secret.reference
    conn.data["credentials"] = credentials


def _plan_row(
    plan: ImportPlan,
    class_id: str,
    row: ConnectionRow,
    config: list[ConfigRow],
    refs: RefKind,
    ids: set[str],
) -> PlannedConnection | None:
    kind = TYPES.get(row.type.strip().lower())
    auth = AUTHS.get(row.authtype.strip().lower())
    left_out = f"Mahara row {row.id} ({row.name!r}) is not imported"
    if kind is None or auth is None:
        plan.skipped.append(
            f"{left_out}: type {row.type!r} / authtype {row.authtype!r} is not one Mahara offers "
            "(rest, soap, xmlrpc / token, user, oauth1, wsse, cert)"
        )
        return None
    if auth not in AUTH_FOR_TYPE[kind]:
        plan.skipped.append(
            f"{left_out}: auth {row.authtype!r} is not valid for type {row.type!r} "
            f"(rpcd allows {', '.join(sorted(AUTH_FOR_TYPE[kind]))}; rule auth-for-type)"
        )
        return None
    url = row.url.strip()
    if _ENDPOINT.fullmatch(url) is None:
        plan.skipped.append(
            f"{left_out}: its url is not an http(s) URL without spaces (rpcd needs one)"
        )
        return None
    if literal_secrets(url):
        plan.skipped.append(
            f"{left_out}: its url carries a credential in the query (rpcd never keeps one in "
            "the tree; rule plaintext-secret): move it to the token and import again"
        )
        return None
    ident = slug(row.name)
    if ident in ids:
        ident = f"{ident}-{row.id}"
    ids.add(ident)
    data: dict[str, Any] = {
        "class": class_id,
        "id": ident,
        "name": row.name,
        "enabled": row.enable,
        "priority": max(1, row.priority),
        "fatal": row.isfatal,
        "type": kind,
        "auth": auth,
        "endpoint": url,
    }
    if row.version.strip():
        data["version"] = row.version.strip()
    if kind == "REST":
        data["payload"] = "json" if row.json else "url"
    comments = [
        f"Mahara row {row.id}: institution {row.institution}, priority {row.priority}"
        + ("" if row.enable else ", disabled in Mahara")
    ]
    full = f"{class_id}/{ident}"
    pending = _credentials(plan, row, auth, data, comments, full)
    try:
        params = parse_parameters(row.parameters, row.id)
    except RowError as exc:
        plan.notices.append(f"{exc}: the parameters of `{full}` are not imported")
        params = {}
    for name in list(params):
        if is_secret_param(name, [data.get("token_param")]) or _CONFIG_KEY.fullmatch(name) is None:
            del params[name]
            plan.notices.append(
                f"Mahara row {row.id}: parameter `{name[:60]}` of `{full}` is not imported: "
                "its name carries a credential or is not a plain key (value hidden); "
                "rpcd keeps credentials only as references"
            )
    if params:
        data["parameters"] = params
        data["http_method"] = "POST"  # Mahara's clients POST; rule parameters-need-method
    fields = {}
    for item in config:
        if _CONFIG_KEY.fullmatch(item.field) is None:
            plan.notices.append(
                f"client_connections_config row {item.id}: field {item.field[:60]!r} of "
                f"`{full}` is not a plain key (letters, digits, _) and is not imported"
            )
            continue
        fields[item.field] = item.value
    if fields:
        data["config"] = fields
    return PlannedConnection(class_id, data, comments, None, row.id, pending)


def _credentials(
    plan: ImportPlan,
    row: ConnectionRow,
    auth: str,
    data: dict[str, Any],
    comments: list[str],
    full: str,
) -> dict[str, tuple[str | None, str]]:
    """The credential keys ``auth`` needs, each with the value Mahara held (named later)."""
    values: dict[str, tuple[str | None, str]] = {}
    if auth == "token":
        token = row.token
        key, sep, rest = token.partition("=")
        if sep and key:
            data["token_param"] = key.strip()
            token = rest
        values["token"] = (token or None, "token")
        if row.useheader and data["type"] == "REST":
            name = row.header.partition(":")[0].strip()
            data.pop("token_param", None)
            data["token_header"] = name if _HEADER_NAME.fullmatch(name) else "Authorization"
            comments.append(
                "Mahara sent a header (useheader); rpcd sends the token in token_header"
                + (" as Bearer <token>" if data["token_header"] == "Authorization" else "")
            )
    elif auth in ("userpass", "wsse"):
        values["username"] = (row.username or None, "username")
        values["password"] = (row.password or None, "password")
    elif auth == "oauth1":
        values["consumer_key"] = (row.consumer or None, "consumer")
        values["consumer_secret"] = (row.secret or None, "secret")
    else:  # cert
        cert, pem_key = _split_pem(row.certificate)
        values["certificate"] = (cert or None, "certificate")
        values["private_key"] = (pem_key, "certificate")
        if pem_key is None:
            plan.notices.append(
                f"Mahara row {row.id}: `{full}` uses a client certificate and Mahara holds no "
                "private key for it: install the key under the reference the checklist names"
            )
        if row.token or row.username:
            plan.notices.append(
                f"Mahara row {row.id}: `{full}` also had a "
                f"{'token' if row.token else 'username'} beside its certificate; rpcd's cert "
                "auth sends the certificate only, so that value is not imported"
            )
    return {
        key: (value, f"row {row.id}, column {column}") for key, (value, column) in values.items()
    }


def _split_pem(text: str) -> tuple[str, str | None]:
    """Certificate blocks and the private key block of a PEM text (one linear pass)."""
    certs: list[str] = []
    key: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("-----BEGIN "):
            current = key if "PRIVATE KEY" in stripped else certs
        if current is not None:
            current.append(stripped)
        if stripped.startswith("-----END "):
            current = None
    cert_text = "\n".join(certs) + "\n" if certs else text
    return cert_text, ("\n".join(key) + "\n" if key else None)
