"""`trademaster`: run the daemon, and drive it over gRPC.

Every read takes --json for scripts. A failed call prints the server's status and message to stderr
and exits non-zero.
"""

from __future__ import annotations

import logging
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer

from clients.cli import marketdata as marketdata_cli
from clients.cli import operations as operations_cli
from clients.cli import render
from clients.cli.connect import JsonOpt, ServerOpt, connect, connection, rpc_errors
from clients.cli.groups_states import accounts_multiplier, groups_app, state_app
from clients.cli.security import audit_app, tokens_app, users_app
from clients.cli.strategies import strategy_app
from clients.python import DEFAULT_SERVER
from engine.api import convert
from engine.domain import OrderStatus, OrderType, Product, Side
from engine.routing import RoutingMode
from engine.security.credentials import ConfigSecret
from trademaster.v1 import accounts_pb2, orders_pb2, portfolio_pb2

app = typer.Typer(help="TradeMaster Orchestrator: many broker accounts, one trading book.", no_args_is_help=True)
app.callback()(connection)
order_app = typer.Typer(help="Place, change and inspect orders.", no_args_is_help=True)
app.add_typer(order_app, name="order")

_MODES = {
    RoutingMode.STANDARD: orders_pb2.ROUTING_MODE_STANDARD,
    RoutingMode.ORCHESTRATOR: orders_pb2.ROUTING_MODE_ORCHESTRATOR,
}


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option(help="TOML config file (see README).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the embedded database and paper state live.")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    new_admin_token: Annotated[
        bool, typer.Option("--new-admin-token", help="Give user admin a new token (lost token); print it once.")
    ] = False,
    web: Annotated[
        bool,
        typer.Option("--web", help="Serve the dashboard and gRPC-web on server.web_listen (default 127.0.0.1:8080)."),
    ] = False,
) -> None:
    """Run the daemon in the foreground until Ctrl-C or SIGTERM."""
    from engine.api.server import CannotListen
    from engine.config import ConfigError, load_settings  # the daemon's imports stay out of client commands
    from engine.daemon import run
    from engine.security.redaction import install_process
    from engine.security.secrets import SecretError

    install_process(log_level.upper())
    try:
        settings = load_settings(config, data_dir)
        if web:
            settings = settings.model_copy(update={"server": settings.server.with_web()})
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        run(settings, new_admin_token)
    except SecretError as exc:  # the key cannot be loaded, or a config secret does not decrypt with it
        typer.echo(f"error: {getattr(exc, 'cause', exc)}", err=True)  # an actor's error carries the original
        raise typer.Exit(2) from None
    except CannotListen as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def sim(
    broker: Annotated[str | None, typer.Option(help="kite or upstox (overrides the config file's).")] = None,
    port: Annotated[int, typer.Option(help="TCP port on the host; 0 picks a free one.")] = 0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    config: Annotated[Path | None, typer.Option(help="Simulator settings, JSON or TOML (see README).")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="Keep books and sessions here across restarts.")] = None,
    clock: Annotated[str | None, typer.Option(help="Start the clock at this ISO 8601 instant.")] = None,
) -> None:
    """Run a simulated broker (Kite Connect v3 or Upstox v2 wire protocol) in the foreground."""
    from engine.sim.server import serve as serve_sim
    from engine.sim.settings_file import SimConfigError, load_sim_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_sim_settings(config, broker, clock)
    except SimConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    serve_sim(settings, host, port, state_dir)


secrets_app = typer.Typer(help="Broker credentials for the config file, encrypted at rest.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("encrypt")
def secrets_encrypt(
    account: Annotated[str, typer.Option(help="The account the secret belongs to; it decrypts for no other.")],
    field: Annotated[
        ConfigSecret, typer.Option(help="api_secret (or the variable api_secret_env names), or sim_login's password.")
    ],
    config: Annotated[Path | None, typer.Option(help="The daemon's TOML config ([security] names the key).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="The daemon's data dir (its secret.key by default).")] = None,
) -> None:
    """Print the enc:v1: form of a secret read from stdin or a hidden prompt, to paste into the config file.

    Uses the daemon's key, and creates it (mode 0600) if the daemon has not started yet.
    """
    from engine.config import ConfigError, load_settings
    from engine.security.credentials import encrypt_config_value
    from engine.security.secrets import SecretBox, SecretError, load_or_create_key

    try:
        settings = load_settings(config, data_dir)
        key_file = settings.security.key_path(settings.data_dir)
        key, created = load_or_create_key(key_file, settings.security.key_env)
    except (ConfigError, SecretError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if created:
        typer.echo(f"created the key at {key_file}; back it up: without it the secrets are lost", err=True)
    if sys.stdin.isatty():
        plaintext = typer.prompt(f"{field} of {account}", hide_input=True, confirmation_prompt=True)
    else:
        plaintext = sys.stdin.read().rstrip("\r\n")
    if not plaintext:
        typer.echo("error: the secret is empty", err=True)
        raise typer.Exit(2)
    typer.echo(encrypt_config_value(SecretBox(key), account, field, plaintext))


accounts_app = typer.Typer(help="The broker accounts: list them, log in.", invoke_without_command=True)
app.add_typer(accounts_app, name="accounts")


@accounts_app.callback()
@rpc_errors
def accounts(ctx: typer.Context, server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """List the accounts with their broker, status and health."""
    if ctx.invoked_subcommand is not None:
        return
    with connect(server) as client:
        reply = client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest())
    if json:
        typer.echo(render.as_json(reply))
    else:
        render.accounts(reply.accounts)


@accounts_app.command("login")
@rpc_errors
def accounts_login(
    account: str,
    redirect: Annotated[
        str | None, typer.Option("--redirect", help="The URL the broker redirected to, or the bare request token/code.")
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Log an account in to its broker: open the printed URL, log in, paste where it sends you."""
    with connect(server) as client:
        if redirect is None:
            started = client.accounts.StartLogin(accounts_pb2.StartLoginRequest(account=account))
            typer.echo(f"Open this URL, log in, and paste the address the broker sends you to:\n{started.login_url}")
            redirect = typer.prompt("Redirect URL (or request token)")
        reply = client.accounts.CompleteLogin(accounts_pb2.CompleteLoginRequest(account=account, redirect=redirect))
    if json:
        typer.echo(render.as_json(reply))
    else:
        render.accounts([reply])


def _show_order(order: orders_pb2.Order, json: bool, title: str = "Order") -> None:
    if json:
        typer.echo(render.as_json(order))
    else:
        render.orders([order], title)


@order_app.command("place")
@rpc_errors
def order_place(
    instrument: Annotated[str, typer.Argument(help="EXCHANGE:SYMBOL, e.g. NSE:INFY.")],
    side: Annotated[Side, typer.Argument(case_sensitive=False)],
    quantity: Annotated[int, typer.Argument()],
    account: Annotated[
        str, typer.Option(help="Account id; it always wins. Default: the default account, or routing.")
    ] = "",
    group: Annotated[str, typer.Option(help="Route among this account group only (orchestrator mode).")] = "",
    mode: Annotated[
        RoutingMode | None,
        typer.Option(case_sensitive=False, help="Routing mode; default: the daemon's routing.mode setting."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show where the order would go; place nothing.")] = False,
    product: Annotated[Product, typer.Option(case_sensitive=False)] = Product.CNC,
    order_type: Annotated[OrderType, typer.Option("--type", case_sensitive=False)] = OrderType.MARKET,
    price: Annotated[str, typer.Option(help="Limit price (LIMIT, SL).")] = "",
    trigger_price: Annotated[str, typer.Option("--trigger", help="Trigger price (SL, SL-M).")] = "",
    client_order_id: Annotated[
        str, typer.Option(help="Idempotency key; a repeat returns the original order. Default: random.")
    ] = "",
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Place an order, or with --dry-run show the routing decision without placing it."""
    request = orders_pb2.PlaceOrderRequest(
        client_order_id=client_order_id or f"cli-{uuid.uuid4().hex[:20]}",
        account=account,
        instrument=instrument,
        side=convert.side_to_proto(side),
        quantity=quantity,
        product=convert.product_to_proto(product),
        order_type=convert.order_type_to_proto(order_type),
        price=price,
        trigger_price=trigger_price,
        group=group,
        mode=_MODES[mode] if mode else orders_pb2.ROUTING_MODE_UNSPECIFIED,
    )
    with connect(server) as client:
        if dry_run:
            preview = client.orders.PreviewRoute(request)
            typer.echo(render.as_json(preview)) if json else render.route(preview)
            return
        reply = client.orders.PlaceOrder(request)
    if json:
        typer.echo(render.as_json(reply))
        return
    render.route(reply.route)
    render.orders([reply.order], "Order (duplicate: nothing sent)" if reply.duplicate else "Order placed")
    if reply.legs:
        render.orders(reply.legs, "Legs")


@order_app.command("cancel")
@rpc_errors
def order_cancel(order_id: str, server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """Cancel an open order."""
    with connect(server) as client:
        _show_order(client.orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=order_id)), json)


@order_app.command("modify")
@rpc_errors
def order_modify(
    order_id: str,
    quantity: Annotated[int | None, typer.Option(help="New total quantity.")] = None,
    price: Annotated[str | None, typer.Option(help="New limit price.")] = None,
    trigger_price: Annotated[str | None, typer.Option("--trigger", help="New trigger price.")] = None,
    order_type: Annotated[OrderType | None, typer.Option("--type", case_sensitive=False)] = None,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Change an open order's quantity, price, trigger or type."""
    request = orders_pb2.ModifyOrderRequest(order_id=order_id)
    if quantity is not None:
        request.quantity = quantity
    if price is not None:
        request.price = price
    if trigger_price is not None:
        request.trigger_price = trigger_price
    if order_type is not None:
        request.order_type = convert.order_type_to_proto(order_type)
    with connect(server) as client:
        _show_order(client.orders.ModifyOrder(request), json)


@order_app.command("get")
@rpc_errors
def order_get(
    order_id: Annotated[str, typer.Argument(help="The daemon's order id (or a client order id with --client).")],
    client_id: Annotated[bool, typer.Option("--client", help="ORDER_ID is a client_order_id.")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Show one order."""
    request = (
        orders_pb2.GetOrderRequest(client_order_id=order_id)
        if client_id
        else orders_pb2.GetOrderRequest(order_id=order_id)
    )
    with connect(server) as client:
        _show_order(client.orders.GetOrder(request), json)


@order_app.command("list")
@rpc_errors
def order_list(
    account: Annotated[str, typer.Option(help="Only this account.")] = "",
    open_only: Annotated[bool, typer.Option("--open", help="Only orders still working.")] = False,
    status: Annotated[list[OrderStatus] | None, typer.Option(case_sensitive=False, help="Repeatable.")] = None,
    limit: Annotated[int, typer.Option(help="Newest first; at most 5000.")] = 50,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """List orders, newest first."""
    request = orders_pb2.ListOrdersRequest(
        account=account,
        open_only=open_only,
        statuses=[convert.status_to_proto(s) for s in status or []],
        limit=limit,
    )
    with connect(server) as client:
        reply = client.orders.ListOrders(request)
    if json:
        typer.echo(render.as_json(reply))
    else:
        render.orders(reply.orders)


@app.command()
@rpc_errors
def portfolio(
    account: Annotated[list[str] | None, typer.Option(help="Only these accounts (repeatable).")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """The consolidated book: positions, holdings, funds and PnL across accounts."""
    with connect(server) as client:
        reply = client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(accounts=account or []))
    if json:
        typer.echo(render.as_json(reply))
    else:
        render.portfolio(reply)


@app.command()
@rpc_errors
def pnl(
    account: Annotated[list[str] | None, typer.Option(help="Only these accounts, summed (repeatable).")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Today's PnL curve: realised, unrealised and total PnL at each sample (portfolio.pnl_sample_seconds)."""
    with connect(server) as client:
        reply = client.portfolio.GetPnlHistory(portfolio_pb2.GetPnlHistoryRequest(accounts=account or []))
    if json:
        typer.echo(render.as_json(reply))
    else:
        render.pnl_history(reply)


@app.command()
@rpc_errors
def events(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming new events.")] = False,
    after: Annotated[
        int | None, typer.Option(help="Start after this sequence number. Default: 0, or now with --follow.")
    ] = None,
    account: Annotated[str, typer.Option(help="Only this account.")] = "",
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Order updates and fills in sequence order; resumable with --after."""
    request = orders_pb2.StreamOrderEventsRequest(account=account, catch_up_only=not follow)
    if after is not None or not follow:
        request.after_sequence = after or 0
    with connect(server) as client:
        try:
            for event in client.orders.StreamOrderEvents(request):
                typer.echo(render.as_json(event).replace("\n", "") if json else render.order_event(event))
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass


app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(audit_app, name="audit")
operations_cli.register(app)
app.add_typer(groups_app, name="groups")
app.add_typer(state_app, name="state")
accounts_app.command("multiplier")(accounts_multiplier)
marketdata_cli.register(app)
app.add_typer(strategy_app, name="strategy")
