"""What a build leaves for the next one, and which files a rebuild must run the rules on.

A rebuild after one edit of a 10,000-file tree re-checks one file, but the cross-file rules
still have to answer for the whole catalog. Running them over 10,000 connections again costs
more than everything else; yet what they find about a connection depends only on:

- the ids every file declares (institutions, classes, peers) and the ids of broken parts,
- the institutions' secret scopes and endpoint hosts (rpcd.toml),
- the class models, and which files could not be read,
- the other instances of the connection's own class (duplicates, global, overlap).

So when the edited files declare the same institution ids and scopes and the same class models
as before, and break or lose the same parts, every finding about a connection in a file that is
not *involved* is the one the last build found. The involved files are the edited ones, every file
declaring anything but connections (few: rpcd.toml, class files, services), and, class by
class, every file holding an instance of a class that an involved file has an instance of
(until nothing is added). The rules run on a draft of those files only, which holds whole
classes and every non-connection entity; the other findings are kept.

``BuildState`` is that memory. It travels in the one cache a build returns and the next one
receives (``FileCache``), checked against the cache's results by identity before use.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rpcd.config.document import FileResult
from rpcd.config.findings import Finding
from rpcd.config.models import Institution
from rpcd.config.rules import Draft, parts_of
from rpcd.config.sources import FileKind, Listings, SourceFile

# Above this share of involved files, running the rules on everything costs about the same.
MAX_INVOLVED_SHARE = 0.25


@dataclass(slots=True)
class BuildState:
    """One build's files and cross-file results, in file order, for the next rebuild."""

    sources: list[SourceFile]
    results: list[FileResult]
    index: dict[str, int]  # rel → position in ``results``
    with_findings: list[int]  # positions of the files that have findings of their own
    anchors: set[int]  # files declaring something other than connections
    # class id → files holding its instances; worked out when first needed (a tree whose
    # every file declares a class never needs it)
    files_by_class: dict[str, frozenset[int]] | None
    broken: dict[str, set[str]]
    unreadable: dict[FileKind, list[str]]
    rule_findings: list[Finding]
    hash_lines: list[str]
    catalog: Any  # the Catalog (or None): catalog.py owns that type
    listings: Listings  # the folders discovery may skip listing next time


class FileCache(dict[str, FileResult]):
    """What a build leaves for the next one: each file's result by its path, and the state
    of the build that made them (``None`` for a cache assembled by hand)."""

    state: BuildState | None = None


def recall(cache: Mapping[str, FileResult]) -> BuildState | None:
    """The state of the build that returned ``cache``, if it still describes it exactly
    (same results, same objects, same order): a cache changed since cannot be trusted."""
    state = cache.state if isinstance(cache, FileCache) else None
    if state is None:
        return None
    results = state.results
    if len(cache) == len(results) and all(map(operator.is_, cache.values(), results)):
        return state
    return None


def new_state(
    sources: list[SourceFile],
    listings: Listings,
    results: list[FileResult],
    draft: Draft,
    rule_findings: list[Finding],
    catalog: Any,
) -> BuildState:
    """The state of a full build (every file went through ``Draft.from_files``)."""
    return BuildState(
        sources=sources,
        results=results,
        index={s.rel: i for i, s in enumerate(sources)},
        with_findings=[i for i, r in enumerate(results) if r.findings],
        anchors={i for i, result in enumerate(results) if _is_anchor(result)},
        files_by_class=None,
        broken=draft.broken,
        unreadable=draft.unreadable,
        rule_findings=rule_findings,
        hash_lines=[r.hash_line for r in results],
        catalog=catalog,
        listings=listings,
    )


def _files_by_class(state: BuildState) -> dict[str, frozenset[int]]:
    if state.files_by_class is None:
        by_class: dict[str, set[int]] = {}
        for i, result in enumerate(state.results):
            for class_id in _classes_in(result):
                found = by_class.get(class_id)
                if found is None:
                    by_class[class_id] = {i}
                else:
                    found.add(i)
        state.files_by_class = {k: frozenset(v) for k, v in by_class.items()}
    return state.files_by_class


def _is_anchor(result: FileResult) -> bool:
    parts = result.parts
    return result.source.kind is FileKind.SITE or (
        parts is not None
        and bool(parts.institutions or parts.classes or parts.services or parts.peers)
    )


def same_outline(old: FileResult, new: FileResult) -> bool:
    """Whether ``new`` leaves every finding about the connections of other, uninvolved files
    as ``old`` did: same institution ids and scopes, same class models, same broken parts,
    readable or not alike. (Its own connections and its services and peers may differ: they
    are re-checked.)"""
    if old.broken_ids != new.broken_ids or (old.model is None) != (new.model is None):
        return False
    if new.model is None:
        return True
    was, now = parts_of(old), parts_of(new)
    # The institutions' secret scopes too, not only their ids: they decide the findings
    # (rule secret-scope) about the connections in their folders.
    return [_scoped(x.value) for x in was.institutions] == [
        _scoped(x.value) for x in now.institutions
    ] and [x.value for x in was.classes] == [x.value for x in now.classes]


def _scoped(institution: Institution) -> tuple[object, ...]:
    """What of an institution decides findings about other files' connections."""
    return (institution.id, institution.secrets, institution.endpoint_hosts)


def involved(state: BuildState, changed: list[int], results: list[FileResult]) -> set[int] | None:
    """The files the rules must run on (see the module's docstring), or ``None`` when they are
    so many that running the rules on every file costs about the same.

    ``results`` are the new ones; the old results of the changed files count too (a connection
    that moved to another class leaves a class whose findings change)."""
    limit = MAX_INVOLVED_SHARE * len(results)
    files = set(state.anchors)
    files.update(changed)
    if len(files) > limit:  # e.g. every file declares a class: no need to look further
        return None
    pending: set[str] = set()
    for i in changed:
        pending.update(_classes_in(state.results[i]))
    for i in files:
        pending.update(_classes_in(results[i]))
    done: set[str] = set()
    by_class = _files_by_class(state)
    while pending:
        class_id = pending.pop()
        done.add(class_id)
        for i in by_class.get(class_id, ()):
            if i not in files:
                files.add(i)
                pending.update(c for c in _classes_in(results[i]) if c not in done)
        if len(files) > limit:
            return None
    return files


def _classes_in(result: FileResult) -> set[str]:
    parts = result.parts
    return {class_id for class_id, _ in parts.connections} if parts is not None else set()


def next_state(
    state: BuildState,
    sources: list[SourceFile],
    listings: Listings,
    results: list[FileResult],
    changed: list[int],
    draft: Draft,
    rule_findings: list[Finding],
    catalog: Any,
) -> BuildState:
    """The state after a rebuild that ran the rules on ``draft`` (the involved files only)."""
    anchors = set(state.anchors)
    with_findings = set(state.with_findings)
    hash_lines = list(state.hash_lines)
    for i in changed:
        result = results[i]
        anchors.discard(i)
        if _is_anchor(result):
            anchors.add(i)
        with_findings.discard(i)
        if result.findings:
            with_findings.add(i)
        hash_lines[i] = result.hash_line
    # Every class with an instance in the draft has all of its instances there.
    files_by_class = dict(_files_by_class(state))
    regrouped: dict[str, set[int]] = {}
    index = state.index
    for class_id, conn in draft.connections:
        regrouped.setdefault(class_id, set()).add(index[conn.origin.source.rel])
    for i in changed:
        for class_id in _classes_in(state.results[i]):
            files_by_class.pop(class_id, None)  # gone unless regrouped below
    for class_id, files in regrouped.items():
        files_by_class[class_id] = frozenset(files)
    return BuildState(
        sources=sources,
        results=results,
        index=index,
        with_findings=sorted(with_findings),
        anchors=anchors,
        files_by_class=files_by_class,
        broken=state.broken,
        unreadable=state.unreadable,
        rule_findings=rule_findings,
        hash_lines=hash_lines,
        catalog=catalog,
        listings=listings,
    )
