"""Demo part 3: a cascading call (Twilio Media Streams ↔ Deepgram → agent → Cartesia) with a barge-in.

The simulated Twilio streams real μ-law audio in real time; Deepgram, Cartesia and the model are
the loopback fakes of ``callkit.testing`` (no keys), the call state is in memory. The caller asks
about an order (a tool turn), asks for the opening hours and talks over the long answer (the
agent stops: ``clear`` is sent, the Cartesia context cancelled, the history cut to what was
played), presses a key, and hangs up.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from callkit.carriers._types import ClearAudio, PlayAudio
from callkit.llm.protocol import Message, UserMessage
from callkit.store.memory import MemoryCallStore
from callkit.testing.openai_chat import Reply, TextReply, support_script
from callkit.testing.stream_client import silence, speech
from callkit.testing.world import loopback_world

SAID = ["Where is my order 1001?", "What are your opening hours?", "Wait, are you open on Sundays?"]
HOURS = (
    "We are open from nine until six on weekdays, from ten until four on Saturdays, and closed on Sundays."
)


def script(messages: Sequence[Message]) -> Reply:
    last = messages[-1] if messages else None
    text = last.content if isinstance(last, UserMessage) else ""
    if "hours" in text:
        return TextReply(HOURS)
    if "Sundays" in text:
        return "No, we're closed on Sundays."
    return support_script(messages)


async def _until(condition: object, limit: float = 10.0) -> bool:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        if condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return False


async def run_cascading(out: TextIO = sys.stdout) -> int:
    failures: list[str] = []

    def expect(condition: bool, what: str) -> None:
        if not condition:
            out.write(f"   FAIL {what}\n")
            failures.append(what)

    store = MemoryCallStore()
    async with loopback_world(
        store=store,
        chat=script,
        heard=SAID,
        cartesia={"chunk_delay": 0.03},  # about real time, so a barge-in lands mid-synthesis
        welcome_message="Hello! Thanks for calling Acme Shop.",
        interrupt_sensitivity="high",
    ) as world:
        out.write(
            "\n━━ a cascading call (Media Streams → Deepgram → agent → Cartesia), all fakes on loopback\n"
        )
        call = await world.call()
        call_id, stream, cartesia = call.call_id, call.stream, world.cartesia
        out.write(
            f"   Twilio opens {stream.url} with the stream token; the server admits and claims the call\n"
        )
        expect(await _until(lambda: stream.heard_ms > 0), "the greeting plays")
        await stream.say(silence(400))
        await _until(lambda: stream.queued_ms == 0, 10)
        await stream.say(silence(300))
        out.write(f"   caller hears the greeting ({stream.heard_ms:.0f} ms of audio)\n")
        await stream.say(speech(800) + silence(900))
        await _until(lambda: stream.queued_ms > 0, 5)
        await _until(lambda: stream.queued_ms == 0, 15)
        await stream.say(speech(800) + silence(900))
        expect(await _until(lambda: stream.queued_ms > 800, 10), "the long answer starts playing")
        onset = time.perf_counter()
        clears = stream.clears
        await stream.say(speech(300))
        cut = await _until(lambda: stream.clears > clears, 5)
        expect(cut, "the caller's speech cut the agent off")
        if cut:
            out.write(
                f"   caller talks over the answer: clear sent {1000 * (stream.clear_times[-1] - onset):.0f} ms "
                "after the caller started speaking\n"
            )
        await stream.say(speech(500) + silence(900))
        await _until(lambda: stream.queued_ms > 0, 5)
        await _until(lambda: stream.queued_ms == 0, 15)
        await stream.press("1")
        await stream.say(silence(1500))
        await stream.hang_up()
        await _until(
            lambda: any(t.kind == "dtmf" for t in store.list_turns(call_id)), 5
        )  # the last turn, kept
        turns = store.list_turns(call_id)
        out.write("   saved turns (kind, caller, agent as heard, first audio):\n")
        for turn in turns:
            said = (
                turn.heard_text if turn.interrupted and turn.heard_text is not None else turn.assistant_text
            )
            first = f"{turn.first_token_ms:.0f} ms" if turn.first_token_ms is not None else "-"
            cut_mark = "  ✂ cut here" if turn.interrupted else ""
            out.write(
                f"     #{turn.turn} {turn.kind:7s} {turn.caller_text[:34]!r:36s} {said.strip()[:60]!r}{cut_mark}  {first}\n"
            )
        tools = [m for t in turns for m in json.loads(t.messages) if m.get("role") == "tool"]
        expect(bool(tools), "the order tool ran")
        expect(any(t.interrupted for t in turns), "the interrupted answer is cut in the history")
        cancelled = [c for c in cartesia.contexts().values() if c.cancelled]
        expect(bool(cancelled), "the TTS context was cancelled")
        expect(any(isinstance(c, ClearAudio) for c in stream.received), "clear was sent")
        plays = sum(isinstance(c, PlayAudio) for c in stream.received)
        out.write(
            f"   {plays} audio pieces of 40 ms with marks; one Deepgram and one Cartesia socket for the call\n"
        )
    return 1 if failures else 0
