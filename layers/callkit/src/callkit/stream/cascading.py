"""The cascading pipeline: the caller's audio → Deepgram → the agent → Cartesia → the caller.

One admitted stream, one call, one set of provider connections (docs/architecture.md §1.2: two calls never share
a socket). The parts are each tested on their own; this module only wires them:

- every inbound 20-ms frame goes to Deepgram and to the speech detector, whose decision and the
  STT's words and utterances feed the barge-in machine (``callkit.bargein``);
- the machine says when to answer (``StartTurn``), when to clear playback and cancel the agent
  (``ClearPlayback``, ``CancelSpeech``), what the caller heard (``TruncateReply``) and how to
  recover from a false start (``ResumeSpeaking``, ``Reprompt``);
- a turn streams the agent's words in speakable pieces into one Cartesia context and the audio
  back to the carrier in 40-ms pieces, each followed by a mark, so playback is known;
- ``max_call_duration_seconds`` and a provider failure both end with words (a goodbye, an
  apology) and a hang-up through the carrier's REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callkit.actions import EndCall, Transfer
from callkit.bargein import (
    AgentFinished,
    AgentPieceSent,
    AgentStarted,
    AgentText,
    BargeIn,
    BargeInPolicy,
    CallerDtmf,
    CallerUtterance,
    CallerVad,
    CallerWords,
    CancelSpeech,
    ClearPlayback,
    Event,
    MarkPlayed,
    PlaybackCleared,
    Reprompt,
    ResumeSpeaking,
    StartTurn,
    Tick,
    TruncateReply,
    deadline,
)
from callkit.carriers._types import StreamCleared, StreamDtmf, StreamMarkPlayed, StreamMedia, StreamStopped
from callkit.conversation import ActionRequested, Speech, TurnCompleted, run_turn
from callkit.errors import CallkitError, ServiceError
from callkit.llm.protocol import AssistantMessage, Message, UserMessage
from callkit.relay.chunker import SpeechChunker
from callkit.store._base import TurnRecord

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from callkit.llm import ChatModel
    from callkit.net.http1 import HTTPClient
    from callkit.store._base import CallStore
    from callkit.stream.admission import Admitted
    from callkit.stream.server import StreamLink
    from callkit.switchboard import Credentials
    from callkit.telemetry import Telemetry
    from callkit.tts.cartesia_session import CartesiaReply, CartesiaSession

PIECE_BYTES = 320  # 40 ms of μ-law 8 kHz: between the 20-50 ms a carrier plays smoothly
MS_PER_CHAR = 65.0  # speech rate used to place marks in the text (Cartesia gives no alignment)
GOODBYE = "We've reached the time limit for this call. Thank you for calling, goodbye."
APOLOGY = "Sorry, we're having technical trouble and have to end the call. Please call back later. Goodbye."


def keypad_text(digit: str) -> str:
    return f"(The caller pressed {digit} on the keypad.)"


@dataclass
class _Turn:
    number: int
    task: asyncio.Task[None] | None = None  # set right after the turn object is current
    reply: CartesiaReply | None = None
    text: list[str] = field(default_factory=list)


class CascadingCall:
    """Holds one cascading call from admission to hang-up."""

    def __init__(
        self,
        *,
        model: ChatModel,
        store: CallStore,
        telemetry: Telemetry,
        credentials: Credentials,
        http: HTTPClient,
        public_url: str = "",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.model = model
        self.public_url = public_url  # where Plivo fetches a transfer's <Dial>
        self.store = store
        self.telemetry = telemetry
        self.credentials = credentials
        self.http = http
        self._clock = clock
        self._wall = wall
        self.history: list[Message] = []
        self._turn: _Turn | None = None
        self._ended = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing of ours is playing (the machine is IDLE)
        self._end_reason = "caller hung up"
        # Measurements (logged, and read by bench/media.py): caller frames from speech onset to a
        # clear (audio time), and the caller's utterance → the reply's first TTS request.
        self._frames = 0
        self._speech_from: int | None = None
        self._utterance_at: float | None = None
        self.barge_in_ms: list[float] = []
        self.eou_to_tts_ms: list[float] = []

    # --- the call ------------------------------------------------------------------------------

    async def run(self, admitted: Admitted, link: StreamLink) -> None:
        from callkit.audio import SpeechDetector, decode_mulaw

        self.admitted, self.link = admitted, link
        interface = admitted.interface
        self.carrier, self.stream_id = admitted.carrier, admitted.start.stream_id
        self.machine = BargeIn(
            BargeInPolicy.from_interface(interface.interruptible, interface.interrupt_sensitivity)
        )
        self._vad, self._decode = SpeechDetector(8000), decode_mulaw
        assert interface.stt is not None and interface.tts is not None  # CallInterface guarantees it
        self.stt = interface.stt.session(encoding="mulaw", sample_rate=8000)
        self.tts: CartesiaSession = interface.tts.session(encoding="pcm_mulaw", sample_rate=8000)
        tasks: list[asyncio.Task[None]] = []
        try:
            await self.stt.start()
            await self.tts.connect()
            tasks = [
                asyncio.create_task(self._inbound()),
                asyncio.create_task(self._transcripts()),
                asyncio.create_task(self._ticks()),
                asyncio.create_task(
                    self._deadline(admitted.call.created_at + interface.max_call_duration_seconds)
                ),
            ]
            if interface.welcome_message:
                await self._start_fixed(interface.welcome_message, kind="welcome")
            await self._ended.wait()
        except ServiceError:
            self.telemetry.error("a provider failed at call start", exc_info=True)
            await self._fail()
        finally:
            for task in tasks:
                task.cancel()
            await self._cancel_turn()
            with contextlib.suppress(Exception):
                await self.stt.close()
            with contextlib.suppress(Exception):
                await self.tts.aclose()
            self.telemetry.info("cascading call ended", reason=self._end_reason)

    async def _inbound(self) -> None:
        from callkit.stream.server import carrier_events

        async for event in carrier_events(self.link, self.carrier, self.telemetry):
            if isinstance(event, StreamMedia):
                await self.stt.send_audio(event.audio)
                decision = self._vad.process(self._decode(event.audio))
                self._frames += 1
                if not decision.is_speech:
                    self._speech_from = None
                elif self._speech_from is None:
                    self._speech_from = self._frames
                await self._act(CallerVad(decision.is_speech))
            elif isinstance(event, StreamMarkPlayed):
                await self._act(MarkPlayed(event.name))
            elif isinstance(event, StreamCleared):
                await self._act(PlaybackCleared())
            elif isinstance(event, StreamDtmf):
                await self._act(CallerDtmf(event.digit))
            elif isinstance(event, StreamStopped):
                break
        self._end("caller hung up")

    async def _transcripts(self) -> None:
        from callkit.stt.deepgram_protocol import Interim, Utterance

        try:
            async for event in self.stt.events():
                if isinstance(event, Interim):
                    await self._act(CallerWords(event.text))
                elif isinstance(event, Utterance):
                    self._utterance_at = self._clock()
                    await self._act(CallerUtterance(event.text))
        except ServiceError:
            self.telemetry.error("speech recognition failed", exc_info=True)
            await self._fail()

    async def _ticks(self) -> None:
        # Caller frames (50 a second) already carry the time to the machine; a Tick is only needed
        # for a timer of its own that falls between them, so sleep until the machine's deadline.
        while True:
            due = deadline(self.machine.state)
            await asyncio.sleep(0.1 if due is None else min(max(due - self._clock(), 0.0), 0.1))
            await self._act(Tick())

    async def _deadline(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - self._wall()))
        self.telemetry.info("call reached its maximum duration")
        self.telemetry.count("MaxDurationReached")
        await self._say_and_hang_up(GOODBYE, "max-duration")

    # --- the barge-in machine and its actions --------------------------------------------------

    async def _act(self, event: Event) -> None:
        actions = self.machine.handle(event, self._clock())
        if self.machine.state.phase == "idle":
            self._idle.set()
        else:
            self._idle.clear()
        for action in actions:
            if isinstance(action, ClearPlayback):
                await self._send(self.carrier.encode_clear(self.stream_id))
                self.telemetry.count("BargeIns")
                if self._speech_from is not None:  # audio time from the caller's speech onset
                    self.barge_in_ms.append((self._frames - self._speech_from + 1) * 20.0)
                    self.telemetry.info("barge-in", reaction_ms=self.barge_in_ms[-1])
            elif isinstance(action, CancelSpeech):
                await self._cancel_turn(action.turn)
            elif isinstance(action, TruncateReply):
                self._truncate(action.turn, action.heard_text)
            elif isinstance(action, ResumeSpeaking):
                await self._start_fixed(action.remaining_text, kind="prompt")
            elif isinstance(action, Reprompt):
                await self._start_agent(
                    "(The caller stopped. Say what you were saying, briefly.)", kind="prompt"
                )
            elif isinstance(action, StartTurn):
                text = keypad_text(action.text) if action.kind == "dtmf" else action.text
                await self._start_agent(text, kind="dtmf" if action.kind == "dtmf" else "prompt")

    def _truncate(self, turn: int, heard: str) -> None:
        for index in range(len(self.history) - 1, -1, -1):
            message = self.history[index]
            if isinstance(message, AssistantMessage) and message.content:
                self.history[index] = AssistantMessage(heard or None, message.tool_calls)
                break
        with contextlib.suppress(CallkitError):
            self.store.interrupt_turn(self.admitted.call.call_id, heard, now=self._wall())

    # --- turns ---------------------------------------------------------------------------------

    async def _start_agent(self, text: str, *, kind: str) -> None:
        await self._cancel_turn()
        number = self.store.next_turn(self.admitted.call.call_id, now=self._wall())
        # Eager: the turn runs at once up to its first real wait (the model's first bytes) instead
        # of queueing behind every caller frame already on the loop (bench/media.py at 100 calls).
        turn = self._turn = _Turn(number)  # current before it starts: _speak registers its reply on it
        turn.task = asyncio.eager_task_factory(
            asyncio.get_running_loop(), self._agent_turn(number, text, kind)
        )

    async def _start_fixed(self, text: str, *, kind: str) -> None:
        await self._cancel_turn()
        number = (
            0 if kind == "welcome" else self.store.next_turn(self.admitted.call.call_id, now=self._wall())
        )
        turn = self._turn = _Turn(number)
        turn.task = asyncio.create_task(self._fixed_turn(number, text, kind))

    async def _cancel_turn(self, number: int | None = None) -> None:
        turn = self._turn
        if turn is None or (number is not None and turn.number != number):
            return
        self._turn = None
        if turn.task is None or turn.task.done():  # it finished: nothing of it is left to cancel
            return
        if turn.reply is not None:
            await turn.reply.cancel()
        if turn.task is not asyncio.current_task():
            turn.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, CallkitError):
                await turn.task

    async def _fixed_turn(self, number: int, text: str, kind: str) -> None:
        async def pieces() -> AsyncIterator[str]:
            yield text

        started = self._clock()
        first = await self._speak(number, pieces(), known_text=text)
        self.history.append(AssistantMessage(text, ()))
        self._record(number, kind, "", text, [{"role": "assistant", "content": text}], [], started, first)

    async def _agent_turn(self, number: int, text: str, kind: str) -> None:
        interface = self.admitted.interface
        assert interface.agent is not None
        started = self._clock()
        history = list(self.history)
        self.history.append(UserMessage(text))
        completed: list[TurnCompleted] = []
        actions: list[EndCall | Transfer] = []

        async def pieces() -> AsyncIterator[str]:
            chunker = SpeechChunker()
            async for item in run_turn(interface.agent, self.model, history, text):  # type: ignore[arg-type]
                if isinstance(item, Speech):
                    for piece in chunker.feed(item.text):
                        yield piece
                elif isinstance(item, ActionRequested):
                    actions.append(item.action)
                elif isinstance(item, TurnCompleted):
                    completed.append(item)
            if rest := chunker.flush():
                yield rest

        first: list[float] = []  # filled by _speak as the first audio goes out, even if cut short
        try:
            await self._speak(number, pieces(), first=first)
        finally:  # recorded even when cut short (a barge-in, the caller hanging up)
            if completed:
                self.history[-1:] = completed[0].new_messages
            from callkit.llm.protocol import to_wire

            spoken = completed[0].assistant_text if completed else ""
            wire = to_wire(completed[0].new_messages) if completed else [{"role": "user", "content": text}]
            self._record(number, kind, text, spoken, wire, [], started, first[0] if first else None)
        for action in actions:
            await self._perform(action)

    async def _speak(
        self,
        number: int,
        pieces: AsyncIterator[str],
        *,
        known_text: str = "",
        first: list[float] | None = None,
    ) -> float | None:
        """Speak a turn; returns ms to the first audio piece sent (``None`` if none)."""
        turn = self._turn
        reply = self.tts.new_reply()
        if turn is not None:
            turn.reply = reply
        await self._act(AgentStarted(number, known_text))
        started = self._clock()
        first = [] if first is None else first
        text_sent = [0]  # characters handed to the TTS so far: marks never point past them
        sender = asyncio.create_task(self._play(number, reply, started, first, text_sent))
        try:
            async for piece in pieces:
                await self._act(AgentText(piece))
                text_sent[0] += len(piece)
                if self._utterance_at is not None:  # the first words of the answer to an utterance
                    self.eou_to_tts_ms.append((self._clock() - self._utterance_at) * 1000)
                    self.telemetry.info("answer started", eou_to_tts_ms=round(self.eou_to_tts_ms[-1], 3))
                    self._utterance_at = None
                await reply.send(piece)
            await self._act(AgentText("", final=True))
            await reply.end()
            await sender
            await self._act(AgentFinished())
        except ServiceError:
            self.telemetry.error("speech synthesis failed", exc_info=True)
            sender.cancel()
            asyncio.get_running_loop().create_task(self._fail())
        finally:
            if not sender.done():
                sender.cancel()
        return first[0] if first else None

    async def _play(
        self, number: int, reply: CartesiaReply, started: float, first: list[float], text_sent: list[int]
    ) -> None:
        buffered, sent_ms, piece = b"", 0.0, 0

        async def send_piece(audio: bytes) -> None:
            nonlocal sent_ms, piece
            piece += 1
            sent_ms += len(audio) / 8
            mark = f"t{number}p{piece}"
            await self._send(self.carrier.encode_play_audio(self.stream_id, audio))
            await self._send(self.carrier.encode_mark(self.stream_id, mark))
            if not first:
                first.append((self._clock() - started) * 1000)
            await self._act(AgentPieceSent(mark, min(int(sent_ms / MS_PER_CHAR), text_sent[0]), sent_ms))

        async for audio in reply.audio():
            buffered += audio
            while len(buffered) >= PIECE_BYTES:
                chunk, buffered = buffered[:PIECE_BYTES], buffered[PIECE_BYTES:]
                await send_piece(chunk)
        if buffered:
            await send_piece(buffered)

    def _record(
        self,
        number: int,
        kind: str,
        caller: str,
        spoken: str,
        wire: list[dict[str, Any]],
        tools: list[Any],
        started: float,
        first_ms: float | None,
    ) -> None:
        record = TurnRecord(
            call_id=self.admitted.call.call_id,
            turn=number,
            kind="welcome" if kind == "welcome" else "dtmf" if kind == "dtmf" else "prompt",
            caller_text=caller,
            assistant_text=spoken,
            heard_text=None,
            interrupted=False,
            messages=json.dumps(wire),
            tool_calls=json.dumps(tools),
            started_at=self._wall(),
            first_token_ms=first_ms,
            total_ms=(self._clock() - started) * 1000,
            expires_at=self.admitted.call.expires_at,
        )
        with contextlib.suppress(CallkitError):
            self.store.record_turn(record)

    # --- ending --------------------------------------------------------------------------------

    async def _perform(self, action: EndCall | Transfer) -> None:
        if isinstance(action, EndCall):
            await self._wait_played()
            await self._hang_up("the agent ended the call")
        else:
            from callkit.stream.hangup import transfer

            await self._wait_played()
            interface = self.admitted.interface
            try:
                await transfer(
                    self.http,
                    interface,
                    self.admitted.call.call_id,
                    action.to,
                    auth_token=self.credentials.auth_token(interface),
                    public_url=self.public_url,
                )
            except CallkitError:
                self.telemetry.error("transfer failed", exc_info=True)
                return
            self.telemetry.count("Transfers")
            self._end("transferred")

    async def _say_and_hang_up(self, text: str, reason: str) -> None:
        # Our own decision, not a barge-in: drop what is queued and start the machine afresh, so the
        # closing words are not an "illegal second reply" while the old one still plays.
        await self._cancel_turn()
        await self._send(self.carrier.encode_clear(self.stream_id))
        self.machine = BargeIn(self.machine.policy)
        await self._start_fixed(text, kind="prompt")
        if self._turn is not None and self._turn.task is not None:
            with contextlib.suppress(asyncio.CancelledError, CallkitError):
                await self._turn.task
        await self._wait_played()
        await self._hang_up(reason)

    async def _wait_played(self, limit: float = 15.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), limit)

    async def _fail(self) -> None:
        self.telemetry.count("ProviderFailures")
        with contextlib.suppress(Exception):
            await self._say_and_hang_up(APOLOGY, "provider failure")
        self._end("provider failure")

    async def _hang_up(self, reason: str) -> None:
        from callkit.stream.hangup import end_call

        await end_call(
            self.http,
            self.admitted.interface,
            self.admitted.call.call_id,
            credentials=self.credentials,
            telemetry=self.telemetry,
        )
        self._end(reason)

    def _end(self, reason: str) -> None:
        if not self._ended.is_set():
            self._end_reason = reason
            self._ended.set()

    async def _send(self, text: str) -> None:
        with contextlib.suppress(Exception):
            await self.link.send(text)
