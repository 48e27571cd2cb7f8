"""The systemd unit's DynamicUser=yes, tried with a real other uid (``nobody``).

``DynamicUser=yes`` runs rpcd as a user that owns nothing: git refuses the root-owned tree
("dubious ownership") unless the unit marks it safe, and a root-owned 0600 secret file cannot
be read unless systemd hands it over with ``LoadCredential=``. Each test runs the daemon's own
code (``rpcd.server.core.loading.git_commit``, ``rpcd.secrets.resolve_ref``) in a child that
switches to ``nobody`` after importing it (this interpreter lives under /root, which nobody may
not enter), with the environment the unit sets. ``systemd-analyze verify`` of the unit is in
tests/test_systemd_unit.py.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tree_helpers import REPO

UNIT = REPO / "contrib" / "systemd" / "rpcd.service"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("git") is None,
    reason="needs root (to run as another uid) and git",
)

AS_NOBODY = """
import os, sys
{imports}
nobody = {uid}
os.setgroups([]); os.setgid(nobody); os.setuid(nobody)
{body}
"""


def as_nobody(imports: str, body: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = AS_NOBODY.format(imports=imports, body=body, uid=pwd.getpwnam("nobody").pw_uid)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "RPCD_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env, "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )


def unit_environment() -> dict[str, str]:
    """The unit's ``Environment=`` lines (name=value)."""
    pairs = re.findall(r"^Environment=([A-Z_0-9]+)=(.*)$", UNIT.read_text(), flags=re.M)
    return dict(pairs)


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A temporary folder nobody may enter (pytest's own is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="rpcd-uid-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_git_needs_the_units_safe_directory(public_tmp: Path) -> None:
    tree = public_tmp / "tree"
    tree.mkdir()
    env = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(tree)], check=True, env={**os.environ, **env})
    subprocess.run(
        [
            "git",
            "-C",
            str(tree),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "tree",
        ],
        check=True,
        env={**os.environ, **env},
    )
    commit = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    imports = "from pathlib import Path\nfrom rpcd.server.core.loading import git_commit"
    body = f"print(git_commit(Path({str(tree)!r})))"
    # without the unit's environment: git refuses the root-owned tree, the commit is unknown
    without = as_nobody(imports, body, env)
    assert without.stdout.strip() == "None", without.stderr
    # with it (the unit names /etc/rpcd/tree; here the tree is elsewhere)
    unit = {k: v for k, v in unit_environment().items() if k.startswith("GIT_CONFIG")}
    assert unit == {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "safe.directory",
        "GIT_CONFIG_VALUE_0": "/etc/rpcd/tree",
    }
    unit["GIT_CONFIG_VALUE_0"] = str(tree)
    with_unit = as_nobody(imports, body, {**env, **unit})
    assert with_unit.stdout.strip() == commit, with_unit.stderr


def test_a_file_secret_needs_load_credential(public_tmp: Path) -> None:
    secret_file = public_tmp / "mahara-uni-a.pass"
    secret_file.write_text("file-secret-value-8f7e6d\n")
    secret_file.chmod(0o600)  # root's, as operations.md installs secrets
    imports = (
        "from rpcd.config.models import SecretRef\n"
        "from rpcd.errors import SecretError\n"
        "from rpcd.secrets import resolve_ref"
    )
    body = """
try:
    value = resolve_ref(SecretRef.model_validate(REF)).get_secret_value()
    print("read", len(value))
except SecretError as exc:
    print("refused:", exc)
"""
    as_file = as_nobody(imports, f"REF = {{'file': {str(secret_file)!r}}}\n" + body, {})
    assert as_file.stdout.startswith("refused:"), as_file.stdout + as_file.stderr
    assert "file-secret-value" not in as_file.stdout + as_file.stderr
    # what LoadCredential= does: a copy in a folder of the service's own, readable by it alone
    creds = public_tmp / "credentials"
    creds.mkdir(mode=0o700)
    shutil.copy(secret_file, creds / "mahara-uni-a.pass")
    nobody = pwd.getpwnam("nobody").pw_uid
    for path in (creds, creds / "mahara-uni-a.pass"):
        os.chown(path, nobody, -1)
    as_credential = as_nobody(
        imports,
        "REF = {'credential': 'mahara-uni-a.pass'}\n" + body,
        {"CREDENTIALS_DIRECTORY": str(creds)},
    )
    assert as_credential.stdout.strip() == "read 24", as_credential.stdout + as_credential.stderr
    # the unit says how, for exactly this file of the example tree
    assert (
        "# LoadCredential=mahara-uni-a.pass:/etc/rpcd/secrets/mahara-uni-a.pass" in UNIT.read_text()
    )
