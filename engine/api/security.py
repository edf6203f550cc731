"""SecurityService: users and the accounts they own, API tokens, and the audit trail."""

from __future__ import annotations

import re

import grpc

from engine.api import convert, validation
from engine.api.auth import Authenticator, caller
from engine.api.convert import timestamp
from engine.errors import InvalidArgument, NotFound, PermissionDenied
from engine.security.principal import Principal
from engine.security.tokens import Role, format_token, hash_secret, new_token
from engine.store.audit import AuditLog
from engine.store.users import TokenRecord, User, UserStore
from trademaster.v1 import security_pb2, security_pb2_grpc

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_TAIL_DEFAULT = 20
_TAIL_MAX = 1000


def user_to_proto(user: User) -> security_pb2.User:
    return security_pb2.User(
        name=user.name,
        role=convert.role_to_proto(user.role),
        accounts=user.accounts,
        created_at=timestamp(user.created_at),
    )


def _token_proto(token: TokenRecord) -> security_pb2.Token:
    return security_pb2.Token(
        id=token.token_id,
        user=token.user,
        description=token.description,
        created_at=timestamp(token.created_at),
        revoked_at=timestamp(token.revoked_at),
    )


def _whose(me: Principal, user: str) -> str:
    """Token commands act on the caller's own tokens; only an admin may name someone else."""
    if not user or user == me.user:
        return me.user
    if me.role is not Role.ADMIN:
        raise PermissionDenied(f"{me.user} may only manage their own tokens; {user}'s need an admin")
    return user


class SecurityService(security_pb2_grpc.SecurityServiceServicer):
    def __init__(self, users: UserStore, authenticator: Authenticator, audit: AuditLog, accounts: list[str]) -> None:
        self._users = users
        self._auth = authenticator
        self._audit = audit
        self._accounts = accounts

    async def WhoAmI(self, request: security_pb2.WhoAmIRequest, context: grpc.aio.ServicerContext) -> security_pb2.User:
        return user_to_proto(await self._users.require(caller().user))

    async def AddUser(
        self, request: security_pb2.AddUserRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.User:
        name = validation.text("name", request.name, required=True)
        if not _NAME.match(name):
            raise InvalidArgument("name", "1-40 letters, digits, '_', '.', '-', starting with a letter or digit")
        role = convert.role_from_proto(request.role)
        if role is None:
            raise InvalidArgument("role", "required: viewer, trader or admin")
        unknown = sorted(set(request.accounts) - set(self._accounts))
        if unknown:
            known = ", ".join(self._accounts)
            raise InvalidArgument("accounts", f"unknown account {', '.join(unknown)} (known: {known})")
        return user_to_proto(await self._users.add(name, role, sorted(set(request.accounts))))

    async def ListUsers(
        self, request: security_pb2.ListUsersRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.ListUsersResponse:
        return security_pb2.ListUsersResponse(users=[user_to_proto(u) for u in await self._users.list()])

    async def RemoveUser(
        self, request: security_pb2.RemoveUserRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.RemoveUserResponse:
        name = validation.text("name", request.name, required=True)
        if name == caller().user:
            raise InvalidArgument("name", "you cannot remove yourself; another admin can")
        user, token_ids = await self._users.remove(name)
        self._auth.revoke(token_ids)
        return security_pb2.RemoveUserResponse(user=user_to_proto(user), tokens_revoked=len(token_ids))

    async def CreateToken(
        self, request: security_pb2.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.CreateTokenResponse:
        user = _whose(caller(), validation.text("user", request.user))
        description = validation.text("description", request.description, limit=200)
        await self._users.require(user)
        token_id, secret = new_token()
        record = await self._users.add_token(token_id, user, hash_secret(secret), description)
        return security_pb2.CreateTokenResponse(token=_token_proto(record), secret=format_token(token_id, secret))

    async def ListTokens(
        self, request: security_pb2.ListTokensRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.ListTokensResponse:
        user = _whose(caller(), validation.text("user", request.user))
        return security_pb2.ListTokensResponse(tokens=[_token_proto(t) for t in await self._users.tokens(user)])

    async def RevokeToken(
        self, request: security_pb2.RevokeTokenRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.Token:
        token_id = validation.text("id", request.id, required=True)
        found = await self._users.token(token_id)
        if found is None:
            raise NotFound(f"token {token_id} not found")
        _whose(caller(), found.user)
        revoked = await self._users.revoke(token_id)
        self._auth.revoke([token_id])
        return _token_proto(revoked)

    async def TailAudit(
        self, request: security_pb2.TailAuditRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.TailAuditResponse:
        if not 0 <= request.limit <= _TAIL_MAX:
            raise InvalidArgument("limit", f"must be between 0 and {_TAIL_MAX}")
        records = await self._audit.tail(request.limit or _TAIL_DEFAULT)
        return security_pb2.TailAuditResponse(
            entries=[
                security_pb2.AuditEntry(
                    seq=r.entry.seq,
                    at=timestamp(r.entry.at),
                    actor=r.entry.actor,
                    action=r.entry.action,
                    target=r.entry.target,
                    peer=r.entry.peer,
                    outcome=r.entry.outcome,
                    detail=r.entry.detail,
                    hash=r.hash,
                )
                for r in records
            ]
        )

    async def VerifyAudit(
        self, request: security_pb2.VerifyAuditRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.VerifyAuditResponse:
        report = await self._audit.verify()
        return security_pb2.VerifyAuditResponse(
            ok=report.ok, rows_checked=report.rows_checked, problem=report.problem, seq=report.seq or 0
        )
