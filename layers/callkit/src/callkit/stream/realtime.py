"""The realtime pipeline: the carrier's μ-law audio ↔ OpenAI Realtime (GA), speech to speech.

One admitted stream, one Realtime session. μ-law passes through untouched both ways
(``audio/pcmu``); the server's VAD (``turn_detection`` from ``interrupt_sensitivity``) takes turns.
This module supplies the pipeline's voice (the model's) and transport; the per-call policy is the
call core's (``callkit.call``):

- the agent's instructions and tools in ``session.update``; the tool calls of a response that
  completed run through the shared runner (``callkit.call.tools``) in tasks of the call (never
  those of a response cut off), a failed response is asked again once, and after all outputs of a response
  exactly one ``response.create`` (``ResponseGate``); a tool's ``EndCall`` or ``Transfer`` is
  performed by the call's ending once the model's closing words have played;
- playback tracking: every audio delta goes to the carrier followed by a mark; a played mark says
  how many milliseconds of that item the caller heard; a lost mark is waited for only until the
  audio sent should have finished playing;
- barge-in per ``interruptible``: on ``speech_started`` while audio is queued, ``clear`` /
  ``clearAudio`` and ``conversation.item.truncate`` at the milliseconds actually played; the
  turn keeps the share of the transcript heard, cut on a word;
- the welcome and the closing words are spoken by the model in its own voice; a session that
  fails ends the call with the carrier speaking the apology (Twilio ``<Say>``, Plivo ``<Speak>``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from callkit.actions import EndCall
from callkit.call.carrier import CarrierRest
from callkit.call.core import CallCore, HeldAudio
from callkit.call.ending import AgentEnded, CallerHungUp, Failed, TransferRequested
from callkit.call.heard import heard_share
from callkit.call.tools import run_tool
from callkit.call.turns import TurnLog
from callkit.carriers._types import StreamDtmf, StreamMarkPlayed, StreamMedia, StreamStopped
from callkit.errors import CallkitError, ServiceError

if TYPE_CHECKING:
    from collections.abc import Callable

    from callkit.actions import Action
    from callkit.net.http1 import HTTPClient
    from callkit.realtime.openai_protocol import FunctionCall, ResponseDone
    from callkit.realtime.openai_session import OpenAIRealtimeSession
    from callkit.settings import Settings
    from callkit.store._base import TurnKind
    from callkit.store.aio import AsyncStore
    from callkit.stream.admission import Admitted
    from callkit.stream.server import StreamLink
    from callkit.switchboard import Credentials
    from callkit.telemetry import Telemetry

#: After the audio sent should have finished playing, a mark still missing is taken as lost.
MARK_GRACE_SECONDS: Final = 1.5
#: The caller finished speaking (or we asked for a response) and the session has not started one
#: for this long: it has stalled, and the carrier speaks the apology.
RESPONSE_STALL_SECONDS: Final = 5.0
#: A failed response (``response.done`` ``failed``) is asked again this many times, then the call ends.
RESPONSE_RETRIES: Final = 1
#: The model's closing words may take their spoken length (about 65 ms a character) plus this.
SPEAK_SLACK_SECONDS: Final = 6.0


@dataclass
class _Item:
    """One assistant audio item: what was sent and what the caller heard of it."""

    item_id: str
    sent_ms: float = 0.0
    played_ms: float = 0.0
    transcript: str = ""


@dataclass
class _Turn:
    log: TurnLog
    items: list[_Item] = field(default_factory=list)
    interrupted: bool = False


class RealtimeCall:
    """Holds one realtime call from admission to hang-up."""

    def __init__(
        self,
        *,
        store: AsyncStore,
        telemetry: Telemetry,
        credentials: Credentials,
        http: HTTPClient,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings  # the carriers' API URLs; the public URL Plivo fetches XML from
        self.store = store
        self.telemetry = telemetry
        self.credentials = credentials
        self.http = http
        self._clock = clock
        self._wall = wall
        self._items: dict[str, _Item] = {}
        self._marks: dict[str, tuple[str, float]] = {}
        self._queued: set[str] = set()
        self._played = asyncio.Event()  # set while no mark of ours is pending
        self._play_until = 0.0  # when the audio sent should have finished playing (clock)
        self._turn: _Turn | None = None
        self._numbers = 0
        self._marks_sent = 0
        self._tools_running = 0
        self._action: Action | None = None  # a tool's call-control action, performed after its words
        self._response_done = asyncio.Event()
        self._last_status = "completed"
        self._closing = False  # our closing words are playing: no barge-in, no new tools
        self._awaiting: float | None = None  # since when a response is owed to the caller (clock)
        self._retries = 0  # failed responses asked again for this turn
        self._session_ok = False  # the Realtime session is up
        self._held = HeldAudio()  # the caller's audio while the session connects
        self.session: OpenAIRealtimeSession  # made in _connect; used only while _session_ok

    async def run(self, admitted: Admitted, link: StreamLink) -> None:
        self.admitted, self.link = admitted, link
        self.carrier, self.stream_id = admitted.carrier, admitted.start.stream_id
        interface = admitted.interface
        assert interface.realtime is not None and interface.agent is not None  # CallInterface checks
        self.agent = interface.agent
        core = CallCore(
            call=admitted.call,
            interface=interface,
            voice=self,
            carrier=CarrierRest(self.http, interface, admitted.call.call_id, self.credentials, self.settings),
            store=self.store,
            telemetry=self.telemetry,
            voice_tasks=("outbound",),  # the model's voice is its session
            wall=self._wall,
        )
        self.tasks, self.books, self.ending, self.phrases = core.tasks, core.books, core.ending, core.phrases
        self._played.set()
        try:
            self.tasks.spawn(self._inbound(), name="inbound")
            core.start()
            await self._connect()
            await self.ending.ended.wait()
        finally:
            self._save_turn()
            await core.close()
            if hasattr(self, "session"):
                with contextlib.suppress(Exception):
                    await self.session.close()
            self.telemetry.info("realtime call ended", reason=self.ending.reason or "stream closed")

    async def _connect(self) -> None:
        """Open the session; one that cannot be had (down, a key missing or refused) ends the call
        with the carrier speaking the apology."""
        from callkit.realtime.openai_protocol import append_audio, session_update
        from callkit.realtime.openai_session import ResponseGate

        interface = self.admitted.interface
        assert interface.realtime is not None
        try:
            self.session = interface.realtime.session()
            await self.session.connect(
                session_update(
                    interface.realtime,
                    instructions=self.agent.instructions,
                    tools=[t.realtime_schema() for t in self.agent.tools.values()],
                    interrupt_sensitivity=interface.interrupt_sensitivity,
                    interruptible=interface.interruptible,
                )
            )
        except CallkitError as error:
            self._held.release()
            self.telemetry.error("the realtime session failed", reason=type(error).__name__)
            self.telemetry.count("ProviderFailures")
            self.ending.trigger(Failed("realtime", voice_works=False))
            return
        self.gate = ResponseGate(self.session)
        self._session_ok = True
        self.tasks.spawn(self._watch_responses(), name="watchdog")
        # What the caller said while we connected is not lost, and stays in order (frames arriving
        # meanwhile are held too, until none is left).
        with contextlib.suppress(ServiceError):  # a dropped session ends the call in _outbound
            while held := self._held.take():
                await self.session.send(append_audio(base64.b64encode(b"".join(held)).decode("ascii")))
        self._held.release()
        self.tasks.spawn(self._outbound(), name="outbound")
        if welcome := self.admitted.interface.welcome_message:
            self._new_turn("", kind="welcome")
            await self.gate.request(instructions=f'Greet the caller by saying exactly: "{welcome}"')

    # --- caller → model -----------------------------------------------------------------------

    async def _inbound(self) -> None:
        from callkit.realtime.openai_protocol import append_audio
        from callkit.stream.server import carrier_events

        async for event in carrier_events(self.link, self.carrier, self.telemetry):
            if isinstance(event, StreamMedia):
                if self._held.holding:  # still connecting
                    self._held.hold(event.audio)
                elif self._session_ok:
                    with contextlib.suppress(ServiceError):  # a dropped session ends the call in _outbound
                        await self.session.send(append_audio(base64.b64encode(event.audio).decode("ascii")))
            elif isinstance(event, StreamMarkPlayed):
                self._mark_played(event.name)
            elif isinstance(event, StreamDtmf):
                await self._dtmf(event.digit)
            elif isinstance(event, StreamStopped):
                break
        self.ending.trigger(CallerHungUp())

    def _mark_played(self, mark: str) -> None:
        self._queued.discard(mark)
        if not self._queued:
            self._played.set()
        known = self._marks.pop(mark, None)
        if known is not None:
            item = self._items.get(known[0])
            if item is not None:
                item.played_ms = max(item.played_ms, known[1])

    async def _dtmf(self, digit: str) -> None:
        from callkit.realtime.openai_protocol import user_text

        if not self.ending.live or not hasattr(self, "gate"):
            return
        if self.admitted.interface.interruptible in ("dtmf", "any") and self._queued:
            await self._barge_in(cancel=True)
        text = self.phrases.keypad_text(digit)  # the digit reaches the model as words, never a log line
        self._save_turn()
        self._new_turn(text, kind="dtmf")
        await self.session.send(user_text(text))
        self._awaiting = self._clock()
        await self.gate.request()

    # --- model → caller -----------------------------------------------------------------------

    async def _outbound(self) -> None:
        from callkit.realtime.openai_protocol import (
            AudioDelta,
            InputTranscript,
            RealtimeError,
            ResponseCreated,
            ResponseDone,
            SpeechStarted,
            SpeechStopped,
            TranscriptDone,
        )

        try:
            async for event in self.session.events():
                # The gate sees every event: the server starts responses itself (server VAD with
                # create_response), and a DTMF request must not overlap one of those.
                await self.gate.observe(event)
                if isinstance(event, AudioDelta | ResponseCreated):
                    self._awaiting = None  # the session is answering
                if isinstance(event, AudioDelta):
                    await self._play(event.item_id, event.audio_b64)
                elif isinstance(event, SpeechStopped):
                    self._awaiting = self._clock()
                elif isinstance(event, SpeechStarted):
                    if self._closing:
                        continue
                    if self._queued and self.admitted.interface.interruptible in ("speech", "any"):
                        await self._barge_in(cancel=False)
                    self._save_turn()
                    self._new_turn("", kind="prompt")
                elif isinstance(event, InputTranscript):
                    if self._turn is not None and not self._turn.log.caller_text:
                        self._turn.log.caller_text = event.transcript
                elif isinstance(event, TranscriptDone):
                    item = self._items.get(event.item_id)
                    if item is not None:
                        item.transcript = event.transcript
                elif isinstance(event, ResponseDone):
                    await self._response_finished(event)
                elif isinstance(event, RealtimeError):
                    self.telemetry.warning("realtime error event", code=event.code)
        except ServiceError:
            self._session_ok = False
            self.telemetry.error("the realtime session dropped", exc_info=True)
            self.telemetry.count("ProviderFailures")
            self._response_done.set()  # nothing more will come: a speak() waiting on it goes on
            self._last_status = "failed"
            self.ending.trigger(Failed("realtime", voice_works=False))

    async def _response_finished(self, event: ResponseDone) -> None:
        self._last_status = event.status
        self._response_done.set()
        if event.status == "failed" and not self._closing:
            # Overloaded or erroring: ask once more for the same turn, then give up on the voice.
            if self._retries < RESPONSE_RETRIES:
                self._retries += 1
                self.telemetry.warning("realtime response failed; asking again", reason=event.reason)
                self._awaiting = self._clock()
                await self.gate.request()
            else:
                self.telemetry.error("realtime responses keep failing", reason=event.reason)
                self.telemetry.count("ProviderFailures")
                self.ending.trigger(Failed("realtime responses failed", voice_works=False))
            return
        self._retries = 0
        # Tools run only for a response that completed: one cut off (a barge-in, a cancel, the
        # length limit) may carry partial arguments, and nothing waits for its output.
        if event.status == "completed" and event.output and not self._closing:
            self._tools_running += len(event.output)
            for call in event.output:
                self.tasks.spawn(self._run_tool(call), name="tool")
        if self._action is not None and not event.output and self._tools_running == 0:
            action, self._action = self._action, None  # the closing words are out: act once played
            self.tasks.spawn(self._perform(action), name="action")

    async def _watch_responses(self) -> None:
        """A session that stops answering is a failed voice: no caller waits more than a few seconds."""
        while True:
            await asyncio.sleep(0.5)
            since = self._awaiting
            if since is not None and self._clock() - since >= RESPONSE_STALL_SECONDS:
                self.telemetry.error("the realtime session stopped answering")
                self.telemetry.count("ProviderFailures")
                self.ending.trigger(Failed("realtime stalled", voice_works=False))
                return

    async def _perform(self, action: Action) -> None:
        await self._wait_played()
        self.ending.trigger(AgentEnded() if isinstance(action, EndCall) else TransferRequested(action.to))

    async def _play(self, item_id: str, audio_b64: str) -> None:
        audio = base64.b64decode(audio_b64)
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item(item_id)
            if self._turn is not None:
                self._turn.items.append(item)
        duration_ms = len(audio) / 8  # μ-law 8 kHz: 8 bytes a millisecond
        item.sent_ms += duration_ms
        now = self._clock()
        self._play_until = max(self._play_until, now) + duration_ms / 1000
        if self._turn is not None:
            self._turn.log.output_started()
        self._marks_sent += 1
        mark = f"r{self._marks_sent}"
        self._marks[mark] = (item_id, item.sent_ms)
        self._queued.add(mark)
        self._played.clear()
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
        self._played.set()
        self._play_until = self._clock()
        if cancel:
            await self.session.send(response_cancel())

    async def _run_tool(self, call: FunctionCall) -> None:
        from callkit.realtime.openai_protocol import function_call_output

        turn = self._turn
        try:
            outcome = await run_tool(self.agent.tools, call.name, call.arguments, clock=self._clock)
            if turn is not None:
                turn.log.add_tool(outcome)
            if outcome.action is not None and self._action is None:
                self._action = outcome.action
            await self.session.send(function_call_output(call.call_id, outcome.text))
        finally:
            self._tools_running -= 1
        if self._tools_running == 0:  # one response.create after all outputs of the response
            self._awaiting = self._clock()
            self.gate.tool_output()
            await self.gate.flush()

    async def _wait_played(self) -> None:
        """Until the caller has heard what was sent; a lost mark holds us only until its audio's end."""
        while self._queued:
            grace = self._play_until + MARK_GRACE_SECONDS - self._clock()
            if grace <= 0:
                self.telemetry.warning(
                    "marks never came back; taking the audio as played", lost=len(self._queued)
                )
                self._queued.clear()
                self._played.set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._played.wait(), grace)

    # --- the voice the ending speaks with (callkit.call.ending.Voice) ---------------------------

    async def stop_agent(self) -> None:
        self._closing = True
        self._action = None
        if self._queued:
            await self._barge_in(cancel=True)

    async def speak(self, text: str) -> None:
        if not self._session_ok or not hasattr(self, "gate"):
            raise ServiceError("the realtime session is gone")
        self._save_turn()
        self._new_turn("", kind="prompt")
        self._response_done.clear()
        async with asyncio.timeout(len(text) * 0.065 + SPEAK_SLACK_SECONDS):
            await self.gate.request(instructions=f'Say exactly: "{text}" and nothing else.')
            while True:  # the response we asked for (a cancelled one may finish first)
                await self._response_done.wait()
                self._response_done.clear()
                if self._last_status != "cancelled" or not self._session_ok:
                    break
            if self._last_status != "completed":
                raise ServiceError(f"the closing words' response {self._last_status}")
            await self._wait_played()

    async def prompt_agent(self, text: str) -> None:
        from callkit.realtime.openai_protocol import user_text

        self._closing = False
        self._save_turn()
        self._new_turn(text, kind="prompt")
        await self.session.send(user_text(text))
        self._awaiting = self._clock()
        await self.gate.request()

    # --- turns ---------------------------------------------------------------------------------

    def _new_turn(self, caller: str, *, kind: TurnKind) -> None:
        number = 0 if kind == "welcome" else self._numbers + 1
        self._numbers = max(self._numbers, number)
        log = TurnLog(self.admitted.call, number, kind, caller, clock=self._clock, wall=self._wall)
        self._turn = _Turn(log)

    def _save_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is None or (not turn.items and not turn.log.caller_text and not turn.log.tools):
            return
        said = " ".join(i.transcript for i in turn.items if i.transcript)
        heard = None
        if turn.interrupted:
            parts = (heard_share(i.transcript, i.played_ms, i.sent_ms) for i in turn.items)
            heard = " ".join(p for p in parts if p)
        self.books.record_turn(
            turn.log.record(spoken=said, messages=turn.log.messages(heard if heard is not None else said))
        )
        if heard is not None:
            self.books.record_heard(self.admitted.call.call_id, turn.log.number, heard)

    async def _send(self, text: str) -> None:
        with contextlib.suppress(Exception):
            await self.link.send(text)
