"""Settings errors name the setting as an operator sets it and never repeat a secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from tree_helpers import REPO, run_cli

from rpcd.settings import load_settings


def test_a_log_level_in_any_case_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPCD_LOG_LEVEL", "warning")
    assert load_settings().log_level == "WARNING"


def test_an_invalid_setting_is_named_with_its_variable_and_what_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RPCD_MAX_BODY_BYTES", "5")
    with pytest.raises(ValueError) as caught:
        load_settings()
    text = str(caught.value)
    assert text.startswith("RPCD_MAX_BODY_BYTES (or max_body_bytes in the settings file): ")
    assert "greater than or equal to 1024" in text and "got '5'" in text
    assert "pydantic.dev" not in text  # no link into a library's docs for an operator


def test_a_secret_setting_is_never_repeated_in_the_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RPCD_SESSION_KEY", "s3cret-session-key-value")
    monkeypatch.setenv("RPCD_SESSION_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(ValueError) as caught:
        load_settings()
    text = str(caught.value)
    assert "give session_key or session_key_file, not both" in text
    assert "s3cret" not in text and "s3cret" not in repr(caught.value.__cause__)


def test_serve_refuses_bad_settings_in_one_readable_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPCD_LOG_LEVEL", "loud")
    result = run_cli("serve", "--root", str(REPO), "--listen", "127.0.0.1:0", subprocess_=True)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "rpcd serve: invalid settings: RPCD_LOG_LEVEL (or log_level in the settings file): "
    )
    assert "got 'LOUD'" in result.stderr and "Traceback" not in result.stderr
