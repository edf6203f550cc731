"""`trademaster quotes`: the latest quotes, or a live view of them with --watch."""

from __future__ import annotations

from typing import Annotated

import typer

from clients.cli import render
from clients.cli.connect import JsonOpt, ServerOpt, connect, rpc_errors
from clients.python import DEFAULT_SERVER
from trademaster.v1 import marketdata_pb2


@rpc_errors
def quotes(
    instruments: Annotated[
        list[str], typer.Argument(help="Instruments as EXCHANGE:SYMBOL, e.g. NSE:INFY (at most 500).")
    ],
    watch: Annotated[bool, typer.Option("--watch", help="Keep printing quotes as they change, until Ctrl-C.")] = False,
    min_interval_ms: Annotated[
        int, typer.Option(help="With --watch: at most one line per instrument per this many milliseconds.")
    ] = 0,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Show the latest quote of each instrument from the brokers' quote endpoints."""
    with connect(server) as client:
        if not watch:
            reply = client.market_data.GetQuotes(marketdata_pb2.GetQuotesRequest(instruments=instruments))
            typer.echo(render.as_json(reply)) if json else render.quotes(reply.quotes)
            return
        request = marketdata_pb2.StreamQuotesRequest(instruments=instruments, min_interval_ms=min_interval_ms)
        try:
            for quote in client.market_data.StreamQuotes(request):
                if json:
                    typer.echo(render.as_json(quote).replace("\n", ""))
                else:
                    at = quote.at.ToDatetime().strftime("%H:%M:%S.%f")[:-3]
                    typer.echo(f"{at}  {quote.instrument:<24} {quote.last_price:>12}  {quote.broker}")
        except KeyboardInterrupt:
            return


def register(app: typer.Typer) -> None:
    app.command("quotes")(quotes)
