"""Mahara's rows parsed within bounds, and the mapping to a tree, without a database.

The fuzz tests feed arbitrary column values (the rows are untrusted input) and arbitrary but
well-formed Mahara tables: parsing either succeeds or names the row and column, and every plan
written to disk is a tree that validates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mahara_helpers as mh
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcd.config import build
from rpcd.importers.mahara import plan_import
from rpcd.importers.rows import (
    CONNECTION_COLUMNS,
    MAX_PARAMETER_LINES,
    TEXT_SMALL,
    RowError,
    parse_connection,
    parse_parameters,
)
from rpcd.importers.source import RawTables, dialect, redacted
from rpcd.importers.writer import write


def _row(**changes: Any) -> dict[str, object]:
    base = {column: None for column in CONNECTION_COLUMNS}
    base.update(mh.CONNECTIONS[0])
    base.update(changes)
    return base


def _tables(
    rows: list[dict[str, object]], config: list[dict[str, object]] | None = None
) -> RawTables:
    return RawTables(
        connections=rows,
        config=config or [],
        institutions=[{"name": n, "displayname": d} for n, d in mh.INSTITUTIONS],
        switch="1",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "x" * 256}, "column `name` is 256 characters, over the limit of 255"),
        ({"url": None}, "column `url` is NULL"),
        ({"enable": 2}, "column `enable` is 2; Mahara stores 0 or 1 here"),
        ({"priority": "12345678901"}, "column `priority` should be a whole number"),
        ({"token": b"\xff\xfe"}, "column `token` is not UTF-8"),
        ({"type": "rest\x00"}, "column `type` holds a NUL character"),
        ({"url": "h" * (TEXT_SMALL + 1)}, "over the limit of 65,535"),
        ({"priority": 1.5}, "column `priority` should be a whole number, not float"),
    ],
)
def test_a_bad_column_names_the_row_and_the_column(change: dict[str, object], message: str) -> None:
    with pytest.raises(RowError) as caught:
        parse_connection(_row(**change))
    assert str(caught.value).startswith("client_connections_institution row 1: ")
    assert message in str(caught.value)


def test_bad_rows_are_skipped_and_named_the_rest_imported(tmp_path: Path) -> None:
    rows = [_row(), _row(id=2, name="Broken", enable=7), _row(id=3, name="Odd", type="graphql")]
    plan = plan_import(_tables(rows))
    assert [c.row for c in plan.connections] == [1]
    assert any("row 2: column `enable` is 7" in s for s in plan.skipped)
    assert any("Mahara row 3 ('Odd') is not imported: type 'graphql'" in s for s in plan.skipped)
    write(plan, tmp_path / "t", None)
    assert build(tmp_path / "t").report.valid


def test_parameters_bounded_and_credential_names_kept_out() -> None:
    assert parse_parameters("a=1\n=2\nnoequals\nb = x=y\n", 1) == {"a": "1", "b": "x=y"}
    with pytest.raises(RowError, match="over the limit of 256"):
        parse_parameters("a=1\n" * (MAX_PARAMETER_LINES + 1), 1)
    plan = plan_import(_tables([_row(parameters="lang=en\nwstoken=leaked-token-value")]))
    (conn,) = plan.connections
    assert conn.data["parameters"] == {"lang": "en"}
    assert any("parameter `wstoken`" in n and "leaked" not in n for n in plan.notices)


def test_master_switch_off_and_unknown_institution(tmp_path: Path) -> None:
    tables = _tables([_row(institution="ghost")])
    tables.switch = None
    plan = plan_import(tables)
    assert plan.switch is False and "master switch" in plan.notices[0]
    assert ("ghost", "ghost") in plan.institutions
    write(plan, tmp_path / "t", None)
    assert build(tmp_path / "t").report.valid


def test_endpoints_rpcd_cannot_hold_are_left_out() -> None:
    plan = plan_import(
        _tables([_row(url="ftp://x.example/"), _row(id=2, name="q", url="https://h/?wstoken=abc")])
    )
    assert not plan.connections
    assert any("not an http(s) URL" in s for s in plan.skipped)
    assert any("carries a credential" in s and "abc" not in s for s in plan.skipped)


def test_dsn_helpers_hide_the_password() -> None:
    assert redacted("postgresql://u:secret@h:5432/db?password=x") == "postgresql://u@h:5432/db"
    assert dialect("mariadb://u@h/db") == "mysql"


# --- fuzz ---------------------------------------------------------------------------------------

_VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.text(max_size=300),
    st.binary(max_size=300),
    st.booleans(),
    st.floats(allow_nan=True),
)


@pytest.mark.fuzz
@given(st.fixed_dictionaries({c: _VALUES for c in CONNECTION_COLUMNS}))
def test_fuzz_any_column_values_parse_or_name_the_problem(raw: dict[str, object]) -> None:
    try:
        row = parse_connection(raw)
    except RowError as exc:
        assert exc.column in CONNECTION_COLUMNS
        return
    assert len(row.name) <= 255 and len(row.url) <= TEXT_SMALL


_NAME = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
_ROW = st.fixed_dictionaries(
    {
        "name": _NAME,
        "pluginname": st.sampled_from(["webservice", "sis", "Badges", "my plugin"]),
        "plugintype": _NAME,  # only in comments: any text, control characters included
        "connection": st.sampled_from(["moodle_users", "webservice_x", "Sync Users", "a"]),
        "institution": st.sampled_from(["mahara", "uni-a", "collegeb", "Other Inst"]),
        "type": st.sampled_from(["rest", "soap", "xmlrpc", "REST"]),
        "authtype": st.sampled_from(["token", "user", "oauth1", "wsse", "cert"]),
        "priority": st.integers(min_value=0, max_value=9),
        "enable": st.sampled_from([0, 1]),
        "json": st.sampled_from([0, 1]),
        "useheader": st.sampled_from([0, 1]),
        "header": st.sampled_from([None, "", "X-Token", "Authorization: Bearer", "bad header"]),
        "token": st.sampled_from(["", "tok-0123456789abcdef", "mytoken=abcdef0123456789"]),
        "parameters": st.sampled_from([None, "", "a=1\nb=2", "token=x\nlang=en", "x y=1"]),
        "url": st.sampled_from(["https://h.example/x", "http://h.example/{function}", "nope"]),
        "version": st.sampled_from([None, "", "1.0"]),
    }
)


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(_ROW, max_size=6), st.sampled_from(["credential", "env"]))
def test_fuzz_any_mahara_table_becomes_a_tree_that_validates(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, object]], refs: str
) -> None:
    full = [
        _row(id=i + 1, **{"class": "PluginX\n[[connection]]"}, **row) for i, row in enumerate(rows)
    ]
    plan = plan_import(_tables(full), refs=refs)  # type: ignore[arg-type]
    out = tmp_path_factory.mktemp("fuzz") / "tree"
    write(plan, out, None)
    report = build(out).report
    assert report.valid, [f.as_text() for f in report]
    assert len(plan.connections) + sum("not imported" in s for s in plan.skipped) == len(rows)


def test_a_global_stays_global_beside_a_row_left_out(tmp_path: Path) -> None:
    rows = [
        _row(institution="mahara"),
        _row(id=2, name="Broken", institution="uni-a", type="graphql"),
    ]
    plan = plan_import(_tables(rows))
    (conn,) = plan.connections
    assert conn.data["global"] is True and not conn.commented_out
    write(plan, tmp_path / "t", None)
    assert build(tmp_path / "t").report.valid


def test_a_global_beside_institution_rows_is_commented_out(tmp_path: Path) -> None:
    rows = [_row(institution="mahara"), _row(id=2, name="Uni A", institution="uni-a")]
    plan = plan_import(_tables(rows))
    by_row = {c.row: c for c in plan.connections}
    assert by_row[1].commented_out and by_row[2].data["institutions"] == ["uni-a"]
    assert any("site-wide (global) but class" in n for n in plan.notices)
    write(plan, tmp_path / "t", None)
    text = (tmp_path / "t" / "connections.d" / "webservice_moodle_users.toml").read_text()
    assert "# NOT ACTIVE (import): Mahara row 1" in text
    assert build(tmp_path / "t").report.valid
