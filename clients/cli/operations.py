"""The multi-account commands: batch, exit, cancel-all and kill.

Each prints one row per leg (or per cancelled order), failed and skipped ones included, and exits 1 when
any leg failed, so a script notices a partial outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated

import typer

from clients.cli import render
from clients.cli.connect import JsonOpt, ServerOpt, connect, rpc_errors
from clients.python import DEFAULT_SERVER
from engine.api import convert
from engine.domain import OrderType, Product, Side
from engine.risk.states import GLOBAL, Scope, ScopeKind
from trademaster.v1 import common_pb2, operations_pb2

AccountsOpt = Annotated[
    list[str] | None, typer.Option("--account", help="This account (repeatable). Default: all of yours.")
]
GroupOpt = Annotated[str, typer.Option(help="The accounts of this group.")]


def _outcome(value: int) -> str:
    return operations_pb2.LegOutcome.Name(value).removeprefix("LEG_OUTCOME_")


def _leg_row(leg: operations_pb2.BatchLeg) -> list[str]:
    o = leg.order
    status = convert.status_from_proto(o.status) if leg.HasField("order") else None
    error = f"{leg.error_code}: {leg.error}" if leg.error_code else leg.error
    return [
        leg.account,
        _outcome(leg.outcome),
        o.instrument or "-",
        (o.product and convert.product_from_proto(o.product)) or "-",
        f"{convert.side_from_proto(o.side) or ''} {leg.quantity}".strip(),
        o.order_id or "-",
        status.value if status else "-",
        error or o.status_message,
    ]


_LEG_HEADERS = ["account", "outcome", "instrument", "product", "qty", "order id", "status", "error / message"]


def show_legs(legs: Sequence[operations_pb2.BatchLeg], title: str) -> None:
    render.console.print(render.table(title, _LEG_HEADERS, (_leg_row(leg) for leg in legs)))


def show_cancelled(reply: operations_pb2.CancelOpenOrdersResponse, title: str = "Cancelled") -> None:
    if reply.cancelled or not reply.failed:
        render.orders(reply.cancelled, f"{title}: {len(reply.cancelled)} order(s)")
    if reply.failed:
        rows = ([f.order_id, f.account, f.error] for f in reply.failed)
        render.console.print(render.table("Not cancelled", ["order id", "account", "error"], rows))


def _failed(legs: Sequence[operations_pb2.BatchLeg], cancelled: operations_pb2.CancelOpenOrdersResponse) -> bool:
    return any(leg.outcome == operations_pb2.LEG_OUTCOME_FAILED for leg in legs) or bool(cancelled.failed)


def _quantities(pairs: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for pair in pairs:
        account, sep, raw = pair.partition("=")
        if not sep or not account or not raw.lstrip("-").isdigit():
            raise typer.BadParameter(f"expected ACCOUNT=QUANTITY, got {pair!r}", param_hint="--qty")
        found[account] = int(raw)
    return found


def batch(
    instrument: Annotated[str, typer.Argument(help="EXCHANGE:SYMBOL, e.g. NSE:INFY.")],
    side: Annotated[Side, typer.Argument(case_sensitive=False)],
    qty: Annotated[
        list[str] | None, typer.Option("--qty", help="ACCOUNT=QUANTITY (repeatable); 0 skips the account.")
    ] = None,
    base_qty: Annotated[
        int, typer.Option("--base-qty", help="Times each account's multiplier, rounded down to the lot size.")
    ] = 0,
    account: AccountsOpt = None,
    group: GroupOpt = "",
    product: Annotated[Product, typer.Option(case_sensitive=False)] = Product.CNC,
    order_type: Annotated[OrderType, typer.Option("--type", case_sensitive=False)] = OrderType.MARKET,
    price: Annotated[str, typer.Option(help="Limit price (LIMIT, SL).")] = "",
    trigger_price: Annotated[str, typer.Option("--trigger", help="Trigger price (SL, SL-M).")] = "",
    batch_id: Annotated[
        str, typer.Option("--id", help="Idempotency key; legs are ID-ACCOUNT and a repeat sends nothing new.")
    ] = "",
    stream: Annotated[bool, typer.Option("--stream", help="Print each leg as soon as its outcome is known.")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """One order to many accounts at once: explicit --qty per account, or --base-qty times each multiplier."""
    request = operations_pb2.BatchOrderRequest(
        client_batch_id=batch_id or f"b-{uuid.uuid4().hex[:12]}",
        instrument=instrument,
        side=convert.side_to_proto(side),
        product=convert.product_to_proto(product),
        order_type=convert.order_type_to_proto(order_type),
        price=price,
        trigger_price=trigger_price,
        quantities=_quantities(qty or []),
        base_quantity=base_qty,
        accounts=account or [],
        group=group,
    )
    with connect(server) as client:
        if stream:
            legs = []
            for leg in client.operations.StreamBatchOrder(request):
                legs.append(leg)
                typer.echo(render.as_json(leg).replace("\n", "") if json else "  ".join(_leg_row(leg)))
            failed = _failed(legs, operations_pb2.CancelOpenOrdersResponse())
        else:
            reply = client.operations.BatchOrder(request)
            if json:
                typer.echo(render.as_json(reply))
            else:
                counts = f"{reply.placed} placed, {reply.failed} failed, {reply.skipped} skipped"
                show_legs(reply.legs, f"Batch {reply.client_batch_id}: {counts}")
            failed = _failed(reply.legs, operations_pb2.CancelOpenOrdersResponse())
    if failed:
        raise typer.Exit(1)


def exit_positions(
    instrument: Annotated[str, typer.Argument(help="Only this instrument. Default: every position.")] = "",
    account: AccountsOpt = None,
    group: GroupOpt = "",
    product: Annotated[Product | None, typer.Option(case_sensitive=False, help="Only this product.")] = None,
    holdings: Annotated[bool, typer.Option("--holdings", help="Also sell delivery holdings (CNC).")] = False,
    cancel_orders: Annotated[
        bool, typer.Option("--cancel-orders", help="Cancel the accounts' open orders (of the instrument) first.")
    ] = False,
    exit_id: Annotated[
        str, typer.Option("--id", help="Idempotency key: repeating an exit with it sends nothing twice.")
    ] = "",
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Close positions across accounts with MARKET orders in the products they are held in."""
    request = operations_pb2.ExitPositionsRequest(
        client_exit_id=exit_id or f"x-{uuid.uuid4().hex[:12]}",
        instrument=instrument,
        accounts=account or [],
        group=group,
        product=convert.product_to_proto(product) if product else common_pb2.PRODUCT_UNSPECIFIED,
        include_holdings=holdings,
        cancel_open_orders=cancel_orders,
    )
    with connect(server) as client:
        reply = client.operations.ExitPositions(request)
    if json:
        typer.echo(render.as_json(reply))
    else:
        if reply.HasField("cancelled"):
            show_cancelled(reply.cancelled, "Cancelled first")
        show_legs(reply.legs, f"Exit {request.client_exit_id}")
    if _failed(reply.legs, reply.cancelled):
        raise typer.Exit(1)


def cancel_all(
    account: AccountsOpt = None,
    group: GroupOpt = "",
    instrument: Annotated[str, typer.Option(help="Only orders of this instrument.")] = "",
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Cancel every open order of the accounts (or of one instrument)."""
    request = operations_pb2.CancelOpenOrdersRequest(accounts=account or [], group=group, instrument=instrument)
    with connect(server) as client:
        reply = client.operations.CancelOpenOrders(request)
    typer.echo(render.as_json(reply)) if json else show_cancelled(reply)
    if reply.failed:
        raise typer.Exit(1)


def kill(
    account: Annotated[str, typer.Option(help="Halt this account.")] = "",
    group: Annotated[str, typer.Option(help="Halt this group's accounts.")] = "",
    flatten: Annotated[
        bool, typer.Option("--flatten", help="Close the positions (not holdings) first, under REDUCING.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Shown with the state and in every refusal it causes.")] = "",
    kill_id: Annotated[
        str, typer.Option("--id", help="Idempotency key: repeating a kill with it never exits a position twice.")
    ] = "",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """The kill switch: HALTED (only cancels allowed) and every open order cancelled; without --account or
    --group, for every account (admin). Undo with `trademaster state set active`."""
    if account and group:
        raise typer.BadParameter("give --account or --group, not both")
    scope = Scope(ScopeKind.ACCOUNT, account) if account else Scope(ScopeKind.GROUP, group) if group else GLOBAL
    if not yes:
        where = "EVERY account" if scope is GLOBAL else str(scope)
        what = "close the positions and halt" if flatten else "halt"
        typer.confirm(f"Cancel every open order of {where} and {what} trading there?", abort=True)
    request = operations_pb2.KillRequest(
        scope=convert.scope_to_proto(scope),
        reason=reason,
        flatten=flatten,
        client_kill_id=kill_id or f"k-{uuid.uuid4().hex[:12]}",
    )
    with connect(server) as client:
        reply = client.operations.Kill(request)
    if json:
        typer.echo(render.as_json(reply))
    else:
        state = common_pb2.TradingState.Name(reply.state.state).removeprefix("TRADING_STATE_")
        why = f" ({reply.state.reason})" if reply.state.reason else ""
        typer.echo(f"{scope}: {state} by {reply.state.set_by}{why}")
        show_cancelled(reply.cancelled)
        if reply.HasField("exits"):
            show_legs(reply.exits.legs, "Positions closed")
    if _failed(reply.exits.legs, reply.cancelled):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the commands to the `trademaster` app."""
    app.command("batch")(rpc_errors(batch))
    app.command("exit")(rpc_errors(exit_positions))
    app.command("cancel-all")(rpc_errors(cancel_all))
    app.command("kill")(rpc_errors(kill))
