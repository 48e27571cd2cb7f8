"""Render a Diff: text for a terminal, markdown for a pull-request comment, versioned JSON.

Every value goes through one formatter, so secret fields look the same everywhere: a reference
as ``env:NAME``, a hash never. Values from config files are escaped (quotes show whitespace,
control characters and terminal escapes become ``\\uXXXX``) so a file cannot restyle the review.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rpcd.diff.compute import (
    KINDS,
    Action,
    Diff,
    EntityChange,
    FieldChange,
    Json,
    RouteChange,
    Secret,
)

DIFF_FORMAT_VERSION = "1.3"
MARKDOWN_MARKER = "<!-- rpcd-diff -->"  # lets CI find and update its own earlier comment
MARKDOWN_LIMIT = 60_000  # GitHub refuses comments over 65,536 characters

TITLES = {
    "institution": "Institutions",
    "class": "Classes",
    "connection": "Connections",
    "service": "Services",
    "method": "Methods",
    "peer": "Peers",
    "proxy": "Site proxy (rpcd.toml)",
}
SIGN = {Action.ADDED: "+", Action.REMOVED: "-", Action.CHANGED: "~", Action.RENAMED: ">"}
EMOJI = {
    Action.ADDED: "➕",  # noqa: RUF001
    Action.REMOVED: "➖",  # noqa: RUF001
    Action.CHANGED: "✏️",
    Action.RENAMED: "🔀",
}


@dataclass(frozen=True, slots=True)
class SideInfo:
    """How a side is named in a report."""

    label: str
    revision: str | None = None
    content_hash: str | None = None


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def show(field: FieldChange, value: Json) -> str:
    """One value as a reviewer sees it: JSON-quoted, a bare secret reference, or a withheld hash."""
    if value is None:
        return "(unset)"
    if field.secret is Secret.HASH:
        return "(hash, not shown)"
    if field.secret is Secret.REFERENCE:
        return _printable(str(value))
    return _printable(json.dumps(value, ensure_ascii=False))


def _route(ids: tuple[str, ...]) -> str:
    return ", ".join(ids) if ids else "(none)"


def _caller(row: RouteChange) -> str:
    who = "+".join(row.institutions)
    return (
        f"{who} (peers: {', '.join(row.peers)})" if len(row.institutions) > 1 and row.peers else who
    )


def summary_line(diff: Diff) -> str:
    totals = diff.totals()
    parts = [f"{totals[a.value]} {a.value}" for a in Action if a is not Action.RENAMED]
    if totals[Action.RENAMED.value]:
        parts.insert(3, f"{totals[Action.RENAMED.value]} renamed")
    parts.append(f"{len(diff.routing)} routing change{'s' * (len(diff.routing) != 1)}")
    if diff.master_switch is not None:
        parts.append("master switch flipped")
    return ", ".join(parts)


def _switch_text(old: bool, new: bool) -> str:
    effect = (
        "every client connection is now disabled"
        if not new
        else "client connections are enabled again"
    )
    return f"connections.enabled: {json.dumps(old)} → {json.dumps(new)} ({effect})"


# --- text -------------------------------------------------------------------------------------


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text


_ACTION_COLOR = {
    Action.ADDED: "32",
    Action.REMOVED: "31",
    Action.CHANGED: "33",
    Action.RENAMED: "36",
}


def _mark(change: EntityChange) -> str:
    was = f" (renamed from {change.renamed_from})" if change.renamed_from is not None else ""
    return _printable(change.id + was)


def _scope_text(field: FieldChange, style: _Style) -> str:
    """The secret-scope flag of a field, on its own line under it."""
    if field.scope is None:
        return ""
    return "\n        " + style("31;1", "!! secret scope: " + _printable(field.scope))


def _field_text(field: FieldChange, action: Action, style: _Style) -> str:
    name = _printable(field.field)
    if action is Action.ADDED:
        return f"      {name}: {show(field, field.new)}" + _scope_text(field, style)
    if field.note == "credential rotated":
        return f"      {name}: {style('35;1', 'credential rotated')}"
    line = f"      {name}: {show(field, field.old)} → {show(field, field.new)}"
    line += f"  {style('35;1', '(' + field.note + ')')}" if field.note else ""
    return line + _scope_text(field, style)


def render_text(diff: Diff, base: SideInfo, head: SideInfo, *, color: bool = False) -> str:
    style = _Style(color)
    lines = [style("1", f"rpcd diff {_printable(base.label)} → {_printable(head.label)}")]
    if diff.institution is not None:
        lines.append(f"(only what concerns institution {diff.institution})")
    if diff.empty:
        lines.append("No changes.")
        return "\n".join(lines) + "\n"
    if diff.master_switch is not None:
        lines += [
            "",
            style("1", "Master switch:"),
            "  " + style("35;1", _switch_text(*diff.master_switch)),
        ]
    for kind in KINDS:
        changes = [c for c in diff.changes if c.kind == kind]
        if not changes:
            continue
        lines += ["", style("1", f"{TITLES[kind]}:")]
        for change in changes:
            mark = f"  {SIGN[change.action]} {_mark(change)}"
            lines.append(style(_ACTION_COLOR[change.action], mark))
            lines += [_field_text(f, change.action, style) for f in change.fields]
    if diff.routing:
        lines += [
            "",
            style("1", "Effective routing (class, for caller: connections tried, in order):"),
        ]
        for row in diff.routing:
            before, after = style("31", _route(row.before)), style("32", _route(row.after))
            lines.append(f"  {row.class_id}, for {_caller(row)}: {before} → {after}")
    if diff.steps:
        lines += ["", style("1", "Next steps (what merging this needs):")]
        lines += [f"  - {_printable(step.text)}" for step in diff.steps]
    lines += ["", style("1", f"Summary: {summary_line(diff)}.")]
    return "\n".join(lines) + "\n"


# --- markdown ---------------------------------------------------------------------------------


def code(text: str) -> str:
    """An inline code span safe inside a GFM table cell (pipes escaped, backticks fenced)."""
    text = _printable(text)
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in _backtick_runs(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def _backtick_runs(text: str) -> list[str]:
    return "".join(c if c == "`" else " " for c in text).split()


def _md_value(field: FieldChange, value: Json) -> str:
    return "" if value is None else code(show(field, value))


def _md_text(text: str) -> str:
    """Plain text safe in a table cell: printable, pipes escaped, no markup of its own."""
    plain = _printable(text).replace("|", chr(92) + "|")
    for mark in "`*_<>[]":
        plain = plain.replace(mark, chr(92) + mark)
    return plain


def _md_entities(kind: str, changes: list[EntityChange]) -> list[str]:
    lines = [
        f"#### {TITLES[kind]}",
        "",
        "| | id | field | before | after |",
        "| --- | --- | --- | --- | --- |",
    ]
    for change in changes:
        shown = code(change.id) + (
            f" (from {code(change.renamed_from)})" if change.renamed_from is not None else ""
        )
        head = f"| {EMOJI[change.action]} {change.action.value} | {shown} |"
        if not change.fields:
            lines.append(f"{head} | | |")
        for i, field in enumerate(change.fields):
            if field.note == "credential rotated":
                before, after = "", "**credential rotated**"
            else:
                before = _md_value(field, field.old)
                after = _md_value(field, field.new) + (f" **({field.note})**" if field.note else "")
                if field.scope is not None:
                    after += f" ⚠️ **secret scope:** {_md_text(field.scope)}"
            lines.append(
                f"{head if i == 0 else '| | |'} {code(field.field)} | {before} | {after} |"
            )
    return [*lines, ""]


def render_markdown(diff: Diff, base: SideInfo, head: SideInfo) -> str:
    lines = [MARKDOWN_MARKER, f"### rpcd diff: {code(base.label)} → {code(head.label)}", ""]
    if diff.institution is not None:
        lines += [f"Only what concerns institution {code(diff.institution)}.", ""]
    if diff.empty:
        lines.append("**No changes.**")
        return "\n".join(lines) + "\n"
    lines += [
        f"**{summary_line(diff)}**",
        "",
        "| kind | added | removed | changed |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind, row in diff.counts().items():
        if any(row.values()):
            lines.append(
                f"| {TITLES[kind].lower()} | {row['added']} | {row['removed']} | {row['changed']} |"
            )
    lines.append("")
    if diff.master_switch is not None:
        lines += ["#### ⚠️ Master switch", "", code(_switch_text(*diff.master_switch)), ""]
    for kind in KINDS:
        changes = [c for c in diff.changes if c.kind == kind]
        if changes:
            lines += _md_entities(kind, changes)
    if diff.routing:
        lines += [
            "#### Effective routing",
            "",
            "Connections tried, in order, by a caller of the class acting for these institutions.",
            "",
            "| class | institutions | peers | before | after |",
            "| --- | --- | --- | --- | --- |",
        ]
        for route in diff.routing:
            cells = [
                code(route.class_id),
                ", ".join(code(i) for i in route.institutions),
                ", ".join(code(p) for p in route.peers) if len(route.institutions) > 1 else "",
                ", ".join(code(c) for c in route.before) or "*(none)*",
                ", ".join(code(c) for c in route.after) or "*(none)*",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if diff.steps:
        lines += ["#### Next steps", ""]
        lines += [f"- {step.text}" for step in diff.steps]  # names here are ids: no markup
        lines.append("")
    return _truncate("\n".join(lines) + "\n")


def _truncate(text: str) -> str:
    if len(text) <= MARKDOWN_LIMIT:
        return text
    cut = text.rfind("\n", 0, MARKDOWN_LIMIT - 200)
    return (
        text[:cut] + "\n\n… truncated: run `rpcd diff` locally, or `--format json`, for the rest.\n"
    )


# --- json -------------------------------------------------------------------------------------


def _side(info: SideInfo) -> dict[str, Any]:
    return {"label": info.label, "revision": info.revision, "content_hash": info.content_hash}


def _field_json(field: FieldChange) -> dict[str, Any]:
    return {
        "field": field.field,
        "old": field.old,
        "new": field.new,
        "secret": None if field.secret is None else field.secret.value,
        "note": field.note,
        "scope": field.scope,
    }


def diff_document(diff: Diff, base: SideInfo, head: SideInfo) -> dict[str, Any]:
    """The JSON document (schemas/diff.schema.json); ``format_version`` changes on any break."""
    totals = diff.totals()
    return {
        "format_version": DIFF_FORMAT_VERSION,
        "base": _side(base),
        "head": _side(head),
        "institution": diff.institution,
        "changed": not diff.empty,
        "summary": {
            **totals,
            "routing": len(diff.routing),
            "master_switch": diff.master_switch is not None,
        },
        "counts": diff.counts(),
        "master_switch": None
        if diff.master_switch is None
        else dict(zip(("old", "new"), diff.master_switch, strict=True)),
        "changes": [
            {
                "kind": c.kind,
                "id": c.id,
                "action": c.action.value,
                "renamed_from": c.renamed_from,
                "fields": [_field_json(f) for f in c.fields],
            }
            for c in diff.changes
        ],
        "next_steps": [
            {"need": step.need.value, "subject": step.subject, "text": step.text}
            for step in diff.steps
        ],
        "routing": [
            {
                "class": r.class_id,
                "institutions": list(r.institutions),
                "peers": list(r.peers),
                "before": list(r.before),
                "after": list(r.after),
            }
            for r in diff.routing
        ],
    }


def render_json(diff: Diff, base: SideInfo, head: SideInfo) -> str:
    return json.dumps(diff_document(diff, base, head), indent=2, ensure_ascii=False) + "\n"


FORMATS: tuple[str, ...] = ("text", "markdown", "json")
