"""Secret references -> values held as ``SecretStr``; which values the log filter masks.

A reference (``env:NAME``, ``file:/path``, ``credential:name``) is read when a catalog is
loaded (and again on every reload, so a rotated env/file secret needs no restart). A missing
one is a finding that names the reference and the connection, never a value. Resolved values
live only in ``SecretStr``, which prints as ``**********``. The log filter itself is
``rpcd.redaction`` (re-exported here).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from pydantic import SecretStr

from rpcd.config import Catalog, Finding, Severity
from rpcd.config.models import SecretRef
from rpcd.errors import SecretError
from rpcd.redaction import MASK, MIN_SECRET_LENGTH, SecretRedactingFilter

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "SHORT_SECRET_POLICIES",
    "SecretRedactingFilter",
    "SecretStore",
    "resolve_catalog",
    "resolve_ref",
    "short_secret_findings",
]

#: Credential keys that identify rather than authenticate: never refused or warned about when
#: short, and masked in logs only from MIN_SECRET_LENGTH up (masking "svc" would wreck logs).
IDENTITY_KEYS = frozenset({"username", "consumer_key", "certificate"})

_MAX_SECRET_BYTES = 1 << 20  # a secret file larger than this is a mistake, not a secret


def _read_file(path: Path, ref: SecretRef) -> str:
    # Opened without blocking and checked before reading: a FIFO or a device named as a secret
    # would otherwise hold the load (and every later reload) until something writes to it.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SecretError(f"secret {ref}: file {path} does not exist") from None
    except OSError as exc:
        raise SecretError(f"secret {ref}: cannot read {path} ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SecretError(f"secret {ref}: {path} is not a regular file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(_MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretError(f"secret {ref}: cannot read {path} ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(raw) > _MAX_SECRET_BYTES:
        raise SecretError(f"secret {ref}: {path} is larger than 1 MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"secret {ref}: {path} is not UTF-8 text") from None
    # One trailing newline is what editors and `echo` add; it is never part of the secret.
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def resolve_ref(
    ref: SecretRef,
    *,
    environ: Mapping[str, str] | None = None,
) -> SecretStr:
    """Read one reference. Raises ``SecretError`` naming the reference (never a value)."""
    env = os.environ if environ is None else environ
    if ref.kind == "env":
        value = env.get(ref.target)
        if value is None:
            raise SecretError(f"secret {ref}: environment variable {ref.target} is not set")
        if not value:
            raise SecretError(f"secret {ref}: environment variable {ref.target} is empty")
        return SecretStr(value)
    if ref.kind == "file":
        path = Path(ref.target)
    else:
        directory = env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise SecretError(
                f"secret {ref}: $CREDENTIALS_DIRECTORY is not set "
                "(systemd sets it for a unit with LoadCredential=)"
            )
        path = Path(directory) / ref.target
    value = _read_file(path, ref)
    if not value:
        raise SecretError(f"secret {ref}: {path} is empty")
    return SecretStr(value)


def credential_path(ref: SecretRef, environ: Mapping[str, str] | None = None) -> Path | None:
    """The file a ``file``/``credential`` reference reads (for ssl, which wants files)."""
    env = os.environ if environ is None else environ
    if ref.kind == "file":
        return Path(ref.target)
    if ref.kind == "credential" and env.get("CREDENTIALS_DIRECTORY"):
        return Path(env["CREDENTIALS_DIRECTORY"]) / ref.target
    return None


class SecretStore:
    """Resolved secrets by reference (``str(ref)``). Values only via ``get(ref)``."""

    __slots__ = ("_errors", "_values")

    def __init__(
        self, values: Mapping[str, SecretStr], errors: Mapping[str, str] | None = None
    ) -> None:
        self._values = dict(values)
        self._errors = dict(errors or {})

    def get(self, ref: SecretRef) -> SecretStr:
        """The value of ``ref``; ``SecretError`` (naming the reference) when unresolved."""
        key = str(ref)
        try:
            return self._values[key]
        except KeyError:
            raise SecretError(self._errors.get(key, f"secret {key} was not resolved")) from None

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, SecretRef) and str(ref) in self._values

    def __len__(self) -> int:
        return len(self._values)

    def references(self) -> list[str]:
        return sorted(self._values)

    def redaction_values(self) -> Iterator[str]:
        """The values a log filter must mask: every value of at least ``MIN_SECRET_LENGTH``
        characters (a shorter one cannot be masked without showing where it was: the daemon
        refuses such a secret, and a short identity such as a username is left as it is)."""
        return self._plain_values()

    def _plain_values(self) -> Iterator[str]:
        for secret in self._values.values():
            value = secret.get_secret_value()
            if len(value) >= MIN_SECRET_LENGTH:
                yield value

    def __repr__(self) -> str:
        return f"SecretStore({len(self._values)} resolved, {len(self._errors)} unresolved)"


def resolve_catalog(
    catalog: Catalog, *, environ: Mapping[str, str] | None = None
) -> tuple[SecretStore, list[Finding]]:
    """Resolve every secret reference of every connection, once per distinct reference.

    A reference that cannot be read is an error on an enabled connection and a warning on a
    disabled one (it is not needed until someone enables it); a short secret is a warning.
    """
    values: dict[str, SecretStr] = {}
    errors: dict[str, str] = {}
    findings: list[Finding] = []
    short_reported: set[str] = set()
    for full_id, key, ref, source, enabled in catalog.secret_references():
        where = f"connection {full_id} {key}" if full_id else f"rpcd.toml {key}"
        path = f"{full_id}.{key}" if full_id else key
        name = str(ref)
        if name not in values and name not in errors:
            try:
                values[name] = resolve_ref(ref, environ=environ)
            except SecretError as exc:
                errors[name] = str(exc)
        if name in errors:
            severity = Severity.ERROR if enabled else Severity.WARNING
            findings.append(
                Finding(
                    "secret-unresolved",
                    f"{where}: {errors[name]}",
                    file=source,
                    path=path,
                    severity=severity,
                )
            )
        elif (
            key.rsplit(".", 1)[-1] not in IDENTITY_KEYS
            and len(values[name].get_secret_value()) < MIN_SECRET_LENGTH
            and name not in short_reported
        ):
            short_reported.add(name)
            findings.append(
                Finding(
                    "secret-short",
                    f"{where}: secret {name} is shorter than {MIN_SECRET_LENGTH} characters; "
                    "use a longer one (short values are weak and cannot be masked in logs "
                    "without damaging them)",
                    file=source,
                    path=path,
                    severity=Severity.WARNING,
                )
            )
    return SecretStore(values, errors), findings


#: What the daemon does with an authenticating secret shorter than ``MIN_SECRET_LENGTH``
#: (``Settings.short_secrets``): refuse the catalog, or (development) use it and warn.
SHORT_SECRET_POLICIES = ("refuse", "warn")


def short_secret_findings(findings: Iterable[Finding], policy: str = "refuse") -> list[Finding]:
    """``findings`` with each ``secret-short`` one an error under the ``refuse`` policy: a
    daemon never starts or reloads with a secret it could not mask in its logs. ``warn``
    keeps them warnings; such a value is then used, and never masked."""
    if policy not in SHORT_SECRET_POLICIES:
        raise ValueError(f"short_secrets must be one of {SHORT_SECRET_POLICIES}, got {policy!r}")
    out = list(findings)
    if policy == "warn":
        return out
    how = (
        '; the daemon refuses it (for development only, short_secrets = "warn" or '
        "RPCD_SHORT_SECRETS=warn accepts it and leaves it unmasked in logs)"
    )
    return [
        replace(f, severity=Severity.ERROR, message=f.message + how)
        if f.rule == "secret-short"
        else f
        for f in out
    ]
