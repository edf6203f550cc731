"""The orchestrator's routing decision: who gets the order, why, and why not the others."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain import InstrumentId, Product, Side
from engine.domain.accounts import CircuitState
from engine.ledger.charges import InstrumentKind, order_charges
from engine.routing import (
    Candidate,
    CandidateReport,
    Leg,
    NoRoute,
    OrderShape,
    RouteDecision,
    RoutingMode,
    RoutingWeights,
    fewest_legs,
    route,
    standard,
)

D = Decimal
EQ = InstrumentKind.EQUITY
INFY = InstrumentId.parse("NSE:INFY")
PRICE = D(1500)
FREE = D(300_000)
ORDER = OrderShape(INFY, Side.BUY, Product.CNC, 100, 1, PRICE)
WEIGHTS = RoutingWeights()


def cand(
    account: str,
    broker: str = "zerodha-sim",
    capacity: int = 200,
    excluded: str = "",
    free_funds: Decimal = FREE,
    latency: float = 50.0,
    error_rate: float = 0.0,
    circuit: CircuitState = CircuitState.CLOSED,
    preference: float = 1.0,
) -> Candidate:
    return Candidate(account, broker, capacity, excluded, free_funds, latency, error_rate, circuit, preference)


def report(decision: RouteDecision, account: str) -> CandidateReport:
    (found,) = [r for r in decision.candidates if r.account == account]
    return found


def fee(broker: str, order: OrderShape = ORDER) -> Decimal:
    return order_charges(broker, EQ, order.product, order.side, order.quantity, order.price).total


def test_fees_decide_between_accounts_that_differ_only_in_broker() -> None:
    # "alpha" sorts first, so only the fee can make "bravo" win
    decision = route(ORDER, [cand("alpha", "upstox-sim"), cand("bravo", "zerodha-sim")], WEIGHTS, EQ)
    assert decision.mode is RoutingMode.ORCHESTRATOR
    assert decision.legs == (Leg("bravo", 100),)
    zerodha, upstox = fee("zerodha"), fee("upstox")
    assert upstox - zerodha == D("23.60")  # ₹20 delivery brokerage plus 18% GST on it
    assert decision.reason.startswith("bravo scored ")
    assert "against alpha's" in decision.reason
    assert f"mostly on fees: fees ₹{zerodha} vs ₹{upstox}" in decision.reason
    alpha, bravo = report(decision, "alpha"), report(decision, "bravo")
    assert (bravo.fee, alpha.fee) == (zerodha, upstox)
    assert bravo.scores is not None and alpha.scores is not None
    assert bravo.scores.fees == 1.0
    assert alpha.scores.fees == pytest.approx(float(zerodha / upstox))
    assert bravo.scores.total > alpha.scores.total
    assert (bravo.quantity, alpha.quantity) == (100, 0)
    assert [r.account for r in decision.candidates] == ["bravo", "alpha"], "reports best first"


def test_equal_candidates_tie_goes_to_the_first_name_and_says_so() -> None:
    decision = route(ORDER, [cand("bravo"), cand("alpha")], WEIGHTS, EQ)
    assert decision.legs == (Leg("alpha", 100),)
    assert "tie" in decision.reason
    assert "alpha" in decision.reason and "bravo" in decision.reason
    assert decision.reason.startswith("alpha and bravo scored the same")


def test_route_is_deterministic_for_equal_inputs() -> None:
    candidates = [cand("charlie"), cand("alpha"), cand("bravo"), cand("delta", "upstox-sim", capacity=50)]
    first = route(ORDER, candidates, WEIGHTS, EQ)
    assert route(ORDER, list(reversed(candidates)), WEIGHTS, EQ) == first
    assert route(ORDER, candidates, WEIGHTS, EQ) == first
    assert first.legs == (Leg("alpha", 100),)


def test_excluded_candidates_are_reported_with_their_reasons() -> None:
    candidates = [
        cand("alpha", capacity=0, excluded="needs a broker login"),
        cand("bravo"),
        cand("charlie", capacity=0, excluded="free funds ₹10.00 cover not even one lot", free_funds=D(10)),
        cand("delta", capacity=0, excluded="circuit open after repeated broker failures (HTTP 503)"),
    ]
    decision = route(ORDER, candidates, WEIGHTS, EQ)
    assert decision.legs == (Leg("bravo", 100),)
    assert [r.account for r in decision.candidates] == ["bravo", "alpha", "charlie", "delta"]
    for account, why in [
        ("alpha", "needs a broker login"),
        ("charlie", "free funds ₹10.00 cover not even one lot"),
        ("delta", "circuit open after repeated broker failures (HTTP 503)"),
    ]:
        shut = report(decision, account)
        assert shut.excluded == why
        assert (shut.fee, shut.scores, shut.quantity) == (None, None, 0)
    assert decision.reason.startswith("bravo is the only account that can take it")
    assert "alpha: needs a broker login" in decision.reason
    assert "delta: circuit open" in decision.reason


def test_no_route_lists_each_accounts_reason() -> None:
    candidates = [
        cand("alpha", capacity=0, excluded="needs a broker login"),
        cand("bravo", capacity=0, excluded="not synced with its broker yet"),
        cand("charlie", capacity=30),
        cand("delta", capacity=40),
    ]
    with pytest.raises(NoRoute) as caught:
        route(ORDER, candidates, WEIGHTS, EQ)
    message = str(caught.value)
    assert "BUY 100 NSE:INFY" in message
    for part in [
        "alpha: needs a broker login",
        "bravo: not synced with its broker yet",
        "charlie: can take 30",
        "delta: can take 40",
    ]:
        assert part in message


def test_no_route_without_candidates() -> None:
    with pytest.raises(NoRoute, match="none is configured"):
        route(ORDER, [], WEIGHTS, EQ)


def test_split_decision_says_split() -> None:
    decision = route(ORDER, [cand("alpha", capacity=60), cand("bravo", capacity=50)], WEIGHTS, EQ)
    assert sum(leg.quantity for leg in decision.legs) == 100
    assert {leg.account for leg in decision.legs} == {"alpha", "bravo"}
    assert decision.reason.startswith("split 100 across 2 accounts (")
    assert "no single account can take it all" in decision.reason
    assert "largest capacity 60 at alpha" in decision.reason
    given_to = {r.account: r.quantity for r in decision.candidates}
    assert given_to == {leg.account: leg.quantity for leg in decision.legs}


def test_the_one_that_can_take_it_all_beats_a_better_scored_one_that_cannot() -> None:
    weights = RoutingWeights(margin=0)  # so the partial fit does not lower alpha's score
    decision = route(ORDER, [cand("alpha", capacity=50), cand("bravo", capacity=100, preference=0.5)], weights, EQ)
    assert decision.legs == (Leg("bravo", 100),)
    assert decision.reason.startswith("bravo can take all 100 in one order; alpha scored higher")
    assert "can take only 50" in decision.reason


def test_an_unmeasured_account_counts_as_average_latency() -> None:
    """Not yet used is not slow: otherwise every order would stick to whichever account was used first."""
    decision = route(
        ORDER, [cand("alpha", latency=0.0), cand("bravo", latency=50.0), cand("charlie", latency=150.0)], WEIGHTS, EQ
    )
    scores = {name: report(decision, name).scores for name in ("alpha", "bravo", "charlie")}
    assert scores["alpha"].latency == pytest.approx(0.5)  # the average of 50 and 150 is 100; the fastest is 50
    assert scores["bravo"].latency == 1.0 and scores["charlie"].latency == pytest.approx(1 / 3)
    alone = route(ORDER, [cand("alpha", latency=0.0), cand("bravo", latency=50.0)], WEIGHTS, EQ)
    assert report(alone, "alpha").scores.latency == 1.0 and alone.legs == (Leg("alpha", 100),)


@pytest.mark.parametrize(
    ("alpha", "factor", "alpha_score"),
    [
        pytest.param({"circuit": CircuitState.HALF_OPEN}, "health", 0.5, id="half-open-circuit"),
        pytest.param({"error_rate": 0.3}, "health", 0.7, id="error-rate"),
        pytest.param({"latency": 200.0}, "latency", 0.25, id="slower"),
        pytest.param({"preference": 0.5}, "preference", 0.5, id="preference"),
        pytest.param({"free_funds": D(150_000), "capacity": 100}, "margin", 0.875, id="less-headroom"),
    ],
)
def test_each_factor_can_decide(alpha: dict[str, object], factor: str, alpha_score: float) -> None:
    """alpha would win the tie by name; being worse on one factor hands the order to bravo, and the reason says so."""
    decision = route(ORDER, [cand("alpha", **alpha), cand("bravo")], WEIGHTS, EQ)  # type: ignore[arg-type]
    assert decision.legs == (Leg("bravo", 100),)
    a, b = report(decision, "alpha").scores, report(decision, "bravo").scores
    assert a is not None and b is not None
    assert getattr(a, factor) == pytest.approx(alpha_score)
    assert getattr(b, factor) == 1.0
    assert a.total < b.total
    assert decision.reason.startswith(f"bravo scored {b.total:.3f} against alpha's {a.total:.3f}")
    assert f"mostly on {factor}" in decision.reason


def test_latency_orders_candidates() -> None:
    candidates = [cand("alpha", latency=300.0), cand("bravo", latency=100.0), cand("charlie", latency=150.0)]
    decision = route(ORDER, candidates, WEIGHTS, EQ)
    assert [r.account for r in decision.candidates] == ["bravo", "charlie", "alpha"]
    latencies = [r.scores.latency for r in decision.candidates if r.scores]
    assert latencies == pytest.approx([1.0, 100 / 150, 100 / 300])


def test_a_zero_weight_ignores_its_factor() -> None:
    candidates = [cand("alpha", preference=0.2), cand("bravo")]
    assert route(ORDER, candidates, WEIGHTS, EQ).legs == (Leg("bravo", 100),)
    ignoring = route(ORDER, candidates, RoutingWeights(preference=0), EQ)
    assert ignoring.legs == (Leg("alpha", 100),)
    assert "tie" in ignoring.reason


def test_preference_weight_can_outweigh_fees() -> None:
    candidates = [cand("alpha", "upstox-sim"), cand("bravo", "zerodha-sim", preference=0.8)]
    assert route(ORDER, candidates, WEIGHTS, EQ).legs == (Leg("bravo", 100),)  # fees win at default weights
    heavy = route(ORDER, candidates, RoutingWeights(preference=10), EQ)
    assert heavy.legs == (Leg("alpha", 100),)
    assert "mostly on preference" in heavy.reason


def test_standard_decision() -> None:
    decision = standard("alpha", 100, "the order names its account")
    assert decision == RouteDecision(RoutingMode.STANDARD, (Leg("alpha", 100),), "the order names its account")


NAMES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
BROKERS = ("zerodha-sim", "upstox-sim", "angelone-sim", "paper")


@st.composite
def candidate_lists(draw: st.DrawFn) -> list[Candidate]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=0, max_size=6, unique=True))
    out = []
    for name in names:
        shut = draw(st.booleans()) and draw(st.booleans())
        out.append(
            cand(
                name,
                broker=draw(st.sampled_from(BROKERS)),
                capacity=0 if shut else draw(st.integers(0, 400)),
                excluded="needs a broker login" if shut else "",
                free_funds=D(draw(st.integers(-1000, 10**7))),
                latency=draw(st.sampled_from([0.0, 20.0, 50.0, 50.0, 400.0])),
                error_rate=draw(st.sampled_from([0.0, 0.0, 0.1, 0.5])),
                circuit=draw(st.sampled_from([CircuitState.CLOSED, CircuitState.HALF_OPEN])),
                preference=draw(st.sampled_from([0.0, 0.5, 1.0])),
            )
        )
    return out


@settings(max_examples=200, deadline=None)
@given(
    candidates=candidate_lists(),
    quantity=st.integers(1, 600),
    product=st.sampled_from([Product.CNC, Product.MIS]),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    data=st.data(),
)
def test_route_legs_respect_capacities_and_sum_to_the_quantity(
    candidates: list[Candidate], quantity: int, product: Product, side: Side, data: st.DataObject
) -> None:
    order = OrderShape(INFY, side, product, quantity, 1, PRICE)
    usable = {c.account: c.capacity for c in candidates if not c.excluded and c.capacity > 0}
    if sum(usable.values()) < quantity:
        with pytest.raises(NoRoute) as caught:
            route(order, candidates, WEIGHTS, EQ)
        assert all(c.account in str(caught.value) for c in candidates)
        return
    decision = route(order, candidates, WEIGHTS, EQ)
    assert sum(leg.quantity for leg in decision.legs) == quantity
    assert len({leg.account for leg in decision.legs}) == len(decision.legs)
    for leg in decision.legs:
        assert leg.account in usable, "a leg went to an excluded account"
        assert 0 < leg.quantity <= usable[leg.account]
    assert len(decision.legs) == fewest_legs(quantity, list(usable.values()))
    assert sorted(r.account for r in decision.candidates) == sorted(c.account for c in candidates)
    assert {r.account: r.quantity for r in decision.candidates if r.quantity} == {
        leg.account: leg.quantity for leg in decision.legs
    }
    assert decision.legs[0].account in decision.reason
    assert ("split" in decision.reason) == (len(decision.legs) > 1)
    shuffled = data.draw(st.permutations(candidates))
    assert route(order, shuffled, WEIGHTS, EQ) == decision
