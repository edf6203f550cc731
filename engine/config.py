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

from engine.brokers.pacing import SEBI_ORDERS_PER_SECOND
from engine.paths import ADMIN_TOKEN_NAME, default_data_dir
from engine.risk import RiskLimits, effective_limits
from engine.routing import RoutingMode, RoutingWeights
from engine.security.tls import check_server_tls
from engine.settings_base import StrictModel, describe_errors
from engine.sim.config import MarketSettings, PaperBookSettings

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_HOST_PORT = re.compile(r"^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$")


class ConfigError(Exception):
    """A configuration problem, worded for the person who wrote the file."""


def _check_listen(value: str) -> str:
    if value and not _HOST_PORT.match(value):
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


WEB_LISTEN = "127.0.0.1:8080"
"""Where `serve --web` serves the dashboard and gRPC-web when server.web_listen is empty."""


class ServerSettings(StrictModel):
    listen: str = "127.0.0.1:50051"
    metrics_listen: str = Field("127.0.0.1:9464", description="empty disables the Prometheus endpoint")
    shutdown_grace_seconds: float = Field(5.0, ge=0, le=120)
    stream_max_lag_events: int = Field(
        20_000,
        ge=1,
        le=10_000_000,
        description="a live event stream (StreamOrderEvents, StreamStrategyEvents) further than this behind the"
        " newest event is ended with RESOURCE_EXHAUSTED; one replaying from an old after_sequence is exempt",
    )
    stream_blocked_send_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="an event stream whose client has not read the event sent to it for this long is ended with"
        " RESOURCE_EXHAUSTED",
    )
    tls_cert_file: Path | None = Field(None, description="PEM certificate (chain); with tls_key_file: serve TLS")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file, unencrypted, mode 600")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA(s); set: clients must present a certificate signed by one (mutual TLS)"
    )
    web_listen: str = Field(
        "", description="the dashboard and gRPC-web (proxied to `listen`); empty: off (`serve --web`: 127.0.0.1:8080)"
    )
    web_root: Path | None = Field(None, description="the built dashboard; empty: clients/web/dist of the source tree")
    web_cors_origins: list[str] = Field(
        default_factory=lambda: ["*"], description="origins whose pages may call gRPC-web; tokens are not cookies"
    )

    _listen = field_validator("listen", "metrics_listen", "web_listen")(_check_listen)

    @model_validator(mode="after")
    def _tls_files(self) -> ServerSettings:
        check_server_tls(self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file)
        return self

    @model_validator(mode="after")
    def _web_without_client_certificates(self) -> ServerSettings:
        if self.web_listen and self.tls_client_ca_file is not None:
            raise ValueError(
                "web_listen cannot be used with tls_client_ca_file: the built-in gRPC-web proxy has no client"
                " certificate to present to the gRPC port; put Envoy in front instead (deploy/envoy.yaml)"
            )
        return self

    def with_web(self) -> ServerSettings:
        """These settings with the dashboard on (`serve --web`): web_listen as configured, else WEB_LISTEN.
        Validated again, so a combination the file could not hold is refused the same way (ConfigError)."""
        try:
            return ServerSettings.model_validate({**self.model_dump(), "web_listen": self.web_listen or WEB_LISTEN})
        except ValidationError as exc:
            raise ConfigError(describe_errors("invalid [server] configuration for --web", exc)) from None


class DatabaseSettings(StrictModel):
    url: str = Field("", description="postgresql:// DSN; empty starts an embedded PostgreSQL in the data dir")
    pool_size: int = Field(8, ge=2, le=100)


class RaySettings(StrictModel):
    address: str = Field("", description="Ray cluster address; empty starts a local Ray (RAY_ADDRESS also works)")
    num_cpus: int = Field(2, ge=1, le=512, description="CPUs a local Ray may use")
    namespace: str = "trademaster"


class SimLoginSettings(StrictModel):
    """Log in through a simulator's login form by itself (demo and tests; real brokers need a person)."""

    user_id: str
    password: str = Field("sim", description="or its enc:v1: form from `trademaster secrets encrypt`")


class ConnectionSettings(StrictModel):
    """How to reach a real broker account (or a `trademaster sim` standing in for the broker)."""

    api_key: str = Field("", description="Kite api_key / Upstox client_id of your developer app")
    api_secret: str = Field("", description="the app's secret, or its `trademaster secrets encrypt` enc:v1: form")
    api_secret_env: str = Field("", description="name of an environment variable holding the app's secret")
    redirect_url: str = Field("http://127.0.0.1:8765/callback", description="the app's registered redirect URL")
    simulator_url: str = Field("", description="talk to a `trademaster sim` at this URL instead of the broker")
    base_url: str = Field("", description="override the broker's API root (empty: the real one)")
    order_url: str = Field("", description="Upstox: override the order host (empty: the real one)")
    login_url: str = Field("", description="override the broker's login page (empty: the real one)")
    instruments_url: str = Field("", description="Upstox: override the instrument master URL")
    sim_login: SimLoginSettings | None = None

    def secret(self) -> str:
        return os.environ.get(self.api_secret_env, "") if self.api_secret_env else self.api_secret


class RoutingSettings(StrictModel):
    mode: RoutingMode = Field(
        RoutingMode.STANDARD,
        description="standard: orders go to the named or default account; orchestrator: the daemon picks",
    )
    weights: RoutingWeights = Field(default_factory=RoutingWeights)
    circuit_failures: int = Field(5, ge=1, le=100, description="consecutive broker failures that open a circuit")
    circuit_reset_seconds: float = Field(10.0, ge=0.1, le=3600, description="how long a circuit stays open")


class SecuritySettings(StrictModel):
    """API tokens and their limits, and where the key that encrypts broker credentials at rest comes from."""

    key_file: Path | None = Field(None, description="base64 of 32 random bytes, mode 0600 (<data_dir>/secret.key)")
    key_env: str = Field("TRADEMASTER_SECRET_KEY", description="environment variable with the key; wins over the file")
    admin_token_file: Path | None = Field(
        None, description="where the first start writes the admin token (mode 0600); empty: <data_dir>/admin.token"
    )
    api_requests_per_second: float = Field(100.0, gt=0, le=100_000, description="average calls one API token may make")
    api_burst: int = Field(200, ge=1, le=100_000, description="calls one API token may make at once above the average")
    token_cache_seconds: float = Field(
        5.0, ge=0, le=300, description="how long a verified token is trusted before its row is read again"
    )

    def key_path(self, data_dir: Path) -> Path:
        return self.key_file or data_dir / "secret.key"

    def admin_token_path(self, data_dir: Path) -> Path:
        return self.admin_token_file or data_dir / ADMIN_TOKEN_NAME


class MarketDataSettings(StrictModel):
    """Quotes polled from the brokers' quote endpoints for quote streams, strategies and the portfolio's marks."""

    poll_interval_seconds: float = Field(
        0.5, ge=0.05, le=60, description="how often followed instruments are polled, within each broker's quote limits"
    )
    error_backoff_seconds: float = Field(
        5.0, ge=0.1, le=600, description="how long an account whose quote request failed is left out of polling"
    )
    quote_timeout_seconds: float = Field(
        5.0, ge=0.1, le=60, description="how long GetQuotes waits for the brokers on instruments nobody follows yet"
    )


class PortfolioSettings(StrictModel):
    """The intraday PnL curve the dashboard draws (PortfolioService.GetPnlHistory)."""

    pnl_sample_seconds: float = Field(60.0, ge=1, le=3600, description="how often every account's PnL is sampled")
    pnl_history_days: int = Field(30, ge=1, le=3650, description="how long samples are kept")


NAME_RULE = "1-40 characters of letters, digits, '_', '.', '-', starting with a letter or digit"


class AccountSettings(StrictModel):
    id: str
    broker: Literal["paper", "kite", "upstox"] = "paper"
    label: str = ""
    venue: str = Field("paper", description="paper accounts: the broker it imitates, shown as its broker")
    default: bool = False
    groups: list[str] = Field(
        default_factory=list,
        description="account groups it belongs to, e.g. family; SetGroup/DeleteGroup change routing and batch"
        " membership (persisted), never group_risk, which follows these lists",
    )
    multiplier: Decimal = Field(
        Decimal(1),
        ge=0,
        le=1000,
        description="a batch's base quantity times this, rounded down to the lot size (0 leaves it out);"
        " SetMultiplier replaces it (persisted)",
    )
    routing_preference: float = Field(1.0, ge=0, le=1, description="the user's liking for this account in routing")
    orders_per_second: int = Field(
        8, ge=0, le=SEBI_ORDERS_PER_SECOND, description="order pace (SEBI: at most 10); 0 only for paper accounts"
    )
    order_queue_limit: int = Field(100, ge=1, le=10_000, description="orders that may wait for their pacing turn")
    sync_interval_seconds: float = Field(
        1.0, ge=0.05, le=60, description="how often the account reconciles with its broker's orders, trades and funds"
    )
    in_flight_grace_seconds: float = Field(
        20,
        ge=1,
        le=3600,
        description="an order whose submission got no answer (or was cut off by a restart) and that the broker's"
        " book still lacks this long after is rejected as never sent; keep it above the broker's request timeout",
    )
    paper: PaperBookSettings = Field(default_factory=PaperBookSettings)
    connection: ConnectionSettings = Field(default_factory=ConnectionSettings)
    risk: RiskLimits = Field(default_factory=RiskLimits, description="this account's limits, over its groups'")
    ray_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Ray custom resources its actor needs, e.g. {egress_ip_a = 1}: it runs only where they are",
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(NAME_RULE)
        return value

    @field_validator("groups")
    @classmethod
    def _group_shape(cls, value: list[str]) -> list[str]:
        bad = [g for g in value if not NAME_PATTERN.match(g)]
        if bad:
            raise ValueError(f"group {bad[0]!r}: {NAME_RULE}")
        return value

    @field_validator("ray_resources")
    @classmethod
    def _resources_positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name, amount in value.items() if not name or amount <= 0]
        if bad:
            raise ValueError(f"resource {bad[0]!r}: give a name and an amount above 0")
        return value

    @model_validator(mode="after")
    def _connection_complete(self) -> AccountSettings:
        if self.broker == "paper":
            return self
        if self.orders_per_second == 0:
            raise ValueError(f"account {self.id}: orders_per_second must be 1-10 for a broker account")
        if not self.connection.api_key:
            raise ValueError(f"account {self.id}: connection.api_key is required for broker {self.broker}")
        if not self.connection.secret():
            where = self.connection.api_secret_env or "connection.api_secret or connection.api_secret_env"
            raise ValueError(f"account {self.id}: the API secret is missing ({where})")
        return self

    @property
    def broker_name(self) -> str:
        """The broker as users name it; simulated ones say so."""
        if self.broker == "paper":
            return f"{self.venue}-paper"
        name = {"kite": "zerodha", "upstox": "upstox"}[self.broker]
        return f"{name}-sim" if self.connection.simulator_url else name


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRADEMASTER_", env_nested_delimiter="__", extra="forbid", frozen=True)

    data_dir: Path = Field(default_factory=default_data_dir)
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    paper: MarketSettings = Field(default_factory=MarketSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    market_data: MarketDataSettings = Field(default_factory=MarketDataSettings)
    portfolio: PortfolioSettings = Field(default_factory=PortfolioSettings)
    accounts: list[AccountSettings] = Field(
        default_factory=list, description="empty: the demo, three accounts at two simulated brokers"
    )
    risk: RiskLimits = Field(default_factory=RiskLimits, description="pre-trade limits of every account")
    group_risk: dict[str, RiskLimits] = Field(
        default_factory=dict, description="limits per account group, over the global ones, in the account's group order"
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
        unknown = sorted(set(self.group_risk) - set(self.groups()))
        if unknown:
            raise ValueError("; ".join(f"group_risk.{g}: no account is in group {g!r}" for g in unknown))
        return self

    def groups(self) -> dict[str, list[str]]:
        """Each group's accounts, in config order: what group_risk applies to. The daemon's live groups
        (routing, batches, trading states) start from these and take the API's changes (AccountRegistry)."""
        found: dict[str, list[str]] = {}
        for account in self.accounts:
            for group in account.groups:
                found.setdefault(group, []).append(account.id)
        return found

    def risk_limits(self) -> dict[str, RiskLimits]:
        """Each account's limits: global, then its groups in the order its `groups` lists them, then its own."""
        return {
            a.id: effective_limits(self.risk, [self.group_risk[g] for g in a.groups if g in self.group_risk], a.risk)
            for a in self.accounts
        }

    @property
    def default_account(self) -> str | None:
        accounts = self.accounts
        marked = [a.id for a in accounts if a.default]
        if marked:
            return marked[0]
        return accounts[0].id if len(accounts) == 1 else None


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
        raise ConfigError(describe_errors("invalid configuration", exc)) from None
    except SettingsError as exc:  # e.g. an environment variable that is not valid JSON for its section
        raise ConfigError(f"invalid configuration from the environment: {exc}") from None
    return settings.model_copy(update={"data_dir": data_dir}) if data_dir is not None else settings
