"""The console's untrusted inputs: form bodies, query values, session cookies.

Each is parsed within bounds with a clear refusal for anything else; the fuzz tests throw
arbitrary bytes and text at them and accept only a result or ``FormError`` (never another
exception), and a forged or altered cookie never verifies.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcd.server.ui.forms import (
    MAX_FIELDS,
    MAX_VALUE_CHARS,
    FormError,
    filter_text,
    page_number,
    parse_form,
)
from rpcd.server.ui.session import ConsoleSessions

ALLOWED = {"csrf", "method", "username", "password", "token"}


def test_a_sign_in_form_parses() -> None:
    body = b"csrf=ab12&method=password&username=basic-user&password=p%C3%A4ss+word"
    assert parse_form(body, ALLOWED) == {
        "csrf": "ab12",
        "method": "password",
        "username": "basic-user",
        "password": "päss word",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"csrf=1&evil=2", "unexpected form field 'evil'"),
        (b"csrf=1&csrf=2", "form field 'csrf' given twice"),
        (b"&".join([b"csrf=1"] * (MAX_FIELDS + 1)), f"more than {MAX_FIELDS} fields"),
        (b"token=" + b"x" * (MAX_VALUE_CHARS + 1), f"longer than {MAX_VALUE_CHARS} characters"),
        (b"token=\xff", "not UTF-8"),
    ],
)
def test_a_bad_form_is_refused_saying_why(body: bytes, message: str) -> None:
    with pytest.raises(FormError, match=message):
        parse_form(body, ALLOWED)


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "x", "1" * 7, "٣"])
def test_a_page_number_is_a_short_run_of_ascii_digits(value: str) -> None:
    with pytest.raises(FormError, match="must be a whole number from 1"):
        page_number(value)


def test_page_and_filter_defaults() -> None:
    assert page_number(None) == 1 and page_number("") == 1 and page_number("42") == 42
    assert filter_text(None, "class") == "" and filter_text("  uni-a ", "class") == "uni-a"
    with pytest.raises(FormError, match="class filter is longer than 100"):
        filter_text("x" * 101, "class")


@pytest.mark.fuzz
@given(st.binary(max_size=4096))
def test_fuzz_any_form_body_parses_or_is_refused(body: bytes) -> None:
    try:
        fields = parse_form(body, ALLOWED)
    except FormError as exc:
        assert str(exc)
        return
    assert set(fields) <= ALLOWED and len(fields) <= MAX_FIELDS
    assert all(len(v) <= MAX_VALUE_CHARS for v in fields.values())


@pytest.mark.fuzz
@given(st.text(max_size=64))
def test_fuzz_any_page_value_is_a_number_or_refused(value: str) -> None:
    try:
        assert page_number(value) >= 1
    except FormError as exc:
        assert "whole number" in str(exc)


SESSIONS = ConsoleSessions(b"k" * 32, 600)


def test_a_cookie_verifies_until_revoked_and_the_csrf_token_is_bound_to_it() -> None:
    cookie = SESSIONS.issue("loopback")
    claims = SESSIONS.verify(cookie)
    assert claims is not None and claims.peer_id == "loopback"
    token = SESSIONS.csrf(claims.nonce)
    assert SESSIONS.csrf_ok(claims.nonce, token)
    assert not SESSIONS.csrf_ok(claims.nonce, SESSIONS.csrf(claims.nonce, "login"))
    other = SESSIONS.verify(SESSIONS.issue("loopback"))
    assert other is not None and not SESSIONS.csrf_ok(other.nonce, token)
    SESSIONS.revoke(claims)
    assert SESSIONS.verify(cookie) is None


def test_a_cookie_of_another_key_or_of_the_rpc_sessions_does_not_verify() -> None:
    other = ConsoleSessions(b"j" * 32, 600)
    assert SESSIONS.verify(other.issue("loopback")) is None
    sessionid, kp3 = SESSIONS.sessions.issue("loopback")
    assert SESSIONS.verify(f"{sessionid}~{kp3}") is not None
    from rpcd.server.core.sessions import SessionManager

    rpc = SessionManager(b"k" * 32, 600)  # the daemon's RPC sessions, same configured key
    sessionid, kp3 = rpc.issue("loopback")
    assert SESSIONS.verify(f"{sessionid}~{kp3}") is None


@pytest.mark.fuzz
@given(st.text(max_size=1024))
def test_fuzz_a_forged_cookie_never_verifies(value: str) -> None:
    assert SESSIONS.verify(value) is None


@pytest.mark.fuzz
@given(st.data())
def test_fuzz_an_altered_cookie_never_verifies(data: st.DataObject) -> None:
    cookie = SESSIONS.issue("loopback")
    index = data.draw(st.integers(0, len(cookie) - 1))
    char = data.draw(st.characters(codec="ascii").filter(lambda c: c != cookie[index]))
    assert SESSIONS.verify(cookie[:index] + char + cookie[index + 1 :]) is None
