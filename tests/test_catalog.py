"""The catalog: defaults filled in, immutable, a content hash, and incremental rebuilds.

An incremental rebuild (``build(root, previous=result.cache)``) must give exactly what a cold
build gives — same catalog, same findings — whatever happened to the files in between.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tree_helpers import copy_example

from rpcd.config import BuildResult, Catalog, build, incremental

SITE = """\
version = 1
[[institution]]
id = "a"
name = "A"
[[institution]]
id = "b"
name = "B"
[[institution]]
id = "c"
name = "C"
"""

CONNECTIONS = """\
version = 1

[class]
id = "app_rest"
plugin = "app"
name = "REST"
function_param = "wsfunction"

[[connection]]
id = "plain"
institutions = ["a"]
auth = "token"
endpoint = "https://a.example/rest"
credentials = { token = { env = "A" } }

[[connection]]
id = "header"
institutions = ["b"]
priority = 2
auth = "token"
token_header = "Authorization"
endpoint = "https://b.example/rest"
credentials = { token = { env = "B" } }

[[connection]]
id = "basic"
institutions = ["c"]
priority = 2
auth = "userpass"
payload = "json"
http_method = "POST"
endpoint = "https://c.example/rest"
credentials = { username = { env = "U" }, password = { env = "P" } }
"""

OTHER = """\
version = 1

[class]
id = "app_soap"
plugin = "app"
name = "SOAP"

[[connection]]
id = "soap"
institutions = ["a"]
type = "SOAP"
auth = "wsse"
endpoint = "https://s.example/soap"
credentials = { username = { env = "U" }, password = { file = "/run/p" } }

[[connection]]
id = "soap-token"
institutions = ["b"]
type = "SOAP"
auth = "token"
token_param = "key"
endpoint = "https://s.example/soap"
credentials = { token = { credential = "t" } }

[[connection]]
id = "xmlrpc"
class = "app_xml"
global = true
type = "XML-RPC"
auth = "cert"
endpoint = "https://x.example/xmlrpc"
credentials = { certificate = { file = "/c" }, private_key = { file = "/k" } }

[[connection]]
id = "text"
class = "app_wsse"
global = true
type = "SOAP"
auth = "wsse"
wsse_password_type = "text"
endpoint = "https://s.example/soap"
credentials = { username = { env = "U" }, password = { env = "P" } }
"""

CLASSES = """\
version = 1
[class]
id = "app_xml"
plugin = "app"
name = "XML-RPC"
"""

WSSE_CLASS = """\
version = 1
[class]
id = "app_wsse"
plugin = "app"
name = "WSSE text"
"""


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def small(tmp_path: Path) -> Path:
    root = tmp_path / "small"
    write(root, "rpcd.toml", SITE)
    write(root, "connections.d/rest.toml", CONNECTIONS)
    write(root, "connections.d/other.toml", OTHER)
    write(root, "connections.d/xml.toml", CLASSES)
    write(root, "connections.d/wsse.toml", WSSE_CLASS)
    (root / "services.d").mkdir()
    return root


def valid(root: Path) -> Catalog:
    result = build(root)
    assert result.report.valid, [f.as_text() for f in result.report]
    assert result.catalog is not None
    return result.catalog


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_are_filled_in(small: Path) -> None:
    conns = valid(small).connections
    plain = conns["app_rest/plain"]
    assert (
        plain.type,
        plain.payload,
        plain.http_method,
        plain.token_param,
        plain.token_header,
    ) == (
        "REST",
        "url",
        "GET",
        "wstoken",
        None,
    )
    assert (plain.enabled, plain.priority, plain.timeout, plain.fatal, plain.is_global) == (
        False,
        1,
        30.0,
        False,
        False,
    )
    assert plain.wsse_password_type is None
    assert plain.function_param == "wsfunction"
    assert plain.parameters == {} and plain.config == {}
    assert str(plain.credentials["token"]) == "env:A"


def test_token_header_replaces_token_param(small: Path) -> None:
    header = valid(small).connections["app_rest/header"]
    assert (header.token_param, header.token_header) == (None, "Authorization")


def test_payload_default_per_type_and_explicit_values_kept(small: Path) -> None:
    conns = valid(small).connections
    assert conns["app_soap/soap"].payload == "soap"
    assert conns["app_xml/xmlrpc"].payload == "xml"
    assert conns["app_rest/basic"].payload == "json"
    assert conns["app_rest/basic"].http_method == "POST"
    assert conns["app_rest/basic"].token_param is None  # not token auth


def test_wsse_digest_by_default_text_when_asked(small: Path) -> None:
    conns = valid(small).connections
    assert conns["app_soap/soap"].wsse_password_type == "digest"
    assert conns["app_wsse/text"].wsse_password_type == "text"
    assert conns["app_soap/soap-token"].wsse_password_type is None
    assert conns["app_soap/soap-token"].token_param == "key"


def test_class_of_a_connection_defaults_to_the_files_class(small: Path) -> None:
    conns = valid(small).connections
    assert conns["app_soap/soap"].class_id == "app_soap"
    assert conns["app_xml/xmlrpc"].class_id == "app_xml"
    assert conns["app_xml/xmlrpc"].source == "connections.d/other.toml"


def test_instances_in_priority_then_id_order(small: Path) -> None:
    catalog = valid(small)
    assert [c.id for c in catalog.instances("app_rest")] == ["plain", "basic", "header"]
    assert catalog.instances("no_such_class") == []
    listed = catalog.instances("app_rest")
    listed.clear()  # the caller's list, not the catalog's index
    assert len(catalog.instances("app_rest")) == 3


def test_example_tree_resolves(tmp_path: Path) -> None:
    catalog = valid(copy_example(tmp_path / "tree"))
    moodle = catalog.connections["moodle_users/uni-a"]
    assert (moodle.token_param, moodle.http_method, moodle.payload) == ("wstoken", "POST", "url")
    for class_id in catalog.classes:
        assert all(c.class_id == class_id for c in catalog.instances(class_id))
    assert sum(len(catalog.instances(c)) for c in catalog.classes) == len(catalog.connections)


# --- immutability -----------------------------------------------------------------------------


def test_catalog_is_immutable(small: Path) -> None:
    catalog = valid(small)
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.connections_enabled = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        catalog.connections["x/y"] = catalog.connections["app_rest/plain"]  # type: ignore[index]
    with pytest.raises(TypeError):
        del catalog.classes["app_rest"]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="frozen"):
        catalog.connections["app_rest/plain"].enabled = True


# --- content hash -----------------------------------------------------------------------------


def test_content_hash_is_stable_and_follows_the_bytes(small: Path) -> None:
    first = valid(small).content_hash
    assert valid(small).content_hash == first
    path = small / "connections.d" / "rest.toml"
    original = path.read_text(encoding="utf-8")
    path.write_text(original + "# a comment changes the bytes\n", encoding="utf-8")
    changed = valid(small).content_hash
    assert changed != first
    path.write_text(original, encoding="utf-8")
    assert valid(small).content_hash == first


def test_content_hash_changes_when_a_file_is_renamed(small: Path) -> None:
    first = valid(small).content_hash
    (small / "connections.d" / "xml.toml").rename(small / "connections.d" / "xml2.toml")
    assert valid(small).content_hash != first


# --- incremental rebuilds ---------------------------------------------------------------------


@pytest.fixture(params=["default", "rules-on-involved-files-always"])
def share(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebuild tests run twice: as configured (on the small example tree, the rules run on
    every file) and with the rules run on the involved files only, whatever their share."""
    if request.param != "default":
        monkeypatch.setattr(incremental, "MAX_INVOLVED_SHARE", 1.0)


def snapshot(result: BuildResult) -> tuple[Any, list[str]]:
    catalog = result.catalog.to_dict() if result.catalog is not None else None
    return catalog, [f.as_text() for f in result.report]


def bump(path: Path) -> None:
    """Make sure the stat signature moves even on a coarse-clock file system."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def rebuild_equals_cold(root: Path, previous: BuildResult) -> BuildResult:
    warm = build(root, previous=previous.cache)
    cold = build(root)
    assert snapshot(warm) == snapshot(cold)
    return warm


def test_rebuild_after_editing_one_file(tmp_path: Path, share: None) -> None:
    root = copy_example(tmp_path / "tree")
    first = build(root)
    path = root / "connections.d" / "moodle_users.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("priority = 1", "priority = 3"), encoding="utf-8"
    )
    bump(path)
    warm = rebuild_equals_cold(root, first)
    assert warm.catalog is not None and warm.catalog.connections["moodle_users/uni-b"].priority == 3
    # only the edited file was checked again
    for rel, result in warm.cache.items():
        if rel != "connections.d/moodle_users.toml":
            assert result is first.cache[rel]
    assert (
        warm.cache["connections.d/moodle_users.toml"]
        is not first.cache["connections.d/moodle_users.toml"]
    )


def test_rebuild_after_adding_deleting_and_renaming(tmp_path: Path, share: None) -> None:
    root = copy_example(tmp_path / "tree")
    result = build(root)
    write(
        root,
        "connections.d/uni-b/extra.toml",
        """\
        version = 1
        [[connection]]
        class = "badges_publish"
        id = "uni-b"
        institutions = ["uni-b"]
        auth = "token"
        endpoint = "https://badges.uni-b.example/{function}"
        credentials = { token = { env = "X" } }
        """,
    )
    result = rebuild_equals_cold(root, result)  # added (and it breaks global-not-alone)
    assert not result.report.valid
    (root / "connections.d" / "uni-b" / "extra.toml").unlink()
    result = rebuild_equals_cold(root, result)  # deleted
    assert result.report.valid
    (root / "connections.d" / "badges.toml").rename(root / "connections.d" / "badges-renamed.toml")
    result = rebuild_equals_cold(root, result)  # renamed
    assert result.catalog is not None
    assert (
        result.catalog.connections["badges_publish/global"].source
        == "connections.d/badges-renamed.toml"
    )


def test_rebuild_after_a_file_goes_invalid_and_back(tmp_path: Path, share: None) -> None:
    root = copy_example(tmp_path / "tree")
    first = build(root)
    path = root / "services.d" / "peers.toml"
    original = path.read_text(encoding="utf-8")
    path.write_text(original.replace('auth = "token"', 'auth = "tokn"', 1), encoding="utf-8")
    bump(path)
    broken = rebuild_equals_cold(root, first)
    assert not broken.report.valid and broken.catalog is None
    path.write_text(original + "\n[[peer]\n", encoding="utf-8")  # now a syntax error
    bump(path)
    broken = rebuild_equals_cold(root, broken)
    assert "toml-syntax" in broken.report.rules()
    path.write_text(original, encoding="utf-8")
    bump(path)
    healed = rebuild_equals_cold(root, broken)
    assert healed.report.valid
    assert snapshot(healed) == snapshot(first)


def test_rebuild_sees_an_edit_that_keeps_size_and_mtime(tmp_path: Path, share: None) -> None:
    """Same size, mtime put back: ctime (and a new inode on replace) still tell the change."""
    root = copy_example(tmp_path / "tree")
    first = build(root)
    path = root / "rpcd.toml"
    st = path.stat()
    text = path.read_text(encoding="utf-8")
    replaced = path.with_suffix(".tmp")
    replaced.write_text(text.replace("enabled = true", "enabled = fals"), encoding="utf-8")
    os.utime(replaced, ns=(st.st_atime_ns, st.st_mtime_ns))
    replaced.replace(path)  # what editors and git checkout do
    rebuild_equals_cold(root, first)


def test_resolved_connections_are_what_validation_would_make(tmp_path: Path, small: Path) -> None:
    """The catalog builds ResolvedConnection without validating again; prove it loses nothing."""
    from rpcd.config import ResolvedConnection

    for root in (copy_example(tmp_path / "tree"), small):
        for conn in valid(root).connections.values():
            again = ResolvedConnection.model_validate(dict(conn))  # strict: exact types
            assert again == conn
            assert again.model_dump() == conn.model_dump()
            assert again.model_fields_set == conn.model_fields_set
            assert type(conn.timeout) is float and type(conn.priority) is int
            assert isinstance(conn.institutions, tuple)


def instances_of(result: BuildResult) -> dict[str, list[str]]:
    catalog = result.catalog
    if catalog is None:
        return {}
    return {k: [c.full_id for c in catalog.instances(k)] for k in sorted(catalog.classes)}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    bump(path)


def test_rebuild_after_edits_that_change_what_other_files_mean(tmp_path: Path, share: None) -> None:
    """A rebuild reuses per-connection and per-class rule results of unchanged files; an edit
    to a class, to rpcd.toml or to one instance must still change every finding it affects."""
    root = copy_example(tmp_path / "tree")
    klass = root / "connections.d" / "moodle_users.toml"
    own = root / "connections.d" / "uni-a" / "moodle_users.toml"
    result = build(root)
    steps = [
        # the class now fixes a payload its instances do not have, and requires a new field
        (klass, 'payload = "url" }', 'payload = "json" }'),
        (
            klass,
            "page_size = { type",
            'extra = { type = "string", required = true, help = "x" }\npage_size = { type',
        ),
        # the class loses function_param: REST endpoints must name {function}
        (klass, 'function_param = "wsfunction"', ""),
        # an instance in uni-a's folder claims uni-b too (folder ownership, and an overlap)
        (own, 'institutions = ["uni-a"]', 'institutions = ["uni-a", "uni-b"]'),
        # uni-a is no longer an institution: its folder is just a folder
        (root / "rpcd.toml", 'id = "uni-a"', 'id = "uni-z"'),
        (root / "rpcd.toml", 'id = "uni-z"', 'id = "uni-a"'),
        (klass, 'payload = "json" }', 'payload = "url" }'),
        (own, 'institutions = ["uni-a", "uni-b"]', 'institutions = ["uni-a"]'),
        (own, "priority = 1", "priority = 0"),
        (own, "priority = 0", "priority = 9"),
    ]
    for path, old, new in steps:
        edit(path, old, new)
        warm = rebuild_equals_cold(root, result)
        assert instances_of(warm) == instances_of(build(root))
        result = warm


def test_parallel_build_is_the_serial_build(tmp_path: Path, monkeypatch: Any) -> None:
    from rpcd.config import pool

    root = copy_example(tmp_path / "tree")
    edit(root / "connections.d" / "badges.toml", "version = 1", "version = 1\nbogus = 2")
    write(root, "connections.d/uni-b/broken.toml", "version = 1\n[[connection]\n")
    monkeypatch.setattr(pool, "PARALLEL_MIN_BYTES", 0)
    spawned = spy_on_workers(monkeypatch)
    serial = build(root)
    assert spawned == []
    for jobs in (2, 3, 50):
        spawned.clear()
        parallel = build(root, jobs=jobs)
        assert snapshot(parallel) == snapshot(serial)
        assert list(parallel.cache) == list(serial.cache)
        # this process checks the last chunk; never more chunks than files
        assert 1 <= len(spawned) <= min(jobs, len(serial.cache)) - 1
    edit(root / "connections.d" / "badges.toml", "bogus = 2", "")
    fixed = build(root, jobs=2)
    assert snapshot(fixed) == snapshot(build(root))
    assert instances_of(fixed) == instances_of(build(root))


def test_a_worker_that_fails_has_its_files_checked_here(tmp_path: Path, monkeypatch: Any) -> None:
    import pickle

    from rpcd.config import pool

    class Broken:
        loads = staticmethod(pickle.loads)
        HIGHEST_PROTOCOL = pickle.HIGHEST_PROTOCOL

        @staticmethod
        def dumps(*args: Any, **kwargs: Any) -> bytes:
            raise RuntimeError("the worker dies before it sends anything")

    root = copy_example(tmp_path / "tree")
    monkeypatch.setattr(pool, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(pool, "pickle", Broken)
    spawned = spy_on_workers(monkeypatch)
    assert snapshot(build(root, jobs=2)) == snapshot(build(root))
    assert len(spawned) == 1


def spy_on_workers(monkeypatch: Any) -> list[int]:
    """The number of files of each worker forked from now on."""
    import threading

    from rpcd.config import pool

    if threading.active_count() > 1:
        pytest.skip("this test process has threads: build never forks in one")

    spawned: list[int] = []
    real = pool._spawn

    def spawn(chunk: list[Any], max_bytes: int) -> tuple[int, int]:
        spawned.append(len(chunk))
        return real(chunk, max_bytes)

    monkeypatch.setattr(pool, "_spawn", spawn)
    return spawned


# --- rebuilds that run the rules on the involved files only -----------------------------------

WIDE_CLASS = """\
version = 1
[class]
id = "app_{n}"
plugin = "app"
name = "Class {n}"
function_param = "wsfunction"
config_fields = {{ page = {{ type = "integer", help = "page size" }} }}
"""

WIDE_CONNECTION = """\
version = 1
[[connection]]
class = "app_{n}"
id = "{inst}"
institutions = ["{inst}"]
priority = {priority}
auth = "token"
endpoint = "https://{inst}.example/{n}"
credentials = {{ token = {{ credential = "{inst}-token" }} }}
"""


def wide_tree(root: Path, classes: int = 6, institutions: int = 8) -> Path:
    """One connection per file, ``classes`` times ``institutions`` files: an edit to one involves
    a small share of the tree, so a rebuild takes the incremental path."""
    site = ["version = 1"]
    for j in range(institutions):
        site += ["[[institution]]", f'id = "i{j}"', f'name = "I{j}"']
    write(root, "rpcd.toml", "\n".join(site) + "\n")
    for n in range(classes):
        write(root, f"connections.d/app_{n}.toml", WIDE_CLASS.format(n=n))
        for j in range(institutions):
            text = WIDE_CONNECTION.format(n=n, inst=f"i{j}", priority=j + 1)
            write(root, f"connections.d/i{j}/app_{n}.toml", text)
    return root


def test_incremental_rebuilds_equal_cold_builds(tmp_path: Path, monkeypatch: Any) -> None:
    """Edits of one file of a wide tree: the rules run on the involved files only (checked),
    and every result is the cold build's, findings in other files included."""
    from rpcd.config import catalog as catalog_module

    taken: list[bool] = []
    real = catalog_module._rebuild

    def spy(*args: Any, **kwargs: Any) -> BuildResult | None:
        done = real(*args, **kwargs)
        taken.append(done is not None)
        return done

    monkeypatch.setattr(catalog_module, "_rebuild", spy)
    # Involved here: rpcd.toml, the class files and one or two classes' instances (of 55).
    monkeypatch.setattr(incremental, "MAX_INVOLVED_SHARE", 0.5)
    root = wide_tree(tmp_path / "tree")
    one = root / "connections.d" / "i3" / "app_2.toml"
    other = root / "connections.d" / "i5" / "app_2.toml"
    result = build(root)
    assert result.catalog is not None
    steps: list[tuple[Path, str, str, bool]] = [
        # (file, old, new, whether the incremental path must hold)
        (one, "priority = 4", "priority = 9", True),  # catalog patched, order of instances
        (one, "priority = 9", "priority = 4", True),
        (one, 'id = "i3"', 'id = "i5"', True),  # a duplicate id, reported in another file
        (one, 'id = "i5"', 'id = "i3"', True),
        (one, 'institutions = ["i3"]', 'institutions = ["i5"]', True),  # overlap, folder
        (one, 'institutions = ["i5"]', 'institutions = ["i3"]', True),
        (one, 'institutions = ["i3"]', 'institutions = ["nowhere"]', True),  # unknown
        (one, 'institutions = ["nowhere"]', 'institutions = ["i3"]', True),
        (one, 'class = "app_2"', 'class = "app_4"', True),  # moves to another class
        (one, 'class = "app_4"', 'class = "app_2"', True),
        (one, 'class = "app_2"', 'class = "app_x"', True),  # an unknown class
        (one, 'class = "app_x"', 'class = "app_2"', True),
        (other, "priority = 6", 'priority = 6\nconfig = { page = "x" }', True),  # config-field
        (other, '\nconfig = { page = "x" }', "", True),
        (one, 'auth = "token"', 'auth = "tokn"', False),  # a broken part: full rules
        (one, 'auth = "tokn"', 'auth = "token"', False),
        (one, "endpoint", "# a comment\nendpoint", True),  # the text only
        (root / "connections.d" / "app_2.toml", '"Class 2"', '"Renamed"', False),
        (root / "rpcd.toml", 'name = "I1"', 'name = "J1"', True),  # ids kept
        # i3's secret scope no longer holds its folder's credentials: full rules (secret-scope)
        (
            root / "rpcd.toml",
            'name = "I3"',
            'name = "I3"\nsecrets = { credential_prefixes = [] }',
            False,
        ),
        (root / "rpcd.toml", "\nsecrets = { credential_prefixes = [] }", "", False),
        (root / "rpcd.toml", 'id = "i7"', 'id = "i9"', False),  # ids changed: full rules
    ]
    for path, old, new, incremental_path in steps:
        edit(path, old, new)
        taken.clear()
        warm = rebuild_equals_cold(root, result)
        assert taken[:1] == [incremental_path], (old, new)
        assert instances_of(warm) == instances_of(build(root))
        if warm.catalog is not None:
            cold = build(root).catalog
            assert cold is not None
            assert warm.catalog == cold
            assert list(warm.catalog.connections) == list(cold.connections)
            assert warm.catalog.content_hash == cold.content_hash
        result = warm


def test_rebuild_from_a_cache_changed_since_is_a_full_one(tmp_path: Path) -> None:
    """The state a build leaves is used only with the very cache it returned."""
    root = wide_tree(tmp_path / "tree")
    first = build(root)
    cache = dict(first.cache)
    del cache["connections.d/i0/app_0.toml"]
    edit(root / "connections.d" / "i1" / "app_1.toml", "priority = 2", "priority = 7")
    warm = build(root, previous=cache)
    assert snapshot(warm) == snapshot(build(root))


# --- folder listings kept between builds ------------------------------------------------------


def bump_folder(path: Path) -> None:
    """What adding or removing an entry does to a folder, made visible on a coarse clock."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def settled_now(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Folders count as settled at once (a fresh tree's are not for 2 s); the folders listed
    with os.scandir are recorded."""
    from rpcd.config import sources

    monkeypatch.setattr(sources, "SETTLED_NS", 0)
    listed: list[str] = []
    real = os.scandir

    def scandir(path: Any) -> Any:
        listed.append(str(path))
        return real(path)

    monkeypatch.setattr(sources.os, "scandir", scandir)
    return listed


def test_unchanged_folders_are_not_listed_again(tmp_path: Path, settled_now: list[str]) -> None:
    root = wide_tree(tmp_path / "tree")
    result = build(root)
    folders = len(settled_now)
    assert folders > 8
    settled_now.clear()
    edit(root / "connections.d" / "i3" / "app_2.toml", "priority = 4", "priority = 9")
    result = rebuild_equals_cold(root, result)
    assert len(settled_now) == folders  # by the cold build only
    settled_now.clear()
    # added, removed, replaced: each moves the folder's signature, which is listed again
    added = write(
        root, "connections.d/i3/app_9.toml", WIDE_CONNECTION.format(n=2, inst="i9", priority=1)
    )
    bump_folder(added.parent)
    result = rebuild_equals_cold(root, result)
    assert settled_now[: len(settled_now) - folders] == [str(added.parent)]  # only it
    (root / "connections.d" / "i4" / "app_1.toml").unlink()
    bump_folder(root / "connections.d" / "i4")
    result = rebuild_equals_cold(root, result)
    moved = root / "connections.d" / "i5" / "app_1.toml"
    moved.rename(root / "connections.d" / "i5" / "app_1.tom")
    (root / "connections.d" / "i5" / "app_1.toml").mkdir()
    bump_folder(moved.parent)
    result = rebuild_equals_cold(root, result)
    assert "not-a-file" in result.report.rules()
    (root / "connections.d" / "i5" / "app_1.toml").rmdir()
    (root / "connections.d" / "i5" / "app_1.tom").rename(moved)
    bump_folder(moved.parent)
    assert rebuild_equals_cold(root, result).report.valid is False  # app_9 still clashes


def test_a_folder_with_a_symlink_is_always_listed(tmp_path: Path, settled_now: list[str]) -> None:
    """A symlink (even one that is not *.toml) may start to lead to a folder without its own
    folder changing: such a folder's listing is never reused."""
    root = wide_tree(tmp_path / "tree")
    elsewhere = tmp_path / "elsewhere"
    (root / "connections.d" / "i2" / "more").symlink_to(elsewhere)  # dangling for now
    result = build(root)
    elsewhere.mkdir()
    write(elsewhere, "extra.toml", WIDE_CONNECTION.format(n=0, inst="i2", priority=5))
    result = rebuild_equals_cold(root, result)
    assert any(f.file == "connections.d/i2/more/extra.toml" for f in result.report)
