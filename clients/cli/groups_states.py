"""Account groups, quantity multipliers and trading states: `trademaster groups|state`, `accounts multiplier`."""

from __future__ import annotations

from typing import Annotated

import typer

from clients.cli import render
from clients.cli.connect import JsonOpt, ServerOpt, connect, rpc_errors
from clients.python import DEFAULT_SERVER
from engine.api import convert
from engine.risk.states import GLOBAL, Scope, ScopeKind, TradingState
from trademaster.v1 import accounts_pb2, common_pb2, operations_pb2

groups_app = typer.Typer(help="Account groups for routing, batches and trading states.", no_args_is_help=True)


def _groups(items: list[accounts_pb2.Group]) -> None:
    render.console.print(
        render.table(
            "Account groups",
            ["group", "accounts", "source"],
            ([g.name, ", ".join(g.accounts), g.source] for g in items),
        )
    )


@groups_app.command("list")
@rpc_errors
def groups_list(server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """List the groups: the config file's, with what the API set over them."""
    with connect(server) as client:
        reply = client.accounts.ListGroups(accounts_pb2.ListGroupsRequest())
    typer.echo(render.as_json(reply)) if json else _groups(list(reply.groups))


@groups_app.command("set")
@rpc_errors
def groups_set(
    name: str,
    accounts: Annotated[list[str], typer.Argument(help="The members, in order.")],
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Create a group or replace its members (admin); it replaces a config group of that name, persisted."""
    with connect(server) as client:
        reply = client.accounts.SetGroup(accounts_pb2.SetGroupRequest(name=name, accounts=accounts))
    typer.echo(render.as_json(reply)) if json else _groups([reply])


@groups_app.command("delete")
@rpc_errors
def groups_delete(name: str, server: ServerOpt = DEFAULT_SERVER) -> None:
    """Delete a group (admin), a config file's too: it stays deleted across restarts."""
    with connect(server) as client:
        client.accounts.DeleteGroup(accounts_pb2.DeleteGroupRequest(name=name))
    typer.echo(f"deleted group {name}")


@rpc_errors
def accounts_multiplier(
    account: str,
    value: Annotated[str, typer.Argument(help="A decimal from 0 to 1000; 0 leaves the account out of batches.")],
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Set the factor a batch's base quantity is multiplied by for this account (persisted)."""
    with connect(server) as client:
        reply = client.accounts.SetMultiplier(accounts_pb2.SetMultiplierRequest(account=account, multiplier=value))
    typer.echo(render.as_json(reply)) if json else render.accounts([reply])


state_app = typer.Typer(
    help="Trading states: ACTIVE, REDUCING (only exposure-reducing orders), HALTED (only cancels).",
    no_args_is_help=True,
)


def _state_name(value: int) -> str:
    return common_pb2.TradingState.Name(value).removeprefix("TRADING_STATE_")


def _scope_name(scope: common_pb2.Scope) -> str:
    kind = common_pb2.ScopeKind.Name(scope.kind).removeprefix("SCOPE_KIND_").lower()
    return f"{kind} {scope.name}".strip()


@state_app.command("show")
@rpc_errors
def state_show(server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """The scopes that restrict trading, and each of your accounts' effective state."""
    with connect(server) as client:
        reply = client.operations.GetTradingStates(operations_pb2.GetTradingStatesRequest())
    if json:
        typer.echo(render.as_json(reply))
        return
    entries = (
        [
            _scope_name(e.scope),
            _state_name(e.state),
            e.reason,
            e.set_by,
            e.set_at.ToDatetime().isoformat(timespec="seconds"),
        ]
        for e in reply.entries
    )
    render.console.print(render.table("Restricting scopes", ["scope", "state", "reason", "by", "at (UTC)"], entries))
    accounts = ([a.account, _state_name(a.state), a.because] for a in reply.accounts)
    render.console.print(render.table("Accounts", ["account", "state", "because"], accounts))


@state_app.command("set")
@rpc_errors
def state_set(
    state: Annotated[TradingState, typer.Argument(case_sensitive=False, help="active, reducing or halted.")],
    account: Annotated[str, typer.Option(help="Set it on this account.")] = "",
    group: Annotated[str, typer.Option(help="Set it on this group.")] = "",
    reason: Annotated[str, typer.Option(help="Shown with the state and in every refusal.")] = "",
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Set a trading state on an account, a group, or (neither; admin) globally."""
    if account and group:
        raise typer.BadParameter("give --account or --group, not both")
    scope = Scope(ScopeKind.ACCOUNT, account) if account else Scope(ScopeKind.GROUP, group) if group else GLOBAL
    request = operations_pb2.SetTradingStateRequest(
        scope=convert.scope_to_proto(scope), state=convert.trading_state_to_proto(state), reason=reason
    )
    with connect(server) as client:
        reply = client.operations.SetTradingState(request)
    if json:
        typer.echo(render.as_json(reply))
    else:
        why = f" ({reply.reason})" if reply.reason else ""
        typer.echo(f"{_scope_name(reply.scope)}: {_state_name(reply.state)} by {reply.set_by}{why}")
