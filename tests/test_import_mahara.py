"""``rpcd import mahara`` against real PostgreSQL and MariaDB servers started here.

Each server (tests/mahara_helpers.py) is started once per session in a temporary folder on a
free 127.0.0.1 port and loaded with Mahara's table definitions and realistic rows: Moodle REST
tokens (one as ``wstoken=…``), SOAP WS-Security, OAuth 1.0a, an XML-RPC client certificate, a
global alone in its class, two globals in one class, disabled rows, an institution twice in a
class, extra config fields, and the same tables again under a ``mh_`` prefix. A server that
cannot start skips its tests with the reason.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import mahara_helpers as mh
import pytest
from tree_helpers import REPO

from rpcd.config import build

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session", params=["postgresql", "mysql"])
def mahara_db(
    request: pytest.FixtureRequest, mahara_servers: Callable[[str], mh.Server]
) -> mh.Server:
    return mahara_servers(request.param)


def rpcd_import(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "rpcd", "import", "mahara", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=120,
        check=False,
    )
    for value in mh.SECRET_VALUES:
        assert value not in result.stdout + result.stderr, "a secret reached the output"
    return result


def tree_text(root: Path) -> str:
    return "".join(p.read_text() for p in sorted(root.rglob("*.toml")))


def connections(root: Path) -> dict[str, dict]:
    """Every written connection by class/id, with the file it is in."""
    found: dict[str, dict] = {}
    for path in root.glob("connections.d/**/*.toml"):
        data = tomllib.loads(path.read_text())
        class_id = data.get("class", {}).get("id")
        for conn in data.get("connection", []):
            conn["file"] = path.relative_to(root).as_posix()
            found[f"{conn.get('class', class_id)}/{conn['id']}"] = conn
    return found


def test_import_writes_a_tree_that_validates(mahara_db: mh.Server, tmp_path: Path) -> None:
    out, secrets = tmp_path / "tree", tmp_path / "secrets"
    run = rpcd_import("--dsn", mahara_db.dsn, "--out", str(out), "--secrets-out", str(secrets))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "the tree validates" in run.stdout
    check = subprocess.run(
        [sys.executable, "-m", "rpcd", "validate", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout
    assert "enabled-missing" not in check.stdout  # every connection says whether it is on

    site = tomllib.loads((out / "rpcd.toml").read_text())
    assert site["connections"]["enabled"] is True  # webservice_requester_enabled = 1
    assert {i["id"]: i["name"] for i in site["institution"]} == {
        "uni-a": "University A",
        "collegeb": "College B",
    }
    conns = connections(out)
    assert set(conns) == {
        "webservice_moodle_users/uni-a-moodle",
        "webservice_moodle_users/college-b-moodle",
        "webservice_moodle_users/uni-a-moodle-backup",
        "sis_enrolments/sis-enrolments",
        "badges_publish/badge-platform",
        "export_portfolio/portfolio-export-main",
        "mnet_sso/uni-a-sso",
    }
    moodle = conns["webservice_moodle_users/uni-a-moodle"]
    assert moodle["file"] == "connections.d/uni-a/webservice_moodle_users.toml"
    assert moodle | {"file": None} == moodle | {
        "file": None,
        "class": "webservice_moodle_users",
        "name": "Uni A Moodle",
        "enabled": True,
        "priority": 1,
        "fatal": False,
        "type": "REST",
        "payload": "json",
        "auth": "token",
        "version": "3.9",
        "institutions": ["uni-a"],
        "endpoint": "https://moodle.uni-a.example/webservice/rest/server.php",
        "parameters": {"moodlewsrestformat": "json", "lang": "en"},
        "http_method": "POST",
        "config": {"match_field": "idnumber", "page_size": "50"},
        "credentials": {"token": {"credential": "uni-a-webservice_moodle_users-token"}},
    }
    college = conns["webservice_moodle_users/college-b-moodle"]
    assert college["enabled"] is False and college["fatal"] is True
    assert college["token_param"] == "wstoken" and college["payload"] == "url"
    sis = conns["sis_enrolments/sis-enrolments"]
    assert (sis["type"], sis["auth"], sis["version"]) == ("SOAP", "wsse", "2.3")
    assert sis["credentials"] == {
        "username": {"credential": "collegeb-sis_enrolments-username"},
        "password": {"credential": "collegeb-sis_enrolments-password"},
    }
    badges = conns["badges_publish/badge-platform"]
    assert badges["global"] is True and badges["auth"] == "oauth1"
    assert set(badges["credentials"]) == {"consumer_key", "consumer_secret"}
    cert = conns["mnet_sso/uni-a-sso"]
    assert (cert["type"], cert["auth"], cert["enabled"]) == ("XML-RPC", "cert", False)

    # the class: plugin prefix, Mahara's REST function parameter, the config fields declared
    klass = tomllib.loads((out / "connections.d/webservice_moodle_users.toml").read_text())
    assert klass["class"]["plugin"] == "webservice"
    assert klass["class"]["function_param"] == "wsfunction"
    assert set(klass["class"]["config_fields"]) == {"match_field", "page_size"}

    # the catalog agrees: what rpcd will serve
    catalog = build(out).catalog
    assert catalog is not None
    assert [c.id for c in catalog.instances("export_portfolio")] == ["portfolio-export-main"]

    # no secret in the tree; each in its own 0600 file, the folder 0700, and a checklist
    text = tree_text(out)
    assert not [v for v in mh.SECRET_VALUES if v in text]
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    files = {p.name: p for p in secrets.iterdir()}
    for path in files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert files["uni-a-webservice_moodle_users-token"].read_text() == mh.SECRET_VALUES[0]
    assert files["collegeb-webservice_moodle_users-token"].read_text() == mh.SECRET_VALUES[1]
    assert files["uni-a-mnet_sso-private-key"].read_text().startswith("-----BEGIN PRIVATE KEY")
    assert "PRIVATE" not in files["uni-a-mnet_sso-certificate"].read_text()
    checklist = files["CHECKLIST.txt"].read_text()
    assert not [v for v in mh.SECRET_VALUES if v in checklist]
    assert (
        "LoadCredential=uni-a-webservice_moodle_users-token:"
        "/etc/rpcd/credentials/uni-a-webservice_moodle_users-token"
    ) in checklist
    assert checklist in run.stdout

    # the installed secrets pass the daemon's own preflight
    pre = subprocess.run(
        [sys.executable, "-m", "rpcd", "validate", "--resolve-secrets", str(out)],
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("RPCD_")},
            "CREDENTIALS_DIRECTORY": str(secrets),
        },
        timeout=60,
        check=False,
    )
    assert pre.returncode == 0, pre.stdout


def test_rule_breaking_rows_are_written_disabled_with_a_comment(
    mahara_db: mh.Server, tmp_path: Path
) -> None:
    out = tmp_path / "tree"
    run = rpcd_import("--dsn", mahara_db.dsn, "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    # two globals in one class: the second is named, with what rpcd requires
    assert "Mahara row 7 is a second site-wide (global) connection" in run.stdout
    assert "rule global-not-alone" in run.stdout
    text = (out / "connections.d/export_portfolio.toml").read_text()
    assert "# NOT ACTIVE (import): Mahara row 7" in text
    assert '# id = "portfolio-export-spare"\n' in text and "# enabled = false\n" in text
    # an institution twice in one class: the later row disabled, serving nobody, commented
    assert "Mahara row 3 serves institution `uni-a`, which row 1" in run.stdout
    backup = connections(out)["webservice_moodle_users/uni-a-moodle-backup"]
    assert backup["enabled"] is False and "institutions" not in backup
    assert backup["token_header"] == "Authorization"
    text = (out / "connections.d/webservice_moodle_users.toml").read_text()
    assert "# DISABLED by the import: Mahara row 3" in text
    # without --secrets-out no value is written anywhere, and the checklist says so
    assert "value not written (pass --secrets-out DIR)" in run.stdout


def test_env_references_in_each_institution_scope(mahara_db: mh.Server, tmp_path: Path) -> None:
    out = tmp_path / "tree"
    run = rpcd_import("--dsn", mahara_db.dsn, "--out", str(out), "--refs", "env")
    assert run.returncode == 0, run.stdout + run.stderr
    conns = connections(out)
    token = conns["webservice_moodle_users/uni-a-moodle"]["credentials"]["token"]
    assert token == {"env": "UNI_A_WEBSERVICE_MOODLE_USERS_TOKEN"}  # uni-a's scope: UNI_A_*
    sis = conns["sis_enrolments/sis-enrolments"]["credentials"]["password"]
    assert sis == {"env": "COLLEGEB_SIS_ENROLMENTS_PASSWORD"}
    assert build(out).report.valid


def test_table_prefix_and_dsn_from_the_environment(mahara_db: mh.Server, tmp_path: Path) -> None:
    out = tmp_path / "tree"
    run = rpcd_import("--out", str(out), "--table-prefix", "mh_", env={"MAHARA_DSN": mahara_db.dsn})
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(connections(out)) == 7


def test_a_wrong_password_is_reported_without_the_password(
    mahara_db: mh.Server, tmp_path: Path
) -> None:
    wrong = mahara_db.dsn.replace(mh.PASSWORD, "not-the-password-xyz")
    run = rpcd_import("--dsn", wrong, "--out", str(tmp_path / "tree"))
    assert run.returncode == 1
    assert run.stderr.startswith("rpcd import mahara: cannot connect to ")
    assert "not-the-password-xyz" not in run.stderr
    assert not (tmp_path / "tree").exists()


def test_limits_and_refusals(mahara_db: mh.Server, tmp_path: Path) -> None:
    run = rpcd_import("--dsn", mahara_db.dsn, "--out", str(tmp_path / "t1"), "--max-rows", "3")
    assert run.returncode == 1
    assert "client_connections_institution has more than 3 rows" in run.stderr
    assert "--max-rows" in run.stderr
    # secrets never inside the tree
    out = tmp_path / "t2"
    run = rpcd_import("--dsn", mahara_db.dsn, "--out", str(out), "--secrets-out", str(out / "s"))
    assert run.returncode == 1 and "is inside the tree" in run.stderr
    # an existing, non-empty --out is not overwritten
    (tmp_path / "t3").mkdir()
    (tmp_path / "t3" / "keep").write_text("x")
    run = rpcd_import("--dsn", mahara_db.dsn, "--out", str(tmp_path / "t3"))
    assert run.returncode == 1 and "not an empty folder" in run.stderr
    run = rpcd_import("--dsn", mahara_db.dsn, "--out", str(tmp_path / "t4"), "--table-prefix", "x;")
    assert run.returncode == 1 and "--table-prefix" in run.stderr
    run = rpcd_import(
        "--dsn", mahara_db.dsn, "--out", str(tmp_path / "t5"), "--table-prefix", "zz_"
    )
    assert run.returncode == 1 and "zz_client_connections_institution" in run.stderr


def test_usage_errors() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MAHARA_DSN"}
    run = subprocess.run(
        [sys.executable, "-m", "rpcd", "import", "mahara", "--out", "/nonexistent/x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2 and "give --dsn URL" in run.stderr
    run = rpcd_import("--dsn", "oracle://u:pw@h/db", "--out", "/nonexistent/x")
    assert run.returncode == 1 and "postgresql://" in run.stderr and "pw" not in run.stderr


def test_an_oversized_text_column_is_cut_by_the_query_and_named(
    mahara_servers: Callable[[str], mh.Server], tmp_path: Path
) -> None:
    """PostgreSQL's text is unbounded (MariaDB's TEXT stops at 65,535 bytes): a 1 MB url
    arrives as 65,536 characters and the row is named, the rest imported."""
    server = mahara_servers("postgresql")
    mh.load_rows(server.admin, server.dialect, prefix="big_")
    cur = server.admin.cursor()
    cur.execute(
        "INSERT INTO big_client_connections_institution (id, name, plugintype, pluginname, "
        "priority, class, connection, institution, url, type, authtype) VALUES "
        "(9, 'Huge', 'auth', 'webservice', 9, 'PluginAuthWebservice', 'webservice_moodle_users', "
        "'uni-a', %s, 'rest', 'token')",
        ["https://h.example/" + "x" * 1_000_000],
    )
    server.admin.commit()
    run = rpcd_import("--dsn", server.dsn, "--out", str(tmp_path / "t"), "--table-prefix", "big_")
    assert run.returncode == 1  # the tree is written; one row is not imported
    assert (
        "not imported: client_connections_institution row 9: column `url` is 65,536 "
        "characters, over the limit of 65,535" in run.stdout
    )
    assert len(connections(tmp_path / "t")) == 7
