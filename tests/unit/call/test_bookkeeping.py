"""The bookkeeper: a call's store writes in order, off the loop; none lost at the end of a call."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from callkit.call.bookkeeping import Bookkeeper
from callkit.call.tasks import CallTasks
from callkit.errors import ServiceError
from callkit.store._base import TurnRecord
from callkit.store.aio import AsyncStore
from callkit.store.memory import MemoryCallStore
from callkit.telemetry import StdlibTelemetry


def turn(number: int) -> TurnRecord:
    return TurnRecord("CA1", number, "prompt", "q", "a", "[]", "[]", started_at=0.0, expires_at=2**31)


class SlowStore(MemoryCallStore):
    """Each write takes ``delay`` seconds in its thread (a slow table); ``fail`` raises instead."""

    def __init__(self, delay: float, fail: bool = False) -> None:
        super().__init__()
        self.delay, self.fail = delay, fail
        self.written: list[int] = []
        self.threads: set[str] = set()

    def record_turn(self, record: TurnRecord) -> None:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if self.fail:
            raise ServiceError("throttled", retryable=False)
        self.written.append(record.turn)


def test_the_write_in_flight_is_kept_when_the_call_ends() -> None:
    """The last turn of a call is usually being written as the call ends: flush waits for it."""

    async def scenario() -> list[int]:
        store = SlowStore(0.2)
        tasks = CallTasks(lambda name, error: None)
        books = Bookkeeper(AsyncStore(store), tasks, StdlibTelemetry())
        books.record_turn(turn(3))
        await asyncio.sleep(0.05)  # the worker has taken it off the queue: the queue is empty
        await books.flush(5.0)
        await tasks.aclose()
        return store.written

    assert asyncio.run(scenario()) == [3]


def test_writes_run_off_the_loop_and_a_failing_store_is_logged_not_raised() -> None:
    async def scenario() -> tuple[SlowStore, float, Any]:
        store = SlowStore(0.3, fail=True)
        telemetry = StdlibTelemetry()
        tasks = CallTasks(lambda name, error: (_ for _ in ()).throw(AssertionError(name)))
        books = Bookkeeper(AsyncStore(store, attempts=1), tasks, telemetry)
        books.record_turn(turn(1))
        started = time.perf_counter()
        await asyncio.sleep(0.05)  # the loop runs on while the store thread sleeps
        lag = time.perf_counter() - started
        await books.flush(2.0)
        await tasks.aclose()
        return store, lag, telemetry.metrics

    store, lag, metrics = asyncio.run(scenario())
    assert lag < 0.2, "the write did not block the event loop"
    assert all(name.startswith("callkit-store") for name in store.threads)
    assert metrics["StoreWritesDropped"] == 1


def test_held_audio_keeps_the_callers_frames_in_order_until_released() -> None:
    from callkit.call.core import HeldAudio

    held = HeldAudio(limit=3)
    for frame in (b"1", b"2", b"3", b"4"):  # bounded: the 4th is not kept
        held.hold(frame)
    assert held.take() == [b"1", b"2", b"3"]
    held.hold(b"5")  # arrives while the first ones are being sent: still held, after them
    assert held.holding and held.take() == [b"5"] and held.take() == []
    held.release()
    held.hold(b"6")
    assert not held.holding and held.take() == []
