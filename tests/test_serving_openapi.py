"""``/v1`` is what its OpenAPI 3.1 document says: schemathesis against a live daemon.

The document is ``rpcd/server/edge/openapi.json``, served at ``GET /v1/openapi.json``.
schemathesis generates requests from it (valid ones, and ones the document does not allow)
for every operation and checks each answer: no 5xx, a status code the document lists, its
content type, its body against the response schema, the headers it names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from server_helpers import LOOPBACK_TOKEN, MOODLE_PASSWORD, Daemon, make_tree, running

from rpcd.secrets_hash import scrypt_hash
from rpcd.server.edge.api import openapi_document

SCHEMA = schemathesis.openapi.from_dict(json.loads(openapi_document()))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("openapi")
    root = make_tree(base / "tree")
    # No outbound call leaves the machine: the example tree's hosts do not exist here.
    site = root / "rpcd.toml"
    site.write_text(
        site.read_text(encoding="utf-8").replace(
            "[connections]\nenabled = true", "[connections]\nenabled = false"
        ),
        encoding="utf-8",
    )
    # Every wrong Basic password costs scrypt with the peers' cost: a cheap one here, as in
    # make_tree's test peers (the example peer's is the production cost).
    peers = root / "services.d" / "peers.toml"
    text = peers.read_text(encoding="utf-8")
    start = text.index('password_hash = "') + len('password_hash = "')
    end = text.index('"', start)
    cheap = scrypt_hash(MOODLE_PASSWORD, n=2**10)
    peers.write_text(text[:start] + cheap + text[end:], encoding="utf-8")
    # schemathesis checks that wrong credentials are refused, many times from one address:
    # past auth_fail_limit the throttle would answer 429 (as documented) instead of 401.
    env = {"RPCD_AUTH_FAIL_LIMIT": "1000"}
    with running(root, Path(base / "rpcd.log"), env) as daemon:
        yield daemon


def test_the_daemon_serves_the_document(daemon: Daemon) -> None:
    status, headers, body = daemon.get("/v1/openapi.json")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    document = json.loads(body)
    assert document["openapi"].startswith("3.1")
    assert body == openapi_document()


def test_every_v1_route_is_described() -> None:
    """A route added to ``/v1`` without its description fails here."""
    from rpcd.server.edge.api import routes

    described = set(json.loads(openapi_document())["paths"])
    served = {route.path for route in routes()} | {"/v1/reload"}
    assert served == described


@pytest.mark.slow
@SCHEMA.parametrize()
def test_api_conforms(case: schemathesis.Case, daemon: Daemon) -> None:
    case.call_and_validate(
        base_url=daemon.url, headers={"Authorization": f"Bearer {LOOPBACK_TOKEN}"}
    )
