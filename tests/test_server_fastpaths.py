"""The request path's precomputed shortcuts answer exactly what the long way would: token
and certificate lookup by digest, the per-catalog access sets, the signature shortcut, and
the cheaper request ids."""

from __future__ import annotations

import hashlib
import inspect
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from server_helpers import LOOPBACK_TOKEN, OUTSIDER_TOKEN, make_tree

from rpcd.errors import INVALID_PARAMS, Fault
from rpcd.server.core.auth import NOT_BEARER, Authenticator, PeerIndex
from rpcd.server.core.dispatch import check_signature
from rpcd.server.core.loading import Loaded, MethodEntry, load, may_call
from rpcd.server.core.signatures import arity, param_checks, param_types
from rpcd.server.edge.http import new_request_id, safe_request_id


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    root = make_tree(tmp_path_factory.mktemp("tree"), client_cert_der=b"test certificate")
    result = load(root, strict_secrets=False)
    assert isinstance(result, Loaded), result
    return result


def test_tokens_are_found_by_digest(loaded: Loaded) -> None:
    index = loaded.peers
    found = index.token_principal(LOOPBACK_TOKEN)
    assert found is not None and found.peer.id == "loopback" and found.method == "token"
    outsider = index.token_principal(OUTSIDER_TOKEN)
    assert outsider is not None and outsider.peer.id == "outsider"
    assert index.token_principal("not-a-token") is None
    assert index.token_principal(LOOPBACK_TOKEN + " ") is None
    assert index.token_principal("\udcff") is None  # a lone surrogate: no crash, no match


def test_bearer_header_forms(loaded: Loaded) -> None:
    index = loaded.peers
    expected = index.token_principal(LOOPBACK_TOKEN)
    for header in (
        f"Bearer {LOOPBACK_TOKEN}",
        f"bearer   {LOOPBACK_TOKEN} ",
        f"BEARER {LOOPBACK_TOKEN}",
    ):
        assert Authenticator.bearer(header, index) is expected
    assert Authenticator.bearer("Bearer wrong", index) is None
    assert Authenticator.bearer("Bearer ", index) is NOT_BEARER
    assert Authenticator.bearer("Basic abc", index) is NOT_BEARER
    assert Authenticator.bearer("", index) is NOT_BEARER


def test_certificates_are_found_by_fingerprint(loaded: Loaded) -> None:
    found = loaded.peers.cert_principal(b"test certificate")
    assert found is not None and found.method == "cert"
    assert found.peer.fingerprint_sha256 == hashlib.sha256(b"test certificate").hexdigest()
    assert loaded.peers.cert_principal(b"another certificate") is None


def test_index_rebuilt_per_catalog(loaded: Loaded) -> None:
    rebuilt = PeerIndex.build(loaded.catalog.peers)
    assert rebuilt.tokens.keys() == loaded.peers.tokens.keys()
    assert rebuilt.token_principal(LOOPBACK_TOKEN) is not loaded.peers.token_principal(
        LOOPBACK_TOKEN
    )


def test_callers_agree_with_may_call(loaded: Loaded) -> None:
    peers = list(loaded.catalog.peers.values())
    assert peers and loaded.methods
    for entry in loaded.methods.values():
        expected = {p.id for p in peers if may_call(p, entry.service)}
        assert entry.callers == expected, entry.name
    assert "loopback" in loaded.methods["hello.add"].callers
    assert "outsider" not in loaded.methods["hello.add"].callers


def test_callers_follow_a_changed_grant(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    hello = root / "services.d" / "hello.toml"
    text = hello.read_text(encoding="utf-8")
    old = 'grant = { institutions = ["uni-a"], peers = ["loopback", "mahara-prod"] }'
    assert old in text
    hello.write_text(text.replace(old, 'grant = { peers = ["outsider"] }'), encoding="utf-8")
    result = load(root, strict_secrets=False)
    assert isinstance(result, Loaded), result
    assert result.methods["hello.add"].callers == {"outsider"}


def _entry(signature: list[str]) -> MethodEntry:
    """An entry with only what ``check_signature`` reads (the service is not used)."""
    method = SimpleNamespace(signature=signature)
    return MethodEntry(
        "t.m",
        None,  # type: ignore[arg-type]
        method,  # type: ignore[arg-type]
        None,
        False,
        None,
        True,
        param_checks(signature),
        param_types(signature),
    )


@pytest.mark.parametrize(
    ("signature", "params"),
    [
        (["int", "int", "int"], [2, 3]),
        (["double", "double"], [2]),  # an int where a double is declared
        (["double", "double"], [2.5]),
        (["string", "string"], ["x"]),
        (["dateTime.iso8601", "dateTime.iso8601"], [datetime(2026, 1, 1)]),
        (["dateTime.iso8601", "dateTime.iso8601"], ["20260101T00:00:00"]),
        (["base64", "base64"], [b"x"]),
        (["struct", "struct", "array", "nil", "boolean"], [{}, [], None, True]),
    ],
)
def test_signature_accepts(signature: list[str], params: list[object]) -> None:
    check_signature(_entry(signature), params)


class _Text(str):
    pass


def test_signature_accepts_a_str_subclass() -> None:
    check_signature(_entry(["string", "string"]), [_Text("x")])


@pytest.mark.parametrize(
    ("signature", "params"),
    [
        (["int", "int", "int"], [True, 3]),  # a bool is not an int here
        (["int", "int", "int"], [2.0, 3]),
        (["int", "int", "int"], [2]),
        (["int", "int", "int"], [2, 3, 4]),
        (["boolean", "boolean"], [1]),
        (["nil", "nil"], [0]),
    ],
)
def test_signature_refuses(signature: list[str], params: list[object]) -> None:
    with pytest.raises(Fault) as info:
        check_signature(_entry(signature), params)
    assert info.value.code == INVALID_PARAMS


def test_request_ids_are_short_unique_and_safe() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    for rid in ids:
        assert len(rid) == 16 and safe_request_id(rid)
        int(rid, 16)
    assert len({rid[:8] for rid in ids}) == 1  # one per-process prefix, then a counter


def _f0() -> None: ...
def _f1(a: object) -> None: ...
def _f12(a: object, b: object = 0) -> None: ...
def _fvar(a: object, *rest: object) -> None: ...
def _fkw(a: object, *, k: object = 1) -> None: ...
def _fkwreq(a: object, *, k: object) -> None: ...
def _fkwargs(a: object, **kw: object) -> None: ...
def _fposonly(a: object, /, b: object = 0) -> None: ...


@pytest.mark.parametrize(
    "func", [_f0, _f1, _f12, _fvar, _fkw, _fkwreq, _fkwargs, _fposonly, len, max]
)
def test_arity_agrees_with_bind(func: Any) -> None:
    """Without a declared signature the count is checked against ``arity`` instead of
    ``Signature.bind``: both must accept and refuse the same numbers of params."""
    try:
        sig: inspect.Signature | None = inspect.signature(func)
    except ValueError:  # a builtin without a signature: neither check applies
        sig = None
    entry = MethodEntry(
        "t.m",
        None,  # type: ignore[arg-type]
        SimpleNamespace(signature=None),  # type: ignore[arg-type]
        func,
        False,
        sig,
        True,
        None,
        None,
        frozenset(),
        arity(sig),
    )
    for n in range(5):
        params: list[object] = list(range(n))
        if sig is None:
            check_signature(entry, params)  # no signature: anything goes
            continue
        try:
            sig.bind(*params)
            binds = True
        except TypeError:
            binds = False
        if binds:
            check_signature(entry, params)
        else:
            with pytest.raises(Fault) as info:
                check_signature(entry, params)
            assert info.value.code == INVALID_PARAMS
