"""Issue 14: no single frame ends a call. Bad frames arrive on the media WebSocket of a live call
(Twilio and Plivo, cascading and realtime); the caller then asks a question, the agent answers, and
the caller's hang-up ends the call.

The decoders are total (``callkit/carriers/_frames.py``, fuzzed in the unit tests); these prove it
end to end: the frame goes through the server's socket, the pipeline's inbound loop and whatever
the frame turns into (odd audio to the speech detector and the recogniser, or a skipped frame).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from callkit.carriers import carrier_format
from callkit.carriers._types import PlayAudio, StreamDtmf
from callkit.testing.stream_client import SimulatedMediaStream, silence, speech
from callkit.testing.world import loopback_world

QUESTION = "Where is my order 1001?"
ANSWER = "Order 1001 shipped on Monday and arrives tomorrow."
#: The tasks of a call (``callkit.call``, ``callkit.stream``): none is left once it has ended.
CALL_TASKS = {"inbound", "ticks", "deadline", "transcripts", "turn", "ending", "bookkeeping", "outbound"}


def nested(levels: int) -> str:
    """A ``start`` frame nested ``levels`` deep (about 4 KB at 2,000 levels)."""
    return '{"event":"start","start":' + '{"a":' * levels + "1" + "}" * levels + "}"


def dtmf(stream: SimulatedMediaStream, digit: str) -> str:
    return carrier_format(stream.provider).encode_stream_event(StreamDtmf(stream.stream_id, digit, 1))


#: Each bad frame, as made for a connected stream.
BAD_FRAMES: dict[str, Callable[[SimulatedMediaStream], str | bytes]] = {
    "media-320-bytes": lambda s: s.media_frame(b"\xff" * 320),
    "media-80-bytes": lambda s: s.media_frame(b"\xff" * 80),
    "media-empty": lambda s: s.media_frame(b""),
    "media-odd-length": lambda s: s.media_frame(b"\xff" * 161),
    "nested-2000-levels": lambda s: nested(2000),
    "binary": lambda s: b'{"event":"media"}' + bytes(range(256)),
    "1-MB": lambda s: s.media_frame(b"\xff" * 786_432),
    "dtmf-5000-chars": lambda s: dtmf(s, "5" * 5000),
}


async def until(condition: Callable[[], bool], limit: float = 10.0, what: str = "") -> None:
    deadline = time.perf_counter() + limit
    while not condition() and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition(), f"timed out: {what}"


def plays(stream: SimulatedMediaStream) -> int:
    return sum(isinstance(c, PlayAudio) for c in stream.received)


async def bad_frame_then_question(provider: str, pipeline: str, case: str) -> None:
    """One call of ``provider`` and ``pipeline`` gets the bad frame, then its caller asks and hangs up."""
    async with loopback_world(
        provider=provider,  # type: ignore[arg-type]
        pipeline=pipeline,  # type: ignore[arg-type]
        heard=[QUESTION],
        realtime=[ANSWER],
        realtime_heard=[QUESTION],
    ) as world:
        call = await world.call()
        stream, store, call_id = call.stream, world.store, call.call_id
        await until(lambda: plays(stream) > 0 and stream.queued_ms == 0, what="the greeting")
        await stream.send_raw(BAD_FRAMES[case](stream))
        await stream.say(silence(100), realtime=False)
        assert not stream.closed.is_set(), f"the server closed the stream ({stream.close_code})"
        before = plays(stream)
        await stream.say(silence(300) + speech(700) + silence(900))
        await until(lambda: plays(stream) > before + 5, 10, "an answer")

        await stream.hang_up()

        # The call ended: none of its tasks is left (this world's loop holds no other call).
        def left() -> list[str]:
            return [t.get_name() for t in asyncio.all_tasks() if t.get_name() in CALL_TASKS]

        await until(lambda: not left(), 5, "the call's end")
        # The turn is the question (a realtime call records its last turn as it ends).
        turns = [(t.kind, t.caller_text) for t in store.list_turns(call_id) if t.kind != "welcome"]
        assert turns == [("prompt", QUESTION)], turns  # and no keypad turn


@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_a_bad_frame_mid_call_does_not_stop_the_call(case: str) -> None:
    """Each carrier and pipeline at once, a world and an event loop each (four take the time of one)."""
    combinations = [(p, q) for p in ("twilio", "plivo") for q in ("cascading", "realtime")]
    with ThreadPoolExecutor(len(combinations)) as pool:
        runs = {
            f"{p}-{q}": pool.submit(asyncio.run, bad_frame_then_question(p, q, case)) for p, q in combinations
        }
    failed = {name: repr(run.exception()) for name, run in runs.items() if run.exception() is not None}
    assert not failed, failed
