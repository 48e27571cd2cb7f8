"""Secret references: env, file, systemd credential; findings by reference; log redaction."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from peers.tree import load, make_tree, no_secret_in_logs, secret

from rpcd.config.models import SecretRef
from rpcd.errors import SecretError
from rpcd.secrets import (
    MASK,
    SecretRedactingFilter,
    resolve_catalog,
    resolve_ref,
    short_secret_findings,
)

__all__ = ["no_secret_in_logs"]

VALUE = secret("s3cr3t-value-0123456789")


def conn(cid: str, ref: str, institution: str, *, enabled: bool = True) -> str:
    return f"""
    [[connection]]
    id = "{cid}"
    enabled = {str(enabled).lower()}
    institutions = ["{institution}"]
    auth = "token"
    endpoint = "https://svc.example/{{function}}"
    credentials = {{ token = {ref} }}
    """


def tree(tmp_path: Path, *conns: str) -> Path:
    head = '[class]\nid = "demo_svc"\nplugin = "demo"\nname = "Demo"\n'
    return make_tree(tmp_path, {"demo.toml": head + "".join(conns)})


def test_env_file_and_credential_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token.txt").write_text(VALUE + "\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "demo-token").write_text(VALUE + "\r\n")
    monkeypatch.setenv("DEMO_TOKEN", VALUE)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    root = tree(
        tmp_path / "t",
        conn("a", '{ env = "DEMO_TOKEN" }', "uni-a"),
        conn("b", f'{{ file = "{tmp_path}/token.txt" }}', "uni-b"),
        conn("c", '{ credential = "demo-token" }', "college-c"),
    )
    store, findings = resolve_catalog(load(root))
    assert findings == []
    for ref in (
        {"env": "DEMO_TOKEN"},
        {"file": f"{tmp_path}/token.txt"},
        {"credential": "demo-token"},
    ):
        value = store.get(SecretRef(**ref))  # type: ignore[arg-type]
        assert value.get_secret_value() == VALUE and str(value) == MASK
    assert VALUE not in repr(store)


def test_missing_references_are_named_never_valued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    root = tree(
        tmp_path / "t",
        conn("a", '{ env = "NOPE" }', "uni-a"),
        conn("b", '{ file = "/nonexistent/token" }', "uni-b", enabled=False),
        conn("c", '{ credential = "demo-token" }', "college-c"),
    )
    store, findings = resolve_catalog(load(root))
    by_path = {f.path: f for f in findings}
    assert {f.rule for f in findings} == {"secret-unresolved"}
    a = by_path["demo_svc/a.credentials.token"]
    assert a.severity == "error" and "env:NOPE" in a.message and "NOPE is not set" in a.message
    assert a.file == "connections.d/demo.toml"
    b = by_path["demo_svc/b.credentials.token"]
    assert b.severity == "warning" and "/nonexistent/token does not exist" in b.message
    assert "CREDENTIALS_DIRECTORY" in by_path["demo_svc/c.credentials.token"].message
    with pytest.raises(SecretError, match="env:NOPE"):
        store.get(SecretRef(env="NOPE"))


def test_short_secret_is_refused_by_the_daemon_unless_warn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHORT", "abc")
    store, findings = resolve_catalog(load(tree(tmp_path, conn("a", '{ env = "SHORT" }', "uni-a"))))
    (f,) = findings
    assert (f.rule, f.severity) == ("secret-short", "warning") and "abc" not in f.message
    (refused,) = short_secret_findings(findings)  # the daemon's default policy
    assert refused.severity == "error" and "RPCD_SHORT_SECRETS=warn" in refused.message
    assert short_secret_findings(findings, "warn") == findings
    assert list(store.redaction_values()) == []  # never masked: it would show where it was


def test_empty_env_value_is_unresolved() -> None:
    with pytest.raises(SecretError, match="EMPTY is empty"):
        resolve_ref(SecretRef(env="EMPTY"), environ={"EMPTY": ""})


def test_redacting_filter_masks_message_args_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = secret("another-secret-value-42")
    logger = logging.getLogger("test.redact")
    flt = SecretRedactingFilter([VALUE, other])
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(flt)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token=%s and %s", VALUE, "fine")
        logger.warning("inline " + other)
        try:
            raise RuntimeError(f"boom {VALUE}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    texts = [r.getMessage() + (r.exc_text or "") for r in records]
    assert texts[0] == f"token={MASK} and fine"
    assert texts[1] == f"inline {MASK}"
    assert MASK in texts[2] and all(VALUE not in t and other not in t for t in texts)


def test_short_usernames_are_neither_warned_about_nor_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER_NAME", "svc")
    monkeypatch.setenv("LONG_USER_NAME", "service-account")
    monkeypatch.setenv("USER_PASSWORD", VALUE)
    root = make_tree(
        tmp_path,
        {
            "x.toml": """
    [class]
    id = "x_svc"
    plugin = "x"
    name = "X"
    [[connection]]
    id = "a"
    enabled = true
    global = true
    type = "XML-RPC"
    auth = "userpass"
    endpoint = "https://x.example/RPC2"
    credentials = { username = { env = "USER_NAME" }, password = { env = "USER_PASSWORD" } }
    """,
            "y.toml": """
    [class]
    id = "y_svc"
    plugin = "y"
    name = "Y"
    [[connection]]
    id = "b"
    enabled = true
    global = true
    type = "XML-RPC"
    auth = "userpass"
    endpoint = "https://y.example/RPC2"
    credentials = { username = { env = "LONG_USER_NAME" }, password = { env = "USER_PASSWORD" } }
    """,
        },
    )
    store, findings = resolve_catalog(load(root))
    assert findings == []
    message = "svc and service-account %s"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, message, (VALUE,), None)
    SecretRedactingFilter(store).filter(record)
    assert record.getMessage() == f"svc and {MASK} {MASK}"  # a long username is masked


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_a_secret_file_that_is_not_a_regular_file_is_refused_without_blocking(
    tmp_path: Path, kind: str
) -> None:
    """A FIFO (or a directory, a device) named as a secret file would hold the load and every
    later reload until something wrote to it; it is refused at once, naming the reference."""
    target = {"fifo": tmp_path / "pipe", "directory": tmp_path, "device": Path("/dev/zero")}[kind]
    if kind == "fifo":
        os.mkfifo(target)
    ref = SecretRef(file=str(target))
    with pytest.raises(SecretError, match="is not a regular file"):
        resolve_ref(ref, environ={})
