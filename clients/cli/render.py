"""How the CLI shows API messages: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from enum import StrEnum

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table

from engine.api import convert
from trademaster.v1 import accounts_pb2, common_pb2, marketdata_pb2, orders_pb2, portfolio_pb2, security_pb2

# Piped output is read by scripts and greps: never fold it to the 80 columns rich assumes.
console = Console(width=None if sys.stdout.isatty() else 250)


def as_json(message: Message) -> str:
    return json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2, sort_keys=True)


def _label(member: StrEnum | None) -> str:
    return member.value if member is not None else ""


def _order_row(o: orders_pb2.Order) -> list[str]:
    return [
        o.order_id,
        o.account,
        o.instrument,
        _label(convert.side_from_proto(o.side)),
        f"{o.filled_quantity}/{o.quantity}",
        _label(convert.product_from_proto(o.product)),
        _label(convert.order_type_from_proto(o.order_type)),
        o.price or "-",
        o.average_price or "-",
        _label(convert.status_from_proto(o.status)),
        o.status_message,
    ]


_ORDER_HEADERS = ["order id", "account", "instrument", "side", "filled", "product", "type", "price", "avg",
                  "status", "message"]  # fmt: skip


def table(title: str, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    out = Table(title=title, title_justify="left")
    for index, header in enumerate(headers):
        out.add_column(header, no_wrap=index == 0)
    for row in rows:
        out.add_row(*row)
    return out


def orders(items: Sequence[orders_pb2.Order], title: str = "Orders") -> None:
    console.print(table(title, _ORDER_HEADERS, (_order_row(o) for o in items)))


def order_event(event: orders_pb2.OrderEvent) -> str:
    if event.HasField("fill"):
        f = event.fill
        side = _label(convert.side_from_proto(f.side))
        return f"{event.sequence:>8}  fill   {f.account} {f.order_id} {side} {f.quantity} {f.instrument} @ {f.price}"
    o = event.order
    status = _label(convert.status_from_proto(o.status))
    return (
        f"{event.sequence:>8}  order  {o.account} {o.order_id} {status} {o.filled_quantity}/{o.quantity}"
        f" {o.instrument} {o.status_message}".rstrip()
    )


def accounts(items: Sequence[accounts_pb2.Account]) -> None:
    rows = (
        [
            a.id + (" *" if a.is_default else ""),
            a.broker,
            accounts_pb2.AccountStatus.Name(a.status).removeprefix("ACCOUNT_STATUS_"),
            str(a.health.open_orders),
            f"{a.health.ack_latency_ms:.2f}",
            a.health.circuit,
            str(a.health.queue_depth),
            ",".join(a.groups),
            a.multiplier,
            common_pb2.TradingState.Name(a.trading_state).removeprefix("TRADING_STATE_"),
            a.health.last_error,
            a.label,
        ]
        for a in items
    )
    headers = [
        "id", "broker", "status", "open", "ack ms", "circuit", "queued", "groups", "x", "trading", "error", "label"
    ]  # fmt: skip
    console.print(table("Accounts (* default)", headers, rows))


def _position_rows(items: Iterable[portfolio_pb2.Position], with_account: bool) -> Iterable[list[str]]:
    for p in items:
        first = [p.account] if with_account else [",".join(p.accounts)]
        yield [
            *first,
            p.instrument,
            _label(convert.product_from_proto(p.product)),
            str(p.quantity),
            p.average_price or "-",
            p.last_price or "-",
            p.realised_pnl,
            p.unrealised_pnl,
        ]


def portfolio(book: portfolio_pb2.Portfolio) -> None:
    t = book.totals
    console.print(
        f"[bold]Portfolio[/bold]  realised {t.realised_pnl}  unrealised {t.unrealised_pnl}  total {t.total_pnl}"
        f"  holdings value {t.holdings_value}\n"
        f"Funds  available {t.funds.available}  used margin {t.funds.used_margin}  total {t.funds.total}"
    )
    headers = ["instrument", "product", "qty", "avg", "last", "realised", "unrealised"]
    console.print(table("Positions (all accounts)", ["accounts", *headers], _position_rows(book.positions, False)))
    holding_rows = (
        [h.instrument, str(h.quantity), h.average_price, h.last_price, h.unrealised_pnl] for h in book.holdings
    )
    console.print(table("Holdings (all accounts)", ["instrument", "qty", "avg", "last", "unrealised"], holding_rows))
    account_rows = (
        [a.account, a.broker, a.funds.available, a.funds.used_margin, a.realised_pnl, a.unrealised_pnl,
         str(len(a.positions)), str(len(a.holdings))]
        for a in book.accounts
    )  # fmt: skip
    console.print(
        table(
            "By account",
            ["account", "broker", "available", "used margin", "realised", "unrealised", "positions", "holdings"],
            account_rows,
        )
    )


def pnl_history(history: portfolio_pb2.PnlHistory) -> None:
    rows = ([_when(p.at), p.realised_pnl, p.unrealised_pnl, p.total_pnl] for p in history.points)
    console.print(table("PnL today", ["at", "realised", "unrealised", "total"], rows))


def route(decision: orders_pb2.RouteDecision) -> None:
    """The routing decision: its one-line reason, then every candidate's scores."""
    console.print(f"[bold]Route:[/bold] {decision.reason}", highlight=False, soft_wrap=True)
    if not decision.candidates:
        return
    rows = (
        [
            c.account,
            c.broker,
            str(c.quantity or "-"),
            str(c.capacity),
            c.fee or "-",
            *(f"{v:.3f}" for v in (c.score, c.margin_score, c.health_score, c.latency_score, c.fee_score,
                                   c.preference_score)),
            c.excluded,
        ]
        for c in decision.candidates
    )  # fmt: skip
    headers = ["account", "broker", "gets", "capacity", "fee ₹", "score", "margin", "health", "latency", "fees",
               "pref", "excluded because"]  # fmt: skip
    console.print(table("Candidates", headers, rows))


def _when(stamp: Timestamp) -> str:
    return stamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC") if stamp.seconds or stamp.nanos else "-"


def users(items: Sequence[security_pb2.User]) -> None:
    rows = (
        [u.name, _label(convert.role_from_proto(u.role)), ", ".join(u.accounts) or "-"]
        for u in items
    )
    console.print(table("Users", ["user", "role", "accounts"], rows))


def tokens(items: Sequence[security_pb2.Token]) -> None:
    rows = ([t.id, t.user, t.description, _when(t.created_at), _when(t.revoked_at)] for t in items)
    console.print(table("Tokens", ["token id", "user", "description", "created", "revoked"], rows))


def audit(entries: Sequence[security_pb2.AuditEntry]) -> None:
    rows = ([str(e.seq), _when(e.at), e.actor, e.action, e.target, e.outcome, e.peer] for e in entries)
    console.print(table("Audit trail", ["seq", "at", "who", "command", "target", "outcome", "from"], rows))


def quotes(items: Sequence[marketdata_pb2.Quote]) -> None:
    rows = ([q.instrument, q.last_price, q.bid, q.ask, _when(q.at), q.broker] for q in items)
    console.print(table("Quotes", ["instrument", "last", "bid", "ask", "at", "broker"], rows))
