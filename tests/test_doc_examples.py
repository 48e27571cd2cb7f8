"""The commands in the docs run as written, and every limit the daemon enforces is documented.

A ```sh block is run with bash from the repository root (``.venv/bin/`` stands for this
interpreter's own bin directory, so the test also runs outside ``make test``'s venv); it must
exit 0. A ```text block right after it (nothing between them but blank lines or the word
"prints") is the output the page promises: each of its non-empty lines must appear in what the
command printed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tree_helpers import REPO, copy_example

from rpcd.settings import Settings

#: Pages whose every ```sh block must run here, as written.
RUNNABLE_PAGES = ("docs/security.md", "docs/outbound.md", "docs/migrating-from-mahara.md")
#: Pages whose blocks run in a scratch folder of their own, one after another, with what the
#: page says the reader has: here a Mahara database (a real PostgreSQL server, in MAHARA_DSN).
SCRATCH_PAGES = {"docs/migrating-from-mahara.md": "postgresql"}
BIN = Path(sys.executable).parent
PRINTS = {"", "prints", "prints:"}


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    command: str
    expected: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    info: str
    body: str
    before: str  # the page's text between the previous block and this one


def _blocks(text: str) -> list[Block]:
    """Every fenced block of a page, in page order."""
    found: list[Block] = []
    lines = text.splitlines()
    index, prose = 0, []
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped.startswith("```"):
            start, body = index + 1, []
            index += 1
            while index < len(lines) and lines[index].strip() != "```":
                body.append(lines[index])
                index += 1
            found.append(Block(start, stripped[3:].strip(), "\n".join(body), " ".join(prose)))
            prose = []
        else:
            prose.append(stripped)
        index += 1
    return found


def _examples(page: str) -> list[Example]:
    blocks = _blocks((REPO / page).read_text(encoding="utf-8"))
    examples = []
    for block, after in zip(blocks, [*blocks[1:], None], strict=True):
        if block.info != "sh":
            continue
        expected: tuple[str, ...] = ()
        if after is not None and after.info == "text" and after.before.strip() in PRINTS:
            expected = tuple(s.strip() for s in after.body.splitlines() if s.strip())
        examples.append(Example(page, block.line, block.body.strip(), expected))
    return examples


EXAMPLES = [example for page in RUNNABLE_PAGES for example in _examples(page)]


def test_the_pages_have_examples() -> None:
    assert EXAMPLES, "no ```sh block found: the extraction is broken"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One scratch folder per page of SCRATCH_PAGES, shared by its blocks in page order."""
    return {page: tmp_path_factory.mktemp("doc") for page in SCRATCH_PAGES}


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_example_runs_as_written(
    example: Example, scratch: dict[str, Path], request: pytest.FixtureRequest
) -> None:
    command = example.command.replace(".venv/bin/", f"{BIN}/")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cwd = REPO
    if example.page in SCRATCH_PAGES:
        server = request.getfixturevalue("mahara_servers")(SCRATCH_PAGES[example.page])
        env["MAHARA_DSN"] = server.dsn
        cwd = scratch[example.page]
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, f"{example} failed:\n{done.stdout}\n{done.stderr}"
    for line in example.expected:
        assert line in done.stdout, f"{example}: {line!r} not in the output:\n{done.stdout}"


def _documented() -> str:
    return "\n".join(
        (REPO / "docs" / name).read_text(encoding="utf-8")
        for name in ("security.md", "operations.md")
    )


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_daemon_setting_is_documented(name: str) -> None:
    page = _documented()
    assert re.search(rf"\b(RPCD_{name.upper()}|{name})\b", page), (
        f"setting {name} (RPCD_{name.upper()}) is named in neither docs/security.md "
        "nor docs/operations.md"
    )


DOC_PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
FILE_NAME = re.compile(
    r"(?<![\w/.~-])(?:rpcd|bench|tests|contrib|schemas)/[A-Za-z0-9_./-]*[A-Za-z0-9_](?![\w<*{])"
)
DOTTED_NAME = re.compile(r"`(rpcd(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.name)
def test_every_file_a_page_names_exists(page: Path) -> None:
    """A doc that names a module or file after it moved sends a reader nowhere."""
    text = page.read_text(encoding="utf-8")
    missing = sorted({n for n in FILE_NAME.findall(text) if not (REPO / n.rstrip(".")).exists()})
    assert not missing, f"{page.name} names files that do not exist: {missing}"


def _logger_names() -> set[str]:
    """Names given to ``logging.getLogger`` in rpcd (``rpcd.access``): dotted, not modules."""
    found: set[str] = set()
    for path in (REPO / "rpcd").rglob("*.py"):
        found.update(re.findall(r'getLogger\("([\w.]+)"\)', path.read_text(encoding="utf-8")))
    return found


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.name)
def test_every_dotted_name_a_page_gives_resolves(page: Path) -> None:
    import importlib

    wrong = []
    names = set(DOTTED_NAME.findall(page.read_text(encoding="utf-8"))) - {"rpcd.toml"}
    names -= _logger_names()
    for dotted in sorted(names):
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                target: object = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            try:
                for attribute in parts[cut:]:
                    target = getattr(target, attribute)
            except AttributeError:
                wrong.append(dotted)
            break
    assert not wrong, f"{page.name} names what does not exist: {wrong}"


# --- docs/serving.md: every example runs as printed against a real daemon -------------------
#
# Its ```sh, ```python, ```php and ```js blocks call the daemon `make run` starts
# (127.0.0.1:8080); here a daemon on a free port serves the example tree plus the page's own
# files (a ```toml or ```python block whose first line is ``# file: <path in the tree>``),
# and 127.0.0.1:8080 in each example stands for its address. A language whose interpreter is
# missing (php-cli: .ci/install-test-tools) skips with the reason.

SERVING_PAGE = "docs/serving.md"
FILE_HEADER = "# file: "
#: How each language's example runs: the interpreter, and the suffix of the file it reads.
RUNNERS: dict[str, tuple[str, str]] = {
    "sh": ("bash", ".sh"),
    "python": (sys.executable, ".py"),
    "php": ("php", ".php"),
    "js": ("node", ".mjs"),
}


@dataclass(frozen=True)
class LanguageExample(Example):
    language: str = "sh"


def _serving_page() -> tuple[dict[str, str], list[LanguageExample]]:
    """The page's files (path -> text) and its runnable examples, in page order."""
    blocks = _blocks((REPO / SERVING_PAGE).read_text(encoding="utf-8"))
    files: dict[str, str] = {}
    examples: list[LanguageExample] = []
    for block, after in zip(blocks, [*blocks[1:], None], strict=True):
        first = block.body.splitlines()[0] if block.body else ""
        if first.startswith(FILE_HEADER):
            files[first[len(FILE_HEADER) :].strip()] = block.body + "\n"
            continue
        if block.info not in RUNNERS:
            continue
        expected: tuple[str, ...] = ()
        if after is not None and after.info == "text" and after.before.strip() in PRINTS:
            expected = tuple(s.strip() for s in after.body.splitlines() if s.strip())
        examples.append(
            LanguageExample(SERVING_PAGE, block.line, block.body.strip(), expected, block.info)
        )
    return files, examples


SERVING_FILES, SERVING_EXAMPLES = _serving_page()


PACKAGE_HEADER = "# mysite-handlers/pyproject.toml"


def _install_handler_package(base: Path) -> Path:
    """The page's handler package (its pyproject.toml and the module file) built and
    installed by pip into a directory of its own; that directory."""
    blocks = _blocks((REPO / SERVING_PAGE).read_text(encoding="utf-8"))
    (pyproject,) = [b.body for b in blocks if b.body.startswith(PACKAGE_HEADER)]
    package = base / "mysite-handlers"
    package.mkdir()
    (package / "pyproject.toml").write_text(pyproject + "\n", encoding="utf-8")
    (package / "mysite_handlers.py").write_text(SERVING_FILES["mysite_handlers.py"])
    site = base / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps"]
    done = subprocess.run(
        [*pip, "--target", str(site), str(package)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"pip could not install the page's package:\n{done.stderr}"
    assert (site / "mysite_handlers.py").exists()
    assert list(site.glob("mysite_handlers-1.0.0.dist-info"))
    return site


@pytest.fixture(scope="module")
def serving_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A daemon on the example tree plus the page's services file, importing the handlers
    from the page's package as pip installed it; its host:port."""
    from server_helpers import running

    base = tmp_path_factory.mktemp("serving-doc")
    root = copy_example(base / "tree")
    for rel, text in SERVING_FILES.items():
        if rel.endswith(".toml"):
            (root / rel).write_text(text, encoding="utf-8")
    site = _install_handler_package(base)
    env = {"PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    with running(root, base / "rpcd.log", env) as daemon:
        yield daemon.url.removeprefix("http://")


def test_the_serving_page_has_examples_in_every_language() -> None:
    assert {e.language for e in SERVING_EXAMPLES} == set(RUNNERS)
    assert {"services.d/site.toml", "mysite_handlers.py"} <= set(SERVING_FILES)


def test_the_serving_pages_toml_blocks_parse() -> None:
    """The files it shows but cannot run (a package's pyproject.toml) are valid TOML at least,
    and the package installs the module the services file names."""
    import tomllib

    blocks = _blocks((REPO / SERVING_PAGE).read_text(encoding="utf-8"))
    tomls = [tomllib.loads(b.body) for b in blocks if b.info == "toml"]
    assert any(t.get("tool", {}).get("setuptools", {}).get("py-modules") for t in tomls)
    packaged = {
        m for t in tomls for m in t.get("tool", {}).get("setuptools", {}).get("py-modules", [])
    }
    assert "mysite_handlers" in packaged


@pytest.mark.parametrize("example", SERVING_EXAMPLES, ids=str)
def test_serving_example_runs_as_written(
    example: LanguageExample, serving_daemon: str, tmp_path: Path
) -> None:
    interpreter, suffix = RUNNERS[example.language]
    if shutil.which(interpreter) is None:
        pytest.skip(f"{interpreter} is not installed (.ci/install-test-tools installs it)")
    code = example.command.replace("127.0.0.1:8080", serving_daemon)
    script = tmp_path / f"example{suffix}"
    script.write_text(code + "\n", encoding="utf-8")
    args = [interpreter, str(script)]
    if example.language == "sh":
        args = ["bash", "-euo", "pipefail", str(script)]
    done = subprocess.run(
        args, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{example} failed:\n{done.stdout}\n{done.stderr}"
    for line in example.expected:
        assert line in done.stdout, f"{example}: {line!r} not in the output:\n{done.stdout}"
