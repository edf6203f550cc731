"""The trading-state rules: the effective state of an account, what REDUCING and HALTED still allow and what
REDUCING counts as already working; TradingStates' permission checks; placement's count of orders in flight."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from types import SimpleNamespace

import pytest

from engine.api.placement import Placement, Plan, Working
from engine.api.trading import TradingStates
from engine.brokers.base import BrokerPosition, Holding
from engine.domain import InstrumentId, Order, OrderRequest, OrderStatus, OrderType, Product, Side
from engine.domain.accounts import AccountSnapshot, AccountStatus
from engine.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from engine.risk.states import (
    GLOBAL,
    Scope,
    ScopeKind,
    StateEntry,
    StateRefusal,
    TradingState,
    committed,
    effective_state,
    open_quantity,
    reduces_exposure,
    refusal,
)
from engine.routing import Reservations, claim
from engine.security.principal import Principal
from engine.security.tokens import Role

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


# -- what REDUCING counts as already working ---------------------------------------------------------

BRACKET = "SABCDEFGHIJKLMNOP"  # a strategy id: its orders are one OCO family


class TestCommitted:
    def test_other_orders_add_up(self) -> None:
        assert committed({"a": 60, "b": 40}) == 100

    def test_a_brackets_stop_and_target_of_one_entry_count_their_larger_side(self) -> None:
        assert committed({f"{BRACKET}-stop-1-1": 100, f"{BRACKET}-target-1-1": 100}) == 100
        assert committed({f"{BRACKET}-stop-1-1": 100, f"{BRACKET}-target-1-2": 60, "mine": 5}) == 105

    def test_other_strategy_orders_count_on_their_own(self) -> None:
        """A schedule's runs are not a pair: three open sells of 100 may all fill."""
        runs = {f"{BRACKET}-run-202611230915": 100, f"{BRACKET}-run-202611230920": 100}
        assert committed({**runs, f"{BRACKET}-run-202611230925": 100}) == 300

    def test_two_entries_or_two_strategies_are_two_pairs(self) -> None:
        assert committed({f"{BRACKET}-stop-1-1": 100, f"{BRACKET}-stop-2-1": 100}) == 200
        assert committed({f"{BRACKET}-stop-1-1": 100, "SQRSTUVWXYZ234567-stop-1-1": 100}) == 200

    def test_a_routed_orders_legs_are_one_order(self) -> None:
        legs = {f"{BRACKET}-stop-1-1/1": 60, f"{BRACKET}-stop-1-1/2": 40, f"{BRACKET}-target-1-1": 100}
        assert committed(legs) == 100
        assert committed({"mine/1": 60, "mine/2": 40}) == 100

    def test_a_user_id_without_the_dash_is_not_a_strategys(self) -> None:
        assert committed({BRACKET: 100, f"{BRACKET}x": 100}) == 200


# -- TradingStates: who may set what, under the lock -----------------------------------------------------


class _Store:
    def __init__(self) -> None:
        self.written: list[StateEntry] = []

    async def set_trading_state(self, entry: StateEntry) -> None:
        self.written.append(entry)


class _Registry:
    """The part of AccountRegistry trading states use: one group `family` of acc1, deletable."""

    def __init__(self) -> None:
        self.group_members = {"family": ["acc1"]}

    def groups(self) -> dict[str, list[str]]:
        return dict(self.group_members)

    def groups_of(self, account: str) -> list[str]:
        return [g for g, members in self.group_members.items() if account in members]

    def scope_accounts(self, scope: Scope) -> list[str]:
        if scope.kind is ScopeKind.GROUP:
            if scope.name not in self.group_members:
                raise InvalidArgument("scope.name", f"unknown account group {scope.name!r}")
            return self.group_members[scope.name]
        return ["acc1"] if scope.kind is ScopeKind.GLOBAL else [scope.name]


ADMIN = Principal("root", Role.ADMIN, "t0", frozenset())
TRADER = Principal("ana", Role.TRADER, "t1", frozenset({"acc1"}))


def _states(store: _Store | None = None, registry: _Registry | None = None) -> TradingStates:
    return TradingStates(store or _Store(), registry or _Registry(), None, [])  # type: ignore[arg-type]


class TestTradingStates:
    async def test_a_traders_lift_racing_an_admins_halt_is_refused(self) -> None:
        states, registry = _states(), _Registry()
        states.authorize(ACC, ACTIVE, TRADER, registry)  # passes: nothing set yet
        await states.set(ACC, HALTED, "risk", ADMIN)  # the admin's halt lands before the trader's set
        with pytest.raises(PermissionDenied, match="only an admin may set it to ACTIVE"):
            await states.set(ACC, ACTIVE, "", TRADER)
        assert states.effective("acc1")[0] is HALTED

    async def test_a_trader_may_lift_their_own_state(self) -> None:
        states = _states()
        await states.set(ACC, HALTED, "", TRADER)
        assert (await states.set(ACC, ACTIVE, "", TRADER)).state is ACTIVE

    async def test_tighten_never_lowers_and_writes_nothing(self) -> None:
        store = _Store()
        states = _states(store)
        halted = await states.set(FAMILY, HALTED, "first kill", ADMIN)
        assert await states.set(FAMILY, REDUCING, "retry", TRADER, tighten=True) is halted
        assert store.written == [halted]
        assert (await states.set(ACC, REDUCING, "", TRADER, tighten=True)).state is REDUCING

    async def test_a_deleted_groups_state_can_be_lifted_but_not_set(self) -> None:
        registry = _Registry()
        states = _states(registry=registry)
        await states.set(FAMILY, HALTED, "", ADMIN)
        del registry.group_members["family"]
        with pytest.raises(InvalidArgument):
            await states.set(FAMILY, REDUCING, "", ADMIN)
        states.authorize(FAMILY, ACTIVE, ADMIN, registry)  # type: ignore[arg-type]
        assert (await states.set(FAMILY, ACTIVE, "group gone", ADMIN)).state is ACTIVE
        assert states.entries() == []

    def test_a_bracket_pair_under_reducing_passes_and_two_user_orders_do_not(self) -> None:
        states = TradingStates(_Store(), _Registry(), None, [_entry(ACC, REDUCING)])  # type: ignore[arg-type]
        snap = AccountSnapshot("acc1", "paper", AccountStatus.ACTIVE, positions=(_position(Product.MIS, 100),))
        target = _sell(f"{BRACKET}-target-1-1", 100)
        states.check_order(target, snap, {f"{BRACKET}-stop-1-1": 100})
        with pytest.raises(StateRefusal, match="100 already working"):
            states.check_order(_sell("mine-2", 100), snap, {"mine-1": 100})
        moved = Order(
            "O1", f"{BRACKET}-stop-1-1", "acc1", INFY, Side.SELL, 100, Product.MIS, OrderType.SL_M, OrderStatus.OPEN,
            AT, AT,
        )  # fmt: skip
        states.check_modify(moved, snap, {f"{BRACKET}-stop-1-1": 100, f"{BRACKET}-target-1-1": 100})


def _sell(client_id: str, quantity: int) -> OrderRequest:
    return OrderRequest(client_id, "acc1", INFY, Side.SELL, quantity, Product.MIS, OrderType.MARKET)


class TestPlacementCountsOrdersInFlight:
    """Placement._check under REDUCING: an order acknowledged while the order rows were being read is in
    neither the rows nor the in-flight holds unless its hold still counts."""

    def _placement(self, holds: Reservations) -> Placement:
        states = TradingStates(_Store(), _Registry(), None, [_entry(ACC, REDUCING)])  # type: ignore[arg-type]
        snap = AccountSnapshot(
            "acc1", "paper", AccountStatus.ACTIVE, funds_at=AT, positions=(_position(Product.MIS, 100),)
        )
        placement = Placement.__new__(Placement)
        placement._gw = SimpleNamespace(snapshot=lambda _: snap)  # type: ignore[assignment]
        placement._holds = holds
        placement._states = states
        placement._risk = SimpleNamespace(check=lambda *_: None)  # type: ignore[assignment]
        return placement

    def _plan(self, request: OrderRequest) -> Plan:
        return SimpleNamespace(request=request, instrument=None, last_price=None)  # type: ignore[return-value]

    def test_an_order_acknowledged_during_the_read_still_counts(self) -> None:
        holds = Reservations()
        first = holds.hold(claim(_sell("first", 100), D(1500)))
        read = Working({"acc1": {}}, {})  # the rows were read, then `first` was acknowledged
        holds.settle(first, AT + timedelta(seconds=2))
        placement = self._placement(holds)
        with pytest.raises(StateRefusal, match="100 already working"):
            placement._check(self._plan(_sell("second", 100)), [("acc1", 100)], read)

    def test_an_order_filled_since_the_last_sync_counts_what_it_filled(self) -> None:
        """Filled, it is no longer among the open rows, and the snapshot's position does not show the fill yet."""
        holds = Reservations()
        holds.settle(holds.hold(claim(_sell("first", 100), D(1500))), AT + timedelta(seconds=2))
        read = Working({"acc1": {}}, {"acc1": {"first": 100}})
        with pytest.raises(StateRefusal, match="100 already working"):
            self._placement(holds)._check(self._plan(_sell("second", 100)), [("acc1", 100)], read)

    def test_an_order_cancelled_since_the_last_sync_counts_only_what_it_filled(self) -> None:
        holds = Reservations()
        holds.settle(holds.hold(claim(_sell("first", 100), D(1500))), AT + timedelta(seconds=2))
        cancelled = Working({"acc1": {}}, {"acc1": {"first": 0}})
        self._placement(holds)._check(self._plan(_sell("second", 100)), [("acc1", 100)], cancelled)
        partly = Working({"acc1": {}}, {"acc1": {"first": 30}})
        with pytest.raises(StateRefusal, match="30 already working"):
            self._placement(holds)._check(self._plan(_sell("second", 100)), [("acc1", 100)], partly)

    def test_an_order_the_read_saw_counts_once(self) -> None:
        holds = Reservations()
        first = holds.hold(claim(_sell("first", 50), D(1500)))
        holds.settle(first, AT + timedelta(seconds=2))
        read = Working({"acc1": {"first": 50}}, {})
        self._placement(holds)._check(self._plan(_sell("second", 50)), [("acc1", 50)], read)
