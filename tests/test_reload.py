"""Reload without loss: build beside the live catalog, swap only a valid one, never half of one.

Real HTTP on 127.0.0.1 against the app ``rpcd serve`` builds (in-process, so a test can hold a
call open across a reload), plus one real outbound peer for secret rotation.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from ops_helpers import AUTH, Ops, served
from server_helpers import OUTSIDER_TOKEN, make_tree

HELLO = "services.d/hello.toml"


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1))


async def status(ops: Ops) -> dict[str, Any]:
    code, body = await ops.get_json("/v1/status")
    assert code == 200, body
    assert isinstance(body, dict)
    return body


async def post_reload(ops: Ops, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    response = await ops.client.post("/v1/reload", headers=AUTH if headers is None else headers)
    return response.status, await response.json()


def test_valid_change_is_applied_and_shown_on_status(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")

    async def run() -> None:
        async with served(root) as ops:
            before = await status(ops)
            old_hash = before["revision"]["content_hash"]
            edit(root, HELLO, 'help = "Adds two integers."', 'help = "Adds two integers (v2)."')
            code, body = await post_reload(ops)
            assert code == 200 and body["result"] == "ok" and body["changed"], body
            after = await status(ops)
            new_hash = after["revision"]["content_hash"]
            assert new_hash != old_hash and body["content_hash"] == new_hash
            assert after["reload"]["last"]["result"] == "ok", after
            assert await ops.xmlrpc("system.methodHelp", "hello.add") == "Adds two integers (v2)."
            # Nothing changed: still ok, same hash, not "changed".
            code, body = await post_reload(ops)
            assert code == 200 and not body["changed"] and body["content_hash"] == new_hash

    asyncio.run(run())


def test_reload_is_for_admins_only(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")

    async def run() -> None:
        async with served(root) as ops:
            code, _ = await post_reload(ops, {"Authorization": f"Bearer {OUTSIDER_TOKEN}"})
            assert code == 403
            response = await ops.client.post("/v1/reload")
            assert response.status == 401 and "WWW-Authenticate" in response.headers
            assert ops.reloader.ok_count == ops.reloader.failed_count == 0

    asyncio.run(run())


def test_invalid_change_refused_under_load_with_zero_failed_calls(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")

    async def run() -> None:
        async with served(root) as ops:
            old_hash = ops.holder.current.catalog.content_hash
            stop = asyncio.Event()
            results: list[Any] = []

            async def caller(n: int) -> None:
                i = 0
                while not stop.is_set():
                    results.append((n + i, await ops.xmlrpc("hello.add", n, i)))
                    i += 1

            callers = [asyncio.create_task(caller(n)) for n in range(8)]
            await asyncio.sleep(0.1)
            # Three kinds of bad tree: TOML syntax, a rule across files, a bad secret reference.
            edit(root, HELLO, 'name = "add"', 'name = "add"\nname = "again"')
            code, body = await post_reload(ops)
            assert code == 409 and body["result"] == "failed", body
            assert body["findings"] and body["findings"][0]["file"].endswith("hello.toml"), body
            assert body["content_hash"] == old_hash
            edit(root, HELLO, 'name = "add"\nname = "again"', 'name = "add"')
            edit(root, HELLO, 'function = "examples.hello:add"', 'function = "examples.nope:add"')
            ops.reloader.request()  # the SIGHUP path
            ops.reloader.request()  # coalesced into the one running
            await ops.reloader.wait_idle()
            failed = await status(ops)
            assert failed["reload"]["last"]["result"] == "failed", failed
            assert failed["reload"]["last"]["findings"], failed
            assert failed["revision"]["content_hash"] == old_hash
            await asyncio.sleep(0.1)
            stop.set()
            await asyncio.gather(*callers)
            assert len(results) > 50, len(results)
            wrong = [(want, got) for want, got in results if got != want]
            assert wrong == [], wrong[:5]
            # The old catalog still answers, and a fixed tree then loads.
            assert await ops.xmlrpc("hello.add", 2, 2) == 4
            edit(root, HELLO, "examples.nope:add", "examples.hello:add")
            assert (await ops.reloader.reload()).ok
            assert ops.reloader.failed_count == 2

    asyncio.run(run())


def test_call_in_flight_finishes_on_the_catalog_it_began_with(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")

    async def run() -> None:
        async with served(root) as ops:
            slow = asyncio.create_task(ops.xmlrpc("hello.slowEcho", 1.0, "began-on-old"))
            await asyncio.sleep(0.3)  # the call is now running on the old catalog
            # The new catalog no longer publishes slowEcho at all.
            edit(root, HELLO, 'name = "slowEcho"', 'name = "slowEchoV2"')
            result = await ops.reloader.reload()
            assert result.ok and result.changed
            assert not slow.done()
            assert await slow == "began-on-old"
            gone = await ops.xmlrpc("hello.slowEcho", 0, "x")
            assert isinstance(gone, xmlrpc.client.Fault) and gone.faultCode == -32601
            assert await ops.xmlrpc("hello.slowEchoV2", 0, "new") == "new"

    asyncio.run(run())


ROTATING = """\
version = 1

[class]
id = "test_rotating_{kind}"
plugin = "test"
name = "A peer whose token is rotated ({kind})"

[[connection]]
id = "peer"
enabled = true
global = true
type = "XML-RPC"
auth = "token"
token_header = "Authorization"
endpoint = "http://127.0.0.1:{port}/RPC2"
timeout = 5
credentials = {{ token = {ref} }}
"""

ROTATING_SERVICE = """\
version = 1

[service]
name = "rot"
apiversion = 1
grant = {{ peers = ["loopback"] }}

[[service.method]]
name = "{kind}"
proxy = {{ class = "test_rotating_{kind}", function = "whoami" }}
"""


@pytest.mark.parametrize("kind", ["file", "env"])
def test_rotated_secret_is_picked_up_on_reload(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_tree(tmp_path / "tree")
    secret_file = tmp_path / "peer-token"
    env_name = "RPCD_TEST_ROTATING_TOKEN"
    old_token, new_token = "first-token-0123456789", "second-token-9876543210"
    expected = {"token": old_token}

    async def peer(request: web.Request) -> web.Response:
        # The real remote: it accepts only the token it currently expects.
        if request.headers.get("Authorization") != f"Bearer {expected['token']}":
            return web.Response(status=401, text="bad token")
        body = xmlrpc.client.dumps(("hello from the peer",), methodresponse=True)
        return web.Response(body=body.encode(), content_type="text/xml")

    async def run() -> None:
        peer_app = web.Application()
        peer_app.router.add_post("/RPC2", peer)
        runner = web.AppRunner(peer_app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        if kind == "file":
            secret_file.write_text(old_token + "\n")
            ref = f'{{ file = "{secret_file}" }}'
        else:
            monkeypatch.setenv(env_name, old_token)
            ref = f'{{ env = "{env_name}" }}'
        (root / "connections.d" / f"rotating_{kind}.toml").write_text(
            ROTATING.format(kind=kind, port=port, ref=ref)
        )
        (root / "services.d" / "rot.toml").write_text(ROTATING_SERVICE.format(kind=kind))
        try:
            async with served(root) as ops:
                method = f"rot.{kind}"
                assert await ops.xmlrpc(method) == "hello from the peer"
                # Rotate: the remote now wants the new token; the daemon still sends the old.
                expected["token"] = new_token
                if kind == "file":
                    secret_file.write_text(new_token + "\n")
                else:
                    monkeypatch.setenv(env_name, new_token)
                refused = await ops.xmlrpc(method)
                assert isinstance(refused, xmlrpc.client.Fault), refused
                result = await ops.reloader.reload()
                assert result.ok and not result.changed  # same tree, secrets re-read
                assert await ops.xmlrpc(method) == "hello from the peer"
        finally:
            await runner.cleanup()

    asyncio.run(run())


def test_freeze_hides_the_loaded_heap_from_the_collector() -> None:
    """``freeze`` (after a load and after each swap) leaves what survives out of the cyclic
    collector's scans; in a fresh interpreter, so nothing else has frozen anything yet."""
    code = (
        "import gc\n"
        "from rpcd.server.ops.reload import freeze\n"
        "keep = [[i] for i in range(1000)]\n"
        "assert gc.get_freeze_count() == 0\n"
        "freeze()\n"
        "print(gc.get_freeze_count())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert int(done.stdout.strip()) > 1000
