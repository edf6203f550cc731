"""Which role each RPC needs, and which are audited: one table, so a new RPC without a rule is refused."""

from __future__ import annotations

from dataclasses import dataclass

from engine.security.tokens import Role


@dataclass(frozen=True, slots=True)
class Rule:
    role: Role
    audit: bool = False  # commands are audited whatever their outcome; reads only when refused


_V, _T, _A = Role.VIEWER, Role.TRADER, Role.ADMIN
POLICY: dict[str, Rule] = {
    "/trademaster.v1.AccountService/ListAccounts": Rule(_V),
    "/trademaster.v1.AccountService/GetAccount": Rule(_V),
    "/trademaster.v1.AccountService/StartLogin": Rule(_T, audit=True),
    "/trademaster.v1.AccountService/CompleteLogin": Rule(_T, audit=True),
    "/trademaster.v1.AccountService/ListGroups": Rule(_V),
    "/trademaster.v1.AccountService/SetGroup": Rule(_A, audit=True),
    "/trademaster.v1.AccountService/DeleteGroup": Rule(_A, audit=True),
    "/trademaster.v1.AccountService/SetMultiplier": Rule(_T, audit=True),
    "/trademaster.v1.OperationsService/BatchOrder": Rule(_T, audit=True),
    "/trademaster.v1.OperationsService/StreamBatchOrder": Rule(_T, audit=True),
    "/trademaster.v1.OperationsService/ExitPositions": Rule(_T, audit=True),
    "/trademaster.v1.OperationsService/CancelOpenOrders": Rule(_T, audit=True),
    "/trademaster.v1.OperationsService/SetTradingState": Rule(_T, audit=True),
    "/trademaster.v1.OperationsService/GetTradingStates": Rule(_V),
    "/trademaster.v1.OperationsService/Kill": Rule(_T, audit=True),
    "/trademaster.v1.MarketDataService/GetQuotes": Rule(_V),
    "/trademaster.v1.MarketDataService/StreamQuotes": Rule(_V),
    "/trademaster.v1.StrategyService/CreateStrategy": Rule(_T, audit=True),
    "/trademaster.v1.StrategyService/ListStrategies": Rule(_V),
    "/trademaster.v1.StrategyService/GetStrategy": Rule(_V),
    "/trademaster.v1.StrategyService/PauseStrategy": Rule(_T, audit=True),
    "/trademaster.v1.StrategyService/ResumeStrategy": Rule(_T, audit=True),
    "/trademaster.v1.StrategyService/StopStrategy": Rule(_T, audit=True),
    "/trademaster.v1.StrategyService/StreamStrategyEvents": Rule(_V),
    "/trademaster.v1.OrderService/PlaceOrder": Rule(_T, audit=True),
    "/trademaster.v1.OrderService/PreviewRoute": Rule(_V),
    "/trademaster.v1.OrderService/CancelOrder": Rule(_T, audit=True),
    "/trademaster.v1.OrderService/ModifyOrder": Rule(_T, audit=True),
    "/trademaster.v1.OrderService/GetOrder": Rule(_V),
    "/trademaster.v1.OrderService/ListOrders": Rule(_V),
    "/trademaster.v1.OrderService/StreamOrderEvents": Rule(_V),
    "/trademaster.v1.PortfolioService/GetPortfolio": Rule(_V),
    "/trademaster.v1.PortfolioService/StreamPortfolio": Rule(_V),
    "/trademaster.v1.PortfolioService/GetPnlHistory": Rule(_V),
    "/trademaster.v1.SecurityService/WhoAmI": Rule(_V),
    "/trademaster.v1.SecurityService/AddUser": Rule(_A, audit=True),
    "/trademaster.v1.SecurityService/ListUsers": Rule(_A),
    "/trademaster.v1.SecurityService/RemoveUser": Rule(_A, audit=True),
    "/trademaster.v1.SecurityService/CreateToken": Rule(_V, audit=True),
    "/trademaster.v1.SecurityService/ListTokens": Rule(_V),
    "/trademaster.v1.SecurityService/RevokeToken": Rule(_V, audit=True),
    "/trademaster.v1.SecurityService/TailAudit": Rule(_A),
    "/trademaster.v1.SecurityService/VerifyAudit": Rule(_A),
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Rule(_V),
}
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
"""Liveness probes (systemd, Kubernetes, load balancers) cannot carry a token; health reveals nothing."""
