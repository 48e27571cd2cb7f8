"""How long do the console's pages take on a 10,000-connection tree? (goal: ≤ 200 ms each)

Generates the tree of ``bench/validate.py`` (10,000 valid connections, 100 classes, 100
institutions, one file per class) plus an admin peer, loads it as
``rpcd serve`` does, runs the daemon's app (``create_app``, with the reloader) in this process
on 127.0.0.1, signs in through the console's form, reloads once (so the reload pages have a
row), and requests each page ``--rounds`` times in turn. Per page it prints the median and
the slowest time from request to the last byte, over keep-alive loopback with the client on
the same event loop: an upper bound of the server time (it includes the client's share).

Run: ``.venv/bin/python bench/console.py [--rounds N] [--connections N]`` (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from validate import generate  # noqa: E402

from rpcd.secrets_hash import token_sha256  # noqa: E402
from rpcd.server.core.loading import Loaded, load  # noqa: E402
from rpcd.server.edge.app import create_app, install_reload  # noqa: E402
from rpcd.server.edge.keys import RELOADER  # noqa: E402
from rpcd.settings import Settings  # noqa: E402

ADMIN_TOKEN = "bench-console-admin-token-0123456789"
PEERS = f"""version = 1

[[peer]]
id = "bench-admin"
auth = "token"
token_sha256 = "{token_sha256(ADMIN_TOKEN)}"
admin = true
"""

PAGES = [
    ("overview", "/ui"),
    ("routing, page 1", "/ui/routing"),
    ("routing, last page", "/ui/routing?page=2&cols=13"),
    ("routing, class filter", "/ui/routing?class=svc42"),
    ("routing, institution filter", "/ui/routing?institution=inst099"),
    ("connection", "/ui/connections/{sample}"),
    ("services", "/ui/services"),
    ("services, can peer X call", "/ui/services?peer=gateway"),
    ("reloads", "/ui/reloads"),
]


async def measure(root: Path, loaded: Loaded, rounds: int) -> list[tuple[str, float, float]]:
    settings = Settings(session_key="bench-console-session-key-0123456789", strict_secrets=False)
    app = create_app(settings, loaded)
    install_reload(app, root, notifier=None)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    results = []
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            html = await (await client.get(url + "/ui/login")).text()
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
            assert csrf is not None
            form = {"csrf": csrf.group(1), "method": "token", "token": ADMIN_TOKEN}
            signed = await client.post(url + "/ui/login", data=form, allow_redirects=False)
            assert signed.status == 303, await signed.text()
            reload = await app[RELOADER].reload()
            assert reload.ok
            ids = sorted(loaded.catalog.connections)
            pages = [(label, path.format(sample=ids[len(ids) // 2])) for label, path in PAGES]
            times: dict[str, list[float]] = {path: [] for _, path in pages}
            for _ in range(rounds):
                for _, path in pages:
                    start = time.perf_counter()
                    async with client.get(url + path, allow_redirects=False) as response:
                        body = await response.read()
                        assert response.status == 200, (path, response.status, body[:300])
                    times[path].append((time.perf_counter() - start) * 1000)
            for label, path in pages:
                results.append((label, statistics.median(times[path]), max(times[path])))
    finally:
        await runner.cleanup()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tree"
        root.mkdir()
        generate(root, args.connections, "per-class", broken_share=False)
        (root / "services.d" / "zz-console-peers.toml").write_text(PEERS, encoding="utf-8")
        logging.getLogger("rpcd").setLevel(logging.ERROR)  # the tree's secrets are not set
        started = time.perf_counter()
        loaded = load(root, strict_secrets=False)
        if not isinstance(loaded, Loaded):
            print("\n".join(f.as_text() for f in loaded if f.severity == "error")[:2000])
            return 1
        print(
            f"tree: {len(loaded.catalog.connections):,} connections, "
            f"{len(loaded.catalog.classes)} classes, {len(loaded.catalog.institutions)} "
            f"institutions; loaded in {time.perf_counter() - started:.1f} s\n"
        )
        results = asyncio.run(measure(root, loaded, args.rounds))
    print(f"{'page':30} {'median ms':>10} {'slowest ms':>11}  (of {args.rounds} requests)")
    for label, median, slowest in results:
        print(f"{label:30} {median:10.1f} {slowest:11.1f}")
    worst = max(median for _, median, _ in results)
    print(f"\nslowest median: {worst:.1f} ms (goal: at most 200 ms per page)")
    return 0 if worst <= 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
