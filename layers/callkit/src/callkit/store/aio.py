"""The call store from an event loop that must never block (the media server's).

The stores are synchronous (boto3 is; Lambda handlers are). On the media server one event loop
carries every call's audio, so a store call there runs in a worker thread of its own pool, under a
deadline, and is retried with ``asyncio`` backoff: a slow or failing store delays that call's
bookkeeping, never another call's audio. The pool is the store's own so that store calls never
queue behind tool functions in the loop's default executor.
"""

from __future__ import annotations

import asyncio
import functools
import random
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, TypeVar

from callkit.errors import ServiceError, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable

    from callkit.store._base import CallRecord, CallStore, TurnRecord

__all__ = ["AsyncStore"]

T = TypeVar("T")

#: Threads for store calls: enough that a few slow calls never hold up the others' bookkeeping.
DEFAULT_THREADS: Final = 32


def _retryable(error: BaseException) -> bool:
    if isinstance(error, TimeoutError):
        return True
    if isinstance(error, ServiceError):
        return error.retryable
    # A StoreError that is not a refusal (not found, transition) is a failed request.
    return type(error) is StoreError


class AsyncStore:
    """``CallStore`` methods as coroutines: off the loop, with a deadline and bounded retries."""

    def __init__(
        self,
        store: CallStore,
        *,
        timeout: float = 2.0,
        attempts: int = 3,
        backoff: float = 0.1,
        threads: int = DEFAULT_THREADS,
    ) -> None:
        self.store = store
        self.timeout, self.attempts, self.backoff = timeout, attempts, backoff
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="callkit-store")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``method(*args, **kwargs)`` in a store thread; retries what may succeed on a second try.

        Each attempt has ``timeout`` seconds (a thread cannot be stopped: a late answer is dropped).
        Raises the last error (``TimeoutError`` after a timeout) once ``attempts`` are spent.
        """
        loop = asyncio.get_running_loop()
        call = functools.partial(method, *args, **kwargs)
        for attempt in range(1, self.attempts + 1):
            try:
                return await asyncio.wait_for(loop.run_in_executor(self._pool, call), self.timeout)
            except Exception as error:
                if attempt == self.attempts or not _retryable(error):
                    raise
            await asyncio.sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0))  # noqa: S311
        raise AssertionError("unreachable")

    async def get_call(self, call_id: str) -> CallRecord | None:
        return await self.run(self.store.get_call, call_id)

    async def claim_stream(self, call_id: str, stream_id: str, *, now: float) -> CallRecord:
        # Not retried after a timeout: the first attempt may have claimed it, and a second
        # attempt would be refused as a replay. One attempt, a clean refusal otherwise.
        return await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(
                self._pool, functools.partial(self.store.claim_stream, call_id, stream_id, now=now)
            ),
            self.timeout,
        )

    async def record_turn(self, turn: TurnRecord) -> None:
        await self.run(self.store.record_turn, turn)

    async def record_heard(self, call_id: str, turn: int, heard_text: str) -> None:
        await self.run(self.store.record_heard, call_id, turn, heard_text)
