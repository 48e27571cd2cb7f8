"""The console's page data as pure functions: paging, the routing matrix against
``rpcd.routing``, who sees what, file lines, grants, reload findings per viewer.

These complement tests/test_console.py (the same pages over HTTP) and
tests/test_console_browser.py (in a browser); they pin the rules on data the example tree
does not hold (a finding in another institution's folder, a tree with many classes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rpcd.config.models import Peer
from rpcd.routing import applicable
from rpcd.server.core.loading import Loaded, load
from rpcd.server.ops.reload import ReloadResult
from rpcd.server.ui import views
from rpcd.server.ui.access import can_see_file
from rpcd.server.ui.grants import method_access

ADMIN = Peer(id="root", auth="token", token_sha256="ab" * 32, admin=True)
UNI_A = Peer(id="a-peer", auth="token", token_sha256="cd" * 32, institutions=("uni-a",))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    from tree_helpers import copy_example

    root = copy_example(tmp_path_factory.mktemp("views") / "tree")
    result = load(root, strict_secrets=False)
    assert isinstance(result, Loaded)
    return result


def test_paginate_clamps_and_counts() -> None:
    page = views.paginate(list(range(23)), 3, 10)
    assert (list(page.items), page.number, page.pages, page.total) == ([20, 21, 22], 3, 3, 23)
    assert views.paginate(list(range(23)), 99, 10).number == 3  # past the end: the last page
    assert views.paginate([], 1, 10).pages == 1


def test_the_matrix_cells_are_routings_answer(loaded: Loaded) -> None:
    catalog = loaded.catalog
    grid = views.matrix(catalog, ADMIN, "", "", 1, 1, 50, 50)
    assert list(grid.rows.items) == sorted(catalog.classes)
    for (class_id, inst), cell in grid.cells.items():
        tried = [e.conn.id for e in cell.entries if e.tried]
        assert tried == [c.id for c in applicable(catalog, class_id, (inst,))]
        assert all(not e.conn.enabled for e in cell.entries if not e.tried)


def test_the_matrix_pages_and_filters(loaded: Loaded) -> None:
    catalog = loaded.catalog
    grid = views.matrix(catalog, ADMIN, "", "", 2, 2, 2, 2)
    assert list(grid.rows.items) == sorted(catalog.classes)[2:4]
    assert list(grid.columns.items) == sorted(catalog.institutions)[2:4]
    grid = views.matrix(catalog, ADMIN, "MOODLE", "University B", 1, 1, 50, 50)
    assert list(grid.rows.items) == ["moodle_users"] and list(grid.columns.items) == ["uni-b"]


def test_an_institution_peer_gets_only_its_columns(loaded: Loaded) -> None:
    grid = views.matrix(loaded.catalog, UNI_A, "", "", 1, 1, 50, 50)
    assert list(grid.columns.items) == ["uni-a"]
    assert views.visible_connection(loaded.catalog, UNI_A, "moodle_users/uni-b") is None
    assert views.visible_connection(loaded.catalog, UNI_A, "moodle_users/uni-a") is not None
    assert views.visible_connection(loaded.catalog, UNI_A, "rpcd_loopback/local") is not None


def test_a_connections_line_is_its_table_header(loaded: Loaded) -> None:
    for conn in loaded.catalog.connections.values():
        line = views.connection_line(loaded, conn)
        assert line is not None
        text = (loaded.catalog.root / conn.source).read_text(encoding="utf-8").splitlines()
        assert text[line - 1].strip() == "[[connection]]", conn.full_id
        following = "\n".join(text[line : line + 3])
        assert f'id = "{conn.id}"' in following, conn.full_id


def test_fields_show_references_never_values(loaded: Loaded) -> None:
    conn = loaded.catalog.connections["moodle_users/uni-a"]
    fields = dict(views.connection_fields(conn))
    assert fields["credentials"] == '{"token": "env:MOODLE_UNI_A_TOKEN"}'
    assert fields["endpoint"].startswith("https://moodle.uni-a.example/")
    assert fields["source"] == "connections.d/uni-a/moodle_users.toml"


def test_standby_endpoints_are_shown_in_order_and_masked(tmp_path: Path) -> None:
    from tree_helpers import copy_example

    root = copy_example(tmp_path / "tree")
    conn_file = root / "connections.d" / "uni-a" / "moodle_users.toml"
    text = conn_file.read_text()
    endpoint = next(line for line in text.splitlines() if line.startswith("endpoint ="))
    primary = endpoint.split("=", 1)[1].strip()
    standby = '"https://standby.uni-a.example/webservice/rest/server.php"'
    conn_file.write_text(text.replace(endpoint, f"endpoints = [{primary}, {standby}]"))
    result = load(root, strict_secrets=False)
    assert isinstance(result, Loaded), result
    conn = result.catalog.connections["moodle_users/uni-a"]
    fields = dict(views.connection_fields(conn))
    assert "endpoint" not in fields
    assert fields["endpoints"] == json.dumps(conn.shown_endpoints(), ensure_ascii=False)
    assert json.loads(fields["endpoints"])[1] == json.loads(standby)


def test_grants_come_from_the_dispatchers_callers(loaded: Loaded) -> None:
    for name, entry in loaded.methods.items():
        access = method_access(entry)
        assert set(access.peers) == set(entry.callers), name
    rows = views.service_rows(loaded, UNI_A, "", "mahara-prod")
    assert all(set(r.access.peers) <= {"a-peer"} for r in rows)  # others' peers not shown
    assert all(set(r.access.institutions) <= {"uni-a"} for r in rows)
    admin_rows = {r.name: r for r in views.service_rows(loaded, ADMIN, "", "mahara-prod")}
    for name, row in admin_rows.items():
        assert row.asked_peer_may_call == ("mahara-prod" in loaded.methods[name].callers)


def _refused(findings: list[dict[str, object]]) -> ReloadResult:
    return ReloadResult(
        ok=False,
        changed=False,
        content_hash="h" * 64,
        previous_hash="h" * 64,
        started_at=0,
        duration_s=0.1,
        error=f"invalid tree: 2 errors (first: {findings[0]['file']}: …)",
        error_count=len(findings),
        findings=tuple(findings),
    )


def test_reload_findings_in_another_institutions_folder_are_hidden() -> None:
    theirs = {"rule": "r", "message": "m", "file": "connections.d/uni-b/x.toml", "line": 3}
    shared = {"rule": "r", "message": "m", "file": "rpcd.toml", "line": 9}
    history = [_refused([theirs, shared])]
    institutions = ["uni-a", "uni-b"]
    (row,) = views.reload_rows(history, UNI_A, institutions)
    assert [f["file"] for f in row.findings] == ["rpcd.toml"] and row.hidden_findings == 1
    assert "uni-b" not in (row.error or "")
    (row,) = views.reload_rows(history, ADMIN, institutions)
    assert len(row.findings) == 2 and row.hidden_findings == 0
    assert can_see_file(UNI_A, "connections.d/uni-a/x.toml", institutions)
    assert can_see_file(UNI_A, "connections.d/shared/x.toml", institutions)  # not a tenant's


def test_reloads_are_newest_first(tmp_path: Path) -> None:
    older = _refused([{"rule": "r", "message": "m", "file": "rpcd.toml", "line": 1}])
    newer = ReloadResult(True, True, "n" * 64, "h" * 64, 60, 0.1)
    rows = views.reload_rows([older, newer], ADMIN, [])
    assert [r.ok for r in rows] == [True, False]


def test_recent_rates_cover_the_samples_in_the_ring() -> None:
    from rpcd.server.ui.metrics_view import RATE_WINDOW_S, SAMPLE_EVERY_S, RecentRates

    rates = RecentRates()
    assert rates.rates() is None
    for step in range(100):  # far more samples than the ring keeps
        rates.add(step * SAMPLE_EVERY_S, requests=step * 50.0, faults=step * 5.0)
    found = rates.rates()
    assert found is not None
    per_s, faults_per_s, span = found
    assert span == RATE_WINDOW_S
    assert per_s == 10.0 and faults_per_s == 1.0


def test_call_figures_come_from_the_daemons_metrics() -> None:
    from rpcd.server.ops.metrics import Metrics
    from rpcd.server.ui.metrics_view import call_summary, call_totals, connection_summary

    metrics = Metrics()
    for seconds in (0.002, 0.002, 0.002, 0.2):
        metrics.observe_call("xmlrpc", "hello.helloWorld", seconds)
    metrics.observe_call("jsonrpc", "unknown", 0.001, 404)
    assert call_totals(metrics) == (5, 1)
    summary = call_summary(metrics, uptime_s=10)
    assert (summary.requests, summary.faults, summary.requests_per_s) == (5, 1, 0.5)
    assert summary.p50_ms == 2.5 and summary.p95_ms == 250.0  # bucket bounds, in ms
    assert connection_summary(metrics, "moodle_users/uni-a").calls == 0
