"""Write an import plan: the TOML tree, the secret files, the checklist.

The tree is TOML written by tomli-w, one document per file, with comments above each
``[[connection]]`` saying which Mahara row it came from and why a row was disabled. Secret
values go only to ``--secrets-out``: a folder of mode 0700 outside the tree, one file of mode
0600 per reference, ready for ``LoadCredential=``; the checklist (no values in it) says what to
install where.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from rpcd.importers.mahara import ImportPlan, PlannedConnection, Secret
from rpcd.logsafe import one_line

CHECKLIST = "CHECKLIST.txt"
#: Where the checklist tells admins to put credential files for LoadCredential=.
CREDENTIAL_DIR = "/etc/rpcd/credentials"


class WriteError(Exception):
    """The output could not be written where asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Written:
    files: list[Path]
    secret_files: list[Path]
    checklist: str


def _comment(lines: list[str]) -> str:
    """TOML comment lines; text from the database (names) has its control characters escaped,
    so it can neither end the comment nor make the file invalid TOML."""
    return "".join(f"# {one_line(text)}\n" for text in lines)


def _toml(data: dict[str, Any]) -> str:
    return tomli_w.dumps(data)


def _site(plan: ImportPlan) -> str:
    head = _comment(
        [
            "Imported from Mahara by `rpcd import mahara`: review before serving.",
            "Institutions come from Mahara's institution table (its site institution, "
            "`mahara`, is the global scope).",
        ]
    )
    body: dict[str, Any] = {"version": 1, "connections": {"enabled": plan.switch}}
    if plan.institutions:
        body["institution"] = [{"id": i, "name": n} for i, n in plan.institutions]
    return "#:schema ./schemas/v1/rpcd.schema.json\n" + head + _toml(body)


def _connection(conn: PlannedConnection, with_class_key: bool) -> str:
    data = dict(conn.data)
    if not with_class_key:
        data.pop("class")
    text = _toml({"connection": [data]})
    if conn.commented_out:
        text = "".join(f"# {line}\n" if line else "#\n" for line in text.splitlines())
    return "\n" + _comment(conn.comments) + text


def _files(plan: ImportPlan) -> dict[str, str]:
    """Relative path → text of every file of the tree."""
    files = {"rpcd.toml": _site(plan)}
    by_file: dict[str, list[PlannedConnection]] = defaultdict(list)
    for conn in plan.connections:
        folder = conn.institution_folder
        rel = (
            f"connections.d/{folder}/{conn.class_id}.toml"
            if folder
            else f"connections.d/{conn.class_id}.toml"
        )
        by_file[rel].append(conn)
    for class_id, klass in plan.classes.items():
        rel = f"connections.d/{class_id}.toml"
        text = "#:schema ../schemas/v1/connections.schema.json\n" + _comment(klass.comments)
        text += _toml({"version": 1, "class": klass.data})
        text += "".join(_connection(c, with_class_key=False) for c in by_file.pop(rel, []))
        files[rel] = text
    for rel, conns in by_file.items():
        inst = conns[0].institution_folder
        text = "#:schema ../../schemas/v1/connections.schema.json\n"
        text += _comment([f"Institution {inst}'s connections (its admins own this folder)."])
        text += _toml({"version": 1})
        text += "".join(_connection(c, with_class_key=True) for c in conns)
        files[rel] = text
    return files


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _write_private(path: Path, text: str) -> None:
    """A 0600 file, created with that mode (never readable by others, not even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def checklist(plan: ImportPlan, secrets_out: Path | None) -> str:
    """What to install where, reference by reference; never a value."""
    lines = ["rpcd import: secrets to install (no values in this list)", ""]
    inactive = {f"{c.class_id}/{c.data['id']}" for c in plan.connections if c.commented_out}
    for secret in plan.secrets:
        where = f"{secret.connection}: Mahara {secret.source}"
        if secret.connection in inactive:
            where += "; its connection is commented out"
        have = (
            "Mahara holds NO value for it: obtain it"
            if secret.value is None
            else f"value in {secrets_out / secret.name}"
            if secrets_out
            else "value not written (pass --secrets-out DIR)"
        )
        if secret.kind == "credential":
            lines.append(f"- credential {secret.name}  ({where}; {have})")
            lines.append(
                f"    install as {CREDENTIAL_DIR}/{secret.name} (root, mode 0600) and add to the "
                f"unit: LoadCredential={secret.name}:{CREDENTIAL_DIR}/{secret.name}"
            )
        else:
            lines.append(f"- env {secret.name}  ({where}; {have})")
            lines.append(
                "    set it in the daemon's environment (an EnvironmentFile= of mode 0600)"
            )
    if not plan.secrets:
        lines.append("(none)")
    lines += ["", "Then: rpcd validate --resolve-secrets ROOT (as the daemon's user), and"]
    lines += ["systemctl restart rpcd (new credentials need a restart, not a reload)."]
    return "\n".join(lines) + "\n"


def write(plan: ImportPlan, out: Path, secrets_out: Path | None) -> Written:
    """Write the tree under ``out`` and, with ``secrets_out``, the secret files."""
    if secrets_out is not None and _inside(secrets_out, out):
        raise WriteError(
            f"--secrets-out {secrets_out} is inside the tree {out}: secrets never go in the "
            "tree (it is committed to git); choose a folder outside it"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WriteError(f"--out {out} exists and is not an empty folder: choose a new one")
    written: list[Path] = []
    try:
        for rel, text in _files(plan).items():
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
        (out / "services.d").mkdir(exist_ok=True)
        secret_files: list[Path] = []
        text = checklist(plan, secrets_out)
        if secrets_out is not None:
            secrets_out.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(secrets_out, 0o700)
            for secret in plan.secrets:
                if secret.value is None:
                    continue
                path = secrets_out / secret.name
                _write_private(path, secret.value)
                secret_files.append(path)
            _write_private(secrets_out / CHECKLIST, text)
    except OSError as exc:
        raise WriteError(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    return Written(written, secret_files, text)


def secret_summary(secrets: list[Secret]) -> str:
    with_value = sum(1 for s in secrets if s.value is not None)
    return f"{len(secrets)} secret reference(s), {with_value} with a value from Mahara"
