"""One config file through the first three stages: bytes → TOML → JSON Schema → models.

The result keeps whatever parts of the file are valid (a typo in one ``[[connection]]`` drops
that connection, not the file) so the cross-file rules still see the rest, and remembers the
ids declared by broken parts so that references to them are not reported a second time.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from rpcd.config import schema
from rpcd.config.findings import Finding
from rpcd.config.models import ID_PATTERN, MODELS
from rpcd.config.nesting import MAX_DEPTH, may_exceed, too_deep
from rpcd.config.parse import KeyIndex, Path_, decode_text, format_path, parse_toml
from rpcd.config.sources import DEFAULT_MAX_FILE_BYTES, SourceFile, read_bytes

_CLASS_ID = re.compile(ID_PATTERN)
# Arrays whose items are dropped one by one when broken: key path prefix → id key.
_ITEM_ARRAYS: dict[tuple[str, ...], str] = {
    ("connection",): "id",
    ("institution",): "id",
    ("peer",): "id",
    ("service", "method"): "name",
}


@dataclass
class FileResult:
    """What one file contributed: findings, the valid part as a model, the text for positions."""

    source: SourceFile
    digest: str = ""
    findings: list[Finding] = field(default_factory=list)
    model: BaseModel | None = None
    broken_ids: dict[str, set[str]] = field(default_factory=dict)
    text: str | None = None
    _index: KeyIndex | None = None
    # What this file adds to the cross-file draft, built once (rules.py); a rebuild that keeps
    # this result keeps them too, so it only rebuilds the parts of the files that changed.
    parts: Any = field(default=None, repr=False, compare=False)

    @property
    def hash_line(self) -> str:
        """This file's line in the catalog's content hash (a full build and a patched
        rebuild join the same lines, so both give the same hash)."""
        return f"{self.source.rel}\0{self.digest}\n"

    def locate(self, path: Path_) -> tuple[int | None, int | None]:
        if self.text is None:
            return None, None
        if self._index is None:
            self._index = KeyIndex(self.text)
        position = self._index.locate(path)
        return position if position else (None, None)

    def finding(self, rule: str, message: str, path: Path_, **kw: Any) -> Finding:
        line, column = self.locate(path)
        return Finding(rule, message, self.source.rel, line, column, format_path(path), **kw)


def check_file(source: SourceFile, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> FileResult:
    """All three stages of one file."""
    result, document = check_structure(source, max_bytes)
    return check_model(result, document)


def check_structure(
    source: SourceFile, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> tuple[FileResult, dict[str, Any] | None]:
    """Stages 1 and 2: the result so far, and the document (its broken parts pruned) that the
    models still have to check, or ``None`` when the file stopped before the models.

    Apart from ``check_model`` so that a worker process (``pool.py``) can send its output back
    as plain data: the model made here for a valid file stays in the worker.
    """
    result = FileResult(source)
    data = read_bytes(source, max_bytes)
    if isinstance(data, Finding):
        result.findings.append(data)
        return result, None
    result.digest = hashlib.sha256(data).hexdigest()
    text = decode_text(source.rel, data)
    if isinstance(text, Finding):
        result.findings.append(text)
        return result, None
    result.text = text
    document = parse_toml(source.rel, text)
    if isinstance(document, Finding):
        result.findings.append(document)
        return result, None
    deep = too_deep(document) if may_exceed(text) else None
    if deep is not None:
        # Before anything walks the document: every later stage recurses into it.
        result.findings.append(
            result.finding(
                "nesting-depth",
                f"`{format_path(deep[:6])}…` lies more than {MAX_DEPTH} tables and arrays deep "
                "(arrays, inline tables, dotted keys and [table] headers all count): no rpcd "
                "setting needs that; flatten the structure",
                deep,
            )
        )
        return result, None
    if not _check_version(result, document):
        return result, None
    # nan and inf can only come from the literals `nan` / `inf` (signed or not): skip the walk
    # over the whole document when the text has neither.
    if ("nan" in text or "inf" in text) and not _check_numbers(result, document, ()):
        return result, None
    result.model, problems = schema.check(source.kind, document)
    for problem in problems:
        result.findings.append(problem.to_finding(source.rel, result.locate(problem.path)))
    if problems:
        document = _prune(result, document, [p.path for p in problems])
    return result, document


def check_model(result: FileResult, document: dict[str, Any] | None) -> FileResult:
    """Stage 3: the typed model of what ``check_structure`` let through (made there already
    when the whole file was valid, unless a worker process checked it: ``pool.py``)."""
    if document is None or result.model is not None:
        return result
    try:
        result.model = MODELS[result.source.kind].model_validate(document)
    except ValidationError as exc:
        # The schema passed (or the broken parts were pruned) but the model refused: the two
        # stages disagree. Report it rather than hide it; tests keep this from happening.
        for error in exc.errors()[:5]:
            path = tuple(p for p in error["loc"] if isinstance(p, str | int))
            where = format_path(path) or "the document"
            result.findings.append(
                result.finding(
                    "model",
                    f"{where}: {error['msg']} (the JSON Schema accepted this but rpcd's "
                    "model did not: "
                    "a bug in rpcd, please report it with this file)",
                    path,
                )
            )
    return result


def _check_version(result: FileResult, document: dict[str, Any]) -> bool:
    supported = ", ".join(str(v) for v in schema.SUPPORTED_VERSIONS)
    if "version" not in document:
        empty = result.text is not None and not result.text.strip()
        what = "the file is empty" if empty else "the file has no `version`"
        result.findings.append(
            Finding(
                "missing-version",
                f"{what}: start it with `version = {supported}` (the file-format version)"
                + (", or delete the file" if empty else ""),
                result.source.rel,
                1,
                1,
            )
        )
        return False
    version = document["version"]
    if type(version) is float and version.is_integer():
        version = int(version)  # JSON Schema (the contract editors use) counts 1.0 as 1
    if type(version) is not int or version not in schema.SUPPORTED_VERSIONS:
        result.findings.append(
            result.finding(
                "unknown-version",
                f"version = {schema.show(version, ())} is not a format this build reads "
                f"(it reads version {supported}): "
                + (
                    f"write the version as an integer, `version = {supported}`"
                    if isinstance(version, str | float)
                    else f"upgrade rpcd, or write `version = {supported}`"
                ),
                ("version",),
            )
        )
        return False
    return True


def _check_numbers(result: FileResult, value: Any, path: Path_) -> bool:
    """nan and inf are TOML floats, but no setting means them; JSON Schema cannot say so."""
    if isinstance(value, float) and not math.isfinite(value):
        result.findings.append(
            result.finding(
                "invalid-value", f"`{format_path(path)}` is {value}: use a finite number", path
            )
        )
        return False
    if isinstance(value, dict):
        return all([_check_numbers(result, v, (*path, k)) for k, v in value.items()])
    if isinstance(value, list):
        return all([_check_numbers(result, v, (*path, i)) for i, v in enumerate(value)])
    return True


def _prune(result: FileResult, document: dict[str, Any], paths: list[Path_]) -> dict[str, Any]:
    """A copy of ``document`` without the broken parts; their ids go to ``broken_ids``.

    Only the containers that change are copied (the document of a 100-connection file with one
    typo is not deep-copied for it); ``document`` itself is never modified.
    """
    document = dict(document)
    drop_items: dict[tuple[str, ...], set[int]] = {}
    drop_keys: set[str] = set()
    for path in paths:
        for prefix in _ITEM_ARRAYS:
            n = len(prefix)
            index = path[n] if len(path) > n else None
            if tuple(path[:n]) == prefix and isinstance(index, int):
                drop_items.setdefault(prefix, set()).add(index)
                break
        else:
            if path and isinstance(path[0], str):
                drop_keys.add(path[0])
    for prefix, indexes in drop_items.items():
        parent: Any = document
        for part in prefix[:-1]:
            child = parent.get(part) if isinstance(parent, dict) else None
            if isinstance(child, dict):
                child = parent[part] = dict(child)  # copied: its item list is replaced below
            parent = child
        items = parent.get(prefix[-1]) if isinstance(parent, dict) else None
        if not isinstance(items, list) or not isinstance(parent, dict):
            continue
        for i in indexes:
            item = items[i] if i < len(items) else None
            _remember(
                result,
                prefix[-1],
                item.get(_ITEM_ARRAYS[prefix]) if isinstance(item, dict) else None,
            )
        parent[prefix[-1]] = [item for i, item in enumerate(items) if i not in indexes]
    if "class" in drop_keys:
        broken_class = document.get("class")
        class_id = broken_class.get("id") if isinstance(broken_class, dict) else None
        found = document.get("connection")
        conns: list[Any] = list(found) if isinstance(found, list) else []
        if isinstance(found, list):
            document["connection"] = conns
        for i, item in enumerate(conns):
            if isinstance(item, dict) and "class" not in item:
                if isinstance(class_id, str) and _CLASS_ID.match(class_id):
                    # keep the instances, attached to the broken class (a copy of the item)
                    conns[i] = {**item, "class": class_id}
                else:
                    drop_keys.add("connection")
    for key in drop_keys:
        removed = document.pop(key, None)
        if key in ("class", "service"):
            ident = (
                removed.get("id" if key == "class" else "name")
                if isinstance(removed, dict)
                else None
            )
            _remember(result, key, ident)
        if key in ("connection", "institution", "peer"):
            for item in removed if isinstance(removed, list) else [None]:
                _remember(result, key, item.get("id") if isinstance(item, dict) else None)
    document.setdefault("version", 1)
    return document


UNKNOWN_ID = "*"


def _remember(result: FileResult, kind: str, ident: Any) -> None:
    """Note the id of a dropped part, or ``UNKNOWN_ID`` when it has none that can be read: then
    references of that kind cannot be checked (anything might have been meant)."""
    result.broken_ids.setdefault(kind, set()).add(ident if isinstance(ident, str) else UNKNOWN_ID)
