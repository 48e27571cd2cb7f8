"""How deep a parsed document nests, found without recursion.

TOML lets a file nest tables and arrays a thousand levels deep (tomli's own limit), through
``[[[…]]]``, ``{a={b=…}}``, dotted keys or table headers. Every stage after the parser walks
values recursively (pydantic, jsonschema, the rules, ``rpcd show``,
``rpcd diff``), and each has its own, lower, recursion limit. So right after parsing, a
document deeper than ``MAX_DEPTH`` is refused with a finding, and no later stage ever sees
one. rpcd's own files need at most 8 levels; like libxml2's and CPython's parsers, the limit
is fixed, far above any real use and far below what a walk can take.
"""

from __future__ import annotations

from typing import Any

from rpcd.config.parse import Path_

__all__ = ["MAX_DEPTH", "may_exceed", "too_deep"]

#: Tables and arrays inside one another, below the document itself (``a = [[1]]`` is 2 deep).
MAX_DEPTH = 32


def _children(value: Any) -> list[tuple[str | int, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    return list(enumerate(value))


def depth_exceeded(document: dict[str, Any], limit: int = MAX_DEPTH) -> bool:
    """Whether a table or array of ``document`` lies more than ``limit`` levels down."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def may_exceed(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the document of ``text`` can nest more than ``limit`` deep at all: each level
    is opened by a ``[`` (array, header), a ``{`` (inline table) or a ``.`` (dotted key or
    header), so a text with no more of them than ``limit`` cannot (most files: no walk)."""
    return text.count("[") + text.count("{") + text.count(".") > limit


def too_deep(document: dict[str, Any], limit: int = MAX_DEPTH) -> Path_ | None:
    """The key path of the first (in document order) table or array more than ``limit``
    levels down, or None. Visits each value at most once, keeping no more than one pending
    list of children per level."""
    if not depth_exceeded(document, limit):
        return None  # the usual case: no paths built
    path: list[str | int] = []
    pending: list[list[tuple[str | int, Any]]] = [_children(document)[::-1]]
    while pending:
        level = pending[-1]
        if not level:
            pending.pop()
            if path:
                path.pop()
            continue
        key, child = level.pop()
        if isinstance(child, dict | list):
            path.append(key)
            if len(path) > limit:
                return tuple(path)
            pending.append(_children(child)[::-1])
    return None
