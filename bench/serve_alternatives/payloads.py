"""The three request bodies of ``bench/serve.py`` and the answers each server must give.

Every server gets byte-identical requests (with the loopback peer's bearer token, which the
alternatives ignore). The handlers are the example tree's own functions (``examples.hello``),
so every server runs the same handler code and only the serving stack differs.
"""

from __future__ import annotations

import xmlrpc.client as xc
from dataclasses import dataclass
from typing import Any

TOKEN = "rpcd-dev-loopback-token"  # services.d/peers.toml, peer "loopback"


@dataclass(frozen=True)
class Payload:
    key: str  # short name, used in file names
    label: str  # row label in the tables
    method: str
    params: tuple[Any, ...]
    expected: Any

    @property
    def body(self) -> bytes:
        return xc.dumps(self.params, self.method, encoding="utf-8").encode("utf-8")

    @property
    def response(self) -> bytes:
        """What a correct server answers: the ceiling sends exactly this, pre-built."""
        return xc.dumps((self.expected,), methodresponse=True, encoding="utf-8").encode("utf-8")


STRUCT_50 = {f"field_{i}": (i if i % 3 else f"value {i} & <more>") for i in range(50)}
INTS_10K = list(range(10_000))

PAYLOADS: tuple[Payload, ...] = (
    Payload("add", "add(a, b)", "hello.add", (2, 3), 5),
    Payload("echo", "echo, 50-member struct", "hello.echo", (STRUCT_50,), STRUCT_50),
    Payload("sum", "sum, 10,000 ints", "hello.sum", (INTS_10K,), float(sum(INTS_10K))),
)

#: Published name → the handler's import path (as services.d/hello.toml declares them).
METHODS = {"hello.add": "add", "hello.echo": "echo", "hello.sum": "total"}
