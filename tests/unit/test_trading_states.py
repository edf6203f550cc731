"""The pure trading-state rules: the effective state of an account, and what REDUCING and HALTED still allow."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from engine.brokers.base import BrokerPosition, Holding
from engine.domain import InstrumentId, Product, Side
from engine.errors import FailedPrecondition
from engine.risk.states import (
    GLOBAL,
    Scope,
    ScopeKind,
    StateEntry,
    StateRefusal,
    TradingState,
    effective_state,
    open_quantity,
    reduces_exposure,
    refusal,
)

INFY = InstrumentId.parse("NSE:INFY")
TCS = InstrumentId.parse("NSE:TCS")
AT = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)
ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def _entry(scope: Scope, state: TradingState, by: str = "ana", reason: str = "") -> StateEntry:
    return StateEntry(scope, state, reason, by, AT)


def _position(product: Product, quantity: int, instrument: InstrumentId = INFY) -> BrokerPosition:
    return BrokerPosition(instrument, product, quantity, D(1500), D(1500))


def _holding(quantity: int, instrument: InstrumentId = INFY) -> Holding:
    return Holding(instrument, quantity, D(1400), D(1500))


FAMILY = Scope(ScopeKind.GROUP, "family")
ACC = Scope(ScopeKind.ACCOUNT, "acc1")


class TestEffectiveState:
    def test_nothing_set_is_active_with_no_reason(self) -> None:
        assert effective_state({}, "acc1", ["family"]) == (ACTIVE, "")

    def test_most_restrictive_scope_wins(self) -> None:
        entries = {GLOBAL: _entry(GLOBAL, REDUCING), FAMILY: _entry(FAMILY, HALTED, "bo", "kill switch")}
        assert effective_state(entries, "acc1", ["family"]) == (HALTED, "group family: HALTED by bo (kill switch)")

    def test_a_group_the_account_is_not_in_does_not_count(self) -> None:
        assert effective_state({FAMILY: _entry(FAMILY, HALTED)}, "acc1", ["other"]) == (ACTIVE, "")

    def test_account_state_applies_to_that_account_only(self) -> None:
        entries = {ACC: _entry(ACC, REDUCING, reason="MTM loss")}
        assert effective_state(entries, "acc1", []) == (REDUCING, "account acc1: REDUCING by ana (MTM loss)")
        assert effective_state(entries, "acc2", []) == (ACTIVE, "")

    def test_a_tie_names_the_broadest_scope(self) -> None:
        entries = {ACC: _entry(ACC, HALTED), GLOBAL: _entry(GLOBAL, HALTED, "root")}
        assert effective_state(entries, "acc1", []) == (HALTED, "global: HALTED by root")

    def test_an_active_entry_restricts_nothing(self) -> None:
        entries = {GLOBAL: _entry(GLOBAL, ACTIVE), ACC: _entry(ACC, REDUCING)}
        assert effective_state(entries, "acc1", [])[0] is REDUCING


class TestOpenQuantity:
    def test_each_product_is_its_own_position(self) -> None:
        positions = [_position(Product.MIS, 10), _position(Product.NRML, -5), _position(Product.MIS, 3, TCS)]
        assert open_quantity(INFY, Product.MIS, positions, []) == 10
        assert open_quantity(INFY, Product.NRML, positions, []) == -5
        assert open_quantity(INFY, Product.CNC, positions, []) == 0

    def test_delivery_counts_holdings_and_todays_cnc_position(self) -> None:
        positions = [_position(Product.CNC, 4), _position(Product.MIS, 10)]
        assert open_quantity(INFY, Product.CNC, positions, [_holding(20), _holding(7, TCS)]) == 24

    def test_holdings_do_not_count_for_intraday(self) -> None:
        assert open_quantity(INFY, Product.MIS, [], [_holding(20)]) == 0


class TestReducesExposure:
    @pytest.mark.parametrize(
        ("side", "quantity", "position", "working", "expected"),
        [
            (Side.SELL, 10, 10, 0, True),  # exactly the long position
            (Side.SELL, 11, 10, 0, False),  # one more would open a short
            (Side.SELL, 1, 10, 0, True),
            (Side.BUY, 1, 10, 0, False),  # same side adds to it
            (Side.BUY, 5, -5, 0, True),  # covering a short
            (Side.BUY, 6, -5, 0, False),
            (Side.SELL, 1, -5, 0, False),
            (Side.SELL, 1, 0, 0, False),  # flat: nothing to reduce
            (Side.BUY, 1, 0, 0, False),
            (Side.SELL, 6, 10, 4, True),  # with 4 already working on the sell side
            (Side.SELL, 7, 10, 4, False),
        ],
    )
    def test_boundaries(self, side: Side, quantity: int, position: int, working: int, expected: bool) -> None:
        assert reduces_exposure(side, quantity, position, working) is expected


def _refusal(state: TradingState, side: Side, quantity: int, product: Product, position: int) -> str | None:
    return refusal(state, "global: X by ana", side, quantity, INFY, product, position)


class TestRefusal:
    def test_active_allows_anything(self) -> None:
        assert _refusal(ACTIVE, Side.BUY, 1000, Product.MIS, 0) is None

    def test_reducing_allows_selling_exactly_the_long_position(self) -> None:
        assert _refusal(REDUCING, Side.SELL, 10, Product.MIS, 10) is None

    def test_reducing_refuses_one_more_and_says_why(self) -> None:
        why = _refusal(REDUCING, Side.SELL, 11, Product.MIS, 10)
        assert why is not None
        assert why.startswith("trading is REDUCING (global: X by ana): only orders that reduce a position")
        assert "SELL 11 NSE:INFY MIS" in why and "MIS position +10" in why

    def test_reducing_refuses_the_same_side(self) -> None:
        assert _refusal(REDUCING, Side.BUY, 1, Product.MIS, 10) is not None

    def test_reducing_allows_a_cnc_sell_against_holdings(self) -> None:
        position = open_quantity(INFY, Product.CNC, [], [_holding(20)])
        assert _refusal(REDUCING, Side.SELL, 20, Product.CNC, position) is None
        why = _refusal(REDUCING, Side.SELL, 21, Product.CNC, position)
        assert why is not None and "holdings included" in why

    def test_reducing_does_not_let_one_product_close_another(self) -> None:
        position = open_quantity(INFY, Product.NRML, [_position(Product.MIS, 10)], [])
        assert _refusal(REDUCING, Side.SELL, 10, Product.NRML, position) is not None

    @pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
    def test_halted_refuses_everything_even_a_reducing_order(self, side: Side) -> None:
        why = _refusal(HALTED, side, 1, Product.MIS, 10 if side is Side.SELL else -10)
        assert why == "trading is HALTED (global: X by ana): only cancels are allowed"


def test_a_state_refusal_is_a_failed_precondition_naming_the_account() -> None:
    refused = StateRefusal("trading is HALTED (global: X by ana): only cancels are allowed").at("acc1")
    assert isinstance(refused, FailedPrecondition)
    assert str(refused) == "account acc1: trading is HALTED (global: X by ana): only cancels are allowed"
    assert refused.reason == "trading is HALTED (global: X by ana): only cancels are allowed"
    assert refused.rule == "trading_state"
    assert str(pickle.loads(pickle.dumps(refused))) == str(refused)  # survives a Ray boundary


def test_state_rank_orders_the_states() -> None:
    assert ACTIVE.rank < REDUCING.rank < HALTED.rank
