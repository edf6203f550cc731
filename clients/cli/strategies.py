"""`trademaster strategy ...`: create a strategy of each kind, and list, show, pause, resume, stop and follow them."""

from __future__ import annotations

import json as json_text
import sys
import threading
import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated

import grpc
import typer
from google.protobuf.json_format import MessageToDict

from clients.cli import render
from clients.cli.connect import JsonOpt, ServerOpt, connect, rpc_errors
from clients.python import DEFAULT_SERVER
from engine.api import convert
from engine.domain import OrderType, Product, Side
from trademaster.v1 import common_pb2, strategies_pb2

_QUIET_SECONDS = 1.0
strategy_app = typer.Typer(
    help="Strategies the daemon runs: brackets, trailing stops, schedules, MTM guards.", no_args_is_help=True
)

AccountOpt = Annotated[str, typer.Option(help="The account it trades (required).")]
NameOpt = Annotated[str, typer.Option(help="A label to recognise it by.")]
IdOpt = Annotated[
    str,
    typer.Option("--id", help="Idempotency key (client_strategy_id); a repeat returns the original. Default: random."),
]
ProductOpt = Annotated[Product, typer.Option(case_sensitive=False)]
TypeOpt = Annotated[OrderType, typer.Option("--type", case_sensitive=False)]
PriceOpt = Annotated[str, typer.Option(help="Limit price (LIMIT, SL).")]
TriggerOpt = Annotated[str, typer.Option("--trigger", help="Trigger price (SL, SL-M).")]
PointsOpt = Annotated[
    str, typer.Option("--trail-points", help="Trail the stop this many rupees behind the best price.")
]
PercentOpt = Annotated[str, typer.Option("--trail-percent", help="Or this percent behind it.")]


class Then(StrEnum):
    reducing = "reducing"
    halted = "halted"


def _spec(
    account: str, instrument: str, side: Side, quantity: int, product: Product, order_type: OrderType, price: str,
    trigger: str,
) -> strategies_pb2.OrderSpec:  # fmt: skip
    return strategies_pb2.OrderSpec(
        account=account,
        instrument=instrument,
        side=convert.side_to_proto(side),
        quantity=quantity,
        product=convert.product_to_proto(product),
        order_type=convert.order_type_to_proto(order_type),
        price=price,
        trigger_price=trigger,
    )


def _trail(points: str, percent: str) -> strategies_pb2.Trail | None:
    if points:
        return strategies_pb2.Trail(points=points)
    if percent:
        return strategies_pb2.Trail(percent=percent)
    return None


def _create(server: str, json: bool, client_id: str, name: str, **params: object) -> None:
    request = strategies_pb2.CreateStrategyRequest(
        client_strategy_id=client_id or f"cli-{uuid.uuid4().hex[:20]}", name=name, **params
    )
    with connect(server) as client:
        reply = client.strategies.CreateStrategy(request)
    _show(reply, json)


@strategy_app.command("bracket")
@rpc_errors
def bracket(
    instrument: Annotated[str, typer.Argument(help="EXCHANGE:SYMBOL, e.g. NSE:INFY.")],
    side: Annotated[Side, typer.Argument(case_sensitive=False)],
    quantity: int,
    account: AccountOpt,
    stop_loss: Annotated[str, typer.Option(help="Stop-loss distance in rupees from the entry's average price.")],
    target: Annotated[str, typer.Option(help="Target distance in rupees from the entry's average price.")],
    product: ProductOpt = Product.MIS,
    order_type: TypeOpt = OrderType.MARKET,
    price: PriceOpt = "",
    trigger: TriggerOpt = "",
    trail_points: PointsOpt = "",
    trail_percent: PercentOpt = "",
    reentries: Annotated[int, typer.Option(help="Further entries after the first.")] = 0,
    cooldown: Annotated[int, typer.Option(help="Seconds to wait before each further entry.")] = 0,
    after_reject: Annotated[bool, typer.Option(help="Re-enter after a rejected or unfilled entry.")] = False,
    after_stop_loss: Annotated[bool, typer.Option(help="Re-enter after the stop-loss closes the position.")] = False,
    name: NameOpt = "",
    client_id: IdOpt = "",
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Enter, then protect what filled with a stop-loss (SL-M) and a target (LIMIT), one cancelling the other."""
    reentry = None
    if reentries or after_reject or after_stop_loss:
        reentry = strategies_pb2.ReEntry(
            max_attempts=reentries, cooldown_seconds=cooldown, after_reject=after_reject,
            after_stop_loss=after_stop_loss,
        )  # fmt: skip
    params = strategies_pb2.BracketParams(
        entry=_spec(account, instrument, side, quantity, product, order_type, price, trigger),
        stop_loss=stop_loss,
        target=target,
        trail=_trail(trail_points, trail_percent),
        reentry=reentry,
    )
    _create(server, json, client_id, name, bracket=params)


@strategy_app.command("trail")
@rpc_errors
def trail(
    instrument: Annotated[str, typer.Argument(help="EXCHANGE:SYMBOL of the open position.")],
    account: AccountOpt,
    product: ProductOpt = Product.MIS,
    quantity: Annotated[int, typer.Option(help="How much of the position to protect; 0: all of it.")] = 0,
    trail_points: PointsOpt = "",
    trail_percent: PercentOpt = "",
    name: NameOpt = "",
    client_id: IdOpt = "",
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Protect an open position with a stop that follows the price (give --trail-points or --trail-percent)."""
    params = strategies_pb2.TrailingStopParams(
        account=account,
        instrument=instrument,
        product=convert.product_to_proto(product),
        quantity=quantity,
        trail=_trail(trail_points, trail_percent),
    )
    _create(server, json, client_id, name, trailing_stop=params)


@strategy_app.command("schedule")
@rpc_errors
def schedule(
    cron: Annotated[str, typer.Argument(help='Five fields in IST, e.g. "15 9 * * 1-5".')],
    instrument: Annotated[str, typer.Argument(help="EXCHANGE:SYMBOL.")],
    side: Annotated[Side, typer.Argument(case_sensitive=False)],
    quantity: int,
    account: AccountOpt,
    product: ProductOpt = Product.MIS,
    order_type: TypeOpt = OrderType.MARKET,
    price: PriceOpt = "",
    trigger: TriggerOpt = "",
    max_runs: Annotated[int, typer.Option(help="Stop after this many orders; 0: until stopped.")] = 0,
    name: NameOpt = "",
    client_id: IdOpt = "",
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Place an order at every firing of a cron schedule, skipping weekends and exchange holidays."""
    params = strategies_pb2.ScheduleParams(
        cron=cron,
        order=_spec(account, instrument, side, quantity, product, order_type, price, trigger),
        max_runs=max_runs,
    )
    _create(server, json, client_id, name, schedule=params)


@strategy_app.command("mtm")
@rpc_errors
def mtm(
    account: Annotated[str, typer.Option(help="Guard this account...")] = "",
    group: Annotated[str, typer.Option(help="...or this account group.")] = "",
    stop_loss: Annotated[str, typer.Option(help="Act when the loss today reaches this many rupees.")] = "",
    target: Annotated[str, typer.Option(help="Act when the profit today reaches this many rupees.")] = "",
    then: Annotated[Then, typer.Option(case_sensitive=False, help="The trading state after squaring off.")] = (
        Then.halted
    ),
    name: NameOpt = "",
    client_id: IdOpt = "",
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Square off the account or group and set its trading state when its PnL today crosses a threshold."""
    if bool(account) == bool(group):
        raise typer.BadParameter("give exactly one of --account or --group")
    scope = common_pb2.Scope(
        kind=common_pb2.SCOPE_KIND_ACCOUNT if account else common_pb2.SCOPE_KIND_GROUP, name=account or group
    )
    state = common_pb2.TRADING_STATE_HALTED if then is Then.halted else common_pb2.TRADING_STATE_REDUCING
    params = strategies_pb2.MtmGuardParams(scope=scope, stop_loss=stop_loss, target=target, then=state)
    _create(server, json, client_id, name, mtm_guard=params)


# -- the others ------------------------------------------------------------------------------------


def _status(value: int) -> str:
    return strategies_pb2.StrategyStatus.Name(value).removeprefix("STRATEGY_STATUS_")


def _table(items: Sequence[strategies_pb2.Strategy], title: str) -> None:
    rows = ([s.id, s.kind, s.name, _status(s.status), s.owner, str(len(s.order_ids)), s.message] for s in items)
    render.console.print(render.table(title, ["id", "kind", "name", "status", "owner", "orders", "message"], rows))


def _show(strategy: strategies_pb2.Strategy, json: bool) -> None:
    if json:
        typer.echo(render.as_json(strategy))
        return
    _table([strategy], "Strategy")
    params = getattr(strategy, strategy.kind)
    typer.echo(f"params: {json_text.dumps(MessageToDict(params, preserving_proto_field_name=True), sort_keys=True)}")
    typer.echo(f"state:  {strategy.detail}")
    if strategy.order_ids:
        typer.echo(f"orders: {', '.join(strategy.order_ids)}")


def event_line(event: strategies_pb2.StrategyEvent) -> str:
    at = event.at.ToDatetime().strftime("%H:%M:%S")
    order = f" [{event.order_id}]" if event.order_id else ""
    status = _status(event.status)
    return f"{event.sequence:>6}  {at}  {event.strategy_id}  {status:<9} {event.kind}: {event.message}{order}"


@strategy_app.command("list")
@rpc_errors
def strategy_list(
    active: Annotated[bool, typer.Option("--active", help="Only RUNNING and PAUSED ones.")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """The strategies you may see, oldest first."""
    with connect(server) as client:
        reply = client.strategies.ListStrategies(strategies_pb2.ListStrategiesRequest(active_only=active))
    typer.echo(render.as_json(reply)) if json else _table(reply.strategies, "Strategies")


def _control(method: str, strategy_id: str, server: str, json: bool) -> None:
    with connect(server) as client:
        reply = getattr(client.strategies, method)(strategies_pb2.GetStrategyRequest(id=strategy_id))
    _show(reply, json)


@strategy_app.command("show")
@rpc_errors
def strategy_show(strategy_id: str, server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """One strategy: status, params, state and orders."""
    _control("GetStrategy", strategy_id, server, json)


@strategy_app.command("pause")
@rpc_errors
def strategy_pause(strategy_id: str, server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """Stop acting (its orders stay at the broker) until resumed."""
    _control("PauseStrategy", strategy_id, server, json)


@strategy_app.command("resume")
@rpc_errors
def strategy_resume(strategy_id: str, server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """Go on from where it was paused."""
    _control("ResumeStrategy", strategy_id, server, json)


@strategy_app.command("stop")
@rpc_errors
def strategy_stop(strategy_id: str, server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """Stop for good and cancel its working orders; positions it opened stay."""
    _control("StopStrategy", strategy_id, server, json)


@strategy_app.command("events")
@rpc_errors
def strategy_events(
    strategy_id: Annotated[str, typer.Argument(help="Only this strategy. Default: every one you may see.")] = "",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming new events.")] = False,
    after: Annotated[int, typer.Option(help="Start after this sequence number.")] = 0,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """What strategies did, in order. Without --follow it ends once the history is read (a quiet second)."""
    request = strategies_pb2.StreamStrategyEventsRequest(strategy_id=strategy_id, after_sequence=after)
    with connect(server) as client:
        stream = client.strategies.StreamStrategyEvents(request)
        quiet: threading.Timer | None = None

        def rearm() -> None:  # the stream never ends by itself: without --follow, a quiet second ends it
            nonlocal quiet
            if quiet is not None:
                quiet.cancel()
            quiet = threading.Timer(_QUIET_SECONDS, stream.cancel)
            quiet.start()

        try:
            if not follow:
                rearm()
            for event in stream:
                typer.echo(render.as_json(event).replace("\n", "") if json else event_line(event))
                sys.stdout.flush()
                if not follow:
                    rearm()
        except KeyboardInterrupt:
            pass
        except grpc.RpcError as exc:
            if exc.code() is not grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                raise
        finally:
            if quiet is not None:
                quiet.cancel()
