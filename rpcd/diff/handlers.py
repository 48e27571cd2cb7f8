"""Which handler modules' code differs between the two sides of ``rpcd diff``.

A handler is ``module:function``; its code is the file ``module/as/path.py`` (or the package's
``__init__.py``), looked for beside the config root and, for a git revision, at the top of the
repository too (where ``PYTHONPATH`` usually points). A module whose file differs, appears or
goes away counts as changed. Bounded: only the modules the HEAD catalog names, two candidate
paths each, read with ``git cat-file`` or from the side's directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rpcd.diff.gitsource import GitSourceError, Side, _git, _repository

#: A handler module file larger than this is compared by size and a prefix only.
MAX_MODULE_BYTES = 4 * 1024 * 1024


def _candidates(module: str) -> list[str]:
    path = module.replace(".", "/")
    return [f"{path}.py", f"{path}/__init__.py"]


def _content(side: Side, rel: str, top: Path | None, prefix: str) -> bytes | None:
    if side.revision is None:
        path = side.root / rel
        try:
            with path.open("rb") as handle:
                return handle.read(MAX_MODULE_BYTES)
        except OSError:
            return None
    if top is None:
        return None
    for where in ([f"{prefix}/{rel}"] if prefix else []) + [rel]:
        try:
            return _git(top, "cat-file", "blob", f"{side.revision}:{where}")[:MAX_MODULE_BYTES]
        except GitSourceError:
            continue
    return None


def changed_modules(
    base: Side, head: Side, modules: Iterable[str], cwd: Path, root_in_repo: str | None
) -> frozenset[str]:
    """The modules among ``modules`` whose code differs between ``base`` and ``head``."""
    top: Path | None = None
    prefix = ""
    if base.revision is not None or head.revision is not None:
        try:
            top, here = _repository(cwd)
        except GitSourceError:
            return frozenset()
        prefix = (here if root_in_repo is None else root_in_repo).strip("/").strip(".")
    changed = set()
    for module in sorted(modules):
        for rel in _candidates(module):
            old = _content(base, rel, top, prefix)
            new = _content(head, rel, top, prefix)
            if old != new:
                changed.add(module)
                break
    return frozenset(changed)
