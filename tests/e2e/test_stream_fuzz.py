"""Issue 14: a 10,000-frame fuzz of one call's media stream, beside a control call on the same runtime
(Twilio and Plivo, cascading and realtime).

The fuzzed call gets valid frames of its carrier mutated at random (truncated, values of the wrong
type, random bytes, huge numbers, missing fields, unknown events, nesting and size bombs),
interleaved with valid silent media, sent as fast as the socket takes them while the answer to its
caller's question plays. Then both callers ask their own question again: both calls answer, each
call's turns hold its own question (nothing crosses), and the runtime's loop is healthy (no
exception went unhandled, timers run on time, the webhook still answers). Seeded (``SEED`` and the
carrier): a failure reproduces.

Mutations that decode to a valid ``stop`` (the caller hanging up) or a valid keypad press (a turn
of its own) are left out, as is valid media loud enough to be speech: those are calls behaving as
they should, not bad input.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from callkit.carriers import carrier_format
from callkit.carriers._types import (
    PlayAudio,
    StreamCleared,
    StreamConnected,
    StreamDtmf,
    StreamMarkPlayed,
    StreamMedia,
    StreamStarted,
    StreamStopped,
)
from callkit.errors import ProtocolError
from callkit.stream.server import MALFORMED_LOGGED
from callkit.testing.deepgram import Segment
from callkit.testing.stream_client import SimulatedMediaStream, silence, speech
from callkit.testing.world import World, loopback_world

FRAMES = 10_000
SEED = 14
CALL_TASKS = {
    "inbound", "ticks", "deadline", "transcripts", "turn", "ending", "bookkeeping", "outbound", "tool", "action",
}  # fmt: skip

#: Values of the wrong type, or of the right type and absurd.
ODD_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1.5, "", "x", "-1", "1e400", "9" * 40, [], {}, [1, [2]], {"a": None},
    10**30, -(10**30), 2**63, 2**64, 1e308, "\u0000", "\ud7ff" * 50,
)  # fmt: skip
EVENT_NAMES: tuple[Any, ...] = (
    "media", "mark", "dtmf", "start", "stop", "connected", "playedStream", "played",
    "clearedAudio", "checkpoint", "", "MEDIA", "media ", None, 5, [], {},
)  # fmt: skip


def question(connection: int) -> str:
    return f"Where is my order {1001 + connection}?"


def heard(segment: Segment) -> str:
    """Whatever the recogniser hears on a call is that call's own question (the first call's order
    1001, the second's 1002): a line of one call in another call's turn would show."""
    return question(segment.connection)


def valid_frames(stream: SimulatedMediaStream) -> list[str]:
    """One valid frame of each kind the carrier sends, for this stream."""
    encode = carrier_format(stream.provider).encode_stream_event
    sid = stream.stream_id
    events: list[Any] = [
        StreamMedia(sid, silence(20), 20, 1, 2),
        StreamMarkPlayed(sid, "t1p1", 3),
        StreamDtmf(sid, "5", 4),
        StreamStarted(sid, stream.call_id, stream.account_id, "audio/x-mulaw", 8000, {"token": "x"}, 1),
        StreamStopped(sid, stream.call_id, 5),
    ]
    events.append(StreamConnected("Call", "1.0.0") if stream.provider == "twilio" else StreamCleared(sid, 6))
    return [encode(event) for event in events]


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a decoded JSON value (objects' keys and arrays' indexes), the root included."""
    paths = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += _leaves(item, (*path, index))
    return paths


def _set(root: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return root


def _delete(root: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return {}
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return root


def _text_noise(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 6)):
        index = rng.randrange(len(chars))
        chars[index] = chr(rng.choice((rng.randrange(0x20, 0x7F), rng.randrange(0, 0xD800))))
    return "".join(chars)


def mutate(rng: random.Random, text: str) -> tuple[str, str | bytes]:
    """One mutation of a valid frame: its kind and the frame (``bytes`` for a binary frame)."""
    kind = rng.choices(
        ["truncate", "noise", "bytes", "wrong-type", "huge-number", "missing", "event", "payload",
         "nested", "oversize", "valid"],
        weights=[12, 12, 6, 16, 10, 12, 10, 14, 2, 0.05, 6],
    )[0]  # fmt: skip
    if kind == "truncate":
        return kind, text[: rng.randrange(len(text))]
    if kind == "noise":
        return kind, _text_noise(rng, text)
    if kind == "bytes":
        data = rng.randbytes(rng.randrange(0, 400))
        return kind, data if rng.random() < 0.5 else data.decode("latin-1")
    if kind == "nested":
        depth = rng.randrange(17, 3000)
        opening, closing = ("[", "]") if rng.random() < 0.5 else ('{"a":', "}")
        return kind, '{"event":"media","media":' + opening * depth + "1" + closing * depth + "}"
    if kind == "oversize":
        return kind, text.replace("}", ',"pad":"' + "A" * (1 << 20) + '"}', 1)
    frame = json.loads(text)
    paths = _leaves(frame)
    if kind == "wrong-type":
        frame = _set(frame, rng.choice(paths), rng.choice(ODD_VALUES))
    elif kind == "huge-number":
        value = rng.choice((10**30, -(10**30), 2**63, 2**64 + 1, 1e308, -1, float("inf"), float("nan")))
        frame = _set(frame, rng.choice(paths[1:]), value)
    elif kind == "missing":
        frame = _delete(frame, rng.choice(paths))
    elif kind == "event" and isinstance(frame, dict):
        frame["event"] = rng.choice(EVENT_NAMES)
    elif kind == "payload" and isinstance(frame, dict) and isinstance(frame.get("media"), dict):
        audio = b"\xff" * rng.choice((0, 1, 79, 80, 159, 161, 320, 4000))
        encoded = base64.b64encode(audio).decode("ascii")
        frame["media"]["payload"] = rng.choice((encoded, encoded.rstrip("="), encoded + "!", "%%%", "===="))
    return kind, json.dumps(frame)  # NaN and Infinity come out as the invalid JSON they are


def _quiet(audio: bytes) -> bool:
    """μ-law bytes of the lowest magnitudes only (0x70-0x7F, 0xF0-0xFF): nothing that is speech."""
    return all((byte & 0x70) == 0x70 for byte in audio)


def fuzz_frames(stream: SimulatedMediaStream, rng: random.Random) -> tuple[list[str | bytes], Counter[str]]:
    """``FRAMES`` frames: mutations of valid ones, one in three a valid silent media frame."""
    decode = carrier_format(stream.provider).decode_stream_message
    templates = valid_frames(stream)
    frames: list[str | bytes] = []
    kinds: Counter[str] = Counter()
    while len(frames) < FRAMES:
        if rng.random() < 1 / 3:
            frames.append(stream.media_frame(silence(20)))
            kinds["silent-media"] += 1
            continue
        kind, frame = mutate(rng, rng.choice(templates))
        try:
            event = decode(frame)
        except ProtocolError:  # what the decoders turn every bad frame into; anything else fails here
            event = None
        if isinstance(event, StreamStopped | StreamDtmf) or (
            isinstance(event, StreamMedia) and not _quiet(event.audio)
        ):
            kinds["left-out"] += 1
            continue
        kinds[kind] += 1
        frames.append(frame)
    return frames, kinds


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.perf_counter() + limit
    while not condition() and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition(), "timed out"


def plays(stream: SimulatedMediaStream) -> int:
    return sum(isinstance(c, PlayAudio) for c in stream.received)


async def ask(world: World, call_id: str, stream: SimulatedMediaStream, asked: int | None) -> None:
    """The caller asks; the agent answers (audio plays) and, unless ``asked`` is ``None`` (a realtime
    call records a turn as the next begins), the ``asked``-th turn is recorded."""
    before = plays(stream)
    await stream.say(silence(300) + speech(700) + silence(900))
    await until(lambda: plays(stream) > before + 5, 15)
    if asked is not None:
        await until(
            lambda: len([t for t in world.store.list_turns(call_id) if t.kind == "prompt"]) >= asked, 10
        )


class MessageCount(logging.Handler):
    """Counts the records logged with one message."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message, self.count = message, 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += record.getMessage() == self.message


async def loop_lag(seconds: float = 1.0) -> float:
    """The worst lateness of a 10-ms timer over ``seconds``."""
    worst, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        worst = max(worst, time.perf_counter() - before - 0.01)
    return worst


@pytest.mark.parametrize("pipeline", ["cascading", "realtime"])
@pytest.mark.parametrize("provider", ["twilio", "plivo"])
def test_a_fuzzed_stream_beside_a_control_call(provider: str, pipeline: str) -> None:
    unhandled: list[dict[str, Any]] = []
    cascading = pipeline == "cascading"

    malformed_lines = MessageCount("stream message malformed")

    async def scenario() -> Counter[str]:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: unhandled.append(context))
        async with loopback_world(
            provider=provider,  # type: ignore[arg-type]
            pipeline=pipeline,  # type: ignore[arg-type]
            heard=heard,
            # FakeRealtime hears its lines in order over all calls: the fuzzed call's question
            # (its answer plays during the fuzz), the control call's (asked during the fuzz), then
            # the fuzzed call's and the control call's again.
            realtime=[f"Order {1001 + n} is on its way." for n in (0, 1, 0, 1)],
            realtime_heard=[question(0), question(1), question(0), question(1)],
        ) as world:
            calls = []
            for _ in range(2):  # one after the other: the fuzzed call is STT connection 0
                calls.append(await world.call())
                await until(lambda: plays(calls[-1].stream) > 0 and calls[-1].stream.queued_ms == 0)
            fuzzed, control = calls
            frames, kinds = fuzz_frames(fuzzed.stream, random.Random(f"{SEED}-{provider}"))

            async def fuzz() -> None:
                for index, frame in enumerate(frames):
                    await fuzzed.stream.send_raw(frame)
                    if index % 200 == 0:
                        await asyncio.sleep(0)  # the server reads as it goes
                    assert not fuzzed.stream.closed.is_set(), (
                        f"closed ({fuzzed.stream.close_code}) at {index}"
                    )

            # The fuzzed call's caller asks, and the fuzz runs as the answer plays; the control
            # call converses meanwhile.
            answered = plays(fuzzed.stream)
            await fuzzed.stream.say(silence(300) + speech(700) + silence(900))
            await asyncio.gather(
                fuzz(), ask(world, control.call_id, control.stream, 1 if cascading else None)
            )
            await until(lambda: plays(fuzzed.stream) > answered + 5, 10)
            await fuzzed.stream.say(silence(400), realtime=False)
            # The server read every frame: all the silent media reached the recogniser (the model).
            silent_ms = (kinds["silent-media"] + 20) * 20
            if cascading:
                await until(lambda: len(world.deepgram.connections[0].audio) >= silent_ms * 8, 10)
            else:
                await until(lambda: world.realtime.connections[0].audio_ms >= silent_ms, 10)
            assert not fuzzed.stream.closed.is_set(), f"closed ({fuzzed.stream.close_code})"
            if cascading:
                await asyncio.gather(
                    ask(world, fuzzed.call_id, fuzzed.stream, 2),
                    ask(world, control.call_id, control.stream, 2),
                )
            else:  # in the order FakeRealtime hears them
                await ask(world, fuzzed.call_id, fuzzed.stream, None)
                await ask(world, control.call_id, control.stream, None)
            assert await loop_lag() < 0.05, "the event loop is late"
            assert (
                await world.carrier.send(world.carrier.incoming_call(to=world.interface.phone_number))
            ).status == 200
            for call in (fuzzed, control):
                await call.stream.hang_up()
            await until(lambda: not [t for t in asyncio.all_tasks() if t.get_name() in CALL_TASKS], 5)
            # Each call's turns hold its own question, and (cascading) its own order's lookup.
            for number, call in enumerate((fuzzed, control)):
                turns = [t for t in world.store.list_turns(call.call_id) if t.kind == "prompt"]
                assert len(turns) == 2, [t.caller_text for t in turns]
                assert all(t.caller_text == question(number) for t in turns), [t.caller_text for t in turns]
                order = question(number).split()[-1].rstrip("?")
                for turn in turns:
                    if cascading:
                        tools = [m for m in json.loads(turn.messages) if m["role"] == "tool"]
                        assert tools and all(order in json.dumps(m) for m in tools), (order, tools)
                    else:
                        assert order in turn.assistant_text, (order, turn.assistant_text)
            # Thousands of malformed frames: all counted, the first few logged.
            counted = world.runtime.telemetry.metrics["StreamMessagesMalformed"]  # type: ignore[attr-defined]
            assert counted > FRAMES // 3, counted
            return kinds

    logging.getLogger().addHandler(malformed_lines)
    try:
        kinds = asyncio.run(scenario())
    finally:
        logging.getLogger().removeHandler(malformed_lines)
    assert 0 < malformed_lines.count <= MALFORMED_LOGGED, malformed_lines.count
    assert not unhandled, unhandled
    assert sum(kinds.values()) - kinds["left-out"] == FRAMES and kinds["nested"] > 50, kinds
