"""Broker faults end to end: the daemon against a simulated Kite and Upstox whose order endpoint misbehaves.

5xx, a response held past the adapter's timeout, a connection dropped after the broker handled the order,
a burst of 429s, a token revoked mid-session, and all of them mixed. Whatever the fault, each daemon order
ends at its broker at most once (found there by its tag, the daemon's order id), an order the broker never
got ends REJECTED as not sent, every broker order is one the daemon knows, and an account whose session died
fails fast while the others trade on.

One daemon for the module: k1 and k2 at one simulated Kite (two users), u1 at a simulated Upstox, and k3 at
the same Kite with a sync too slow to notice anything, so that its next order is what finds a revoked token.
The revocation test comes last: k2 and k3 stay logged out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest

from clients.python import Client
from engine.brokers.http import DEFAULT_TIMEOUT
from engine.sim.config import SimSettings
from engine.sim.server import SimServer
from engine.sim.venue import SimVenue
from tests.integration.daemon import ROOT, Daemon, wait_for
from tests.integration.sims import APP, FLAT, serving, sim_account, sim_user
from trademaster.v1 import accounts_pb2, common_pb2, orders_pb2

S = orders_pb2
A = accounts_pb2
ADAPTER_TIMEOUT = DEFAULT_TIMEOUT.read or 10.0  # not configurable per account: a hang costs this long
HANG_SECONDS = ADAPTER_TIMEOUT + 3
GRACE_SECONDS = 3  # an in-flight order its broker's book still lacks this long after is rejected as never sent
ROUTED = S.ROUTING_MODE_ORCHESTRATOR
FINAL = (S.ORDER_STATUS_FILLED, S.ORDER_STATUS_REJECTED, S.ORDER_STATUS_CANCELLED)


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, SimServer]]:
    kite_users = [sim_user("KF0001"), sim_user("KF0002"), sim_user("KF0003")]
    sims = {
        "kite": SimSettings(broker="kite", market=FLAT, apps=[APP], users=kite_users),
        "upstox": SimSettings(broker="upstox", market=FLAT, apps=[APP], users=[sim_user("UF0001")]),
    }
    with serving(sims) as running:
        yield running


@pytest.fixture(scope="module")
def daemon(sims: dict[str, SimServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("faults") / "data", ROOT / "test-artifacts" / "daemon-faults.log")
    kite, upstox = sims["kite"].url, sims["upstox"].url
    quick = f"sync_interval_seconds = 0.2\nin_flight_grace_seconds = {GRACE_SECONDS}"
    d.config.write_text(
        d.tables()
        + sim_account("k1", "kite", kite, "KF0001", ["pair"], quick)
        + sim_account("k2", "kite", kite, "KF0002", [], quick)
        + sim_account("k3", "kite", kite, "KF0003", [], "sync_interval_seconds = 60")
        + sim_account("u1", "upstox", upstox, "UF0001", ["pair"], f"{quick}\nrouting_preference = 0.2")
    )
    d.start()
    with d.client() as client:
        wait_for(lambda: all(a.status == A.ACCOUNT_STATUS_ACTIVE for a in _accounts(client)), timeout=60)
    yield d
    d.stop()


@pytest.fixture(autouse=True)
def no_faults_after(sims: dict[str, SimServer]) -> Iterator[None]:
    """Each test sets its own faults; none outlives it, whatever the test's outcome."""
    yield
    for server in sims.values():
        httpx.delete(f"{server.url}/__sim__/faults").raise_for_status()


def _fault(server: SimServer, **rule: float) -> None:
    httpx.post(f"{server.url}/__sim__/faults", json={"endpoint": "place", **rule}).raise_for_status()


def _accounts(client: Client) -> list[A.Account]:
    return list(client.accounts.ListAccounts(A.ListAccountsRequest(), timeout=10).accounts)


def _health(client: Client, account: str) -> A.AccountHealth:
    return client.accounts.GetAccount(A.GetAccountRequest(id=account), timeout=10).health


def _request(client_id: str, **fields: object) -> S.PlaceOrderRequest:
    base: dict[str, object] = {
        "instrument": "NSE:INFY",
        "side": common_pb2.SIDE_BUY,
        "quantity": 1,
        "product": common_pb2.PRODUCT_MIS,
        "order_type": common_pb2.ORDER_TYPE_MARKET,
    }
    return S.PlaceOrderRequest(client_order_id=client_id, **{**base, **fields})


def _place(client: Client, client_id: str, account: str) -> S.PlaceOrderResponse:
    return client.orders.PlaceOrder(_request(client_id, account=account), timeout=60)


def _get(client: Client, order_id: str) -> S.Order:
    return client.orders.GetOrder(S.GetOrderRequest(order_id=order_id), timeout=10)


def _settled(client: Client, order_id: str) -> S.Order:
    """The order once it is final: a lost answer is resolved by the sync, within the grace at the latest."""
    return wait_for(lambda: (o := _get(client, order_id)).status in FINAL and o, timeout=GRACE_SECONDS + 12)


def _broker_tags(sims: dict[str, SimServer]) -> list[str]:
    """The tag of every order at every user of every simulator, read on the simulator's thread (reading advances
    its books, which must not race its requests)."""

    def read(venue: SimVenue) -> list[str]:
        return [order.tag for user in venue.users.values() for order in user.exchange.orders()]

    return [tag for server in sims.values() for tag in server.call(read)]


def _at_broker(sims: dict[str, SimServer], order_id: str) -> int:
    return _broker_tags(sims).count(order_id)


def _answer_lost(order: S.Order) -> bool:
    """How PlaceOrder answers when the broker's answer was lost: in flight, or already found by a sync."""
    in_flight = order.status == S.ORDER_STATUS_SUBMITTED and "in flight" in order.status_message
    return in_flight or (order.broker_order_id != "" and order.status != S.ORDER_STATUS_REJECTED)


def test_5xx_on_place_is_never_sent_nor_rerouted_and_ends_rejected(daemon: Daemon, sims: dict[str, SimServer]) -> None:
    """A 5xx may have come from behind the broker's gateway, so it is not re-routed: the sync looks for it by tag
    and, finding none within the grace, rejects it as not sent."""
    _fault(sims["kite"], error_rate=1)
    with daemon.client() as client:
        reply = _place(client, "5xx-standard", "k1")
        routed = client.orders.PlaceOrder(_request("5xx-routed", group="pair", mode=ROUTED), timeout=60)
        (leg,) = routed.legs
        assert leg.account == "k1", "zerodha's lower fees and u1's low preference make k1 the choice"
        order, leg = _settled(client, reply.order.order_id), _settled(client, leg.order_id)
        parent = _get(client, routed.order.order_id)
    assert reply.order.status == S.ORDER_STATUS_SUBMITTED and "in flight" in reply.order.status_message
    assert "503" in reply.order.status_message, reply.order.status_message
    for rejected in (order, leg):
        assert rejected.status == S.ORDER_STATUS_REJECTED and "not sent" in rejected.status_message, rejected
        assert _at_broker(sims, rejected.order_id) == 0
    assert parent.status == S.ORDER_STATUS_REJECTED and parent.filled_quantity == 0


def test_response_held_past_the_timeout_is_filled_once(daemon: Daemon, sims: dict[str, SimServer]) -> None:
    for server in sims.values():
        _fault(server, timeout_rate=1, hang_seconds=HANG_SECONDS)
    started = time.monotonic()
    with daemon.client() as client:
        calls = [client.orders.PlaceOrder.future(_request(f"hung-{a}", account=a), timeout=60) for a in ("k1", "u1")]
        replies = [call.result().order for call in calls]
        answered = time.monotonic() - started
        final = [_settled(client, r.order_id) for r in replies]
    assert answered < HANG_SECONDS, "the daemon answers at its own timeout, not when the broker does"
    assert all(_answer_lost(r) for r in replies), replies
    assert [o.status for o in final] == [S.ORDER_STATUS_FILLED] * 2
    assert [_at_broker(sims, o.order_id) for o in final] == [1, 1]


def test_connection_dropped_after_accept_is_filled_once(daemon: Daemon, sims: dict[str, SimServer]) -> None:
    for server in sims.values():
        _fault(server, drop_rate=1)
    with daemon.client() as client:
        replies = [_place(client, f"dropped-{a}", a).order for a in ("k1", "u1")]
        final = [_settled(client, r.order_id) for r in replies]
    assert all(_answer_lost(r) for r in replies), replies
    assert [o.status for o in final] == [S.ORDER_STATUS_FILLED] * 2
    assert [_at_broker(sims, o.order_id) for o in final] == [1, 1]


def test_429_burst_is_refused_unsent_then_orders_go_through(daemon: Daemon, sims: dict[str, SimServer]) -> None:
    """A 429 certainly did not place the order: it is rejected as not sent (a routed leg goes elsewhere at once),
    and a retry under the same client_order_id sends nothing; a new order goes through once the burst is over."""
    _fault(sims["kite"], burst_429=3)
    with daemon.client() as client:
        limited = [_place(client, f"burst-{n}", "k1").order for n in range(2)]
        routed = client.orders.PlaceOrder(_request("burst-routed", group="pair", mode=ROUTED), timeout=60)
        after = _place(client, "burst-after", "k1").order
        again = _place(client, "burst-0", "k1")
        legs = {leg.account: leg for leg in routed.legs}
        filled = [_settled(client, o.order_id) for o in (after, legs["u1"], routed.order)]
        health = wait_for(lambda: (h := _health(client, "k1")).rate_limited >= 3 and h)  # snapshots lag a little
    for order in [*limited, legs["k1"]]:
        assert order.status == S.ORDER_STATUS_REJECTED and "not sent" in order.status_message, order
        assert "rate limited" in order.status_message and _at_broker(sims, order.order_id) == 0
    assert again.duplicate and again.order.status == S.ORDER_STATUS_REJECTED
    assert [o.status for o in filled] == [S.ORDER_STATUS_FILLED] * 3
    assert _at_broker(sims, after.order_id) == 1 and _at_broker(sims, legs["u1"].order_id) == 1
    assert health.rate_limited == 3 and health.circuit == "CLOSED", health


def _place_retrying(client: Client, client_id: str, account: str) -> S.Order:
    """Place, retrying an UNAVAILABLE answer under the same client_order_id, as a client should."""
    while True:
        try:
            return _place(client, client_id, account).order
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            time.sleep(0.5)


def _known(client: Client, order_id: str) -> bool:
    try:
        _get(client, order_id)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


def test_mixed_faults_send_nothing_twice_and_lose_nothing(daemon: Daemon, sims: dict[str, SimServer]) -> None:
    for server in sims.values():
        _fault(server, error_rate=0.1, timeout_rate=0.05, drop_rate=0.05, hang_seconds=HANG_SECONDS)
    with daemon.client() as client, ThreadPoolExecutor(max_workers=30) as pool:
        calls = [pool.submit(_place_retrying, client, f"mixed-{n}", ("k1", "u1")[n % 2]) for n in range(30)]
        answered = [call.result() for call in calls]
        final = [_settled(client, o.order_id) for o in answered]
        tags = _broker_tags(sims)
        unknown = [t for t in set(tags) if not _known(client, t)]
    assert len({o.order_id for o in answered}) == 30
    assert any(o.status_message for o in answered), "with 20% faults, some of 30 orders met one"
    assert not [t for t in set(tags) if tags.count(t) > 1], "an order reached its broker twice"
    assert not unknown, f"at the broker, unknown to the daemon: {unknown}"
    for order in final:
        if order.status == S.ORDER_STATUS_FILLED:
            assert tags.count(order.order_id) == 1, order
        else:
            assert order.status == S.ORDER_STATUS_REJECTED and "not sent" in order.status_message, order
            assert tags.count(order.order_id) == 0, order


def _needs_login(client: Client, account: str) -> A.Account:
    """The account once the API shows it LOGIN_REQUIRED (the gateway refreshes account snapshots periodically)."""

    def read() -> A.Account | None:
        found = client.accounts.GetAccount(A.GetAccountRequest(id=account), timeout=10)
        return found if found.status == A.ACCOUNT_STATUS_LOGIN_REQUIRED else None

    return wait_for(read, timeout=10)


def test_revoked_token_needs_a_login_and_others_carry_on(daemon: Daemon, sims: dict[str, SimServer]) -> None:
    """k2's sync finds its token revoked; k3's next order does (and is rejected, unsent). Either way the account
    is LOGIN_REQUIRED and refuses orders at once, while k1 (same broker) and u1 (the other) trade on."""
    kite = sims["kite"].url
    for user in ("KF0002", "KF0003"):
        httpx.post(f"{kite}/__sim__/revoke", json={"user_id": user}).raise_for_status()
    with daemon.client() as client:
        k2 = _needs_login(client, "k2")
        found_by_order = _place(client, "revoked-k3", "k3").order
        k3 = _needs_login(client, "k3")
        for name in ("k2", "k3"):
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as refused:
                _place(client, f"after-revoke-{name}", name)
            assert time.monotonic() - started < 1, "a session known to be dead is not tried again"
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert f"trademaster accounts login {name}" in refused.value.details()
        others = [_place(client, f"carry-on-{a}", a).order for a in ("k1", "u1")]
        filled = [_settled(client, o.order_id) for o in others]
    for account in (k2, k3):
        assert account.login_url and "session invalid" in account.health.last_error, account
    assert found_by_order.status == S.ORDER_STATUS_REJECTED and "session invalid" in found_by_order.status_message
    assert _at_broker(sims, found_by_order.order_id) == 0
    assert [o.status for o in filled] == [S.ORDER_STATUS_FILLED] * 2
    assert [_at_broker(sims, o.order_id) for o in filled] == [1, 1]
