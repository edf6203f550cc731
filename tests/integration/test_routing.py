"""Routing with the daemon and simulated brokers: choice and its reason, split, freeze slices, pacing, failover.

Five accounts: two at one simulated Kite, one at a second simulated Kite that the last test takes down,
and two at a simulated Upstox. Tests run in file order; the broker-down test comes last.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime

import grpc
import httpx
import pytest

from engine.sim.config import SimSettings
from engine.sim.server import SimServer
from tests.integration.daemon import ROOT, Daemon, wait_for
from tests.integration.sims import APP, FLAT, LAKH, serving, sim_account, sim_user
from trademaster.v1 import accounts_pb2, common_pb2, orders_pb2

S = orders_pb2


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, SimServer]]:
    kite_users = [sim_user("KA0001", 250 * LAKH, infy=30), sim_user("KA0002", infy=20)]
    kite = SimSettings(broker="kite", market=FLAT, apps=[APP], users=kite_users)
    spare = SimSettings(broker="kite", market=FLAT, apps=[APP], users=[sim_user("KB0001")])
    upstox_users = [sim_user("UA0001", infy=10), sim_user("UA0002")]
    upstox = SimSettings(broker="upstox", market=FLAT, apps=[APP], users=upstox_users)
    with serving({"kite": kite, "spare": spare, "upstox": upstox}) as running:
        yield running


def _account(account_id: str, broker: str, url: str, user: str, groups: list[str], preference: float = 1.0) -> str:
    return sim_account(
        account_id, broker, url, user, groups, f"routing_preference = {preference}\nsync_interval_seconds = 0.2"
    )


@pytest.fixture(scope="module")
def daemon(sims: dict[str, SimServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("routing") / "data", ROOT / "test-artifacts" / "daemon-routing.log")
    k, spare, u = sims["kite"].url, sims["spare"].url, sims["upstox"].url
    d.config.write_text(
        f"""
{d.tables()}
[routing]
mode = "orchestrator"
circuit_failures = 3
circuit_reset_seconds = 30
"""
        + _account("ka1", "kite", k, "KA0001", ["holders", "drop"])
        + _account("ka2", "kite", k, "KA0002", ["holders"])
        + _account("kb1", "kite", spare, "KB0001", ["failover"])
        + _account("ua1", "upstox", u, "UA0001", ["holders", "drop"], preference=0.2)
        + _account("ua2", "upstox", u, "UA0002", ["failover"], preference=0.2)
    )
    d.start()
    with d.client() as client:
        wait_for(lambda: _all_active(client), timeout=60)
    yield d
    d.stop()


def _all_active(client) -> bool:
    accounts = client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(), timeout=10).accounts
    return all(a.status == accounts_pb2.ACCOUNT_STATUS_ACTIVE for a in accounts)


def _request(client_id: str, quantity: int, **fields: object) -> orders_pb2.PlaceOrderRequest:
    base: dict[str, object] = {
        "instrument": "NSE:INFY",
        "side": common_pb2.SIDE_BUY,
        "product": common_pb2.PRODUCT_MIS,
        "order_type": common_pb2.ORDER_TYPE_MARKET,
    }
    return orders_pb2.PlaceOrderRequest(client_order_id=client_id, quantity=quantity, **{**base, **fields})


def _get(client, order_id: str) -> orders_pb2.Order:
    return client.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id), timeout=10)


def _at_broker(sims: dict[str, SimServer], tag: str) -> list[tuple[str, str]]:
    """(simulator, user) of every broker order carrying `tag`, across all simulated brokers."""
    return [
        (name, user_id)
        for name, server in sims.items()
        for user_id, user in server.venue.users.items()
        for order in user.exchange.orders()
        if order.tag == tag
    ]


def test_preview_names_the_winner_and_why(daemon: Daemon) -> None:
    with daemon.client() as client:
        decision = client.orders.PreviewRoute(_request("preview-1", 5, group="holders"), timeout=30)
    assert decision.mode == S.ROUTING_MODE_ORCHESTRATOR
    assert [leg.account for leg in decision.legs] == [decision.candidates[0].account]
    winner, runner = decision.candidates[0], decision.candidates[1]
    assert winner.score >= runner.score
    assert {c.account for c in decision.candidates} == {"ka1", "ka2", "ua1"}
    assert winner.account in decision.reason and "mostly on" in decision.reason, decision.reason
    with daemon.client() as client, pytest.raises(grpc.RpcError) as missing:  # a preview places nothing
        client.orders.GetOrder(orders_pb2.GetOrderRequest(client_order_id="preview-1"), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_cli_dry_run_prints_the_explanation(daemon: Daemon) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "clients.cli", "order", "place", "NSE:INFY", "buy", "5", "--product", "mis",
         "--group", "holders", "--dry-run", "--server", daemon.address],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True, env=daemon.cli_env(),
    )  # fmt: skip
    assert "Route:" in shown.stdout and "mostly on" in shown.stdout
    assert "Candidates" in shown.stdout and "ua1" in shown.stdout


def test_delivery_sell_splits_over_the_fewest_holders(daemon: Daemon, sims: dict[str, SimServer]) -> None:
    with daemon.client() as client:
        reply = client.orders.PlaceOrder(
            _request("split-sell", 45, side=common_pb2.SIDE_SELL, product=common_pb2.PRODUCT_CNC, group="holders"),
            timeout=60,
        )
        legs = {leg.account: leg.quantity for leg in reply.legs}
        assert sum(legs.values()) == 45 and len(legs) == 2, legs  # 30 + 20 hold enough; 10 more is not needed
        assert set(legs) == {"ka1", "ka2"} and legs["ka1"] <= 30 and legs["ka2"] <= 20
        assert "split 45 across 2 accounts" in reply.route.reason
        assert all(leg.parent_order_id == reply.order.order_id for leg in reply.legs)
        wait_for(lambda: _get(client, reply.order.order_id).status == S.ORDER_STATUS_FILLED, timeout=30)
        parent = _get(client, reply.order.order_id)
        assert parent.filled_quantity == 45 and parent.account == ""
        again = client.orders.PlaceOrder(
            _request("split-sell", 45, side=common_pb2.SIDE_SELL, product=common_pb2.PRODUCT_CNC, group="holders"),
            timeout=60,
        )
    assert again.duplicate and again.order.order_id == reply.order.order_id and len(again.legs) == 2
    with daemon.client() as client, pytest.raises(grpc.RpcError) as reused:
        client.orders.PlaceOrder(
            _request("split-sell", 40, side=common_pb2.SIDE_SELL, product=common_pb2.PRODUCT_CNC, group="holders"),
            timeout=60,
        )
    assert reused.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "already used" in reused.value.details()
    for leg in reply.legs:
        assert len(_at_broker(sims, leg.order_id)) == 1


def test_more_than_every_holder_holds_is_refused_with_each_reason(daemon: Daemon) -> None:
    with daemon.client() as client, pytest.raises(grpc.RpcError) as refused:
        client.orders.PlaceOrder(
            _request("too-much", 500, side=common_pb2.SIDE_SELL, product=common_pb2.PRODUCT_CNC, group="holders"),
            timeout=30,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ka1" in refused.value.details() and "ua1" in refused.value.details()


def test_freeze_quantity_slices_a_futures_order(daemon: Daemon, sims: dict[str, SimServer]) -> None:
    with daemon.client() as client:
        futures = "NFO:BANKNIFTY26DECFUT"
        request = _request("freeze", 1500, instrument=futures, product=common_pb2.PRODUCT_NRML, account="ka1")
        reply = client.orders.PlaceOrder(request, timeout=60)
    assert reply.route.mode == S.ROUTING_MODE_STANDARD
    assert sorted(leg.quantity for leg in reply.legs) == [300, 600, 600]
    assert list(reply.route.legs[0].slices) == [600, 600, 300]
    assert all(leg.account == "ka1" and leg.status != S.ORDER_STATUS_REJECTED for leg in reply.legs)
    assert all(len(_at_broker(sims, leg.order_id)) == 1 for leg in reply.legs)


def test_drop_after_accept_is_never_sent_twice(daemon: Daemon, sims: dict[str, SimServer]) -> None:
    kite = sims["kite"].url
    httpx.post(f"{kite}/__sim__/faults", json={"endpoint": "place", "drop_rate": 1.0}).raise_for_status()
    try:
        with daemon.client() as client:
            reply = client.orders.PlaceOrder(_request("dropped", 3, group="drop"), timeout=60)
    finally:
        httpx.delete(f"{kite}/__sim__/faults").raise_for_status()
    (leg,) = reply.legs
    assert leg.account == "ka1", "zerodha's lower fees and ua1's low preference make ka1 the choice"
    assert leg.status == S.ORDER_STATUS_SUBMITTED and "in flight" in leg.status_message
    with daemon.client() as client:
        wait_for(lambda: _get(client, leg.order_id).status == S.ORDER_STATUS_FILLED, timeout=30)
        assert _get(client, reply.order.order_id).status == S.ORDER_STATUS_FILLED
    assert _at_broker(sims, leg.order_id) == [("kite", "KA0001")]


def test_burst_of_200_over_5_accounts_is_paced_without_a_429(daemon: Daemon, sims: dict[str, SimServer]) -> None:
    accounts = ["ka1", "ka2", "kb1", "ua1", "ua2"]
    with daemon.client() as client:
        calls = [
            client.orders.PlaceOrder.future(_request(f"burst-{n}", 1, account=accounts[n % 5]), timeout=120)
            for n in range(200)
        ]
        replies = [call.result() for call in calls]
    assert all(r.order.status != S.ORDER_STATUS_REJECTED for r in replies), [
        r.order.status_message for r in replies if r.order.status == S.ORDER_STATUS_REJECTED
    ]
    refused = {name: dict(server.venue.rate_limited) for name, server in sims.items() if server.venue.rate_limited}
    assert not refused, f"429s answered (user, category): {refused}"
    tags = {r.order.order_id for r in replies}
    for server in sims.values():
        for user in server.venue.users.values():
            stamps = sorted(o.placed_at for o in user.exchange.order_records() if o.tag in tags)
            assert len(stamps) in (0, 40)
            busiest = max((_within_a_second(stamps, at) for at in stamps), default=0)
            assert busiest <= 10, f"{user.user_id}: {busiest} orders reached the broker within one second"
    metrics = _scrape(daemon)
    assert 'trademaster_broker_rate_limited_total{account="ka1"} 0.0' in metrics


def _scrape(daemon: Daemon) -> str:
    token = {"authorization": f"Bearer {daemon.admin_token}"}
    reply = httpx.get(f"http://127.0.0.1:{daemon.metrics_port}/metrics", headers=token, timeout=10)
    reply.raise_for_status()
    return reply.text


def _within_a_second(stamps: list[datetime], start: datetime) -> int:
    return sum(1 for t in stamps if 0 <= (t - start).total_seconds() < 1)


def test_broker_down_orders_fail_over_then_its_circuit_opens(daemon: Daemon, sims: dict[str, SimServer]) -> None:
    sims["spare"].stop()  # kb1's broker: every connection is now refused
    with daemon.client() as client:
        reply = client.orders.PlaceOrder(_request("failover-1", 2, group="failover"), timeout=60)
        by_account = {leg.account: leg for leg in reply.legs}
        if "kb1" in by_account:  # routed before the daemon noticed: refused unsent, then re-routed
            assert by_account["kb1"].status == S.ORDER_STATUS_REJECTED
            assert "not sent" in by_account["kb1"].status_message
        assert by_account["ua2"].status != S.ORDER_STATUS_REJECTED and by_account["ua2"].quantity == 2
        wait_for(lambda: _get(client, reply.order.order_id).status == S.ORDER_STATUS_FILLED, timeout=30)

        def circuit_open() -> bool:
            decision = client.orders.PreviewRoute(_request("failover-2", 2, group="failover"), timeout=30)
            kb1 = next(c for c in decision.candidates if c.account == "kb1")
            return "circuit open" in kb1.excluded

        wait_for(circuit_open, timeout=30)
        after = client.orders.PlaceOrder(_request("failover-2", 2, group="failover"), timeout=60)
    assert [leg.account for leg in after.legs] == ["ua2"]
    assert "ua2 is the only account that can take it" in after.route.reason
    assert "circuit open" in after.route.reason
    with daemon.client() as client, pytest.raises(grpc.RpcError) as fast:
        client.orders.PlaceOrder(_request("failover-3", 2, account="kb1"), timeout=30)
    assert fast.value.code() == grpc.StatusCode.UNAVAILABLE and "circuit is open" in fast.value.details()
    metrics = _scrape(daemon)
    assert 'trademaster_circuit_state{account="kb1"} 2.0' in metrics
