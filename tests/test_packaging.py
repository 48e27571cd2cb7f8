"""``python -m build`` gives a wheel and an sdist of rpcd alone, with only the runtime
dependencies unconditional; the wheel, installed into a fresh venv, validates the example tree.

The build runs on a copy of the checkout (no .git, .venv or caches), the way a release would;
``python -m build`` makes the sdist first and the wheel from the unpacked sdist, so the sdist
is proven complete too.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from tree_helpers import REPO, copy_example

pytestmark = pytest.mark.slow

SKIP = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "build",
    "dist",
    "node_modules",
    "bench",
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src") / "rpcd"
    shutil.copytree(REPO, src, ignore=SKIP, symlinks=True)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 and "No matching distribution" in done.stdout + done.stderr:
        pytest.skip("python -m build could not fetch its build dependencies (offline?)")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def _one(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


def test_the_wheel_holds_only_rpcd(dist: Path) -> None:
    with zipfile.ZipFile(_one(dist, "rpcd-*.whl")) as wheel:
        names = wheel.namelist()
        metadata = email.message_from_bytes(
            wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        )
        top_level = {name.split("/")[0] for name in names}
    assert top_level == {"rpcd", next(t for t in top_level if t.endswith(".dist-info"))}
    assert "rpcd/schemas/v1/connections.schema.json" in names  # the contract ships
    assert "rpcd/py.typed" in names
    # runtime dependencies unconditional; the test and import extras only under their marker
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requires = metadata.get_all("Requires-Dist") or []
    plain = {r for r in requires if "extra ==" not in r}
    assert len(plain) == len(project["dependencies"])
    for extra, packages in project["optional-dependencies"].items():
        marked = [r for r in requires if f'extra == "{extra}"' in r]
        assert len(marked) == len(packages), (extra, marked)
    assert not [r for r in plain if r.lower().startswith(("pytest", "hypothesis", "psycopg"))]


def test_the_sdist_has_the_package_and_not_the_venv(dist: Path) -> None:
    with tarfile.open(_one(dist, "rpcd-*.tar.gz")) as sdist:
        names = sdist.getnames()
    root = names[0].split("/")[0]
    assert f"{root}/pyproject.toml" in names and f"{root}/rpcd/cli.py" in names
    assert not [n for n in names if "/.venv/" in n or "/.git/" in n]


def test_the_wheel_in_a_fresh_venv_validates_the_example_tree(dist: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(_one(dist, "rpcd-*.whl")),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    for test_only in ("pytest", "hypothesis", "ruff", "mypy", "psycopg", "pymysql", "pre-commit"):
        assert f"\n{test_only}==" not in "\n" + listed, f"{test_only} was installed"
    tree = copy_example(tmp_path / "tree")
    run = subprocess.run(
        [str(env_dir / "bin" / "rpcd"), "validate", str(tree)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "valid: no problems found" in run.stdout
    # only rpcd was installed: no top-level examples package next to it
    probe = subprocess.run(
        [str(python), "-c", "import examples"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert probe.returncode != 0 and "No module named 'examples'" in probe.stderr
