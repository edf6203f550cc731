"""The hub's slow-consumer policy over an in-memory event log: who is cut off, when, with what status and
message, and who never is; then the same through a real grpc.aio server and client, where a stopped reader's
send really blocks on HTTP/2 flow control."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import pytest
from prometheus_client import REGISTRY

from engine.api.events import EventHub, SequencedHub, SharedMessages, StreamLimits
from engine.api.interceptors import ErrorAndMetricsInterceptor, _wrap_stream
from engine.config import ServerSettings
from engine.errors import ResourceExhausted
from trademaster.v1 import orders_pb2

QUICK = 3.0  # seconds any wait below may take before the test fails


@dataclass(frozen=True)
class Event:
    sequence: int
    account: str = "a1"


class FakeLog:
    """An event log in memory that announces each append the way NOTIFY wakes the hub's pump."""

    def __init__(self, count: int = 0) -> None:
        self.events: list[Event] = []
        self.listeners: list[Callable[..., None]] = []
        self.append(count)

    def append(self, count: int = 1, account: str = "a1") -> None:
        start = len(self.events)
        self.events.extend(Event(start + i + 1, account) for i in range(count))
        for listener in self.listeners:
            listener()

    async def events_after(self, sequence: int, limit: int) -> list[Event]:
        return self.events[sequence : sequence + limit]

    async def head_sequence(self) -> int:
        return len(self.events)

    async def connect(self, dsn: str) -> FakeLog:
        return self

    async def add_listener(self, channel: str, listener: Callable[..., None]) -> None:
        self.listeners.append(listener)

    def is_closed(self) -> bool:
        return False

    async def close(self) -> None:
        self.listeners.clear()


class FakeCall:
    """The gRPC call a subscriber streams to: records how it was ended."""

    def __init__(self) -> None:
        self.ended: list[tuple[grpc.StatusCode, str]] = []

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        self.ended.append((code, details))
        raise grpc.aio.AbortError("aborted")

    def peer(self) -> str:
        return "ipv4:127.0.0.1:40000"


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> FakeLog:
    fake = FakeLog()
    monkeypatch.setattr("engine.api.events.connect", fake.connect)
    return fake


async def started(log: FakeLog, limits: StreamLimits, ring_size: int = 1000) -> SequencedHub[Event]:
    hub = SequencedHub[Event](log, "", "test_events", ring_size=ring_size, limits=limits)
    await hub.start()
    return hub


async def until(condition: Callable[[], bool], timeout: float = QUICK) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def cut_offs(reason: str, log_name: str = "test_events") -> float:
    return REGISTRY.get_sample_value("trademaster_streams_cut_off_total", {"log": log_name, "reason": reason}) or 0.0


async def test_a_subscriber_that_keeps_up_sees_every_event_and_stays(log: FakeLog) -> None:
    hub = await started(log, StreamLimits(max_lag=5, blocked_seconds=0.2))
    call = FakeCall()
    events = hub.follow(call, None)
    seen: list[int] = []
    for _ in range(100):
        log.append(3)
        for _ in range(3):
            seen.append((await anext(events)).sequence)
    await events.aclose()
    await hub.stop()
    assert seen == list(range(1, 301))
    assert call.ended == []


async def test_a_live_subscriber_that_falls_behind_is_cut_off_with_where_to_resume(log: FakeLog) -> None:
    hub = await started(log, StreamLimits(max_lag=10, blocked_seconds=30))
    before = cut_offs("lag")
    events = hub.follow(FakeCall(), None)
    log.append(1)
    assert (await anext(events)).sequence == 1
    log.append(50)
    await until(lambda: hub.head == 51)
    with pytest.raises(ResourceExhausted) as cut:
        await anext(events)
    await hub.stop()
    message = str(cut.value)
    assert "50 events behind" in message and "limit is 10" in message and "stream_max_lag_events" in message
    assert "after_sequence=1" in message
    assert cut_offs("lag") == before + 1


async def test_a_replaying_subscriber_is_not_cut_off_until_it_has_caught_up(log: FakeLog) -> None:
    log.append(300)  # far more than the limit, and than the ring: read from the log
    hub = await started(log, StreamLimits(max_lag=10, blocked_seconds=30), ring_size=20)
    events = hub.follow(FakeCall(), 0)
    replayed = [(await anext(events)).sequence for _ in range(300)]
    log.append(1)
    assert (await anext(events)).sequence == 301  # caught up: live from now on
    log.append(20)
    await until(lambda: hub.head == 321)
    with pytest.raises(ResourceExhausted, match="20 events behind"):
        await anext(events)
    await hub.stop()
    assert replayed == list(range(1, 301))


async def test_the_daemons_own_readers_are_never_cut_off(log: FakeLog) -> None:
    hub = await started(log, StreamLimits(max_lag=1, blocked_seconds=0.1))
    events = hub.stream(None)
    log.append(1)
    assert (await anext(events)).sequence == 1
    log.append(30)
    await until(lambda: hub.head == 31)
    await asyncio.sleep(0.3)  # holding an event past the blocked-send limit too
    assert [(await anext(events)).sequence for _ in range(30)] == list(range(2, 32))
    await events.aclose()
    await hub.stop()


async def test_a_subscriber_whose_client_stops_reading_is_aborted_by_the_watchdog(log: FakeLog) -> None:
    hub = await started(log, StreamLimits(max_lag=1000, blocked_seconds=0.2))
    before = cut_offs("blocked")
    call = FakeCall()
    events = hub.follow(call, None)
    log.append(2)
    assert (await anext(events)).sequence == 1
    assert (await anext(events)).sequence == 2  # taken: 1 was sent; 2 is held, as a write blocked by flow control
    log.append(40)
    started_at = time.monotonic()
    await until(lambda: bool(call.ended))
    waited = time.monotonic() - started_at
    [(code, message)] = call.ended
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "read nothing for 0.2 s" in message and "stream_blocked_send_seconds" in message
    assert "41 events behind" in message and "at least 1" in message
    assert 0.1 < waited < 1.0
    with pytest.raises(StopAsyncIteration):  # the write went through at last: the stream ends, already aborted
        await anext(events)
    await hub.stop()
    assert cut_offs("blocked") == before + 1


async def test_a_subscriber_waiting_for_events_is_not_blocked(log: FakeLog) -> None:
    hub = await started(log, StreamLimits(max_lag=1000, blocked_seconds=0.1))
    call = FakeCall()
    events = hub.follow(call, None)
    waiting = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.4)
    log.append(1)
    assert (await waiting).sequence == 1
    await events.aclose()
    await hub.stop()
    assert call.ended == []


async def test_an_account_subscriber_sees_only_its_account(log: FakeLog) -> None:
    hub = EventHub(log, "", limits=StreamLimits(max_lag=1000))  # type: ignore[arg-type]
    await hub.start()
    events = hub.subscribe(FakeCall(), 0, frozenset({"a2"}))
    log.append(2, "a1")
    log.append(2, "a2")
    assert [(await anext(events)).sequence for _ in range(2)] == [3, 4]
    await events.aclose()
    await hub.stop()


async def test_the_lag_cut_off_reaches_the_client_as_resource_exhausted(log: FakeLog) -> None:
    """The error a servicer's stream raises goes through the API's interceptor like any other."""
    hub = await started(log, StreamLimits(max_lag=3, blocked_seconds=30))
    call = FakeCall()

    async def servicer(request: Any, context: FakeCall) -> AsyncIterator[int]:
        async for event in hub.follow(context, None):
            yield event.sequence

    stream = _wrap_stream("StreamOrderEvents", servicer)(None, call)
    log.append(1)
    assert await anext(stream) == 1
    log.append(5)
    await until(lambda: hub.head == 6)
    with pytest.raises(grpc.aio.AbortError):
        await anext(stream)
    await hub.stop()
    [(code, message)] = call.ended
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "5 events behind" in message


def test_shared_messages_build_each_event_once() -> None:
    built: list[int] = []

    def build(event: Event) -> str:
        built.append(event.sequence)
        return f"message {event.sequence}"

    messages = SharedMessages(build, size=3)
    for _ in range(1000):  # a thousand subscribers sending the same events
        assert [messages(Event(n)) for n in (1, 2, 3)] == ["message 1", "message 2", "message 3"]
    assert built == [1, 2, 3]
    messages(Event(4))  # over the size: the oldest goes
    messages(Event(1))
    assert built == [1, 2, 3, 4, 1]


def test_the_limits_are_the_server_settings() -> None:
    assert StreamLimits.of(ServerSettings()) == StreamLimits()
    assert StreamLimits.of(ServerSettings(stream_max_lag_events=7, stream_blocked_send_seconds=2.5)) == StreamLimits(
        max_lag=7, blocked_seconds=2.5
    )


# -- through grpc.aio -----------------------------------------------------------------------------------------

SERVICE = "test.Events"
# No BDP probing: the client's window stays at 64 KiB, so a stopped reader blocks the server after a few hundred
# events instead of a few megabytes.
_SMALL_WINDOW = [("grpc.http2.bdp_probe", 0)]


def _message(event: Event) -> orders_pb2.OrderEvent:
    message = orders_pb2.OrderEvent(sequence=event.sequence)
    message.order.order_id = f"O{event.sequence:015d}"
    message.order.client_order_id = f"stream-test-{event.sequence:08d}"
    message.order.account = event.account
    return message


@pytest.fixture
async def server(log: FakeLog) -> AsyncIterator[tuple[SequencedHub[Event], grpc.aio.Channel]]:
    hub = await started(log, StreamLimits(max_lag=100_000, blocked_seconds=0.5))
    messages = SharedMessages(_message)

    async def follow(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[orders_pb2.OrderEvent]:
        async for event in hub.follow(context, int(request) if request else None):
            yield messages(event)

    handler = grpc.unary_stream_rpc_method_handler(
        follow, request_deserializer=bytes, response_serializer=orders_pb2.OrderEvent.SerializeToString
    )
    aio_server = grpc.aio.server(interceptors=[ErrorAndMetricsInterceptor()])
    aio_server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Follow": handler})])
    port = aio_server.add_insecure_port("127.0.0.1:0")
    await aio_server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=_SMALL_WINDOW) as channel:
        yield hub, channel
    await aio_server.stop(0)
    await hub.stop()


def _follow(channel: grpc.aio.Channel, after: int) -> grpc.aio.UnaryStreamCall[bytes, orders_pb2.OrderEvent]:
    method = channel.unary_stream(
        f"/{SERVICE}/Follow", request_serializer=lambda b: b, response_deserializer=orders_pb2.OrderEvent.FromString
    )
    return method(str(after).encode(), timeout=30)


async def _read(call: grpc.aio.UnaryStreamCall[bytes, orders_pb2.OrderEvent], into: list[int]) -> None:
    while (event := await call.read()) is not grpc.aio.EOF:
        into.append(event.sequence)


async def test_a_grpc_client_that_stops_reading_gets_resource_exhausted(
    server: tuple[SequencedHub[Event], grpc.aio.Channel], log: FakeLog
) -> None:
    _, channel = server
    before = cut_offs("blocked")
    stalled = _follow(channel, 0)
    normal: list[int] = []
    steady = asyncio.ensure_future(_read(_follow(channel, 0), normal))
    log.append(1)
    assert (await stalled.read()).sequence == 1  # then it stops reading
    for _ in range(20):  # 20,000 events of ~50 bytes, far beyond its 64 KiB window
        log.append(1000)
        await asyncio.sleep(0.01)
    await until(lambda: cut_offs("blocked") == before + 1)
    await until(lambda: len(normal) == 20_001)
    received = [1]
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await _read(stalled, received)  # what its window held, then the status
    steady.cancel()
    assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "read nothing for 0.5 s" in (ended.value.details() or "")
    assert received == list(range(1, len(received) + 1)) and 100 < len(received) < 20_001
    assert normal == list(range(1, 20_002))


async def test_a_grpc_client_that_never_reads_again_has_its_call_cancelled_and_its_place_freed(
    server: tuple[SequencedHub[Event], grpc.aio.Channel], log: FakeLog
) -> None:
    """The status waits behind what the client has not read; a client that still reads nothing for another limit
    would hold its call, buffers and handler for nothing."""
    hub, channel = server
    stalled = _follow(channel, 0)
    log.append(1)
    assert (await stalled.read()).sequence == 1  # then it never reads again, and never hangs up
    for _ in range(20):
        log.append(1000)
        await asyncio.sleep(0.01)
    await until(lambda: not hub._followers, timeout=5 * QUICK)  # cut off after 0.5 s, cancelled 1 s later
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        while await stalled.read() is not grpc.aio.EOF:
            pass
    assert ended.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED)
