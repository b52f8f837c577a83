"""Issue 14: a provider's error text can quote what was said; it never reaches a log line.

The log scan itself is tests/e2e/conftest.py's ``log_scan`` (every end-to-end test): these tests
make the providers say things it must not find.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from callkit.carriers._types import PlayAudio
from callkit.testing.cartesia import FakeError
from callkit.testing.stream_client import silence, speech
from callkit.testing.world import loopback_world

QUESTION = "Where is my order 1001?"


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.perf_counter() + limit
    while not condition() and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition(), "timed out"


def test_a_tts_error_that_quotes_the_words_is_logged_by_status_and_code() -> None:
    """Cartesia refuses the answer with a message that quotes it (and the caller's question)."""
    quoting = FakeError(400, "invalid_transcript", "Invalid transcript", f'cannot speak "{QUESTION}"')

    async def scenario() -> None:
        async with loopback_world(
            heard=[QUESTION], cartesia={"error_on_context": 2, "error": quoting}
        ) as world:
            call = await world.call()
            await until(lambda: any(isinstance(c, PlayAudio) for c in call.stream.received))
            await call.stream.say(silence(300) + speech(700) + silence(900))
            await until(lambda: len(world.api.hangups) == 1, 15)  # the apology, by the carrier
            await call.stream.hang_up()

    asyncio.run(scenario())
