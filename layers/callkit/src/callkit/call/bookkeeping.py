"""One stream call's store writes: in order, off the event loop, never in the way of the call.

Turns and what the caller heard are bookkeeping: the call goes on without them. Each write goes
through ``AsyncStore`` (a store thread, a deadline, bounded retries); one that still fails is
logged by type and dropped, never raised into the call. ``flush`` at the end of the call waits a
bounded time for what is queued, so the last turn is kept when the store is well.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from callkit.errors import CallkitError

if TYPE_CHECKING:
    from callkit.call.tasks import CallTasks
    from callkit.store._base import TurnRecord
    from callkit.store.aio import AsyncStore
    from callkit.telemetry import Telemetry

__all__ = ["Bookkeeper"]


class Bookkeeper:
    def __init__(self, store: AsyncStore, tasks: CallTasks, telemetry: Telemetry) -> None:
        self.store, self.tasks, self.telemetry = store, tasks, telemetry
        self._queue: asyncio.Queue[tuple[str, Callable[[], Awaitable[None]]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def record_turn(self, record: TurnRecord) -> None:
        """Keep the turn, and publish its count and latency (the media server's EMF metrics)."""
        self.telemetry.count("Turns")
        if record.first_token_ms is not None:
            self.telemetry.measure("TurnLatency", record.first_token_ms)
        self._submit("record_turn", lambda: self.store.record_turn(record))

    def record_heard(self, call_id: str, turn: int, heard_text: str) -> None:
        self._submit("record_heard", lambda: self.store.record_heard(call_id, turn, heard_text))

    def _submit(self, what: str, write: Callable[[], Awaitable[None]]) -> None:
        self._queue.put_nowait((what, write))
        if self._worker is None or self._worker.done():
            self._worker = self.tasks.spawn(self._work(), name="bookkeeping")

    async def _work(self) -> None:
        while True:
            what, write = await self._queue.get()
            try:
                await write()
            except (CallkitError, TimeoutError) as error:
                self.telemetry.error("call record not written", write=what, reason=type(error).__name__)
                self.telemetry.count("StoreWritesDropped")
            finally:
                self._queue.task_done()

    async def flush(self, limit: float = 5.0) -> None:
        """Wait up to ``limit`` seconds for the queued writes, the one being written included."""
        try:
            async with asyncio.timeout(limit):
                await self._queue.join()
        except TimeoutError:
            self.telemetry.error(
                "call records still queued at the end of the call", queued=self._queue.qsize()
            )
