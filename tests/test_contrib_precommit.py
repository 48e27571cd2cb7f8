"""The pre-commit hook works as docs/gitops.md documents it, with real pre-commit.

Both configurations of the page's "Pre-commit" section run on a scratch config repository: the
local hook exactly as written (rpcd from this interpreter's bin directory on PATH), and the
pinned one with this checkout as the repository (``file://``) and its HEAD commit as ``rev``,
so pre-commit installs rpcd from the commit the way it would from GitHub.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tree_helpers import REPO, copy_example

BIN = Path(sys.executable).parent
PRE_COMMIT = shutil.which("pre-commit", path=str(BIN)) or shutil.which("pre-commit")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

pytestmark = pytest.mark.skipif(PRE_COMMIT is None, reason="pre-commit is not installed")


def documented_configs() -> list[str]:
    text = (REPO / "docs" / "gitops.md").read_text(encoding="utf-8")
    section = text[text.index("## Pre-commit") : text.index("## CI")]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2, "the Pre-commit section shows the pinned and the local hook"
    return blocks


def run(cwd: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **GIT_ENV,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PRE_COMMIT_HOME": str(home),
    }
    return subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def config_repo(tmp_path: Path, config: str) -> Path:
    repo = copy_example(tmp_path / "config")
    (repo / ".pre-commit-config.yaml").write_text(config)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    return repo


def test_the_local_hook_as_written_blocks_a_broken_commit(tmp_path: Path) -> None:
    config = documented_configs()[1]
    repo = config_repo(tmp_path, config)
    home = tmp_path / "pre-commit-home"
    assert run(repo, str(PRE_COMMIT), "install", home=home).returncode == 0
    done = run(repo, "git", "commit", "-q", "-m", "valid tree", home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr  # git commit shows the hooks' output on stderr
    assert re.search(r"rpcd validate\.+Passed", output)
    # a typo in a connection: the commit is refused, with the finding
    path = repo / "connections.d" / "moodle_users.toml"
    path.write_text(path.read_text().replace("priority = 1", "prioity = 1", 1))
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    done = run(repo, "git", "commit", "-q", "-m", "typo", home=home)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Failed" in output and "unknown key `prioity`" in output
    # a change to a file that is not config does not run the hook
    path.write_text(path.read_text().replace("prioity = 1", "priority = 1", 1))
    (repo / "README.txt").write_text("notes\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    done = run(repo, "git", "commit", "-q", "-m", "fixed", home=home)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_the_pinned_hook_installs_rpcd_from_the_commit(tmp_path: Path) -> None:
    config = documented_configs()[0]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    if subprocess.run(
        ["git", "cat-file", "-e", f"{head}:.pre-commit-hooks.yaml"], cwd=REPO, check=False
    ).returncode:
        pytest.skip("this checkout's HEAD commit has no .pre-commit-hooks.yaml")
    # the page's config, with this checkout standing in for GitHub and a commit that exists
    config = config.replace("https://github.com/OWNER/rpcd", f"file://{REPO}")
    config = re.sub(r"rev: [0-9a-f]{40}", f"rev: {head}", config)
    assert f"rev: {head}" in config and f"file://{REPO}" in config
    repo = config_repo(tmp_path, config)
    done = run(repo, str(PRE_COMMIT), "run", "--all-files", home=tmp_path / "home")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"rpcd validate\.+Passed", done.stdout)
    (repo / "rpcd.toml").write_text("version = 2\n")
    done = run(repo, str(PRE_COMMIT), "run", "--all-files", home=tmp_path / "home")
    assert done.returncode == 1 and "unknown-version" in done.stdout
