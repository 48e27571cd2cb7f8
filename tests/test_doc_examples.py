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
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tree_helpers import REPO

from rpcd.settings import Settings

#: Pages whose every ```sh block must run here, as written.
RUNNABLE_PAGES = ("docs/security.md", "docs/migrating-from-mahara.md")
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
