"""The realtime pipeline: the carrier's μ-law audio ↔ OpenAI Realtime (GA), speech to speech.

One admitted stream, one Realtime session (docs/architecture.md §1.2). μ-law passes through untouched both ways
(``audio/pcmu``); the server's VAD (``turn_detection`` from ``interrupt_sensitivity``) takes turns.
What this module adds (docs/protocols/ai-providers.md §3.5):

- the agent's instructions and tools in ``session.update``; tool calls run through the Agent's
  own ``Tool.invoke``; after all outputs of a response, exactly one ``response.create``
  (``ResponseGate``: never two in flight);
- playback tracking: every audio delta goes to the carrier followed by a mark; a played mark says
  how many milliseconds of that item the caller heard;
- barge-in per ``interruptible``: on ``speech_started`` while audio is queued, ``clear`` /
  ``clearAudio`` and ``conversation.item.truncate`` at the milliseconds actually played;
- the welcome message spoken by the model in its own voice; DTMF as a user message; transcripts of
  both sides saved per turn; ``max_call_duration_seconds``; a failed session ends the call with
  the carrier's own apology (Twilio ``<Say>`` inline, Plivo ``<Speak>`` from the webhook).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callkit.carriers._types import StreamDtmf, StreamMarkPlayed, StreamMedia, StreamStopped
from callkit.errors import CallkitError, ServiceError
from callkit.store._base import TurnRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    from callkit.net.http1 import HTTPClient
    from callkit.store._base import CallStore
    from callkit.stream.admission import Admitted
    from callkit.stream.server import StreamLink
    from callkit.switchboard import Credentials
    from callkit.telemetry import Telemetry

APOLOGY = "Sorry, we're having technical trouble and have to end the call. Please call back later. Goodbye."
GOODBYE = "We've reached the time limit for this call. Thank you for calling, goodbye."


@dataclass
class _Item:
    """One assistant audio item: what was sent and what the caller heard of it."""

    item_id: str
    sent_ms: float = 0.0
    played_ms: float = 0.0
    transcript: str = ""


@dataclass
class _Turn:
    number: int
    caller: str = ""
    items: list[_Item] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    first_audio_ms: float | None = None
    interrupted: bool = False


class RealtimeCall:
    """Holds one realtime call from admission to hang-up."""

    def __init__(
        self,
        *,
        store: CallStore,
        telemetry: Telemetry,
        credentials: Credentials,
        http: HTTPClient,
        public_url: str = "",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.public_url = public_url  # where Plivo fetches the apology when the session fails
        self.store = store
        self.telemetry = telemetry
        self.credentials = credentials
        self.http = http
        self._clock = clock
        self._wall = wall
        self._ended = asyncio.Event()
        self._items: dict[str, _Item] = {}
        self._marks: dict[str, tuple[str, float]] = {}
        self._queued: set[str] = set()
        self._turn: _Turn | None = None
        self._marks_sent = 0

    async def run(self, admitted: Admitted, link: StreamLink) -> None:
        from callkit.realtime.openai_protocol import session_update

        self.admitted, self.link = admitted, link
        self.carrier, self.stream_id = admitted.carrier, admitted.start.stream_id
        interface = admitted.interface
        assert interface.realtime is not None and interface.agent is not None  # CallInterface checks
        self.agent = interface.agent
        self.session = interface.realtime.session()
        update = session_update(
            interface.realtime,
            instructions=self.agent.instructions,
            tools=[t.realtime_schema() for t in self.agent.tools.values()],
            interrupt_sensitivity=interface.interrupt_sensitivity,
            interruptible=interface.interruptible,
        )
        tasks: list[asyncio.Task[None]] = []
        try:
            await self.session.connect(update)
            from callkit.realtime.openai_session import ResponseGate

            self.gate = ResponseGate(self.session)
            tasks = [
                asyncio.create_task(self._inbound()),
                asyncio.create_task(self._outbound()),
                asyncio.create_task(
                    self._deadline(admitted.call.created_at + interface.max_call_duration_seconds)
                ),
            ]
            if interface.welcome_message:
                self._new_turn("")
                await self.gate.request(
                    instructions=f'Greet the caller by saying exactly: "{interface.welcome_message}"'
                )
            await self._ended.wait()
        except ServiceError:
            self.telemetry.error("the realtime session failed", exc_info=True)
            await self._fail()
        finally:
            for task in tasks:
                task.cancel()
            self._save_turn()
            with contextlib.suppress(Exception):
                await self.session.close()

    # --- caller → model -----------------------------------------------------------------------

    async def _inbound(self) -> None:
        from callkit.realtime.openai_protocol import append_audio
        from callkit.stream.server import carrier_events

        async for event in carrier_events(self.link, self.carrier, self.telemetry):
            if isinstance(event, StreamMedia):
                await self.session.send(append_audio(base64.b64encode(event.audio).decode("ascii")))
            elif isinstance(event, StreamMarkPlayed):
                self._played(event.name)
            elif isinstance(event, StreamDtmf):
                await self._dtmf(event.digit)
            elif isinstance(event, StreamStopped):
                break
        self._ended.set()

    def _played(self, mark: str) -> None:
        self._queued.discard(mark)
        known = self._marks.pop(mark, None)
        if known is not None:
            item = self._items.get(known[0])
            if item is not None:
                item.played_ms = max(item.played_ms, known[1])

    async def _dtmf(self, digit: str) -> None:
        from callkit.realtime.openai_protocol import user_text

        if self.admitted.interface.interruptible in ("dtmf", "any") and self._queued:
            await self._barge_in(cancel=True)
        # The digit reaches the model as words; it never reaches a log line.
        text = f"(The caller pressed {digit} on the keypad.)"
        self._save_turn()
        self._new_turn(text)
        await self.session.send(user_text(text))
        await self.gate.request()

    # --- model → caller -----------------------------------------------------------------------

    async def _outbound(self) -> None:
        from callkit.realtime.openai_protocol import (
            AudioDelta,
            FunctionCall,
            InputTranscript,
            RealtimeError,
            SpeechStarted,
            TranscriptDone,
        )

        try:
            async for event in self.session.events():
                # The gate sees every event: the server starts responses itself (server VAD with
                # create_response), and a DTMF request must not overlap one of those.
                await self.gate.observe(event)
                if isinstance(event, AudioDelta):
                    await self._play(event.item_id, event.audio_b64)
                elif isinstance(event, SpeechStarted):
                    if self._queued and self.admitted.interface.interruptible in ("speech", "any"):
                        await self._barge_in(cancel=False)
                    self._save_turn()
                    self._new_turn("")
                elif isinstance(event, InputTranscript):
                    if self._turn is not None and not self._turn.caller:
                        self._turn.caller = event.transcript
                elif isinstance(event, TranscriptDone):
                    item = self._items.get(event.item_id)
                    if item is not None:
                        item.transcript = event.transcript
                elif isinstance(event, FunctionCall):
                    await self._run_tool(event)
                elif isinstance(event, RealtimeError):
                    self.telemetry.warning("realtime error event", code=event.code)
        except ServiceError:
            self.telemetry.error("the realtime session dropped", exc_info=True)
            await self._fail()

    async def _play(self, item_id: str, audio_b64: str) -> None:
        audio = base64.b64decode(audio_b64)
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item(item_id)
            if self._turn is not None:
                self._turn.items.append(item)
        item.sent_ms += len(audio) / 8  # μ-law 8 kHz: 8 bytes a millisecond
        if self._turn is not None and self._turn.first_audio_ms is None:
            self._turn.first_audio_ms = (self._clock() - self._turn.started) * 1000
        self._marks_sent += 1
        mark = f"r{self._marks_sent}"
        self._marks[mark] = (item_id, item.sent_ms)
        self._queued.add(mark)
        await self._send(self.carrier.encode_play_audio(self.stream_id, audio))
        await self._send(self.carrier.encode_mark(self.stream_id, mark))

    async def _barge_in(self, *, cancel: bool) -> None:
        from callkit.realtime.openai_protocol import response_cancel, truncate

        await self._send(self.carrier.encode_clear(self.stream_id))
        self.telemetry.count("BargeIns")
        for item in list(self._items.values()):
            if item.played_ms < item.sent_ms:  # the item the caller was hearing: cut it where they were
                await self.session.send(truncate(item.item_id, int(item.played_ms)))
                if self._turn is not None:
                    self._turn.interrupted = True
                item.sent_ms = item.played_ms
        self._marks.clear()
        self._queued.clear()
        if cancel:
            await self.session.send(response_cancel())

    async def _run_tool(self, call: Any) -> None:
        from callkit.agent import ToolArgumentsError
        from callkit.realtime.openai_protocol import function_call_output

        tool = self.agent.tools.get(call.name)
        started = self._clock()
        try:
            if tool is None:
                raise ToolArgumentsError(f"no tool named {call.name}")
            result = await tool.invoke(call.arguments)
            output = result if isinstance(result, str) else json.dumps(result, default=str)
            if hasattr(result, "describe"):  # a call-control action
                output = result.describe()
        except Exception as error:
            output = f"Error: {type(error).__name__}"
        if self._turn is not None:
            self._turn.tools.append(
                {
                    "name": call.name,
                    "arguments": call.arguments,
                    "result": output,
                    "seconds": round(self._clock() - started, 4),
                }
            )
        await self.session.send(function_call_output(call.call_id, output))
        self.gate.tool_output()  # one response.create after all outputs of the response

    # --- turns and ending ---------------------------------------------------------------------

    def _new_turn(self, caller: str) -> None:
        number = self.store.next_turn(self.admitted.call.call_id, now=self._wall())
        self._turn = _Turn(number, caller=caller, started=self._clock())

    def _save_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is None or (not turn.items and not turn.caller):
            return
        said = " ".join(i.transcript for i in turn.items if i.transcript)
        heard = None
        if turn.interrupted:
            parts = []
            for item in turn.items:  # what was played, in proportion to the item's transcript
                share = item.played_ms / item.sent_ms if item.sent_ms else 1.0
                parts.append(item.transcript[: int(len(item.transcript) * min(1.0, share))])
            heard = " ".join(p for p in parts if p)
        wire = ([{"role": "user", "content": turn.caller}] if turn.caller else []) + (
            [{"role": "assistant", "content": heard if heard is not None else said}] if said else []
        )
        with contextlib.suppress(CallkitError):
            self.store.record_turn(
                TurnRecord(
                    call_id=self.admitted.call.call_id,
                    turn=turn.number,
                    kind="dtmf" if turn.caller.startswith("(The caller pressed") else "prompt",
                    caller_text=turn.caller,
                    assistant_text=said,
                    messages=json.dumps(wire),
                    tool_calls=json.dumps(turn.tools),
                    started_at=self._wall(),
                    first_token_ms=turn.first_audio_ms,
                    total_ms=(self._clock() - turn.started) * 1000,
                    expires_at=self.admitted.call.expires_at,
                )
            )
            if heard is not None:
                self.store.interrupt_turn(self.admitted.call.call_id, heard, now=self._wall())

    async def _deadline(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - self._wall()))
        self.telemetry.info("call reached its maximum duration")
        self.telemetry.count("MaxDurationReached")
        if self._queued:
            await self._barge_in(cancel=True)
        self._save_turn()
        self._new_turn("")
        await self.gate.request(instructions=f'Say exactly: "{GOODBYE}" and nothing else.')
        await asyncio.sleep(0.5)
        while self._queued:  # noqa: ASYNC110 - marks arrive from the carrier, polled on the call's pace
            await asyncio.sleep(0.05)
        await self._hang_up("max-duration")

    async def _fail(self) -> None:
        """The model is gone: the carrier speaks the apology and hangs up."""
        from callkit.stream.hangup import apologise_and_hang_up

        interface = self.admitted.interface
        self.telemetry.count("ProviderFailures")
        with contextlib.suppress(CallkitError):
            await apologise_and_hang_up(
                self.http,
                interface,
                self.admitted.call.call_id,
                APOLOGY,
                auth_token=self.credentials.auth_token(interface),
                public_url=self.public_url,
            )
        self._ended.set()

    async def _hang_up(self, reason: str) -> None:
        from callkit.stream.hangup import end_call

        await end_call(
            self.http,
            self.admitted.interface,
            self.admitted.call.call_id,
            credentials=self.credentials,
            telemetry=self.telemetry,
        )
        self.telemetry.info("realtime call ended", reason=reason)
        self._ended.set()

    async def _send(self, text: str) -> None:
        with contextlib.suppress(Exception):
            await self.link.send(text)
