"""The task group of one call: every task the call starts, cancelled when the call ends.

``asyncio.TaskGroup`` cancels its siblings on the first failure and raises; a call instead wants a
failed task reported (so the call can end with words, ``callkit.call.ending``) while the others go
on until the ending says stop. ``aclose`` cancels what is left and waits for it, so no task
outlives its call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["CallTasks"]

T = TypeVar("T")


class CallTasks:
    """Owns the tasks of one call."""

    def __init__(self, on_failure: Callable[[str, BaseException], None]) -> None:
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str, eager: bool = False) -> asyncio.Task[T]:
        """Start ``coro`` as a task of this call. ``eager`` runs it at once up to its first wait.

        After ``aclose`` a new task is cancelled before it runs: nothing starts after the call.
        """
        loop = asyncio.get_running_loop()
        task: asyncio.Task[T] = asyncio.Task(
            coro, loop=loop, name=name, eager_start=eager and not self._closed
        )
        if self._closed:
            task.cancel()
        if not task.done():
            self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._on_failure(task.get_name(), error)

    async def aclose(self) -> None:
        """Cancel every task of the call and wait until all are done (tasks they start included)."""
        self._closed = True
        current = asyncio.current_task()
        while pending := [t for t in self._tasks if t is not current and not t.done()]:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._tasks.difference_update(pending)
