"""Splitting an order across accounts (fewest legs, best score first) and slicing legs at the freeze limit."""

from __future__ import annotations

import math
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.routing.split import Leg, Option, fewest_legs, slices, split

ACCOUNTS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


def brute_force_min_legs(quantity: int, capacities: list[int]) -> int | None:
    """The least number of accounts whose capacities together reach `quantity`, by trying every subset."""
    for count in range(1, len(capacities) + 1):
        if any(sum(combo) >= quantity for combo in combinations(capacities, count)):
            return count
    return None


@st.composite
def split_inputs(draw: st.DrawFn) -> tuple[int, int, list[Option]]:
    """(lot, quantity, options): everything in whole lots, unique accounts, scores drawn from few values for ties."""
    lot = draw(st.sampled_from([1, 1, 15, 25, 75]))
    names = draw(st.lists(st.sampled_from(ACCOUNTS), min_size=0, max_size=6, unique=True))
    options = [
        Option(
            name,
            draw(st.integers(0, 40)) * lot,
            draw(st.sampled_from([0.0, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0])),
        )
        for name in names
    ]
    quantity = draw(st.integers(1, 120)) * lot
    return lot, quantity, options


@settings(max_examples=300, deadline=None)
@given(split_inputs())
def test_split_conserves_quantity_and_respects_capacities(inputs: tuple[int, int, list[Option]]) -> None:
    lot, quantity, options = inputs
    legs = split(quantity, options)
    total_capacity = sum(o.capacity for o in options)
    if total_capacity < quantity:
        assert legs is None
        return
    assert legs is not None
    capacity_of = {o.account: o.capacity for o in options}
    assert sum(leg.quantity for leg in legs) == quantity
    assert len({leg.account for leg in legs}) == len(legs), "an account appears twice"
    for leg in legs:
        assert leg.account in capacity_of
        assert 0 < leg.quantity <= capacity_of[leg.account]
        assert leg.quantity % lot == 0, "a leg is not a whole number of lots"


@settings(max_examples=300, deadline=None)
@given(split_inputs())
def test_split_uses_the_fewest_legs_possible(inputs: tuple[int, int, list[Option]]) -> None:
    _, quantity, options = inputs
    capacities = [o.capacity for o in options]
    best = brute_force_min_legs(quantity, capacities)
    assert fewest_legs(quantity, capacities) == best
    legs = split(quantity, options)
    assert (None if legs is None else len(legs)) == best


@settings(max_examples=200, deadline=None)
@given(split_inputs(), st.data())
def test_split_is_deterministic_whatever_the_option_order(
    inputs: tuple[int, int, list[Option]], data: st.DataObject
) -> None:
    _, quantity, options = inputs
    shuffled = data.draw(st.permutations(options))
    assert split(quantity, shuffled) == split(quantity, options)
    assert split(quantity, options) == split(quantity, list(options))  # and the same on a second call


@settings(max_examples=200, deadline=None)
@given(split_inputs())
def test_a_single_leg_goes_to_the_best_scored_account_that_can_take_it_all(
    inputs: tuple[int, int, list[Option]],
) -> None:
    _, quantity, options = inputs
    able = [o for o in options if o.capacity >= quantity]
    legs = split(quantity, options)
    if not able:
        assert legs is None or len(legs) > 1
        return
    best = min(able, key=lambda o: (-o.score, o.account))
    assert legs == [Leg(best.account, quantity)]


@pytest.mark.parametrize(
    ("quantity", "options", "expected"),
    [
        pytest.param(
            80,
            [Option("alpha", 100, 0.9), Option("bravo", 50, 0.95), Option("charlie", 200, 0.8)],
            [Leg("alpha", 80)],
            id="best-scored-of-those-that-can-take-it-all",
        ),
        pytest.param(
            100,
            [Option("alpha", 1000, 0.5), Option("bravo", 100, 0.9)],
            [Leg("bravo", 100)],
            id="score-beats-a-larger-capacity",
        ),
        pytest.param(
            50,
            [Option("bravo", 100, 0.7), Option("alpha", 100, 0.7)],
            [Leg("alpha", 50)],
            id="equal-scores-go-by-account-id",
        ),
        pytest.param(
            200,
            [Option("alpha", 200, 0.1), Option("bravo", 150, 0.9), Option("charlie", 150, 0.9)],
            [Leg("alpha", 200)],
            id="one-leg-beats-two-better-scored",
        ),
        pytest.param(
            150,
            [Option("alpha", 100, 0.9), Option("bravo", 100, 0.8), Option("charlie", 60, 0.95)],
            [Leg("charlie", 60), Leg("alpha", 90)],
            id="two-legs-best-score-first",
        ),
        pytest.param(
            250,
            [Option("alpha", 100, 0.99), Option("bravo", 200, 0.1), Option("charlie", 60, 0.5)],
            [Leg("alpha", 100), Leg("bravo", 150)],
            id="best-score-first-while-the-rest-can-still-be-covered",
        ),
        pytest.param(
            290,
            [Option("alpha", 60, 0.99), Option("bravo", 200, 0.1), Option("charlie", 100, 0.5)],
            [Leg("charlie", 100), Leg("bravo", 190)],
            id="best-scored-skipped-when-it-would-need-a-third-leg",
        ),
        pytest.param(
            100,
            [Option("alpha", 0, 0.99), Option("bravo", 100, 0.1)],
            [Leg("bravo", 100)],
            id="zero-capacity-ignored",
        ),
        pytest.param(
            300,
            [Option("alpha", 100, 1.0), Option("bravo", 100, 1.0), Option("charlie", 50, 1.0)],
            None,
            id="not-enough-in-total",
        ),
        pytest.param(1, [], None, id="no-options"),
        pytest.param(
            225,
            [Option("alpha", 75, 0.5), Option("bravo", 75, 0.6), Option("charlie", 75, 0.7), Option("delta", 150, 0.1)],
            [Leg("charlie", 75), Leg("delta", 150)],
            id="lots-two-legs-not-three",
        ),
    ],
)
def test_split_table(quantity: int, options: list[Option], expected: list[Leg] | None) -> None:
    assert split(quantity, options) == expected


@pytest.mark.parametrize(
    ("quantity", "capacities", "expected"),
    [
        (100, [100], 1),
        (100, [99], None),
        (100, [60, 50], 2),
        (100, [10, 95, 5], 2),
        (100, [], None),
        (100, [40, 30, 30], 3),
        (100, [0, 0, 100], 1),
    ],
)
def test_fewest_legs_table(quantity: int, capacities: list[int], expected: int | None) -> None:
    assert fewest_legs(quantity, capacities) == expected


@settings(max_examples=300, deadline=None)
@given(
    lot=st.sampled_from([1, 15, 25, 50, 75]),
    lots=st.integers(1, 400),
    freeze=st.integers(0, 3000),
)
def test_slices_preserve_quantity_in_whole_lots_under_the_freeze(lot: int, lots: int, freeze: int) -> None:
    quantity = lots * lot
    if 0 < freeze < lot:
        freeze = lot  # a freeze limit below one lot cannot be met; exchanges always allow one lot
    cut = slices(quantity, freeze, lot)
    assert sum(cut) == quantity
    assert all(s > 0 and s % lot == 0 for s in cut)
    if freeze == 0:
        assert cut == [quantity]
        return
    assert all(s <= freeze for s in cut)
    largest = freeze // lot * lot
    assert len(cut) == math.ceil(quantity / largest), "more slices than the freeze limit requires"


@pytest.mark.parametrize(
    ("quantity", "freeze", "lot", "expected"),
    [
        (3750, 1800, 75, [1800, 1800, 150]),
        (3750, 1801, 75, [1800, 1800, 150]),  # the largest whole-lot slice under the freeze
        (3600, 1800, 75, [1800, 1800]),
        (1800, 1800, 75, [1800]),
        (75, 1800, 75, [75]),
        (100_000, 0, 1, [100_000]),  # no freeze limit: never sliced
        (250, 100, 1, [100, 100, 50]),
    ],
)
def test_slices_table(quantity: int, freeze: int, lot: int, expected: list[int]) -> None:
    assert slices(quantity, freeze, lot) == expected
