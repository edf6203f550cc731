"""The security commands: users, API tokens and the audit trail."""

from __future__ import annotations

from typing import Annotated

import typer

from clients.cli import render
from clients.cli.connect import JsonOpt, ServerOpt, connect, rpc_errors
from clients.python import DEFAULT_SERVER
from engine.api.convert import role_to_proto
from engine.security.tokens import Role
from trademaster.v1 import security_pb2

users_app = typer.Typer(help="Users and the accounts they own (admin).", no_args_is_help=True)


@users_app.command("add")
@rpc_errors
def users_add(
    name: str,
    role: Annotated[
        Role,
        typer.Option(
            case_sensitive=False, help="viewer (reads), trader (and orders), admin (and users, all accounts)."
        ),
    ],
    account: Annotated[list[str] | None, typer.Option(help="An account the user owns (repeatable).")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Add a user; then give them a token with `tokens create --user NAME`."""
    with connect(server) as client:
        reply = client.security.AddUser(
            security_pb2.AddUserRequest(name=name, role=role_to_proto(role), accounts=account)
        )
    typer.echo(render.as_json(reply)) if json else render.users([reply])


@users_app.command("list")
@rpc_errors
def users_list(server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """List users with their role and accounts."""
    with connect(server) as client:
        reply = client.security.ListUsers(security_pb2.ListUsersRequest())
    typer.echo(render.as_json(reply)) if json else render.users(reply.users)


@users_app.command("remove")
@rpc_errors
def users_remove(name: str, server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """Remove a user; every token they hold stops working at once."""
    with connect(server) as client:
        reply = client.security.RemoveUser(security_pb2.RemoveUserRequest(name=name))
    if json:
        typer.echo(render.as_json(reply))
    else:
        typer.echo(f"removed {reply.user.name}; {reply.tokens_revoked} token(s) revoked")


tokens_app = typer.Typer(help="API tokens: your own, or anyone's as an admin.", no_args_is_help=True)
UserOpt = Annotated[str, typer.Option(help="Whose tokens (admins only). Default: yours.")]


@tokens_app.command("create")
@rpc_errors
def tokens_create(
    user: UserOpt = "",
    description: Annotated[str, typer.Option(help="What the token is for, e.g. the bot that uses it.")] = "",
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """Create a token and print it: it is shown this once, only its hash is kept."""
    with connect(server) as client:
        reply = client.security.CreateToken(security_pb2.CreateTokenRequest(user=user, description=description))
    if json:
        typer.echo(render.as_json(reply))
        return
    typer.echo(f"token {reply.token.id} for {reply.token.user} (shown once; store it now):", err=True)
    typer.echo(reply.secret)


@tokens_app.command("list")
@rpc_errors
def tokens_list(user: UserOpt = "", server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """List tokens by id (never their secrets), with when each was created or revoked."""
    with connect(server) as client:
        reply = client.security.ListTokens(security_pb2.ListTokensRequest(user=user))
    typer.echo(render.as_json(reply)) if json else render.tokens(reply.tokens)


@tokens_app.command("revoke")
@rpc_errors
def tokens_revoke(token_id: str, server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """Revoke a token by its id; calls with it fail from now on."""
    with connect(server) as client:
        reply = client.security.RevokeToken(security_pb2.RevokeTokenRequest(id=token_id))
    typer.echo(render.as_json(reply)) if json else render.tokens([reply])


audit_app = typer.Typer(help="The tamper-evident audit trail of every command (admin).", no_args_is_help=True)


@audit_app.command("tail")
@rpc_errors
def audit_tail(
    limit: Annotated[int, typer.Option("-n", "--limit", help="How many of the newest entries; at most 1000.")] = 20,
    server: ServerOpt = DEFAULT_SERVER,
    json: JsonOpt = False,
) -> None:
    """The newest audit entries, oldest first."""
    with connect(server) as client:
        reply = client.security.TailAudit(security_pb2.TailAuditRequest(limit=limit))
    typer.echo(render.as_json(reply)) if json else render.audit(reply.entries)


@audit_app.command("verify")
@rpc_errors
def audit_verify(server: ServerOpt = DEFAULT_SERVER, json: JsonOpt = False) -> None:
    """Check every entry's hash and link and the stored head; exit 1 naming the first edited or missing row."""
    with connect(server) as client:
        reply = client.security.VerifyAudit(security_pb2.VerifyAuditRequest())
    if json:
        typer.echo(render.as_json(reply))
    elif reply.ok:
        typer.echo(f"audit trail intact: {reply.rows_checked} entries verified")
    else:
        typer.echo(f"audit trail BROKEN at row {reply.seq}: {reply.problem}", err=True)
    if not reply.ok:
        raise typer.Exit(1)
