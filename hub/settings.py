"""Hub configuration: environment variables ``HUB_*`` and an optional ``hub.toml``.

Precedence (highest first): explicit keyword arguments, environment variables, the
TOML file named by ``HUB_CONFIG_FILE`` (default ``./hub.toml`` when present), defaults.
Secrets (app secrets, passwords) are ``SecretStr`` and are read from the environment
only: a secret found in the TOML file is refused, because files get committed.

With nothing configured the hub runs on an embedded Postgres under ``HUB_HOME`` and on
the in-process sandboxes, so a first run needs no accounts and no server.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hub.errors import ConfigError


def default_home() -> Path:
    """Where the hub keeps its embedded database and Dagster home by default."""
    return Path(platformdirs.user_data_dir("crm-erp-hub", appauthor=False))


class KingdeeSettings(BaseModel):
    """Kingdee K/3 Cloud WebAPI. ``base_url`` unset: the in-process sandbox."""

    base_url: str | None = None
    acct_id: str | None = None
    username: str | None = None
    app_id: str | None = None
    app_secret: SecretStr | None = None
    lcid: int = 2052
    org_num: int = 0
    auth_mode: str = "signed"  # "signed" (X-Kd headers, official SDK scheme) | "session"
    timeout_s: float = 30.0
    page_size: int = Field(default=2000, ge=1, le=10000)
    overlap_s: int = Field(default=300, ge=0)
    submit_and_audit: bool = True  # after Save: Submit + Audit (per-tenant policy)


class WeComSettings(BaseModel):
    """WeCom server API. ``base_url`` unset: the in-process sandbox."""

    base_url: str | None = None
    corp_id: str | None = None
    secret: SecretStr | None = None
    agent_id: int | None = None
    timeout_s: float = 15.0
    duplicate_check_interval_s: int = Field(default=1800, ge=60, le=14400)
    callback_token: SecretStr | None = None
    callback_aes_key: SecretStr | None = None


class OutboxSettings(BaseModel):
    """How the dispatcher retries."""

    max_attempts: int = Field(default=6, ge=1, le=50)
    backoff_initial_s: float = Field(default=2.0, ge=0)
    backoff_max_s: float = Field(default=300.0, ge=0)
    lease_s: int = Field(default=300, ge=10)  # a claimed row is retaken after this


class ReminderSettings(BaseModel):
    """When reminders fire (the thresholds are also stored as rule data)."""

    uncontacted_hours: int = 24
    profile_base_url: str = "http://127.0.0.1:8000"


class Settings(BaseSettings):
    """All hub settings. Build with ``Settings()``; see the module docstring."""

    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_nested_delimiter="__", extra="ignore", validate_default=True,
    )

    home: Path = Field(default_factory=default_home)
    database_url: SecretStr | None = None  # unset: embedded Postgres under home/pg
    database_schema: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    log_level: str = "INFO"
    timezone: str = "Asia/Shanghai"
    kingdee: KingdeeSettings = Field(default_factory=KingdeeSettings)
    wecom: WeComSettings = Field(default_factory=WeComSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    reminders: ReminderSettings = Field(default_factory=ReminderSettings)

    @field_validator("home")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            _refuse_secrets_in_file(toml_file)
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


_SECRET_KEYS = {"database_url", "app_secret", "secret", "callback_token", "callback_aes_key", "password"}


def _config_file() -> Path | None:
    named = os.environ.get("HUB_CONFIG_FILE")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"HUB_CONFIG_FILE points to {path}, which does not exist")
        return path
    local = Path("hub.toml")
    return local if local.is_file() else None


def _refuse_secrets_in_file(path: Path) -> None:
    def walk(node: Any, trail: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _SECRET_KEYS:
                    raise ConfigError(
                        f"{path}: '{trail}{key}' is a secret; set it in the environment "
                        f"(HUB_{(trail + key).replace('.', '__').upper()}) instead of the file"
                    )
                walk(value, f"{trail}{key}.")

    with path.open("rb") as handle:
        walk(tomllib.load(handle), "")
