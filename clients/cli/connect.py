"""How client commands reach the daemon: address, API token and TLS options, and how failures are shown."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

import grpc
import typer

from clients.python import Client, TlsOptions
from engine.paths import ADMIN_TOKEN_NAME, default_data_dir

F = TypeVar("F", bound=Callable[..., object])

ServerOpt = Annotated[str, typer.Option("--server", envvar="TRADEMASTER_ADDRESS", help="Daemon address HOST:PORT.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API response as JSON.")]


@dataclass
class _Connection:
    """How client commands reach the daemon, from the options before the command."""

    token: str | None = None
    token_file: Path | None = None
    tls: TlsOptions | None = None


_CONNECTION = _Connection()


def connection(
    token: Annotated[
        str | None, typer.Option(envvar="TRADEMASTER_TOKEN", help="API token (tm_...). Default: from --token-file.")
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            envvar="TRADEMASTER_TOKEN_FILE", help="File holding the API token. Default: admin.token in the data dir."
        ),
    ] = None,
    tls_ca: Annotated[
        Path | None, typer.Option(envvar="TRADEMASTER_TLS_CA", help="CA certificate: connect with TLS, trusting it.")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(envvar="TRADEMASTER_TLS_CERT", help="Client certificate, for mutual TLS.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(envvar="TRADEMASTER_TLS_KEY", help="Client key, for mutual TLS.")
    ] = None,
    tls_server_name: Annotated[
        str | None,
        typer.Option(envvar="TRADEMASTER_TLS_SERVER_NAME", help="Check the daemon's certificate for this name."),
    ] = None,
) -> None:
    """Options for every command that talks to the daemon; give them before the command."""
    _CONNECTION.token = token
    _CONNECTION.token_file = token_file
    if tls_ca or tls_cert or tls_key or tls_server_name:
        try:
            _CONNECTION.tls = TlsOptions(tls_ca, tls_cert, tls_key, tls_server_name)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None


def _token() -> str | None:
    """--token, else the token file; without either the daemon's answer says what is missing."""
    if _CONNECTION.token:
        return _CONNECTION.token
    path = _CONNECTION.token_file or default_data_dir() / ADMIN_TOKEN_NAME
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        if _CONNECTION.token_file is not None:
            typer.echo(f"error: token file {path} does not exist", err=True)
            raise typer.Exit(2) from None
        return None


def connect(server: str) -> Client:
    return Client(server, token=_token(), tls=_CONNECTION.tls)


def rpc_errors(fn: F) -> F:
    """Show a failed call as the server's status and message, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as exc:
            typer.echo(f"error: {exc.code().name}: {exc.details()}", err=True)  # type: ignore[attr-defined]
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
