"""Throwaway PostgreSQL and MariaDB servers holding Mahara's connection tables.

Each server is the Debian package's binary started in a temporary folder on a free
127.0.0.1 port (initdb + pg_ctl, mariadb-install-db + mariadbd), run as ``nobody`` when the
tests run as root (PostgreSQL refuses root). A server that cannot start raises ``Unavailable``
with the reason, and the tests skip with it.

The tables are Mahara's ``htdocs/lib/db/install.xml`` definitions of ``institution`` (the
columns the import reads, plus the NOT NULL ones), ``config``, ``client_connections_institution``
and ``client_connections_config``, written out below as XMLDB fields (name, type, length,
not null, default, sequence) and turned into each dialect's DDL as Mahara's XMLDB does.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASSWORD = "mahara-db-pw-7f3a"  # the test database user's password (never a real one)

# (name, XMLDB type, length, not null, default, sequence) as in Mahara's install.xml.
Field = tuple[str, str, str, bool, str | None, bool]
TABLES: dict[str, tuple[list[Field], list[str]]] = {
    "institution": (
        [
            ("name", "char", "255", True, None, False),
            ("displayname", "char", "255", True, None, False),
            ("registerallowed", "int", "1", True, "1", False),
            ("theme", "char", "255", False, None, False),
            ("suspended", "int", "1", True, "0", False),
            ("priority", "int", "10", True, "1", False),
        ],
        ["PRIMARY KEY (name)"],
    ),
    "config": (
        [
            ("field", "char", "255", True, None, False),
            ("value", "text", "small", False, None, False),
        ],
        ["PRIMARY KEY (field)"],
    ),
    "client_connections_institution": (
        [
            ("id", "int", "10", True, None, True),
            ("name", "char", "255", True, None, False),
            ("plugintype", "char", "255", True, None, False),
            ("pluginname", "char", "255", True, None, False),
            ("priority", "int", "10", True, None, False),
            ("class", "char", "255", True, None, False),
            ("connection", "char", "255", True, None, False),
            ("institution", "char", "255", True, None, False),
            ("url", "text", "small", True, None, False),
            ("username", "char", "255", False, None, False),
            ("password", "char", "255", False, None, False),
            ("consumer", "char", "255", False, None, False),
            ("secret", "char", "255", False, None, False),
            ("token", "char", "255", False, None, False),
            ("useheader", "int", "1", True, "1", False),
            ("header", "char", "255", False, None, False),
            ("certificate", "text", "small", False, None, False),
            ("parameters", "text", "small", False, None, False),
            ("type", "char", "10", True, None, False),
            ("authtype", "char", "10", True, None, False),
            ("json", "int", "1", True, "1", False),
            ("enable", "int", "1", True, "1", False),
            ("isfatal", "int", "1", True, "1", False),
            ("version", "char", "50", False, None, False),
        ],
        [
            "PRIMARY KEY (id)",
            "FOREIGN KEY (institution) REFERENCES {p}institution (name)",
            "UNIQUE (name)",
        ],
    ),
    "client_connections_config": (
        [
            ("id", "int", "10", True, None, True),
            ("connection", "int", "10", True, None, False),
            ("field", "char", "100", True, None, False),
            ("value", "text", "small", True, None, False),
        ],
        [
            "PRIMARY KEY (id)",
            "FOREIGN KEY (connection) REFERENCES {p}client_connections_institution (id)",
        ],
    ),
}


def _column(field: Field, dialect: str) -> str:
    name, kind, length, notnull, default, sequence = field
    quote = '"' if dialect == "postgresql" else "`"
    if kind == "int" and sequence:
        sql = "BIGSERIAL" if dialect == "postgresql" else "BIGINT NOT NULL AUTO_INCREMENT"
    elif kind == "int":
        sql = (
            ("SMALLINT" if int(length) <= 4 else "BIGINT")
            if dialect == "postgresql"
            else ("TINYINT" if int(length) <= 2 else "BIGINT")
        )
    elif kind == "char":
        sql = f"VARCHAR({length})"
    else:
        sql = "TEXT"
    if notnull and "NOT NULL" not in sql:
        sql += " NOT NULL"
    if default is not None:
        sql += f" DEFAULT {default}"
    return f"{quote}{name}{quote} {sql}"


def ddl(dialect: str, prefix: str = "") -> list[str]:
    """CREATE TABLE statements for the four tables, in dependency order."""
    out = []
    for table, (fields, keys) in TABLES.items():
        parts = [_column(f, dialect) for f in fields] + [k.format(p=prefix) for k in keys]
        tail = "" if dialect == "postgresql" else " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        out.append(f"CREATE TABLE {prefix}{table} (\n  " + ",\n  ".join(parts) + f"\n){tail}")
    return out


# Realistic rows: two institutions, Moodle REST tokens, SOAP WSSE, OAuth1, an XML-RPC cert,
# globals (one alone, two in one class), disabled ones, an overlap, extra config fields.
INSTITUTIONS = [
    ("mahara", "No Institution"),
    ("uni-a", "University A"),
    ("collegeb", "College B"),
]
C = "client_connections_institution"
CONNECTIONS: list[dict[str, Any]] = [
    # Moodle user sync: REST token per institution (wstoken), uni-a's token as k=v
    dict(
        id=1,
        name="Uni A Moodle",
        plugintype="auth",
        pluginname="webservice",
        priority=1,
        **{"class": "PluginAuthWebservice"},
        connection="webservice_moodle_users",
        institution="uni-a",
        url="https://moodle.uni-a.example/webservice/rest/server.php",
        token="a1b2c3d4e5f6a7b8c9d0-uni-a-moodle-token",
        useheader=0,
        type="rest",
        authtype="token",
        json=1,
        enable=1,
        isfatal=0,
        version="3.9",
        parameters="moodlewsrestformat=json\nlang=en",
    ),
    dict(
        id=2,
        name="College B Moodle",
        plugintype="auth",
        pluginname="webservice",
        priority=2,
        **{"class": "PluginAuthWebservice"},
        connection="webservice_moodle_users",
        institution="collegeb",
        url="https://moodle.collegeb.example/webservice/rest/server.php",
        token="wstoken=9f8e7d6c5b4a39281706-collegeb-token",
        useheader=0,
        type="rest",
        authtype="token",
        json=0,
        enable=0,
        isfatal=1,
        version=None,
        parameters=None,
    ),
    # the same institution twice in one class: rpcd's institution-overlap
    dict(
        id=3,
        name="Uni A Moodle backup",
        plugintype="auth",
        pluginname="webservice",
        priority=3,
        **{"class": "PluginAuthWebservice"},
        connection="webservice_moodle_users",
        institution="uni-a",
        url="https://moodle2.uni-a.example/webservice/rest/server.php",
        token="backup-token-0a9b8c7d6e5f4a3b2c1d",
        useheader=1,
        header="Authorization: Bearer",
        type="rest",
        authtype="token",
        json=1,
        enable=1,
        isfatal=0,
        version=None,
        parameters=None,
    ),
    # SOAP with WS-Security, one institution
    dict(
        id=4,
        name="SIS enrolments",
        plugintype="module",
        pluginname="sis",
        priority=1,
        **{"class": "PluginModuleSis"},
        connection="sis_enrolments",
        institution="collegeb",
        url="https://sis.collegeb.example/services/Enrolment.svc",
        username="sis-svc",
        password="Wsse-P4ssw0rd-collegeb-sis",
        useheader=0,
        type="soap",
        authtype="wsse",
        json=0,
        enable=1,
        isfatal=1,
        version="2.3",
        parameters=None,
    ),
    # OAuth1 REST, global (Mahara's site institution), alone in its class
    dict(
        id=5,
        name="Badge platform",
        plugintype="artefact",
        pluginname="badges",
        priority=1,
        **{"class": "PluginArtefactBadges"},
        connection="badges_publish",
        institution="mahara",
        url="https://badges.example/api/v2/publish",
        consumer="badge-consumer-key-123456",
        secret="badge-consumer-secret-abcdef0123",
        useheader=0,
        type="rest",
        authtype="oauth1",
        json=1,
        enable=1,
        isfatal=0,
        version=None,
        parameters=None,
    ),
    # two globals in one class (Mahara's forms allow it; rpcd's global-not-alone does not)
    dict(
        id=6,
        name="Portfolio export main",
        plugintype="module",
        pluginname="export",
        priority=1,
        **{"class": "PluginModuleExport"},
        connection="export_portfolio",
        institution="mahara",
        url="https://export.example/xmlrpc",
        username="exporter",
        password="export-user-password-one",
        useheader=0,
        type="xmlrpc",
        authtype="user",
        json=0,
        enable=1,
        isfatal=0,
        version=None,
        parameters=None,
    ),
    dict(
        id=7,
        name="Portfolio export spare",
        plugintype="module",
        pluginname="export",
        priority=2,
        **{"class": "PluginModuleExport"},
        connection="export_portfolio",
        institution="mahara",
        url="https://export2.example/xmlrpc",
        username="exporter2",
        password="export-user-password-two",
        useheader=0,
        type="xmlrpc",
        authtype="user",
        json=0,
        enable=1,
        isfatal=0,
        version=None,
        parameters=None,
    ),
    # a disabled XML-RPC client-certificate connection with its key in the PEM
    dict(
        id=8,
        name="Uni A SSO",
        plugintype="auth",
        pluginname="mnet",
        priority=1,
        **{"class": "PluginAuthMnet"},
        connection="mnet_sso",
        institution="uni-a",
        url="https://sso.uni-a.example/api/xmlrpc/server.php",
        certificate="-----BEGIN CERTIFICATE-----\nMIIBfakecertAAAA\n-----END CERTIFICATE-----\n"
        "-----BEGIN PRIVATE KEY-----\nMIIBfakekeyBBBBsecretkeymaterial\n"
        "-----END PRIVATE KEY-----\n",
        username="",
        token="",
        useheader=0,
        type="xmlrpc",
        authtype="cert",
        json=0,
        enable=0,
        isfatal=0,
        version=None,
        parameters=None,
    ),
]
CONFIG = [
    dict(id=1, connection=1, field="match_field", value="idnumber"),
    dict(id=2, connection=1, field="page_size", value="50"),
    dict(id=3, connection=2, field="match_field", value="email"),
]
#: Every secret value above: none may appear in the tree or the command's output.
SECRET_VALUES = [
    "a1b2c3d4e5f6a7b8c9d0-uni-a-moodle-token",
    "9f8e7d6c5b4a39281706-collegeb-token",
    "backup-token-0a9b8c7d6e5f4a3b2c1d",
    "Wsse-P4ssw0rd-collegeb-sis",
    "badge-consumer-secret-abcdef0123",
    "export-user-password-one",
    "export-user-password-two",
    "MIIBfakekeyBBBBsecretkeymaterial",
    PASSWORD,
]


def load_rows(conn: Any, dialect: str, prefix: str = "") -> None:
    """Create the tables and insert the rows through a DB-API connection."""
    mark = "%s"
    cur = conn.cursor()
    for statement in ddl(dialect, prefix):
        cur.execute(statement)
    for name, display in INSTITUTIONS:
        cur.execute(
            f"INSERT INTO {prefix}institution (name, displayname) VALUES ({mark}, {mark})",
            (name, display),
        )
    cur.execute(
        f"INSERT INTO {prefix}config (field, value) VALUES ('webservice_requester_enabled', '1')"
    )
    quote = '"' if dialect == "postgresql" else "`"
    for row in CONNECTIONS:
        cols = ", ".join(f"{quote}{c}{quote}" for c in row)
        cur.execute(
            f"INSERT INTO {prefix}{C} ({cols}) VALUES ({', '.join([mark] * len(row))})",
            list(row.values()),
        )
    for row in CONFIG:
        cur.execute(
            f"INSERT INTO {prefix}client_connections_config (id, connection, field, value) "
            f"VALUES ({mark}, {mark}, {mark}, {mark})",
            list(row.values()),
        )
    conn.commit()


class Unavailable(Exception):
    """The server could not start here; the message says why (the tests skip with it)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user() -> list[str]:
    """``runuser -u nobody --`` when root (the servers refuse or should not run as root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise Unavailable("running as root and runuser is missing")
    return ["runuser", "-u", "nobody", "--"]


def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="rpcd-db-"))
    path.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(path, pwd.getpwnam("nobody").pw_uid, -1)
    return path


def _bin(*candidates: str) -> str:
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
        for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (folder / name).exists():
                return str(folder / name)
    raise Unavailable(f"{candidates[0]} is not installed (Debian: postgresql / mariadb-server)")


def _run(args: list[str], what: str) -> None:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{what} failed: {exc}") from None
    if out.returncode != 0:
        raise Unavailable(f"{what} failed: {(out.stderr or out.stdout).strip()[-500:]}")


@dataclass
class Server:
    dialect: str
    dsn: str  # with the password
    admin: Any  # a DB-API connection (to load rows)


@contextlib.contextmanager
def postgres() -> Iterator[Server]:
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    try:
        import psycopg
    except ImportError:
        raise Unavailable("psycopg is not installed (pip install 'rpcd[import]')") from None
    work = _workdir()
    data, port = work / "data", free_port()
    pwfile = work / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        os.chown(pwfile, pwd.getpwnam("nobody").pw_uid, -1)
    user = _as_user()
    try:
        _run(
            [
                *user,
                initdb,
                "-D",
                str(data),
                "-U",
                "mahara",
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            "initdb",
        )
        _run(
            [
                *user,
                pg_ctl,
                "-D",
                str(data),
                "-l",
                str(work / "log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-h 127.0.0.1 -p {port} -k {work} -F",
                "start",
            ],
            "pg_ctl start",
        )
        try:
            base = f"postgresql://mahara:{PASSWORD}@127.0.0.1:{port}"
            with psycopg.connect(base + "/postgres", autocommit=True) as setup:
                setup.execute("CREATE DATABASE mahara ENCODING 'UTF8'")
            admin = psycopg.connect(base + "/mahara")
            yield Server("postgresql", base + "/mahara", admin)
            admin.close()
        finally:
            subprocess.run(
                [*user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def mariadb() -> Iterator[Server]:
    install, server = _bin("mariadb-install-db", "mysql_install_db"), _bin("mariadbd", "mysqld")
    try:
        import pymysql
    except ImportError:
        raise Unavailable("PyMySQL is not installed (pip install 'rpcd[import]')") from None
    work = _workdir()
    data, port, sock = work / "data", free_port(), work / "mysqld.sock"
    as_root = os.geteuid() == 0
    user_opt = ["--user=nobody"] if as_root else []
    try:
        _run(
            [
                install,
                f"--datadir={data}",
                *user_opt,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            "mariadb-install-db",
        )
        log = work / "error.log"
        proc = subprocess.Popen(
            [
                server,
                "--no-defaults",
                f"--datadir={data}",
                *user_opt,
                f"--socket={sock}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={work / 'pid'}",
                f"--log-error={log}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
                "--skip-log-bin",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            admin = None
            deadline = time.monotonic() + 60
            while admin is None:
                try:
                    admin = pymysql.connect(unix_socket=str(sock), user="root", password="")
                except pymysql.MySQLError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        text = log.read_text(errors="replace")[-500:] if log.exists() else ""
                        raise Unavailable(f"mariadbd did not start: {text}") from None
                    time.sleep(0.2)
            cur = admin.cursor()
            cur.execute("CREATE DATABASE mahara CHARACTER SET utf8mb4")
            cur.execute(f"CREATE USER 'mahara'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")
            cur.execute("GRANT ALL ON mahara.* TO 'mahara'@'127.0.0.1'")
            cur.execute("USE mahara")
            dsn = f"mysql://mahara:{PASSWORD}@127.0.0.1:{port}/mahara"
            yield Server("mysql", dsn, admin)
            admin.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
