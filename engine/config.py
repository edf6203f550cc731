"""Daemon settings: defaults < TOML file < environment (TRADEMASTER_*, nested with `__`) < CLI flags.

Every model forbids unknown keys, so a typo in the config file stops start-up with the key named
instead of being silently ignored.
"""

from __future__ import annotations

import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from engine.settings_base import StrictModel
from engine.sim.config import BookSettings, HoldingSeed, MarketSettings

_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_HOST_PORT = re.compile(r"^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$")


class ConfigError(Exception):
    """A configuration problem, worded for the person who wrote the file."""


def _check_listen(value: str) -> str:
    if value and not _HOST_PORT.match(value):
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


class ServerSettings(StrictModel):
    listen: str = "127.0.0.1:50051"
    metrics_listen: str = Field("127.0.0.1:9464", description="empty disables the Prometheus endpoint")
    shutdown_grace_seconds: float = Field(5.0, ge=0, le=120)

    _listen = field_validator("listen", "metrics_listen")(_check_listen)


class DatabaseSettings(StrictModel):
    url: str = Field("", description="postgresql:// DSN; empty starts an embedded PostgreSQL in the data dir")
    pool_size: int = Field(8, ge=2, le=100)


class RaySettings(StrictModel):
    address: str = Field("", description="Ray cluster address; empty starts a local Ray (RAY_ADDRESS also works)")
    num_cpus: int = Field(2, ge=1, le=512, description="CPUs a local Ray may use")
    namespace: str = "trademaster"


class AccountSettings(StrictModel):
    id: str
    broker: Literal["paper"] = "paper"
    label: str = ""
    venue: str = Field("paper", description="the broker a paper account imitates, shown as its broker")
    default: bool = False
    sync_interval_seconds: float = Field(1.0, ge=0.05, le=60)
    paper: BookSettings = Field(default_factory=BookSettings)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ACCOUNT_ID.match(value):
            raise ValueError("1-40 characters of letters, digits, '_', '.', '-', starting with a letter or digit")
        return value

    @property
    def broker_name(self) -> str:
        return f"{self.venue}-paper" if self.broker == "paper" else self.broker


def demo_accounts() -> list[AccountSettings]:
    """Three paper accounts at two simulated brokers, so a fresh machine has something to trade."""
    return [
        AccountSettings(
            id="zerodha-main",
            venue="zerodha",
            label="Demo: Zerodha main",
            default=True,
            paper=BookSettings(holdings={"NSE:INFY": HoldingSeed(quantity=50, average_price=Decimal("1450"))}),
        ),
        AccountSettings(id="zerodha-family", venue="zerodha", label="Demo: Zerodha family"),
        AccountSettings(
            id="upstox-main",
            venue="upstox",
            label="Demo: Upstox main",
            paper=BookSettings(opening_cash=Decimal("500000")),
        ),
    ]


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "trademaster"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRADEMASTER_", env_nested_delimiter="__", extra="forbid", frozen=True)

    data_dir: Path = Field(default_factory=_default_data_dir)
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    paper: MarketSettings = Field(default_factory=MarketSettings)
    accounts: list[AccountSettings] = Field(
        default_factory=list, description="empty: the demo setup of three paper accounts"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _accounts_consistent(self) -> Settings:
        ids = [a.id for a in self.accounts]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"accounts: duplicate id {', '.join(dupes)}")
        if sum(a.default for a in self.accounts) > 1:
            raise ValueError("accounts: more than one account has default = true")
        return self

    @property
    def effective_accounts(self) -> list[AccountSettings]:
        return self.accounts or demo_accounts()

    @property
    def default_account(self) -> str | None:
        accounts = self.effective_accounts
        marked = [a.id for a in accounts if a.default]
        if marked:
            return marked[0]
        return accounts[0].id if len(accounts) == 1 else None


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown setting" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  {where}: {message}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_settings(config_file: Path | None = None, data_dir: Path | None = None) -> Settings:
    """Read the TOML file (if any), apply the environment, then the --data-dir flag."""
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {config_file}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except SettingsError as exc:  # e.g. an environment variable that is not valid JSON for its section
        raise ConfigError(f"invalid configuration from the environment: {exc}") from None
    return settings.model_copy(update={"data_dir": data_dir}) if data_dir is not None else settings
