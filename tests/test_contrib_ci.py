"""contrib/ci/github-actions.yml works in a config repository, step by step.

The workflow's ``run:`` steps run with bash in a scratch config repository (the example tree,
a ``main`` branch as ``origin/main`` and a pull-request branch): the install step installs
rpcd from this checkout's HEAD commit (``RPCD_SOURCE`` pointed at ``git+file://localhost/…``;
dependencies left out with ``PIP_NO_DEPS``, which pip reads from the environment, to keep it
quick), never
the config repository; validate and diff run with this checkout's rpcd; the comment step runs
against a stand-in ``gh`` that records what it is asked (no GitHub here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml
from tree_helpers import REPO, copy_example

WORKFLOW = REPO / "contrib" / "ci" / "github-actions.yml"
BIN = Path(sys.executable).parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
FAKE_GH = """#!/usr/bin/env bash
# Stands in for GitHub's CLI: records each call; `api --paginate` prints $FAKE_GH_IDS.
printf '%s\\n' "$*" >> "$FAKE_GH_LOG"
if [ "$1" = api ] && [ "$2" = --paginate ]; then printf '%s' "${FAKE_GH_IDS:-}"; fi
"""


def workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def step(job: str, name: str) -> str:
    for item in workflow()["jobs"][job]["steps"]:
        if item.get("name") == name:
            return str(item["run"])
    raise AssertionError(f"no step {name!r} in job {job}")


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, check=True, capture_output=True
    )


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def config_repo(tmp_path: Path) -> Path:
    """A config repository with a pull request: origin/main and a branch that changes it."""
    repo = copy_example(tmp_path / "config")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "update-ref", "refs/remotes/origin/main", "main")
    git(repo, "checkout", "-q", "-b", "pr")
    path = repo / "connections.d" / "moodle_users.toml"
    path.write_text(path.read_text().replace("timeout = 15", "timeout = 20"))
    git(repo, "commit", "-qam", "change")
    return repo


def test_no_step_installs_the_config_repository() -> None:
    runs = [s.get("run", "") for job in workflow()["jobs"].values() for s in job["steps"]]
    assert not [r for r in runs if "pip install ." in r]
    assert workflow()["env"]["RPCD_SOURCE"].startswith("git+https://github.com/OWNER/rpcd@")


@pytest.mark.slow
def test_the_install_step_installs_rpcd_from_its_source(tmp_path: Path, config_repo: Path) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    for job in ("validate", "diff"):
        script = step(job, "install rpcd")
        assert script == 'python -m pip install "rpcd @ ${RPCD_SOURCE}"'
    done = subprocess.run(
        ["bash", "-e", "-c", step("validate", "install rpcd")],
        cwd=config_repo,
        env={
            **os.environ,
            "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "RPCD_SOURCE": f"git+file://localhost{REPO}@{head}",
            "PIP_NO_DEPS": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    shown = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "show", "-f", "rpcd"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Name: rpcd" in shown
    assert "rpcd/cli.py" in shown


def test_validate_and_diff_steps(config_repo: Path, tmp_path: Path) -> None:
    done = bash(step("validate", "rpcd validate"), config_repo, {})
    assert done.returncode == 0, done.stdout + done.stderr
    summary = tmp_path / "summary.md"
    done = bash(
        step("diff", "rpcd diff"),
        config_repo,
        {"BASE_REF": "main", "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert done.returncode == 0, done.stdout + done.stderr  # rpcd diff's 2 (changes) is fine
    posted = (config_repo / "rpcd-diff.md").read_text()
    assert posted.startswith("<!-- rpcd-diff -->")
    assert "`moodle_users/uni-b`" in posted and "`timeout`" in posted
    assert summary.read_text() == posted
    # a broken base is an error: exit 1 fails the job
    done = bash(
        step("diff", "rpcd diff"),
        config_repo,
        {"BASE_REF": "no-such-branch", "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert done.returncode == 1


def test_comment_step_posts_once_then_edits(config_repo: Path, tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gh").write_text(FAKE_GH)
    (fake / "gh").chmod(0o755)
    log = tmp_path / "gh.log"
    (config_repo / "rpcd-diff.md").write_text("<!-- rpcd-diff -->\nbody\n")
    script = step("diff", "post or update the PR comment")
    env = {
        "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
        "FAKE_GH_LOG": str(log),
        "GH_TOKEN": "x",
        "REPO": "org/config",
        "PR": "7",
    }
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=config_repo,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[-1] == "pr comment 7 --repo org/config --body-file rpcd-diff.md"
    env["FAKE_GH_IDS"] = "4242\n"
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=config_repo,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[-1] == (
        "api --method PATCH repos/org/config/issues/comments/4242 -F body=@rpcd-diff.md"
    )
