"""Users, tokens, account ownership, rate limits and the audit trail, against the real daemon.

Three users besides the first-start admin: a viewer and a trader who own `alpha`, and a trader who owns
`beta`. The authorization matrix calls every RPC as each role on an own and on another user's account.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.message import Message

from clients.python import Client
from engine.api.policy import OPEN_METHODS, POLICY
from engine.security.tokens import Role
from tests.integration.daemon import ROOT, Daemon, free_port
from tests.integration.daemon import test_config as config_text
from trademaster.v1 import (
    accounts_pb2,
    common_pb2,
    marketdata_pb2,
    operations_pb2,
    orders_pb2,
    portfolio_pb2,
    security_pb2,
    strategies_pb2,
)

OWN, OTHER = "alpha", "beta"
DENIED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}
BROKEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
RATE, BURST = 20, 120
_ROLES = {Role.VIEWER: security_pb2.ROLE_VIEWER, Role.TRADER: security_pb2.ROLE_TRADER}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("security") / "data", ROOT / "test-artifacts" / "daemon-security.log")
    limits = f"\n[security]\napi_requests_per_second = {RATE}\napi_burst = {BURST}\n"
    d.config.write_text(config_text(d.grpc_port, d.metrics_port, extra=limits))
    d.start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def tokens(daemon: Daemon) -> dict[str, str]:
    """A token for each test user, created through the API by the admin."""
    made = {}
    with daemon.client() as admin:
        users = (("vera", Role.VIEWER, OWN), ("tom", Role.TRADER, OWN), ("olga", Role.TRADER, OTHER))
        for name, role, account in users:
            admin.security.AddUser(security_pb2.AddUserRequest(name=name, role=_ROLES[role], accounts=[account]))
            made[name] = admin.security.CreateToken(security_pb2.CreateTokenRequest(user=name)).secret
    made["admin"] = daemon.admin_token
    return made


def _code(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def _limit_order(account: str, tag: str) -> orders_pb2.PlaceOrderRequest:
    """Far below the market: it rests, so it can be modified and cancelled."""
    return orders_pb2.PlaceOrderRequest(
        client_order_id=tag, account=account, instrument="NSE:SBIN", side=common_pb2.SIDE_BUY, quantity=1,
        product=common_pb2.PRODUCT_MIS, order_type=common_pb2.ORDER_TYPE_LIMIT, price="100",
    )  # fmt: skip


# -- the matrix --------------------------------------------------------------------------------


@dataclass
class World:
    """What the matrix needs to exist: a resting order on each account, and tokens to list and revoke."""

    daemon: Daemon
    resting: dict[str, str]
    counter: int = 0
    strategies: dict[str, str] = field(default_factory=dict)  # account -> a strategy its owner created

    def unique(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def spare_token(self, user: str) -> str:
        with self.daemon.client() as admin:
            return admin.security.CreateToken(security_pb2.CreateTokenRequest(user=user)).token.id


@pytest.fixture(scope="module")
def world(daemon: Daemon, tokens: dict[str, str]) -> World:
    with daemon.client() as admin:
        resting = {a: admin.orders.PlaceOrder(_limit_order(a, f"rest-{a}")).order.order_id for a in (OWN, OTHER)}
    return World(daemon, resting)


def _first(stream: Iterator[Message]) -> Message:
    """A stream's first message; errors at the start of a stream surface here."""
    try:
        return next(stream)
    finally:
        stream.cancel()  # type: ignore[attr-defined]


# Each RPC, called on the own or the other user's account. `None` for "whose" means it is about no account.
Call = Callable[[Client, World, str, str], object]
MATRIX: dict[str, tuple[bool, Call]] = {
    "AccountService/ListAccounts": (
        False, lambda c, w, a, me: c.accounts.ListAccounts(accounts_pb2.ListAccountsRequest())
    ),
    "AccountService/GetAccount": (
        True, lambda c, w, a, me: c.accounts.GetAccount(accounts_pb2.GetAccountRequest(id=a))
    ),
    "AccountService/StartLogin": (
        True, lambda c, w, a, me: c.accounts.StartLogin(accounts_pb2.StartLoginRequest(account=a))
    ),
    "AccountService/CompleteLogin": (
        True,
        lambda c, w, a, me: c.accounts.CompleteLogin(accounts_pb2.CompleteLoginRequest(account=a, redirect="x")),
    ),
    "AccountService/ListGroups": (False, lambda c, w, a, me: c.accounts.ListGroups(accounts_pb2.ListGroupsRequest())),
    "AccountService/SetGroup": (
        True,
        lambda c, w, a, me: c.accounts.SetGroup(accounts_pb2.SetGroupRequest(name=w.unique("g"), accounts=[a])),
    ),
    "AccountService/DeleteGroup": (
        False, lambda c, w, a, me: c.accounts.DeleteGroup(accounts_pb2.DeleteGroupRequest(name=_throwaway_group(w)))
    ),
    "AccountService/SetMultiplier": (
        True,
        lambda c, w, a, me: c.accounts.SetMultiplier(accounts_pb2.SetMultiplierRequest(account=a, multiplier="1")),
    ),
    "OperationsService/SetTradingState": (
        True,  # ACTIVE, which it already is: the rows after it still trade
        lambda c, w, a, me: c.operations.SetTradingState(
            operations_pb2.SetTradingStateRequest(
                scope=common_pb2.Scope(kind=common_pb2.SCOPE_KIND_ACCOUNT, name=a),
                state=common_pb2.TRADING_STATE_ACTIVE,
                reason="matrix",
            )
        ),
    ),
    "OperationsService/GetTradingStates": (
        False, lambda c, w, a, me: c.operations.GetTradingStates(operations_pb2.GetTradingStatesRequest())
    ),
    "OperationsService/BatchOrder": (
        True, lambda c, w, a, me: c.operations.BatchOrder(_batch(a, w.unique(f"b-{me}-")))
    ),
    "OperationsService/StreamBatchOrder": (
        True, lambda c, w, a, me: _first(c.operations.StreamBatchOrder(_batch(a, w.unique(f"s-{me}-")), timeout=30))
    ),
    "OperationsService/ExitPositions": (
        True,  # of an instrument nobody holds: nothing is sold
        lambda c, w, a, me: c.operations.ExitPositions(
            operations_pb2.ExitPositionsRequest(client_exit_id=w.unique(f"x-{me}-"), accounts=[a], instrument="NSE:TCS")
        ),
    ),
    "OperationsService/CancelOpenOrders": (
        True,  # of an instrument no order is for: the resting orders stay for the rows after it
        lambda c, w, a, me: c.operations.CancelOpenOrders(
            operations_pb2.CancelOpenOrdersRequest(accounts=[a], instrument="NSE:TCS")
        ),
    ),
    "OrderService/PlaceOrder": (
        True, lambda c, w, a, me: c.orders.PlaceOrder(_limit_order(a, w.unique(f"m-{me}-")))
    ),
    "OrderService/PreviewRoute": (
        True, lambda c, w, a, me: c.orders.PreviewRoute(_limit_order(a, w.unique(f"p-{me}-")))
    ),
    "OrderService/CancelOrder": (
        True, lambda c, w, a, me: c.orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=w.resting[a]))
    ),
    "OrderService/ModifyOrder": (
        True,
        lambda c, w, a, me: c.orders.ModifyOrder(orders_pb2.ModifyOrderRequest(order_id=w.resting[a], price="101")),
    ),
    "OrderService/GetOrder": (
        True, lambda c, w, a, me: c.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=w.resting[a]))
    ),
    "OrderService/ListOrders": (
        True, lambda c, w, a, me: c.orders.ListOrders(orders_pb2.ListOrdersRequest(account=a))
    ),
    "OrderService/StreamOrderEvents": (
        True,
        lambda c, w, a, me: list(
            c.orders.StreamOrderEvents(
                orders_pb2.StreamOrderEventsRequest(account=a, after_sequence=0, catch_up_only=True), timeout=10
            )
        ),
    ),
    "PortfolioService/GetPortfolio": (
        True, lambda c, w, a, me: c.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(accounts=[a]))
    ),
    "PortfolioService/StreamPortfolio": (
        True,
        lambda c, w, a, me: _first(
            c.portfolio.StreamPortfolio(portfolio_pb2.StreamPortfolioRequest(accounts=[a]), timeout=10)
        ),
    ),
    "PortfolioService/GetPnlHistory": (
        True, lambda c, w, a, me: c.portfolio.GetPnlHistory(portfolio_pb2.GetPnlHistoryRequest(accounts=[a]))
    ),
    "MarketDataService/GetQuotes": (
        False,
        lambda c, w, a, me: c.market_data.GetQuotes(marketdata_pb2.GetQuotesRequest(instruments=["NSE:INFY"])),
    ),
    "MarketDataService/StreamQuotes": (
        False,
        lambda c, w, a, me: _first(
            c.market_data.StreamQuotes(marketdata_pb2.StreamQuotesRequest(instruments=["NSE:INFY"]), timeout=10)
        ),
    ),
    "SecurityService/WhoAmI": (False, lambda c, w, a, me: c.security.WhoAmI(security_pb2.WhoAmIRequest())),
    "SecurityService/AddUser": (
        False,
        lambda c, w, a, me: c.security.AddUser(
            security_pb2.AddUserRequest(name=w.unique("u"), role=security_pb2.ROLE_VIEWER)
        ),
    ),
    "SecurityService/ListUsers": (False, lambda c, w, a, me: c.security.ListUsers(security_pb2.ListUsersRequest())),
    "SecurityService/RemoveUser": (
        False,
        lambda c, w, a, me: c.security.RemoveUser(security_pb2.RemoveUserRequest(name=_throwaway_user(w))),
    ),
    # Token commands: "own" means the caller's own tokens, "other" another user's.
    "SecurityService/CreateToken": (
        True, lambda c, w, a, me: c.security.CreateToken(security_pb2.CreateTokenRequest(user=_whom(a, me)))
    ),
    "SecurityService/ListTokens": (
        True, lambda c, w, a, me: c.security.ListTokens(security_pb2.ListTokensRequest(user=_whom(a, me)))
    ),
    "SecurityService/RevokeToken": (
        True,
        lambda c, w, a, me: c.security.RevokeToken(security_pb2.RevokeTokenRequest(id=w.spare_token(_whom(a, me)))),
    ),
    "SecurityService/TailAudit": (False, lambda c, w, a, me: c.security.TailAudit(security_pb2.TailAuditRequest())),
    "SecurityService/VerifyAudit": (
        False, lambda c, w, a, me: c.security.VerifyAudit(security_pb2.VerifyAuditRequest())
    ),
    "StrategyService/CreateStrategy": (
        True, lambda c, w, a, me: c.strategies.CreateStrategy(_resting_bracket(a, w.unique(f"st-{me}-")))
    ),
    "StrategyService/ListStrategies": (
        False, lambda c, w, a, me: c.strategies.ListStrategies(strategies_pb2.ListStrategiesRequest())
    ),
    # The strategy rows act on a strategy the account's owner (tom: own, olga: other) created.
    "StrategyService/GetStrategy": (
        True, lambda c, w, a, me: c.strategies.GetStrategy(strategies_pb2.GetStrategyRequest(id=_strategy(w, a)))
    ),
    "StrategyService/PauseStrategy": (
        True, lambda c, w, a, me: c.strategies.PauseStrategy(strategies_pb2.GetStrategyRequest(id=_strategy(w, a)))
    ),
    "StrategyService/ResumeStrategy": (
        True, lambda c, w, a, me: c.strategies.ResumeStrategy(strategies_pb2.GetStrategyRequest(id=_strategy(w, a)))
    ),
    "StrategyService/StopStrategy": (
        True,  # a new one each time, so the shared one keeps running
        lambda c, w, a, me: c.strategies.StopStrategy(
            strategies_pb2.GetStrategyRequest(id=_strategy(w, a, fresh=True))
        ),
    ),
    "StrategyService/StreamStrategyEvents": (
        True,
        lambda c, w, a, me: _first(
            c.strategies.StreamStrategyEvents(
                strategies_pb2.StreamStrategyEventsRequest(strategy_id=_strategy(w, a), after_sequence=0), timeout=10
            )
        ),
    ),
    # Last: it cancels the account's open orders (the rows above use them); the account trades again after it.
    "OperationsService/Kill": (True, lambda c, w, a, me: _kill_and_revive(c, a)),
}  # fmt: skip


def _whom(account: str, me: str) -> str:
    """For token commands: the caller themself on the own side, the other account's owner on the other."""
    return me if account == OWN else "olga" if me != "olga" else "tom"


def _throwaway_group(world: World) -> str:
    name = world.unique("gone-group")
    with world.daemon.client() as admin:
        admin.accounts.SetGroup(accounts_pb2.SetGroupRequest(name=name, accounts=[OWN]))
    return name


def _batch(account: str, batch_id: str) -> operations_pb2.BatchOrderRequest:
    """One resting order on the account, as a batch."""
    order = _limit_order(account, batch_id)
    return operations_pb2.BatchOrderRequest(
        client_batch_id=batch_id, instrument=order.instrument, side=order.side, product=order.product,
        order_type=order.order_type, price=order.price, quantities={account: 1},
    )  # fmt: skip


def _kill_and_revive(client: Client, account: str) -> operations_pb2.KillResponse:
    scope = common_pb2.Scope(kind=common_pb2.SCOPE_KIND_ACCOUNT, name=account)
    killed = client.operations.Kill(operations_pb2.KillRequest(scope=scope, reason="matrix"))
    active = operations_pb2.SetTradingStateRequest(scope=scope, state=common_pb2.TRADING_STATE_ACTIVE, reason="matrix")
    client.operations.SetTradingState(active)
    return killed


def _resting_bracket(account: str, client_id: str) -> strategies_pb2.CreateStrategyRequest:
    """A bracket whose entry rests far below the market: it places one order and waits."""
    order = _limit_order(account, client_id)
    entry = strategies_pb2.OrderSpec(
        account=account, instrument=order.instrument, side=order.side, quantity=1, product=order.product,
        order_type=order.order_type, price=order.price,
    )  # fmt: skip
    return strategies_pb2.CreateStrategyRequest(
        client_strategy_id=client_id, bracket=strategies_pb2.BracketParams(entry=entry, stop_loss="5", target="5")
    )


def _strategy(world: World, account: str, fresh: bool = False) -> str:
    """A strategy on `account` created by its owner (tom owns OWN, olga OTHER); `fresh`: a new one."""
    if fresh or account not in world.strategies:
        owner = "tom" if account == OWN else "olga"
        with world.daemon.client() as admin:
            token = admin.security.CreateToken(security_pb2.CreateTokenRequest(user=owner)).secret
        with world.daemon.client(token=token) as client:
            made = client.strategies.CreateStrategy(_resting_bracket(account, world.unique(f"st-{owner}-")))
        if fresh:
            return made.id
        world.strategies[account] = made.id
    return world.strategies[account]


def _throwaway_user(world: World) -> str:
    name = world.unique("gone")
    with world.daemon.client() as admin:
        admin.security.AddUser(security_pb2.AddUserRequest(name=name, role=security_pb2.ROLE_VIEWER))
    return name


def test_every_rpc_has_an_access_rule_and_a_row_in_the_matrix() -> None:
    from engine.api.server import SERVICE_NAMES

    served = set()
    for full_name in SERVICE_NAMES:
        service = full_name.rsplit(".", 1)[-1]
        module = {"OrderService": orders_pb2, "PortfolioService": portfolio_pb2,
                  "AccountService": accounts_pb2, "SecurityService": security_pb2,
                  "OperationsService": operations_pb2, "MarketDataService": marketdata_pb2,
                  "StrategyService": strategies_pb2}[service]  # fmt: skip
        for method in module.DESCRIPTOR.services_by_name[service].methods:
            served.add(f"{service}/{method.name}")
            assert f"/{full_name}/{method.name}" in POLICY, f"{service}/{method.name} has no access rule"
    assert served == set(MATRIX)
    assert all(m.startswith("/grpc.health.") for m in OPEN_METHODS)


@pytest.mark.parametrize("who", ["vera", "tom", "admin"])
def test_authorization_matrix(daemon: Daemon, tokens: dict[str, str], world: World, who: str) -> None:
    """Each RPC as each role, on an own and another user's account: allowed exactly when the role reaches
    the RPC's rule and the account is the caller's (admins: any account)."""
    role = {"vera": Role.VIEWER, "tom": Role.TRADER, "admin": Role.ADMIN}[who]
    wrong = []
    with daemon.client(token=tokens[who]) as client:
        for name, (about_account, call) in MATRIX.items():
            rule = POLICY[f"/trademaster.v1.{name}"]
            for whose in (OWN, OTHER) if about_account else (OWN,):
                allowed = role.allows(rule.role) and (whose == OWN or role is Role.ADMIN)
                code = _code(lambda call=call, whose=whose: call(client, world, whose, who))
                if code in BROKEN or (code not in DENIED) != allowed:
                    wrong.append(f"{name} on {whose}: {code.name}, expected {'allowed' if allowed else 'denied'}")
    assert not wrong, "\n".join(wrong)


def test_views_hold_only_the_callers_accounts(daemon: Daemon, tokens: dict[str, str], world: World) -> None:
    with daemon.client(token=tokens["tom"]) as tom:
        accounts = [a.id for a in tom.accounts.ListAccounts(accounts_pb2.ListAccountsRequest()).accounts]
        orders = tom.orders.ListOrders(orders_pb2.ListOrdersRequest()).orders
        events = list(
            tom.orders.StreamOrderEvents(orders_pb2.StreamOrderEventsRequest(after_sequence=0, catch_up_only=True))
        )
        book = tom.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest())
    assert accounts == [OWN]
    assert orders and {o.account for o in orders} == {OWN}
    assert events and {e.order.account if e.HasField("order") else e.fill.account for e in events} == {OWN}
    assert {a.account for a in book.accounts} == {OWN}
    with daemon.client(token=tokens["tom"]) as tom, pytest.raises(grpc.RpcError) as denied:
        tom.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=world.resting[OTHER]))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"order {world.resting[OTHER]}" in denied.value.details() and "tom" in denied.value.details()


def test_routing_uses_only_the_callers_accounts(daemon: Daemon, tokens: dict[str, str]) -> None:
    request = _limit_order("", "route-olga")
    request.mode = orders_pb2.ROUTING_MODE_ORCHESTRATOR
    with daemon.client(token=tokens["olga"]) as olga:
        decision = olga.orders.PreviewRoute(request)
    assert [leg.account for leg in decision.legs] == [OTHER]
    assert {c.account for c in decision.candidates} == {OTHER}


def test_another_users_client_order_id_is_refused_without_showing_their_order(
    daemon: Daemon, tokens: dict[str, str]
) -> None:
    with daemon.client(token=tokens["tom"]) as tom:
        toms = tom.orders.PlaceOrder(_limit_order(OWN, "shared-id")).order.order_id
        routed = _limit_order("", "shared-routed")
        routed.mode = orders_pb2.ROUTING_MODE_ORCHESTRATOR
        toms_routed = tom.orders.PlaceOrder(routed).order.order_id
    with daemon.client(token=tokens["olga"]) as olga:
        with pytest.raises(grpc.RpcError) as refused:
            olga.orders.PlaceOrder(_limit_order(OWN, "shared-id"))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED  # the account is tom's
        answers = []
        for request in (_limit_order(OTHER, "shared-id"), _limit_order(OTHER, "shared-routed"), routed):
            with pytest.raises(grpc.RpcError) as taken:
                olga.orders.PlaceOrder(request)
            answers.append(taken.value)
        for key in ("shared-id", "shared-routed"):  # client ids are guessable: no order behind them shows
            with pytest.raises(grpc.RpcError) as hidden:
                olga.orders.GetOrder(orders_pb2.GetOrderRequest(client_order_id=key))
            answers.append(hidden.value)
    assert [a.code() for a in answers] == [grpc.StatusCode.FAILED_PRECONDITION] * 3 + [grpc.StatusCode.NOT_FOUND] * 2
    for answer in answers:
        assert toms not in answer.details() and toms_routed not in answer.details() and OWN not in answer.details()


def test_an_open_stream_ends_when_its_token_is_revoked(daemon: Daemon, tokens: dict[str, str]) -> None:
    with daemon.client() as admin:
        made = admin.security.CreateToken(security_pb2.CreateTokenRequest(user="tom"))
        admin.orders.PlaceOrder(_limit_order(OWN, "before-revoke"))  # so alpha has history to replay
    with daemon.client(token=made.secret) as bot:
        request = orders_pb2.StreamOrderEventsRequest(account=OWN, after_sequence=0)
        stream = bot.orders.StreamOrderEvents(request, timeout=30)
        next(stream)  # open and admitted
        with daemon.client() as admin:
            admin.security.RevokeToken(security_pb2.RevokeTokenRequest(id=made.token.id))
            admin.orders.PlaceOrder(_limit_order(OWN, "after-revoke"))  # the next event meets the revoked token
        with pytest.raises(grpc.RpcError) as ended:
            list(stream)
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED and "was revoked" in ended.value.details()


# -- authentication -----------------------------------------------------------------------------


def test_calls_without_a_valid_token_are_unauthenticated(daemon: Daemon) -> None:
    cases = {
        "no token": None,
        "malformed": "not-a-token",
        "unknown": "tm_0123456789ab_" + "A" * 43,
        "wrong secret": daemon.admin_token[:-4] + "AAAA",
    }
    for label, token in cases.items():
        client = Client(daemon.address, token=token)
        with client, pytest.raises(grpc.RpcError) as refused:
            client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest())
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, label
        assert "token" in refused.value.details(), label
    with Client(daemon.address) as anonymous, pytest.raises(grpc.RpcError) as refused:
        list(anonymous.orders.StreamOrderEvents(orders_pb2.StreamOrderEventsRequest(catch_up_only=True)))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer" in refused.value.details()


def test_a_revoked_token_fails_at_once(daemon: Daemon, tokens: dict[str, str]) -> None:
    with daemon.client() as admin:
        made = admin.security.CreateToken(security_pb2.CreateTokenRequest(user="tom", description="bot"))
    with daemon.client(token=made.secret) as bot:
        assert bot.security.WhoAmI(security_pb2.WhoAmIRequest()).name == "tom"  # verified and cached
        bot.security.RevokeToken(security_pb2.RevokeTokenRequest(id=made.token.id))  # a user may revoke their own
        with pytest.raises(grpc.RpcError) as refused:
            bot.security.WhoAmI(security_pb2.WhoAmIRequest())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert made.token.id in refused.value.details()


def test_removing_a_user_kills_their_tokens(daemon: Daemon) -> None:
    with daemon.client() as admin:
        admin.security.AddUser(security_pb2.AddUserRequest(name="leaver", role=security_pb2.ROLE_TRADER))
        secret = admin.security.CreateToken(security_pb2.CreateTokenRequest(user="leaver")).secret
        with daemon.client(token=secret) as leaver:
            leaver.security.WhoAmI(security_pb2.WhoAmIRequest())
            removed = admin.security.RemoveUser(security_pb2.RemoveUserRequest(name="leaver"))
            assert removed.tokens_revoked == 1
            gone = _code(lambda: leaver.security.WhoAmI(security_pb2.WhoAmIRequest()))
            assert gone == grpc.StatusCode.UNAUTHENTICATED


def test_bad_user_requests_name_the_field(daemon: Daemon) -> None:
    with daemon.client() as admin:
        for request, field in (
            (security_pb2.AddUserRequest(name="x y", role=security_pb2.ROLE_VIEWER), "name"),
            (security_pb2.AddUserRequest(name="nobody"), "role"),
            (security_pb2.AddUserRequest(name="z", role=security_pb2.ROLE_VIEWER, accounts=["nope"]), "accounts"),
        ):
            with pytest.raises(grpc.RpcError) as bad:
                admin.security.AddUser(request)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad.value.details().startswith(field)


def test_per_token_rate_limit(daemon: Daemon) -> None:
    with daemon.client() as admin:
        admin.security.AddUser(security_pb2.AddUserRequest(name="busy", role=security_pb2.ROLE_VIEWER))
        busy, calm = (admin.security.CreateToken(security_pb2.CreateTokenRequest(user="busy")).secret for _ in "ab")
    codes = []
    with daemon.client(token=busy) as client:
        for _ in range(BURST + 60):
            codes.append(_code(lambda: client.security.WhoAmI(security_pb2.WhoAmIRequest())))
        with pytest.raises(grpc.RpcError) as limited:
            for _ in range(BURST):
                client.security.WhoAmI(security_pb2.WhoAmIRequest())
    assert codes[:BURST] == [grpc.StatusCode.OK] * BURST
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"{RATE} requests/s" in limited.value.details() and "retry in" in limited.value.details()
    with daemon.client(token=calm) as other:  # the limit is per token
        assert other.security.WhoAmI(security_pb2.WhoAmIRequest()).name == "busy"


# -- audit --------------------------------------------------------------------------------------


def _cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args, "--server", daemon.address],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=daemon.cli_env(),
    )  # fmt: skip


def test_commands_and_refusals_are_audited(daemon: Daemon, tokens: dict[str, str]) -> None:
    with daemon.client(token=tokens["tom"]) as tom:
        placed = tom.orders.PlaceOrder(_limit_order(OWN, "audited-1")).order
        _code(lambda: tom.orders.PlaceOrder(_limit_order(OTHER, "audited-2")))
        tom.orders.ListOrders(orders_pb2.ListOrdersRequest())  # a read: not audited
    with daemon.client() as admin:
        entries = admin.security.TailAudit(security_pb2.TailAuditRequest(limit=3)).entries
    ok, denied = entries[-2], entries[-1]
    assert ok.action == "OrderService/PlaceOrder" and ok.outcome == "OK" and ok.target == f"account={OWN}"
    assert ok.actor.startswith("tom (token ") and ok.peer.startswith("ipv4:127.0.0.1:")
    assert "audited-1" in ok.detail and "NSE:SBIN" in ok.detail
    assert denied.outcome.startswith("PERMISSION_DENIED: account beta") and denied.seq == ok.seq + 1
    assert placed.order_id
    with daemon.client() as admin:
        login = accounts_pb2.CompleteLoginRequest(account=OWN, redirect="https://x/?request_token=s3cr3t")
        assert _code(lambda: admin.accounts.CompleteLogin(login)) == grpc.StatusCode.FAILED_PRECONDITION  # paper
        entry = admin.security.TailAudit(security_pb2.TailAuditRequest(limit=1)).entries[-1]
    assert entry.action == "AccountService/CompleteLogin" and entry.outcome.startswith("FAILED_PRECONDITION")
    assert "s3cr3t" not in entry.detail and entry.target == f"account={OWN}"


def test_audit_cli_tail_and_verify(daemon: Daemon, tokens: dict[str, str]) -> None:
    tail = _cli(daemon, "audit", "tail", "-n", "5")
    assert tail.returncode == 0, tail.stderr
    assert "OrderService/PlaceOrder" in tail.stdout or "AccountService" in tail.stdout
    verified = _cli(daemon, "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stderr


def _tamper(daemon: Daemon, sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(daemon.dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def test_audit_verify_finds_edited_and_deleted_rows(daemon: Daemon, tokens: dict[str, str]) -> None:
    """Each tampering is undone from a copy before the next, so each is found on its own."""
    with daemon.client() as admin:
        admin.security.AddUser(security_pb2.AddUserRequest(name="witness", role=security_pb2.ROLE_VIEWER))
        before = admin.security.VerifyAudit(security_pb2.VerifyAuditRequest())
        assert before.ok and before.rows_checked >= 3
        head = admin.security.TailAudit(security_pb2.TailAuditRequest(limit=1)).entries[-1].seq
        _tamper(daemon, "CREATE TABLE audit_copy AS SELECT * FROM audit_log")
        cases = {
            f"UPDATE audit_log SET outcome = 'OK' WHERE seq = {head - 1}": (head - 1, "edited"),
            "UPDATE audit_log SET actor = 'someone else' WHERE seq = 1": (1, "edited"),
            f"DELETE FROM audit_log WHERE seq = {head - 1}": (head, f"row {head - 1} is missing"),
            f"DELETE FROM audit_log WHERE seq = {head}": (head, "deleted from the end"),
        }
        for sql, (seq, problem) in cases.items():
            _tamper(daemon, sql)
            report = admin.security.VerifyAudit(security_pb2.VerifyAuditRequest())
            assert not report.ok and report.seq == seq and problem in report.problem, (sql, report)
            broken = _cli(daemon, "audit", "verify")
            assert broken.returncode == 1 and problem in broken.stderr, sql
            _tamper(daemon, "DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM audit_copy")
            assert admin.security.VerifyAudit(security_pb2.VerifyAuditRequest()).ok


def test_cli_users_and_tokens(daemon: Daemon) -> None:
    added = _cli(daemon, "users", "add", "cli-user", "--role", "trader", "--account", OWN)
    assert added.returncode == 0, added.stderr
    assert "cli-user" in _cli(daemon, "users", "list").stdout
    created = _cli(daemon, "tokens", "create", "--user", "cli-user", "--description", "bot")
    assert created.returncode == 0 and created.stdout.strip().startswith("tm_") and "shown once" in created.stderr
    token_id = created.stdout.strip().split("_")[1]
    listed = _cli(daemon, "tokens", "list", "--user", "cli-user")
    assert token_id in listed.stdout and created.stdout.strip() not in listed.stdout
    env = {**daemon.cli_env(), "TRADEMASTER_TOKEN": created.stdout.strip()}
    mine = subprocess.run(
        [sys.executable, "-m", "clients.cli", "accounts", "--json", "--server", daemon.address],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert mine.returncode == 0 and f'"id": "{OWN}"' in mine.stdout and f'"id": "{OTHER}"' not in mine.stdout
    assert _cli(daemon, "tokens", "revoke", token_id).returncode == 0
    removed = _cli(daemon, "users", "remove", "cli-user")
    assert removed.returncode == 0 and "removed cli-user" in removed.stdout
    port = free_port()
    nobody = subprocess.run(
        [sys.executable, "-m", "clients.cli", "--token-file", "/nonexistent", "accounts",
         "--server", f"127.0.0.1:{port}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert nobody.returncode == 2 and "/nonexistent" in nobody.stderr


def test_first_start_printed_the_token_once_and_a_lost_token_can_be_renewed(daemon: Daemon) -> None:
    """Last: it restarts the daemon."""
    old = daemon.admin_token
    assert (daemon.token_file.stat().st_mode & 0o777) == 0o600
    assert daemon.log_path.read_text().count(old) == 1  # printed by the first start, and only then
    daemon.stop()
    daemon.token_file.unlink()
    daemon.start("--new-admin-token")
    new = daemon.admin_token
    assert new != old and (daemon.token_file.stat().st_mode & 0o777) == 0o600
    with daemon.client(token=new) as admin:
        assert admin.security.WhoAmI(security_pb2.WhoAmIRequest()).role == security_pb2.ROLE_ADMIN
    with daemon.client(token=old) as lost, pytest.raises(grpc.RpcError) as refused:
        lost.security.WhoAmI(security_pb2.WhoAmIRequest())  # a lost token may be in other hands: revoked
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
