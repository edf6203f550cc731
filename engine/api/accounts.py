"""AccountService: the configured accounts with their broker status and health, their groups and multipliers."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import grpc

from engine.api import convert, validation
from engine.api.auth import caller
from engine.api.gateway import Gateway
from engine.api.registry import AccountRegistry, Group
from engine.api.trading import TradingStates
from engine.errors import InvalidArgument
from engine.security.principal import Principal
from trademaster.v1 import accounts_pb2, accounts_pb2_grpc


class AccountService(accounts_pb2_grpc.AccountServiceServicer):
    def __init__(self, gateway: Gateway, registry: AccountRegistry, states: TradingStates) -> None:
        self._gw = gateway
        self._registry = registry
        self._states = states

    def _proto(self, account_id: str) -> accounts_pb2.Account:
        handle = self._gw.require_account(account_id, caller())
        return convert.account_to_proto(
            self._gw.snapshot(account_id),
            handle.settings,
            account_id == self._gw.default_account,
            self._registry.groups_of(account_id),
            self._registry.multiplier(account_id),
            self._states.effective(account_id),
        )

    async def ListAccounts(
        self, request: accounts_pb2.ListAccountsRequest, context: grpc.aio.ServicerContext
    ) -> accounts_pb2.ListAccountsResponse:
        return accounts_pb2.ListAccountsResponse(accounts=[self._proto(a) for a in caller().visible(self._gw.accounts)])

    async def GetAccount(
        self, request: accounts_pb2.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> accounts_pb2.Account:
        return self._proto(validation.text("id", request.id, required=True))

    async def StartLogin(
        self, request: accounts_pb2.StartLoginRequest, context: grpc.aio.ServicerContext
    ) -> accounts_pb2.StartLoginResponse:
        handle = self._gw.require_account(validation.text("account", request.account, required=True), caller())
        url = await self._gw.call("account", "login_url", handle.actor.login_url.remote())
        return accounts_pb2.StartLoginResponse(login_url=url)

    async def CompleteLogin(
        self, request: accounts_pb2.CompleteLoginRequest, context: grpc.aio.ServicerContext
    ) -> accounts_pb2.Account:
        account = validation.text("account", request.account, required=True)
        redirect = validation.text("redirect", request.redirect, required=True, limit=4096)
        handle = self._gw.require_account(account, caller())
        await self._gw.call("account", "complete_login", handle.actor.complete_login.remote(redirect))
        await self._gw.refresh_snapshots()
        return self._proto(account)

    async def ListGroups(
        self, request: accounts_pb2.ListGroupsRequest, context: grpc.aio.ServicerContext
    ) -> accounts_pb2.ListGroupsResponse:
        """Admins see every group; others the groups with an account of theirs, showing only those accounts."""
        me = caller()
        shown = [_group_proto(g, me) for g in self._registry.listed()]
        return accounts_pb2.ListGroupsResponse(groups=[g for g in shown if g.accounts])

    async def SetGroup(
        self, request: accounts_pb2.SetGroupRequest, context: grpc.aio.ServicerContext
    ) -> accounts_pb2.Group:
        name = validation.text("name", request.name, required=True)
        return _group_proto(await self._registry.set_group(name, list(request.accounts)), caller())

    async def DeleteGroup(
        self, request: accounts_pb2.DeleteGroupRequest, context: grpc.aio.ServicerContext
    ) -> accounts_pb2.DeleteGroupResponse:
        await self._registry.delete_group(validation.text("name", request.name, required=True))
        return accounts_pb2.DeleteGroupResponse()

    async def SetMultiplier(
        self, request: accounts_pb2.SetMultiplierRequest, context: grpc.aio.ServicerContext
    ) -> accounts_pb2.Account:
        account = self._registry.require_account("account", validation.text("account", request.account, required=True))
        self._gw.require_account(account, caller())
        raw = validation.text("multiplier", request.multiplier, required=True)
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise InvalidArgument("multiplier", f"not a decimal number: {raw!r}") from None
        await self._registry.set_multiplier(account, value)
        return self._proto(account)


def _group_proto(group: Group, me: Principal) -> accounts_pb2.Group:
    return accounts_pb2.Group(name=group.name, accounts=me.visible(group.accounts), source=group.source)
