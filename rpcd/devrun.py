"""``make run``: serve the example tree on 127.0.0.1 and print a call that works as printed.

Development only. It sets the loopback peer's token (``RPCD_LOOPBACK_TOKEN``) when unset, and
lets the daemon start although the example tree's other secrets (Moodle tokens, systemd
credentials) are not on this machine: those connections then fail when called, naming the
reference (``RPCD_STRICT_SECRETS=false``). Production runs ``rpcd serve``, which refuses that.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

DEV_TOKEN = "rpcd-dev-loopback-token"


def example_call(url: str, token: str) -> str:
    """A one-line ``python3 -c`` that calls hello.helloWorld through ``xmlrpc.client``."""
    return (
        'python3 -c "import xmlrpc.client as x; '
        f"print(x.ServerProxy('{url}/RPC2', headers=[('Authorization','Bearer {token}')])"
        ".hello.helloWorld('Ada','Lovelace'))\""
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rpcd.devrun", description=__doc__)
    parser.add_argument("--root", default=".", help="config root (default .)")
    parser.add_argument(
        "--listen", default="127.0.0.1:8080", help="HOST:PORT (default 127.0.0.1:8080)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("RPCD_LOOPBACK_TOKEN", DEV_TOKEN)
    os.environ.setdefault("RPCD_STRICT_SECRETS", "false")

    from rpcd.server.cli import prepare
    from rpcd.server.ops.loops import run
    from rpcd.server.ops.run import serve

    prepared = prepare(
        argparse.Namespace(root_arg=None, root=args.root, listen=args.listen, settings=None)
    )
    if isinstance(prepared, int):
        return prepared
    settings, loaded = prepared

    def announce(url: str) -> None:
        token = (
            os.environ["RPCD_LOOPBACK_TOKEN"]
            if os.environ["RPCD_LOOPBACK_TOKEN"] == DEV_TOKEN
            else "$RPCD_LOOPBACK_TOKEN"
        )
        print(f"\nrpcd is serving {args.root} on {url} (Ctrl-C stops it). Try:\n", flush=True)
        print("  " + example_call(url, token) + "\n", flush=True)
        print("and an outbound call through the loopback connection (see README):\n", flush=True)
        print(
            f"  RPCD_LOOPBACK_TOKEN={token} .venv/bin/rpcd call rpcd_loopback "
            "hello.helloWorld Ada Lovelace --institution uni-a\n",
            flush=True,
        )
        print(
            f"and the read-only console: {url}/ui (sign in as peer loopback, token {token})\n",
            flush=True,
        )

    # With the root given, SIGHUP reloads the tree as it does under `rpcd serve`.
    return run(
        serve(settings, loaded, announce=announce, root=Path(args.root)), settings.event_loop
    )


if __name__ == "__main__":
    sys.exit(main())
