"""Market data's pure logic: subscriptions, batches at the broker's maximum, the per-account budget, feeds."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from engine.api.quotes import QuoteBook
from engine.brokers.base import Quote
from engine.config import AccountSettings
from engine.domain import InstrumentId
from engine.marketdata import MarketDataPoller, Planner, QuoteSource, QuoteStore, Subscriptions, stale_after
from engine.marketdata.sources import quote_sources
from engine.marketdata.store import STALE_FLOOR_SECONDS

INFY, TCS = InstrumentId.parse("NSE:INFY"), InstrumentId.parse("NSE:TCS")
T0 = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
EXCHANGE_TIME = datetime(2020, 1, 1, tzinfo=UTC)  # what a broker stamped: replaced by the arrival time


def many(count: int) -> list[InstrumentId]:
    return [InstrumentId.parse(f"NSE:S{n:04d}") for n in range(count)]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def quote(instrument: InstrumentId, price: str) -> Quote:
    p = Decimal(price)
    return Quote(instrument, p, p, p, EXCHANGE_TIME)


KITE = [QuoteSource("k1", "kite", "kite:a"), QuoteSource("k2", "kite", "kite:a")]
UPSTOX = [QuoteSource("u1", "upstox", "upstox:b")]


def test_subscriptions_replace_per_owner_and_union() -> None:
    subs = Subscriptions()
    assert subs.set("a", [INFY, TCS]) and subs.set("b", [INFY])
    assert not subs.set("b", [INFY])  # unchanged
    assert subs.instruments() == {INFY, TCS} and subs.followers(INFY) == ["a", "b"]
    assert subs.set("a", [TCS]) and subs.instruments() == {INFY, TCS}
    assert subs.remove("b") and subs.instruments() == {TCS}
    assert subs.set("a", []) and subs.instruments() == set() and subs.owners() == {}


def test_kite_batches_at_500_and_one_request_per_account_within_its_window() -> None:
    clock = Clock()
    planner = Planner(KITE[:1], clock, backoff_seconds=5)
    wanted = many(600)
    first = planner.plan(wanted)
    assert [len(r.instruments) for r in first] == [500]  # one request a second: the rest waits, not queued
    planner.answered(first[0], first[0].instruments)
    assert planner.plan(wanted[500:]) == []  # the window is still full
    clock.advance(1.0)
    assert planner.plan(wanted[500:]) == []  # 1 a second at the broker is 1 per 1.3 s here: jitter must not 429
    clock.advance(0.35)
    second = planner.plan(wanted[500:])
    assert [len(r.instruments) for r in second] == [100]


def test_batches_spread_over_a_feeds_accounts() -> None:
    planner = Planner(KITE, Clock(), backoff_seconds=5)
    requests = planner.plan(many(1200))
    assert [(r.source.account, len(r.instruments)) for r in requests] == [("k1", 500), ("k2", 500)]


def test_an_account_answering_nothing_yet_is_not_given_more() -> None:
    clock = Clock()
    planner = Planner(KITE[:1], clock, backoff_seconds=5)
    planner.plan(many(10))
    clock.advance(5)  # budget back, but the first request has not been answered
    assert planner.plan(many(10)) == []


def test_upstox_sends_several_batches_at_once() -> None:
    planner = Planner(UPSTOX, Clock(), backoff_seconds=5)
    assert [len(r.instruments) for r in planner.plan(many(1800))] == [500, 500, 500, 300]


def test_the_feed_with_most_capacity_serves_and_others_stand_by() -> None:
    clock = Clock()
    planner = Planner([*KITE, *UPSTOX], clock, backoff_seconds=5)
    (request,) = planner.plan([INFY, TCS])
    assert request.source.account == "u1"
    planner.failed(request)  # u1 rests: kite takes over
    (fallback,) = planner.plan([INFY, TCS])
    assert fallback.source.feed == "kite:a"
    planner.answered(fallback, [INFY])  # kite left TCS out ...
    clock.advance(6)  # ... and u1 is back
    assert planner.feed_for(TCS) == "upstox:b"


def test_an_instrument_no_feed_quotes_is_left_alone_for_a_while() -> None:
    clock = Clock()
    planner = Planner(UPSTOX, clock, backoff_seconds=5)
    (request,) = planner.plan([INFY])
    planner.answered(request, [])
    assert planner.feed_for(INFY) is None and planner.plan([INFY]) == []
    clock.advance(61)
    assert planner.feed_for(INFY) == "upstox:b"


async def test_store_versions_only_changes_and_long_polls() -> None:
    store = QuoteStore()
    assert store.put([quote(INFY, "100"), quote(TCS, "200")]) and store.version == 2
    assert store.put([quote(INFY, "100")]) == [] and store.version == 2  # same price: no change
    store.put([quote(INFY, "101")])
    assert [q.instrument for q in store.since(2)] == [INFY]
    assert [q.instrument for q in store.since(99)] == [TCS, INFY]  # a reader of an earlier store gets all
    waiter = asyncio.create_task(store.wait_since(3, timeout=5))
    await asyncio.sleep(0.01)
    store.put([quote(TCS, "201")])
    version, changed = await asyncio.wait_for(waiter, 1)
    assert version == 4 and [q.last_price for q in changed] == [Decimal("201")]
    assert await store.wait_since(4, timeout=0.05) == (4, [])


class FakeBrokers:
    """Accounts answering from a price table; `down` ones raise."""

    def __init__(self) -> None:
        self.prices: dict[InstrumentId, str] = {INFY: "1000", TCS: "3000"}
        self.down: set[str] = set()
        self.calls: list[tuple[str, int]] = []

    async def fetch(self, account: str, instruments: list[InstrumentId]) -> Mapping[InstrumentId, Quote]:
        self.calls.append((account, len(instruments)))
        if account in self.down:
            raise RuntimeError(f"{account} is down")
        return {i: quote(i, self.prices[i]) for i in instruments if i in self.prices}


async def _wait(predicate, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def running() -> tuple[MarketDataPoller, FakeBrokers]:  # type: ignore[misc]
    brokers = FakeBrokers()
    sources = [QuoteSource("p1", "paper", "paper:p1", "zerodha-paper")]
    poller = MarketDataPoller(sources, brokers.fetch, poll_interval=0.05, backoff_seconds=0.2)
    task = asyncio.create_task(poller.run())
    yield poller, brokers
    task.cancel()


async def test_followed_instruments_are_polled_and_changes_versioned(running) -> None:  # type: ignore[no-untyped-def]
    poller, brokers = running
    poller.follow("stream:1", [INFY])
    await _wait(lambda: poller.store.latest(INFY) is not None)
    first = poller.store.latest(INFY)
    assert first is not None and first.broker == "zerodha-paper" and first.at > EXCHANGE_TIME  # stamped on arrival
    version = poller.store.version
    await asyncio.sleep(0.2)
    assert poller.store.version == version  # polled again, nothing changed
    brokers.prices[INFY] = "1010"
    await _wait(lambda: poller.store.version > version)
    assert [q.last_price for q in poller.store.since(version)] == [Decimal("1010")]
    poller.unfollow("stream:1")
    await asyncio.sleep(0.1)
    calls = len(brokers.calls)
    await asyncio.sleep(0.2)
    assert len(brokers.calls) == calls  # nobody follows: nothing asked


async def test_quote_now_answers_unfollowed_and_leaves_out_unquoted(running) -> None:  # type: ignore[no-untyped-def]
    poller, _ = running
    unknown = InstrumentId.parse("NSE:NOPE")
    quotes = await poller.quote_now([TCS, unknown], timeout=2)
    assert [q.instrument for q in quotes] == [TCS]


async def test_a_failing_account_rests_while_another_serves() -> None:
    brokers = FakeBrokers()
    brokers.down.add("u1")
    sources = [QuoteSource("u1", "upstox", "upstox:x"), QuoteSource("u2", "upstox", "upstox:x")]
    poller = MarketDataPoller(sources, brokers.fetch, poll_interval=0.05, backoff_seconds=60)
    task = asyncio.create_task(poller.run())
    try:
        poller.follow("portfolio", [INFY, TCS])
        await _wait(lambda: poller.store.latest(TCS) is not None)
        await asyncio.sleep(0.2)
        assert [a for a, _ in brokers.calls].count("u1") == 1  # asked once, then left to rest
    finally:
        task.cancel()


def test_an_unchanged_quote_is_published_again_once_its_confirmation_is_old() -> None:
    """A quiet instrument's quote is confirmed (new version, new time) every `confirm_every` seconds, so the
    gateway can drop quotes from a feed that stopped answering; a change is still the only thing put returns."""
    store = QuoteStore(confirm_every=2)
    first = quote(INFY, "100")
    store.put([first])
    assert store.put([replace(first, at=first.at + timedelta(seconds=1))]) == [] and store.version == 1
    later = replace(first, at=first.at + timedelta(seconds=2))
    assert store.put([later]) == [] and store.version == 2
    assert store.since(1) == [later]


async def test_prices_leave_out_quotes_not_confirmed_lately() -> None:
    """Ticks (QuoteBook.prices) must not carry a price the feed stopped confirming; `latest` still shows it."""
    now = EXCHANGE_TIME + timedelta(seconds=30)
    book = QuoteBook(actor=None, call=None, quote_timeout=1, max_age=stale_after(1), clock=lambda: now)  # type: ignore[arg-type]
    fresh = replace(quote(TCS, "200"), at=now - timedelta(seconds=2))
    book._take([quote(INFY, "100"), fresh])
    assert book.prices([INFY, TCS]) == {TCS: Decimal("200")}
    assert book.latest(INFY) is not None
    assert stale_after(1) == STALE_FLOOR_SECONDS and stale_after(10) == 30


def test_accounts_at_one_endpoint_share_a_feed_and_all_paper_accounts_share_one() -> None:
    def kite(account_id: str, url: str) -> AccountSettings:
        connection = {"api_key": "k", "api_secret": "s", "simulator_url": url}
        return AccountSettings.model_validate({"id": account_id, "broker": "kite", "connection": connection})

    accounts = [
        AccountSettings(id="p1", venue="zerodha"),
        AccountSettings(id="p2", venue="upstox"),
        kite("k1", "http://127.0.0.1:1"),
        kite("k2", "http://127.0.0.1:1"),
        kite("k3", "http://127.0.0.1:2"),
    ]
    feeds = {s.account: s.feed for s in quote_sources(accounts)}
    assert feeds["p1"] == feeds["p2"]  # one seeded path prices every paper account
    assert feeds["k1"] == feeds["k2"] != feeds["k3"]
    assert len(set(feeds.values())) == 3
