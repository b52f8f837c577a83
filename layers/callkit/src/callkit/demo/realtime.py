"""Demo part 4: a realtime call (Media Streams ↔ OpenAI Realtime, speech to speech) with a tool and
a barge-in. The Realtime server is the loopback fake of ``callkit.testing`` (GA protocol, no key)."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from callkit.carriers._types import PlayAudio
from callkit.demo.cascading import _until
from callkit.store.memory import MemoryCallStore
from callkit.testing.openai_realtime import ToolCall
from callkit.testing.stream_client import silence, speech
from callkit.testing.world import loopback_world

HOURS = (
    "We are open from nine until six on weekdays, from ten until four on Saturdays, and closed on Sundays."
)


async def run_realtime(out: TextIO = sys.stdout) -> int:
    failures: list[str] = []

    def expect(condition: bool, what: str) -> None:
        if not condition:
            out.write(f"   FAIL {what}\n")
            failures.append(what)

    store = MemoryCallStore()
    script: list[str | ToolCall] = [
        ToolCall("check_order", json.dumps({"order_id": "1001"})),
        "Order 1001 shipped on Monday.",
        HOURS,
    ]
    heard = ["Where is my order 1001?", "What are your opening hours?"]
    async with loopback_world(
        pipeline="realtime",
        store=store,
        realtime=script,
        realtime_heard=heard,
        welcome_message="Hello! Thanks for calling Acme Shop.",
    ) as world:
        out.write(
            "\n━━ a realtime call (Media Streams ↔ OpenAI Realtime GA, speech to speech), fake model on loopback\n"
        )
        call = await world.call()
        call_id, stream, realtime = call.call_id, call.stream, world.realtime
        expect(await _until(lambda: stream.heard_ms > 0), "the greeting plays in the model's voice")
        await _until(lambda: stream.queued_ms == 0, 10)
        await stream.say(speech(700) + silence(900))
        await _until(lambda: stream.queued_ms > 0, 10)
        await _until(lambda: stream.queued_ms == 0, 10)
        await stream.say(speech(700) + silence(900))
        expect(await _until(lambda: stream.queued_ms > 1500, 10), "the long answer starts playing")
        onset = time.perf_counter()
        await stream.say(speech(500))
        cut = await _until(lambda: stream.clears > 0, 5)
        expect(cut, "the caller's speech cut the model off")
        if cut:
            out.write(
                f"   caller talks over the answer: clear sent {1000 * (stream.clear_times[-1] - onset):.0f} ms later\n"
            )
        await stream.say(silence(600))
        await stream.hang_up()
        await _until(lambda: any(t.interrupted for t in store.list_turns(call_id)), 5)  # the last turn, kept
        connection = realtime.connections[0]
        update = connection.session_update or {}
        out.write(
            f"   session.update (GA): voice {update.get('session', {}).get('audio', {}).get('output', {}).get('voice')!r}, "
            f"audio/pcmu both ways, {len(update.get('session', {}).get('tools', []))} tools\n"
        )
        for item_id, ms in connection.truncations:
            out.write(f"   conversation.item.truncate {item_id} at {ms} ms actually played\n")
        expect(bool(connection.truncations), "the answer was truncated at what was played")
        expect(connection.conflicts == 0, "never two responses at once")
        for turn in store.list_turns(call_id):
            tools = [t["name"] for t in json.loads(turn.tool_calls)]
            said = (
                turn.heard_text if turn.interrupted and turn.heard_text is not None else turn.assistant_text
            )
            first = f"{turn.first_token_ms:.0f} ms" if turn.first_token_ms is not None else "-"
            cut_mark = "  ✂" if turn.interrupted else ""
            out.write(
                f"     #{turn.turn} {turn.caller_text[:30]!r:32s} {said.strip()[:56]!r}{cut_mark} {tools or ''} {first}\n"
            )
        plays = sum(isinstance(c, PlayAudio) for c in stream.received)
        out.write(f"   {plays} audio deltas passed through as μ-law, each followed by a mark\n")
    return 1 if failures else 0
