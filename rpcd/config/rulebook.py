"""Every rule id of ``rpcd validate``, with what it checks, an example and the fix.

The one table of rule ids: docs/rules.md is generated from it (``make docs``, or
``python -m rpcd.config.rulebook``), and the tests hold the code's rule ids, the fixtures of
``tests/test_rules.py`` and the page to it. A rule's check lives where its stage runs
(``sources.py``, ``parse.py``, the schema's ``x-rpcd-rule`` conditionals, ``rules.py``) and its
message beside the check; what a reader needs to know about it lives here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule id as the docs list it."""

    id: str
    checks: str
    example: str
    fix: str


@dataclass(frozen=True, slots=True)
class Section:
    """The rules of one stage of ``validate``."""

    title: str
    rules: tuple[Rule, ...]
    #: Paragraphs between the heading and the table.
    intro: tuple[str, ...] = ()


#: The page's opening paragraphs.
INTRO = (
    (
        "Every finding has a stable rule id, printed as `FILE:LINE:COL: error[RULE-ID] message` "
        "(`--format json` puts it in `rule`, `--format github` in the annotation title). This "
        "page lists every id: what it checks, an example finding (taken from the test fixtures "
        "in `tests/test_rules.py`), and how to fix it. `tests/test_rules.py` fails when a rule "
        "id in the code is missing here."
    ),
    (
        "Files are checked in four stages, and every problem of every file is reported in one "
        "run: files and bytes, TOML syntax, structure (the JSON Schemas in `schemas/v1/`, whose "
        "`x-rpcd-rule` annotations name the rule), then the rules across files. A secret's "
        'value is never printed: the message says "(value hidden)" instead.'
    ),
)

OUTRO = (
    "`model` is not in these tables on purpose: it reports the JSON Schema accepting what "
    "rpcd's typed model refuses, which is a bug in rpcd (please report it with the file); the "
    "tests keep the two stages in agreement."
)

SECTIONS = (
    Section(
        "Files",
        (
            Rule(
                "root-not-found",
                "the config root exists and is a folder (exit code 2)",
                (
                    "`config root /srv/rpcd-nowhere does not exist: pass the folder that holds "
                    "rpcd.toml`"
                ),
                "pass the right folder as ROOT or `--root`",
            ),
            Rule(
                "missing-site-file",
                "the root holds `rpcd.toml`",
                (
                    "`rpcd.toml: rpcd.toml is missing: create it with version = 1 and your "
                    "institutions`"
                ),
                "create `rpcd.toml`",
            ),
            Rule(
                "not-a-file",
                (
                    "every `*.toml` (and `rpcd.toml`) is a regular file; `connections.d` / "
                    "`services.d` are folders. FIFOs, sockets and devices are reported and "
                    "never opened"
                ),
                (
                    "`connections.d/x.toml: is a named pipe (FIFO), not a regular file, so it "
                    "was not read`"
                ),
                "replace it with a regular file, or rename it",
            ),
            Rule(
                "symlink-loop",
                "a symlink does not lead back to itself, and no folder is reached twice",
                "`connections.d/x.toml: is a symlink that leads back to itself (a loop)`",
                "point the link at a real file or remove it",
            ),
            Rule(
                "file-unreadable",
                "the file (or folder) can be read; a symlink is not dangling",
                "`connections.d/x.toml: is a symlink to gone.data, which does not exist`",
                "fix the link or the permissions",
            ),
            Rule(
                "file-too-large",
                "a file is at most 16 MiB (it is not read at all when over)",
                ("`is 52,428,800 bytes, over the limit of 16,777,216 bytes, and was not read`"),
                "split it; is it really a config file?",
            ),
            Rule(
                "file-encoding",
                "the file is UTF-8 text (a BOM is allowed); points at the first bad byte",
                "`connections.d/x.toml:2:6: byte 0xe9 is not UTF-8`",
                "re-save the file as UTF-8",
            ),
        ),
    ),
    Section(
        "Syntax and version",
        (
            Rule(
                "nesting-depth",
                (
                    "no table or array lies more than 32 tables and arrays deep (arrays, inline "
                    "tables, dotted keys and `[table]` headers all count; the document itself "
                    "does not). Checked right after parsing, without recursion, so no later "
                    "stage (schema, models, rules, `rpcd show`, `rpcd diff`, a reload) ever "
                    "walks such a value; rpcd's own files need 8 levels at most"
                ),
                (
                    "``connections.d/x.toml:11:21: `connection[0].parameters.p[0][0]…` lies "
                    "more than 32 tables and arrays deep … flatten the structure``"
                ),
                "flatten the value",
            ),
            Rule(
                "toml-syntax",
                (
                    "the file is valid TOML 1.0 (parsed by `tomli`, the compiled upstream of "
                    "the standard library's `tomllib`), including duplicate keys and tables"
                ),
                (
                    "`connections.d/x.toml:2:1: connection[0].id is set twice (first set on "
                    "line 1): a key may be set only once per table; keep one`"
                ),
                "fix the TOML at the line and column given",
            ),
            Rule(
                "missing-version",
                "the file starts with `version` (an empty file is reported here too)",
                ("`connections.d/x.toml:1:1: the file has no version: start it with version = 1`"),
                "add `version = 1`",
            ),
            Rule(
                "unknown-version",
                "`version` is a format this build reads (1)",
                "`version = 2 is not a format this build reads (it reads version 1)`",
                "write `version = 1`, or upgrade rpcd",
            ),
        ),
    ),
    Section(
        "Structure (JSON Schema)",
        (
            Rule(
                "unknown-key",
                "no key outside the schema (typos do not pass silently; SPEC rule 11)",
                "``unknown key `prioity`: did you mean `priority`?``",
                "rename or remove the key",
            ),
            Rule(
                "missing-key",
                "required keys are present (`id`, `auth`, `endpoint`, `credentials`, …)",
                "`` `connection[0]` is missing required key `auth`: add it``",
                "add the key",
            ),
            Rule(
                "wrong-type",
                "each value has its type (string, integer, boolean, table, array)",
                (
                    '`` `connection[0].timeout` must be a number, not "15" (a string): write 15 '
                    "without quotes``"
                ),
                "write a value of the right type",
            ),
            Rule(
                "invalid-value",
                (
                    "values are in range, match their pattern or enumeration, are finite (no "
                    "`nan` / `inf`), lists have no duplicates; an `endpoint` has no space or "
                    "control character (C0, DEL: a NUL, CR or LF) anywhere, a `soap_action` and "
                    "a `file` reference no control character"
                ),
                "`` `connection[0].priority` is 0; it must be at least 1``",
                "use an allowed value",
            ),
            Rule(
                "plaintext-secret",
                (
                    "credentials are secret references `{ env = … }`, `{ file = … }` or `{ "
                    "credential = … }` naming exactly one place; a peer has no `token` / "
                    "`password` (SPEC rule 9); an `endpoint` holds no `user:password@` and no "
                    "query (or fragment) parameter that carries a credential — `wstoken`, "
                    "`token`, `access_token`, `apikey`, `api_key`, `key`, `password`, `secret` "
                    "or the connection's or class's `token_param`, in any case, percent-encoded "
                    "or not — and `parameters` hold none of these names either. The message "
                    "never shows the value, and `rpcd show` masks such a value even in a tree "
                    "that bypassed `validate`"
                ),
                (
                    "`` `connection[0].credentials.token` holds a literal value (hidden here): "
                    'a secret must be a reference such as { env = "NAME" }…``; ``` `uni-b`\'s '
                    "endpoint carries a credential in its query parameter `wstoken` (value "
                    "hidden): credentials never go in the endpoint … ```"
                ),
                "move the secret out of git and reference it in `credentials`",
            ),
            Rule(
                "credential-mismatch",
                "exactly one credential group, matching `auth` (SPEC rule 1)",
                (
                    '`auth = "userpass" needs credentials with exactly username and password; '
                    "found token: add username, password and remove token`"
                ),
                "give the keys that `auth` needs, nothing else",
            ),
            Rule(
                "auth-for-type",
                "`auth` is valid for `type`; `cert` only for XML-RPC (SPEC rule 2)",
                (
                    '`auth = "cert" is not valid for type = "REST": use one of token, userpass, '
                    "oauth1`"
                ),
                "change `auth` or `type`",
            ),
            Rule(
                "payload-for-type",
                "`payload` is valid for `type` (SPEC rule 2)",
                '`payload = "soap" is not valid for type = "REST": use url or json or xml`',
                "change `payload` or `type`",
            ),
            Rule(
                "parameters-need-method",
                "non-empty `parameters` come with `http_method` (SPEC rule 5)",
                "`` `parameters` is not empty, so `http_method` is required``",
                'add `http_method = "GET"` or `"POST"`',
            ),
            Rule(
                "global-with-institutions",
                "a global connection lists no institutions (SPEC rule 4)",
                "`a global connection serves everyone and lists no institutions`",
                "remove `institutions` or set `global = false`",
            ),
            Rule(
                "endpoint-or-endpoints",
                (
                    "a connection has one `endpoint` or a list `endpoints = [primary, "
                    "standby, …]` (up "
                    "to 8, no repeats), not both and not neither"
                ),
                (
                    "`` a connection has one `endpoint` or a list `endpoints = [primary, standby, "
                    "...]`, not both and not neither: keep one of them ``"
                ),
                "keep `endpoint` for one URL, or move it to the front of `endpoints`",
            ),
            Rule(
                "proxy-credentials",
                (
                    "a proxy table (`[proxy]` in rpcd.toml, a connection's `proxy`) has both "
                    "`username` and `password` (secret references) or neither"
                ),
                (
                    "`` proxy authentication needs both `username` and `password` (secret "
                    "references): "
                    "add the missing one, or remove both ``"
                ),
                "add the missing reference, or remove both",
            ),
            Rule(
                "token-placement",
                '`token_param` / `token_header`: only with `auth = "token"`, and not both',
                "`token_param and token_header are both set: … remove one`",
                "keep one, or remove both",
            ),
            Rule(
                "option-for-type",
                (
                    '`wsse_password_type` only with `auth = "wsse"`; `oauth_placement` only '
                    'with `auth = "oauth1"`, and `"body"` only with a POST `url` payload; '
                    '`soap_namespace` / `soap_action` only with `type = "SOAP"`'
                ),
                (
                    '`soap_action only applies to type = "SOAP", and this connection has no '
                    "type (so REST)`"
                ),
                "set the type/auth, or remove the option",
            ),
            Rule(
                "missing-class",
                "in a file without `[class]`, each connection names its `class`",
                "`this file has no [class], so this connection must name its class`",
                'add `class = "<class id>"`',
            ),
            Rule(
                "method-target",
                ("a method has exactly one of `function` and `proxy`; `run` only with `function`"),
                "``method `b` has neither `function` nor `proxy` ``",
                "add one (or remove one)",
            ),
            Rule(
                "peer-credential",
                "a peer has exactly the hashed credential keys its `auth` needs",
                (
                    '``peer `sis` has auth = "userpass", which needs exactly username and '
                    "password_hash: add password_hash``"
                ),
                "use `rpcd hash-secret` and keep only the matching keys",
            ),
        ),
    ),
    Section(
        "Rules across files",
        (
            Rule(
                "duplicate-id",
                (
                    "unique ids: institutions, classes, connections within a class, services, "
                    "methods within a service, peers (SPEC rule 7)"
                ),
                "``institution `uni-a` is declared twice (first in rpcd.toml line 3)``",
                "rename or remove one",
            ),
            Rule(
                "unknown-class",
                "a connection's class is declared (SPEC rule 6)",
                (
                    "``class `moodle_user` is not declared in any connections.d file: did you "
                    "mean `moodle_users`?``"
                ),
                "fix the name or declare the class",
            ),
            Rule(
                "unknown-institution",
                ("institutions named by connections, peers and grants are declared in `rpcd.toml`"),
                ("``institution `uni-z` is not declared in rpcd.toml: did you mean `uni-b`?``"),
                "add the `[[institution]]` or fix the id",
            ),
            Rule(
                "unknown-peer",
                "peers named in a grant are declared",
                ("``peer `mahra` is not declared in any services.d file: did you mean `mahara`?``"),
                "fix the id or add the `[[peer]]`",
            ),
            Rule(
                "unknown-proxy-class",
                "a proxy method names a declared class",
                ("``proxy class `ghost` of method `find` is not a declared connection class``"),
                "fix the class name",
            ),
            Rule(
                "global-not-alone",
                "a global instance is the only instance of its class (SPEC rule 3)",
                (
                    "`` `moodle_users/uni-b` is global, so it must be the only instance of "
                    "class `moodle_users` ``"
                ),
                "make it per-institution, or remove the others",
            ),
            Rule(
                "institution-overlap",
                "an institution appears in at most one instance of a class (SPEC rule 4)",
                (
                    "``institution `uni-a` is already served by `moodle_users/uni-a` "
                    "(connections.d/moodle.toml line 9)``"
                ),
                "remove it from one instance, or merge them",
            ),
            Rule(
                "fixed-attribute",
                "every instance has the attributes its class fixes (SPEC rule 8)",
                (
                    '``class `moodle_users` fixes payload = "url" for every instance, but '
                    '`moodle_users/uni-a` has payload = "json"``'
                ),
                "set the attribute, or change the class's `fixed`",
            ),
            Rule(
                "class-id-prefix",
                "a class id starts with `<plugin>_`",
                (
                    "``class id `moodle_users` must start with its plugin's name and an "
                    "underscore, `mahara_` ``"
                ),
                "rename the class or fix `plugin`",
            ),
            Rule(
                "config-field",
                (
                    "`[connection.config]` holds exactly the class's `config_fields`: required "
                    "ones present, no unknown ones, each of its declared type"
                ),
                (
                    '``config.page_size is "50", but class `moodle_users` declares it as type '
                    "integer``"
                ),
                "add, remove or retype the value",
            ),
            Rule(
                "function-placement",
                (
                    "a REST class says where the function name goes: `function_param`, or "
                    "`{function}` in the endpoint"
                ),
                (
                    "``REST class `moodle_users` has no function_param, so the endpoint must "
                    "contain `{function}` ``"
                ),
                "add `function_param` to the class or `{function}` to the endpoint",
            ),
            Rule(
                "folder-ownership",
                (
                    "a file under `connections.d/<institution>/` declares only connections of "
                    "exactly that institution: no class, never global (SPEC rule 10)"
                ),
                (
                    "`a file under connections.d/uni-b/ may only declare connections with "
                    'institutions = ["uni-b"]`'
                ),
                "move the connection or fix its institutions",
            ),
            Rule(
                "secret-scope",
                (
                    "no connection, and not the site proxy, references the daemon's own secrets "
                    "(an `RPCD_*` setting "
                    "such as `RPCD_SESSION_KEY`, the credential `session-key`, "
                    "`/etc/rpcd/session-key`; the daemon also refuses, at load, any reference "
                    "that resolves to its session key, TLS key or settings file); a connection "
                    "in `connections.d/<institution>/` references only that institution's "
                    "secrets: env names starting with one of its `env_prefixes`, credentials "
                    "starting with one of its `credential_prefixes`, files under one of its "
                    "`file_dirs` (`[[institution]] secrets` in `rpcd.toml`; defaults `UNI_A_`, "
                    "`uni-a-`, `/etc/rpcd/secrets/uni-a/` for `uni-a`), never a name in two "
                    "institutions' scopes. Paths are normalised first (`..` cannot climb out); "
                    "the daemon checks again where symlinks lead, before reading any secret"
                ),
                (
                    "``connections.d/uni-a/moodle.toml:9:27: credentials.token: "
                    "credential:moodle-uni-b-token is outside institution `uni-a`'s secret "
                    "scope (its folder connections.d/uni-a/ may reference env names UNI_A_*, "
                    "credentials uni-a-*, files under /etc/rpcd/secrets/uni-a/)``"
                ),
                (
                    "use a secret in the institution's scope; or a site admin declares the "
                    "prefix or folder in `rpcd.toml` (see [gitops.md](gitops.md#secret-scopes)) "
                    "or moves the connection to a site file"
                ),
            ),
            Rule(
                "endpoint-host",
                (
                    "when `rpcd.toml` lists `endpoint_hosts` for an institution, every "
                    "connection in its folder calls one of them: a host name, or `*.domain` for "
                    "any name under the domain (not the domain itself), or a bracketed IPv6 "
                    "address; compared without case, any port; user information before `@` is "
                    "not the host. Without `endpoint_hosts`, any host"
                ),
                (
                    "``connections.d/uni-b/moodle.toml:7:1: `uni-b` calls "
                    "moodle.uni-b.example.evil.example, which is not one of the hosts "
                    "institution `uni-b`'s folder may call (*.uni-b.example)``"
                ),
                "fix the endpoint, or a site admin adds the host",
            ),
            Rule(
                "enabled-missing",
                (
                    "(info: never makes a tree invalid) a connection says whether it is "
                    "on: without an `enabled` key it is disabled, which otherwise passes "
                    "silently"
                ),
                (
                    "``connections.d/x.toml:5:1: `moodle_users/uni-b` has no `enabled` "
                    "key, so it is disabled: add enabled = true to use it (or enabled = "
                    "false to keep it off on purpose)``"
                ),
                "add `enabled = true` (or `enabled = false`)",
            ),
            Rule(
                "service-without-grant",
                "(warning) a service grants someone; without `grant` nobody may call it",
                "``service `more` grants nobody, so nobody can call it``",
                "add `grant = { institutions = [...], peers = [...] }`",
            ),
            Rule(
                "duplicate-credential",
                "no two peers share a token hash, username or certificate fingerprint",
                (
                    "``peer `sis` has the same token hash as peer `mahara` "
                    "(services.d/hello.toml line 11)``"
                ),
                "give each peer its own credential",
            ),
            Rule(
                "import-failed",
                (
                    "(`validate --import`, and always in the daemon) every `function` imports "
                    "and is callable"
                ),
                ("``module `examples.hello` has no `hello_wrld`: did you mean `hello_world`?``"),
                "fix the module path or the function name",
            ),
            Rule(
                "handler-context",
                (
                    "(`validate --import`, and always in the daemon) a handler that asks "
                    "for its call "
                    "context (a parameter annotated `CallContext`, see "
                    "[serving.md](serving.md#writing-handlers)) can be given it: one such "
                    "parameter, "
                    "not positional-only, not `*args` / `**kwargs`"
                ),
                (
                    "``handler `mymod:rid` parameter `ctx: CallContext` is "
                    "positional-only, so rpcd "
                    "cannot pass it by name: make it an ordinary or keyword-only parameter``"
                ),
                "make it an ordinary or keyword-only parameter, keep one",
            ),
            Rule(
                "anonymous-grant",
                (
                    "(warning) names each method anyone may call without credentials (`grant = { "
                    "anonymous = true }` on the method or its service)"
                ),
                (
                    "``method `more.register` may be called by anyone, without credentials (grant "
                    "anonymous = true): make sure that is meant``"
                ),
                "keep it if meant (Drupal's `user.register`), else grant peers or institutions",
            ),
            Rule(
                "method-params",
                "a method's `params` names one parameter per parameter type of its `signature`",
                (
                    "``method `more.hi` names 1 params (first) but its signature declares "
                    "2 parameter "
                    "types: give one name per parameter type``"
                ),
                "give one name per parameter type",
            ),
        ),
    ),
    Section(
        "Preflight (`validate --resolve-secrets`, and always in the daemon)",
        (
            Rule(
                "secret-unresolved",
                (
                    "every reference resolves: the env variable is set, the file exists "
                    "and is readable, the credential is loaded (`$CREDENTIALS_DIRECTORY`); "
                    "an error for an enabled connection, a warning for a disabled one"
                ),
                (
                    "`connection moodle_users/uni-a credentials.token: secret "
                    "env:MOODLE_TOKEN: environment variable MOODLE_TOKEN is not set`"
                ),
                "set the variable, install the file or add the `LoadCredential=` line",
            ),
            Rule(
                "secret-short",
                (
                    "an authenticating secret has at least 8 characters (shorter ones "
                    "cannot be masked in logs); an error unless the daemon's "
                    "`short_secrets` is `warn` (development only)"
                ),
                (
                    "`connection moodle_users/uni-a credentials.token: secret "
                    "env:MOODLE_TOKEN is shorter than 8 characters; use a longer one …`"
                ),
                "use a longer secret",
            ),
        ),
        (
            (
                "`rpcd validate --resolve-secrets` runs the checks `rpcd serve` makes "
                "at start and on reload, with the daemon's settings (`RPCD_*`, "
                "`RPCD_SETTINGS_FILE`): run it as the daemon's user, with its "
                "environment and credentials, and a tree it passes is one the daemon "
                "loads. It also imports every handler (`import-failed`), as `--import` "
                "does. The secret's value is never printed."
            ),
        ),
    ),
)


def rule_ids() -> set[str]:
    """Every documented rule id."""
    return {rule.id for section in SECTIONS for rule in section.rules}


def _wrap(text: str, width: int = 100) -> list[str]:
    """A paragraph as lines of at most ``width`` characters (the page's own style)."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line]


def render() -> str:
    """docs/rules.md."""
    out = [
        "# Rules of `rpcd validate`",
        "",
        "<!-- Generated by `make docs` (python -m rpcd.config.rulebook) from "
        "rpcd/config/rulebook.py;",
        "     do not edit by hand: tests/test_rules.py fails when this page is stale. -->",
        "",
    ]
    for paragraph in INTRO:
        out += [*_wrap(paragraph), ""]
    for section in SECTIONS:
        out += [f"## {section.title}", ""]
        for paragraph in section.intro:
            out += [*_wrap(paragraph), ""]
        out += ["| rule | checks | example | fix |", "| --- " * 4 + "|"]
        for rule in section.rules:
            out.append(f"| `{rule.id}` | {rule.checks} | {rule.example} | {rule.fix} |")
        out.append("")
    out += _wrap(OUTRO)
    return "\n".join(out) + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
