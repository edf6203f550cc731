"""Orders for one account that arrive together go to its actor as one call, each still answered on its own."""

from __future__ import annotations

import asyncio

import pytest

from engine.api.coalesce import Coalescer
from engine.errors import FailedPrecondition


class Account:
    """A stand-in for `submit_many`: records each batch, answers after `gate` opens (at once if no gate)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.down = False

    async def submit_many(self, requests: list[str]) -> list[str | BaseException]:
        self.batches.append(requests)
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise ConnectionError("the actor died")
        return [FailedPrecondition(f"{r} refused") if r.startswith("bad") else f"ack {r}" for r in requests]


async def _first_out(submit: Coalescer[str, str]) -> asyncio.Task[str]:
    """An order that leaves alone (its account was idle) and stays out, so the next ones gather."""
    first = asyncio.create_task(submit("first"))
    await asyncio.sleep(0)
    return first


async def test_orders_arriving_while_a_call_is_out_go_as_one_call_and_each_gets_its_own_answer() -> None:
    account = Account()
    account.gate = asyncio.Event()
    submit = Coalescer(account.submit_many, limit=10)
    first = await _first_out(submit)
    later = asyncio.gather(*(submit(f"o{n}") for n in range(5)))
    await asyncio.sleep(0.05)
    account.gate.set()
    assert await later == [f"ack o{n}" for n in range(5)]
    assert await first == "ack first"
    assert account.batches == [["first"], [f"o{n}" for n in range(5)]]


async def test_orders_gathered_go_as_soon_as_the_call_out_returns() -> None:
    account = Account()
    account.gate = asyncio.Event()
    submit = Coalescer(account.submit_many, limit=10, window=60)
    first = await _first_out(submit)
    later = asyncio.gather(submit("a"), submit("b"))
    await asyncio.sleep(0.01)
    assert account.batches == [["first"]], "gathering, within the window"
    account.gate.set()
    assert await asyncio.wait_for(later, 5) == ["ack a", "ack b"], "not after the window"
    assert await first == "ack first"


async def test_a_lone_order_leaves_at_the_end_of_its_turn_without_a_timer() -> None:
    account = Account()
    submit = Coalescer(account.submit_many, limit=10)
    answer = asyncio.create_task(submit("alone"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert account.batches == [["alone"]]
    assert await answer == "ack alone"


async def test_a_batch_is_never_larger_than_the_limit() -> None:
    account = Account()
    account.gate = asyncio.Event()
    submit = Coalescer(account.submit_many, limit=3)
    first = await _first_out(submit)
    later = asyncio.gather(*(submit(f"o{n}") for n in range(7)))
    await asyncio.sleep(0.05)
    account.gate.set()
    await asyncio.gather(first, later)
    assert [len(b) for b in account.batches] == [1, 3, 3, 1]
    assert [r for b in account.batches[1:] for r in b] == [f"o{n}" for n in range(7)], "in arrival order"


async def test_one_orders_refusal_is_its_own() -> None:
    account = Account()
    account.gate = asyncio.Event()
    submit = Coalescer(account.submit_many, limit=10)
    first = await _first_out(submit)
    together = asyncio.gather(submit("good"), submit("bad"), submit("other"), return_exceptions=True)
    await asyncio.sleep(0.05)
    account.gate.set()
    good, bad, other = await together
    assert good == "ack good" and other == "ack other" and await first == "ack first"
    assert isinstance(bad, FailedPrecondition) and str(bad) == "bad refused"
    assert account.batches[1] == ["good", "bad", "other"]


async def test_a_failed_call_is_every_orders_answer() -> None:
    account = Account()
    account.down = True
    account.gate = asyncio.Event()
    submit = Coalescer(account.submit_many, limit=10)
    first = await _first_out(submit)
    together = asyncio.gather(submit("a"), submit("b"), return_exceptions=True)
    await asyncio.sleep(0.05)
    account.gate.set()
    answers = [*await together, *await asyncio.gather(first, return_exceptions=True)]
    assert all(isinstance(a, ConnectionError) for a in answers) and account.batches[1] == ["a", "b"]


async def test_an_order_arriving_while_a_call_is_out_waits_for_it_no_longer_than_the_window() -> None:
    """A slow broker call holds only the orders of its own batch."""
    account = Account()
    account.gate = asyncio.Event()
    submit = Coalescer(account.submit_many, limit=10, window=0.005)
    first = asyncio.create_task(submit("slow"))
    await asyncio.sleep(0.01)
    later = asyncio.create_task(submit("later"))
    await asyncio.sleep(0.1)
    assert account.batches == [["slow"], ["later"]], "sent after the window, beside the one still out"
    account.gate.set()
    assert await asyncio.gather(first, later) == ["ack slow", "ack later"]


async def test_a_caller_that_goes_away_leaves_its_order_to_go_on() -> None:
    account = Account()
    account.gate = asyncio.Event()
    submit = Coalescer(account.submit_many, limit=10)
    first = await _first_out(submit)
    leaving = asyncio.create_task(submit("left"))
    staying = asyncio.create_task(submit("stayed"))
    await asyncio.sleep(0.05)
    leaving.cancel()
    account.gate.set()
    assert await staying == "ack stayed" and await first == "ack first"
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert account.batches == [["first"], ["left", "stayed"]]


async def test_a_batch_answered_short_fails_every_order_rather_than_leaving_one_waiting() -> None:
    async def short(requests: list[str]) -> list[str | BaseException]:
        return [f"ack {r}" for r in (requests if len(requests) == 1 else requests[:-1])]

    submit = Coalescer(short, limit=10)
    first = await _first_out(submit)
    answers = await asyncio.gather(first, submit("a"), submit("b"), return_exceptions=True)
    assert answers[0] == "ack first"
    assert all(isinstance(a, RuntimeError) and "1 answers to a batch of 2" in str(a) for a in answers[1:])


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        Coalescer(Account().submit_many, limit=0)
