"""Daemon settings: defaults < settings file (TOML) < ``RPCD_*`` environment < CLI flags.

The settings file is named by ``--settings FILE`` or ``RPCD_SETTINGS_FILE``. Every bound the
daemon enforces (body size, XML depth, multicall length, handler time) is here, so an operator
can see and change them in one place. Secrets (the session key) are ``SecretStr``: they print
as stars in any repr, log or error.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rpcd.codecs import numtext

__all__ = ["MAX_SESSION_TTL", "Settings", "load_settings", "settings_problems"]

MIB = 1024 * 1024
#: Upper bound of ``session_ttl``. A logged-out session stays valid on *other* replicas until
#: it expires (revocation is local), so the lifetime must stay short: 12 hours at the very most.
MAX_SESSION_TTL = 12 * 3600.0


class Settings(BaseSettings):
    """Listen address, limits, sessions, TLS and logging of ``rpcd serve``."""

    model_config = SettingsConfigDict(env_prefix="RPCD_", extra="forbid", frozen=True)

    listen: str = "127.0.0.1:8080"
    max_body_bytes: int = Field(default=MIB, ge=1024, le=256 * MIB)
    max_xml_depth: int = Field(default=32, ge=1, le=200)
    #: Characters of one number or dateTime text (XML-RPC) or number (JSON-RPC), surrounding
    #: whitespace not counted: a longer one is refused before it is converted, as CPython
    #: bounds ``int()`` of long digit strings (default the same 4,300).
    max_number_chars: int = Field(
        default=numtext.DEFAULT_MAX_NUMBER_CHARS, ge=numtext.MIN_MAX_NUMBER_CHARS, le=MIB
    )
    max_multicall: int = Field(default=100, ge=1, le=10_000)
    #: Calls one request may run in all (a JSON-RPC batch's entries, each ``system.multicall``
    #: entry counted one by one), counted before any runs: over it, nothing runs (-32600).
    max_calls_per_request: int = Field(default=100, ge=1, le=10_000)
    handler_timeout: float = Field(default=30.0, gt=0, le=3600)
    handler_threads: int = Field(default=8, ge=1, le=256)
    session_key: SecretStr | None = None
    session_key_file: Path | None = None
    session_ttl: float = Field(default=1800.0, gt=0, le=MAX_SESSION_TTL)
    auth_cache_ttl: float = Field(default=60.0, ge=0, le=3600)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    shutdown_timeout: float = Field(default=10.0, gt=0, le=600)
    #: Connections (``rpcd.server.edge.conn_guard``): seconds to send a request's line and headers
    #: (from connect, or from the first byte of the next request on a kept-alive connection),
    #: seconds to send its body, seconds a client may stop reading its response, seconds a
    #: kept-alive connection may idle, and how many connections may be open at once (the
    #: longest idle one is closed to make room).
    header_timeout: float = Field(default=20.0, gt=0, le=3600)
    body_timeout: float = Field(default=60.0, gt=0, le=3600)
    send_timeout: float = Field(default=60.0, gt=0, le=3600)
    keepalive_timeout: float = Field(default=75.0, gt=0, le=3600)
    max_connections: int = Field(default=512, ge=1, le=1_000_000)
    #: Failed password checks (HTTP Basic, ``system.login``) allowed per client address and
    #: per user name within ``auth_fail_window`` seconds; past it, 429 with Retry-After.
    #: ``auth_fail_table_size`` bounds the addresses and names remembered (oldest forgotten).
    auth_fail_limit: int = Field(default=10, ge=1, le=1000)
    auth_fail_window: float = Field(default=60.0, gt=0, le=86_400)
    auth_fail_table_size: int = Field(default=10_000, ge=16, le=1_000_000)
    #: Proxies (addresses or networks) whose ``X-Forwarded-For`` names the client address.
    trusted_proxies: tuple[str, ...] = ()
    #: When set, ``GET /metrics`` needs ``Authorization: Bearer <token>``.
    metrics_token: SecretStr | None = None
    metrics_token_file: Path | None = None
    #: False only for development: an unresolved secret reference is then a warning, not a
    #: load error, and calls over that connection fail naming the reference.
    strict_secrets: bool = True
    #: An authenticating secret shorter than 8 characters: "refuse" (a load or reload error:
    #: it is weak, and masking it in logs would show where it was) or "warn" (development
    #: only: used, never masked in logs).
    short_secrets: Literal["refuse", "warn"] = "refuse"
    #: Seconds a reload may take (build, handler imports, secrets); past it the reload fails,
    #: the old catalog keeps serving, and a handler import still running is named.
    reload_timeout: float = Field(default=30.0, gt=0, le=3600)
    #: Reload builds left running past ``reload_timeout`` (Python cannot stop them); at this
    #: many a reload fails at once (``reload-stuck-limit``) instead of starting another.
    max_stuck_reloads: int = Field(default=4, ge=1, le=64)
    #: Outbound calls (``rpcd.connections.transport``): an answer's decoded body, its whole
    #: head, its header lines, one line of it (status line, header, chunk-size line); the
    #: pool's connections in all and per host, and how long an idle one is kept.
    outbound_max_response_bytes: int = Field(default=8 * MIB, ge=1024, le=1024 * MIB)
    outbound_max_header_bytes: int = Field(default=65536, ge=1024, le=16 * MIB)
    outbound_max_headers: int = Field(default=128, ge=8, le=10_000)
    outbound_max_line_bytes: int = Field(default=8190, ge=256, le=MIB)
    outbound_pool_limit: int = Field(default=256, ge=1, le=100_000)
    outbound_pool_limit_per_host: int = Field(default=64, ge=1, le=100_000)
    outbound_keepalive_timeout: float = Field(default=30.0, gt=0, le=3600)
    #: Use HTTPS_PROXY / HTTP_PROXY / NO_PROXY of the daemon's environment for connections
    #: that no `[proxy]` of rpcd.toml and no own `proxy` covers (docs/outbound.md).
    outbound_proxy_from_env: bool = False
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: Access lines are written in batches, at most this many seconds after the request
    #: (one write for all the requests meanwhile); 0 writes at the end of each loop pass.
    access_log_flush: float = Field(default=0.1, ge=0, le=10)
    #: ``uvloop`` (when importable, else asyncio with a warning) or ``asyncio``.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    #: Reload results kept for the console's reload history (the oldest dropped first).
    reload_history: int = Field(default=50, ge=1, le=10_000)
    #: The read-only operator console (``/ui``, ``rpcd.server.ui``): on or off; table rows per
    #: page; institutions (routing matrix columns) per page; seconds before one connection may
    #: be probed again from the console; console probes per minute in all; bytes of a console
    #: form (sign-in, probe, logout).
    console: bool = True
    console_page_size: int = Field(default=50, ge=5, le=1000)
    console_matrix_columns: int = Field(default=8, ge=1, le=200)
    console_probe_interval: float = Field(default=10.0, ge=0, le=3600)
    console_probes_per_minute: int = Field(default=30, ge=1, le=10_000)
    console_max_form_bytes: int = Field(default=4096, ge=512, le=MIB)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value  # warning = WARNING

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen must be HOST:PORT, got {value!r}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies takes addresses or networks (127.0.0.1, 10.0.0.0/8), "
                    f"got {item!r}"
                ) from None
        return value

    @model_validator(mode="after")
    def _pairs(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key (rpcd must terminate TLS)")
        if self.session_key is not None and self.session_key_file is not None:
            raise ValueError("give session_key or session_key_file, not both")
        if self.metrics_token is not None and self.metrics_token_file is not None:
            raise ValueError("give metrics_token or metrics_token_file, not both")
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def session_key_bytes(self) -> bytes | None:
        """The configured session key, read from the file when one is named; None if unset."""
        if self.session_key is not None:
            return self.session_key.get_secret_value().encode("utf-8")
        if self.session_key_file is not None:
            data = self.session_key_file.read_bytes().strip()
            if not data:
                raise ValueError(f"session_key_file {self.session_key_file} is empty")
            return data
        return None

    def metrics_token_bytes(self) -> bytes | None:
        """The token ``GET /metrics`` asks for (from the file when one is named); None if unset."""
        if self.metrics_token is not None:
            token = self.metrics_token.get_secret_value().encode("utf-8")
        elif self.metrics_token_file is not None:
            token = self.metrics_token_file.read_bytes().strip()
        else:
            return None
        if len(token) < 16:
            raise ValueError("the metrics token must be at least 16 characters")
        return token

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Init kwargs are the CLI flags: they win, then the environment, then the file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(settings_file: Path | str | None = None, **flags: Any) -> Settings:
    """Settings from file, environment and the CLI ``flags`` that were given (None = not given)."""
    file = settings_file or os.environ.get("RPCD_SETTINGS_FILE")
    klass: type[Settings] = Settings
    if file:
        if not Path(file).is_file():
            raise ValueError(f"settings file {file} does not exist")
        config = SettingsConfigDict(**{**Settings.model_config, "toml_file": Path(file)})
        klass = type("Settings", (Settings,), {"model_config": config})
    try:
        return klass(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        raise ValueError(settings_problems(exc)) from None


def settings_problems(exc: ValidationError) -> str:
    """One line per invalid setting, named as an operator sets it (``RPCD_X`` or ``x`` in the
    settings file), with what was given unless the setting is a secret."""
    lines = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        name = f"RPCD_{field.upper()} (or {field} in the settings file)"
        given = error.get("input")
        secret = field in _SECRET_FIELDS
        shown = "" if secret or not isinstance(given, str | int | float) else f"; got {given!r}"
        lines.append(f"{name}: {error['msg']}{shown[:120]}")
    return "\n".join(lines)


#: Settings whose given value is never repeated in an error.
_SECRET_FIELDS = frozenset(
    name for name, field in Settings.model_fields.items() if "Secret" in repr(field.annotation)
)
