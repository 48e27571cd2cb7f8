"""A reload has a deadline: a handler module whose import blocks fails that reload with a finding
naming the module, the old catalog keeps serving, a later reload that needs the same module
fails at once (Python's import lock would hold it for ever), and other reloads run.

A real ``rpcd serve`` (SIGHUP; the result on ``/v1/status``, in systemd's ``STATUS=`` and in
the log; a clean SIGTERM with the import still stuck), and the in-process reload path for an
import that blocks one module down and is then let go.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ops_helpers import served
from server_helpers import LOOPBACK_TOKEN, Daemon, make_tree, running
from test_sdnotify import FakeSystemd
from tree_helpers import REPO, run_cli

from rpcd.server.ops.reload_build import STUCK

AUTH = {"Authorization": f"Bearer {LOOPBACK_TOKEN}"}

SERVICE = """\
version = 1

[service]
name = "{name}"
apiversion = 1
grant = {{ peers = ["loopback"] }}

[[service.method]]
name = "run"
function = "{module}:run"
"""


def _status(daemon: Daemon) -> dict[str, Any]:
    code, _, body = daemon.get("/v1/status", headers=AUTH)
    assert code == 200, body
    reload: dict[str, Any] = json.loads(body)["reload"]
    return reload


def _after_sighup(daemon: Daemon, systemd: FakeSystemd) -> tuple[str, dict[str, Any]]:
    """SIGHUP; once the reload has ended (systemd is told READY=1): the ``STATUS=`` line and
    the reload's result on ``/v1/status``."""
    daemon.proc.send_signal(signal.SIGHUP)
    ready = dict(systemd.until("READY", timeout=20)[-1])
    last: dict[str, Any] = _status(daemon)["last"]
    return ready.get("STATUS", ""), last


@pytest.mark.slow
def test_a_blocking_handler_import_fails_the_reload_and_later_ones_run(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "rpcd_test_blocking.py").write_text(
        "import time\n\ntime.sleep(1000)  # a handler that dials out at import\n\n\n"
        "def run():\n    return 1\n"
    )
    systemd = FakeSystemd(str(tmp_path / "notify.sock"))
    env = {
        "PYTHONPATH": f"{REPO}{os.pathsep}{modules}",
        "RPCD_RELOAD_TIMEOUT": "1.5",
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
    }
    blocking = root / "services.d" / "blocking.toml"
    with running(root, tmp_path / "rpcd.log", env) as daemon:
        systemd.until("READY")  # started
        proxy = daemon.token_proxy()
        assert proxy.hello.add(2, 3) == 5
        blocking.write_text(SERVICE.format(name="blocking", module="rpcd_test_blocking"))

        status, last = _after_sighup(daemon, systemd)
        assert status.startswith("reload failed, serving"), status
        assert last["result"] == "failed", last
        (finding,) = last["findings"]
        assert finding["rule"] == "reload-timeout", finding
        assert "module `rpcd_test_blocking`" in finding["message"]
        assert "rpcd_test_blocking.py, line 3" in finding["message"]
        assert "rpcd_test_blocking" in last["error"] and "1.5 s" in last["error"]
        assert proxy.hello.add(2, 3) == 5  # the old catalog keeps serving

        # The stuck import still holds the module's lock: the next reload needing it fails
        # at once with its own finding, instead of waiting for ever (or for its deadline).
        status, last = _after_sighup(daemon, systemd)
        assert status.startswith("reload failed, serving"), status
        assert [f["rule"] for f in last["findings"]] == ["reload-blocked"], last
        assert "restart" in last["findings"][0]["message"]

        blocking.unlink()  # a reload that does not import it works
        status, last = _after_sighup(daemon, systemd)
        assert last["result"] == "ok" and status.startswith("serving"), (status, last)
        assert proxy.hello.add(2, 3) == 5
        assert _status(daemon)["reloads_failed"] == 2
        logs = daemon.logs()
    systemd.close()
    assert "error[reload-timeout]" in logs and "error[reload-blocked]" in logs


@pytest.fixture
def gated_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Handler modules ``a`` and ``b`` that both import ``helper``, whose import waits on an
    event of module ``gate`` (set at the end, so no thread is left behind)."""
    tag = uuid.uuid4().hex[:8]
    names = {k: f"rpcd_{k}_{tag}" for k in ("gate", "helper", "a", "b")}
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / f"{names['gate']}.py").write_text("import threading\n\nEVENT = threading.Event()\n")
    (folder / f"{names['helper']}.py").write_text(
        f"import {names['gate']}\n\n{names['gate']}.EVENT.wait()\n"
    )
    for key in ("a", "b"):
        (folder / f"{names[key]}.py").write_text(
            f"import {names['helper']}  # noqa: F401\n\n\ndef run():\n    return {key!r}\n"
        )
    monkeypatch.syspath_prepend(str(folder))
    try:
        yield names
    finally:
        gate = __import__(names["gate"])
        gate.EVENT.set()
        deadline = time.monotonic() + 10
        while STUCK.current() and time.monotonic() < deadline:
            time.sleep(0.05)


def test_an_import_blocked_one_module_down_and_let_go(
    tmp_path: Path, gated_modules: dict[str, str]
) -> None:
    root = make_tree(tmp_path / "tree")
    service = root / "services.d" / "gated.toml"

    async def run() -> None:
        async with served(root, reload_timeout=0.5) as ops:
            before = ops.holder.current
            service.write_text(SERVICE.format(name="gated", module=gated_modules["a"]))
            result = await asyncio.wait_for(ops.reloader.reload(), 20)
            assert not result.ok and ops.holder.current is before
            (finding,) = result.findings
            assert finding["rule"] == "reload-timeout"
            assert f"module `{gated_modules['helper']}`" in finding["message"]

            # b imports the same helper: refused at once, naming it
            service.write_text(SERVICE.format(name="gated", module=gated_modules["b"]))
            result = await asyncio.wait_for(ops.reloader.reload(), 20)
            assert [f["rule"] for f in result.findings] == ["reload-blocked"]
            assert f"module `{gated_modules['helper']}`" in result.findings[0]["message"]
            assert await ops.xmlrpc("hello.add", 1, 2) == 3

            # The import ends after all (the remote came back): both builds end, discarded,
            # and the same tree now loads.
            __import__(gated_modules["gate"]).EVENT.set()
            deadline = time.monotonic() + 10
            while STUCK.current():
                assert time.monotonic() < deadline, STUCK.current()
                await asyncio.sleep(0.05)
            assert ops.holder.current is before  # a late build never swaps itself in
            result = await asyncio.wait_for(ops.reloader.reload(), 20)
            assert result.ok, result
            assert await ops.xmlrpc("gated.run") == "b"

    asyncio.run(run())


def test_stuck_builds_are_capped_and_a_later_reload_refuses_at_once(
    tmp_path: Path, gated_modules: dict[str, str]
) -> None:
    """Each reload naming a new module whose import hangs leaves one more build running; at
    ``max_stuck_reloads`` a reload fails at once and starts no thread."""
    root = make_tree(tmp_path / "tree")
    service = root / "services.d" / "gated.toml"

    def build_threads() -> int:
        return sum(t.name == "rpcd-reload-build" and t.is_alive() for t in threading.enumerate())

    async def run() -> None:
        async with served(root, reload_timeout=0.3, max_stuck_reloads=1) as ops:
            service.write_text(SERVICE.format(name="gated", module=gated_modules["a"]))
            result = await asyncio.wait_for(ops.reloader.reload(), 20)
            assert [f["rule"] for f in result.findings] == ["reload-timeout"]
            threads = build_threads()

            service.write_text(SERVICE.format(name="other", module="rpcd_never_imported"))
            result = await asyncio.wait_for(ops.reloader.reload(), 20)
            assert not result.ok
            (finding,) = result.findings
            assert finding["rule"] == "reload-stuck-limit", finding
            assert "max_stuck_reloads is 1" in finding["message"]
            assert f"module `{gated_modules['helper']}`" in finding["message"]
            assert "restart" in finding["message"]
            assert build_threads() == threads  # no new thread was started
            assert await ops.xmlrpc("hello.add", 1, 2) == 3

    asyncio.run(run())


def test_a_blocking_handler_import_stops_start_up_at_the_deadline_naming_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_tree(tmp_path / "tree")
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "rpcd_test_hangs.py").write_text(
        "import time\n\ntime.sleep(1000)  # dials out at import\n\n\ndef run():\n    return 1\n"
    )
    (root / "services.d" / "hangs.toml").write_text(
        SERVICE.format(name="hangs", module="rpcd_test_hangs")
    )
    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{modules}")
    monkeypatch.setenv("RPCD_RELOAD_TIMEOUT", "1")
    monkeypatch.setenv("RPCD_STRICT_SECRETS", "false")
    result = run_cli("serve", str(root), "--listen", "127.0.0.1:0", subprocess_=True)
    assert result.returncode == 1, result
    assert result.stderr.startswith(
        "rpcd serve: the catalog did not load within reload_timeout (1 s): it is still importing "
        "module `rpcd_test_hangs` ("
    ), result.stderr
    assert "rpcd_test_hangs.py, line 3" in result.stderr and "Traceback" not in result.stderr
