"""One stream call's policy objects, made once for either pipeline, and the audio held at its start.

``CallCore`` holds what a cascading or realtime call has around its voice: the task group (every
task of the call), the bookkeeper (store writes off the loop) and the ending (one goodbye or
apology, one hang-up), wired together, plus the call's maximum-duration timer. A pipeline makes
one, spawns its own tasks on it, waits for ``ending.ended`` and calls ``close``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from callkit.call.bookkeeping import Bookkeeper
from callkit.call.ending import CallEnding, Failed, MaxDuration
from callkit.call.phrases import phrases_for
from callkit.call.tasks import CallTasks

if TYPE_CHECKING:
    from callkit.call.ending import CarrierActions, Voice
    from callkit.interface import CallInterface
    from callkit.store._base import CallRecord
    from callkit.store.aio import AsyncStore
    from callkit.telemetry import Telemetry

__all__ = ["CallCore", "HeldAudio"]

#: Caller frames held while a provider connects (10 s of 20-ms frames; a slower connect fails).
HELD_FRAMES = 500


class HeldAudio:
    """The caller's audio while the call's provider connects: kept (bounded), handed over once.

    A caller may speak the moment the stream opens; what they say before the recogniser (or the
    Realtime session) is up must reach it, not be dropped.
    """

    def __init__(self, limit: int = HELD_FRAMES) -> None:
        self._frames: list[bytes] | None = []
        self._limit = limit

    @property
    def holding(self) -> bool:
        return self._frames is not None

    def hold(self, audio: bytes) -> None:
        if self._frames is not None and len(self._frames) < self._limit:
            self._frames.append(audio)

    def take(self) -> list[bytes]:
        """What is held so far; holding goes on (frames that arrive meanwhile are kept, in order)."""
        frames, self._frames = self._frames or [], [] if self._frames is not None else None
        return frames

    def release(self) -> None:
        """Stop holding (after the last ``take``); from then on frames go straight through."""
        self._frames = None


class CallCore:
    def __init__(
        self,
        *,
        call: CallRecord,
        interface: CallInterface,
        voice: Voice,
        carrier: CarrierActions,
        store: AsyncStore,
        telemetry: Telemetry,
        voice_tasks: Iterable[str] = (),
        wall: Callable[[], float] = time.time,
    ) -> None:
        """``voice_tasks``: tasks whose failure means the voice itself is gone (the carrier speaks)."""
        self.call, self.interface, self.telemetry = call, interface, telemetry
        self.phrases = phrases_for(interface)
        self.tasks = CallTasks(self._task_failed)
        self.books = Bookkeeper(store, self.tasks, telemetry)
        self.ending = CallEnding(
            voice=voice, carrier=carrier, tasks=self.tasks, phrases=self.phrases, telemetry=telemetry
        )
        self._voice_tasks = frozenset(voice_tasks)
        self._wall = wall

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        self.tasks.spawn(coro, name=name)

    def start(self) -> None:
        """Arm the maximum duration: the call ends with the goodbye then, whatever else happens."""
        self.tasks.spawn(
            self._deadline(self.call.created_at + self.interface.max_call_duration_seconds), name="deadline"
        )

    async def _deadline(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - self._wall()))
        self.telemetry.info("call reached its maximum duration")
        self.telemetry.count("MaxDurationReached")
        self.ending.trigger(MaxDuration())

    def _task_failed(self, name: str, error: BaseException) -> None:
        self.telemetry.error("call task failed", task=name, reason=type(error).__name__)
        self.telemetry.count("CallTaskFailures")
        # Unless the voice is the part that failed, try it first: a failure there hands to the carrier.
        self.ending.trigger(Failed(f"{name} failed", voice_works=name not in self._voice_tasks))

    async def close(self) -> None:
        """Keep what is queued for the store (bounded), then end every task of the call."""
        await self.books.flush()
        await self.tasks.aclose()
