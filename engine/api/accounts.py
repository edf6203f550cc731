"""AccountService: the configured accounts with their broker status and health."""

from __future__ import annotations

import grpc

from engine.api import convert, validation
from engine.api.auth import caller
from engine.api.gateway import Gateway
from trademaster.v1 import accounts_pb2, accounts_pb2_grpc


class AccountService(accounts_pb2_grpc.AccountServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway

    def _proto(self, account_id: str) -> accounts_pb2.Account:
        handle = self._gw.require_account(account_id, caller())
        return convert.account_to_proto(
            self._gw.snapshot(account_id), handle.settings, account_id == self._gw.default_account
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
