"""The cascading pipeline: the caller's audio → speech recognition → the agent → speech synthesis →
the caller (Deepgram and Cartesia today, through the vendor-neutral ``callkit.stt.events`` and
``callkit.tts.reply``: a second vendor needs no change here).

One admitted stream, one call, one set of provider connections (two calls never share a socket).
This module supplies the pipeline's voice and transport; the per-call policy is the call core's
(``callkit.call``): the ending, the task group, the turn record, what was heard, the phrases.

- every inbound 20-ms frame goes to the recogniser and to the speech detector, whose decision and the
  STT's words and utterances feed the barge-in machine (``callkit.bargein``);
- the machine says when to answer (``StartTurn``), when to clear playback and cancel the agent
  (``ClearPlayback``, ``CancelSpeech``), what the caller heard (``TruncateReply``) and how to
  recover from a false start (``ResumeSpeaking``, ``Reprompt``);
- a turn streams the agent's words in speakable pieces into one TTS reply and the audio
  back to the carrier in 40-ms pieces, each followed by a mark, so playback is known;
- the call ends through ``CallEnding``: the goodbye at ``max_call_duration_seconds`` and the
  apology after a failure in our voice when it works, by the carrier when it does not; one
  hang-up. Store writes go through the ``Bookkeeper``, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from callkit.actions import EndCall
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
from callkit.call.carrier import CarrierRest
from callkit.call.chunker import SpeechChunker
from callkit.call.core import CallCore, HeldAudio
from callkit.call.ending import AgentEnded, CallerHungUp, Failed, TransferRequested
from callkit.call.heard import History, cut_on_word
from callkit.call.turns import TurnLog
from callkit.carriers._types import StreamCleared, StreamDtmf, StreamMarkPlayed, StreamMedia, StreamStopped
from callkit.conversation import Speech, run_turn
from callkit.errors import CallkitError, ServiceError
from callkit.llm.protocol import AssistantMessage, UserMessage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from callkit.audio.vad import SpeechDetector
    from callkit.llm import ChatModel
    from callkit.net.http1 import HTTPClient
    from callkit.settings import Settings
    from callkit.store._base import TurnKind
    from callkit.store.aio import AsyncStore
    from callkit.stream.admission import Admitted
    from callkit.stream.server import StreamLink
    from callkit.stt.events import STTSession
    from callkit.switchboard import Credentials
    from callkit.telemetry import Telemetry
    from callkit.tts.reply import TTSReply, TTSSession

PIECE_BYTES: Final = 320  # 40 ms of μ-law 8 kHz: between the 20-50 ms a carrier plays smoothly
MS_PER_CHAR: Final = 65.0  # speech rate used to place marks in the text (no word timings used yet)
#: Once a reply's text is all sent, its audio must keep coming: a TTS silent this long has stalled.
TTS_STALL_SECONDS: Final = 4.0
#: Our closing words may take their spoken length plus this before the carrier speaks them instead.
SPEAK_SLACK_SECONDS: Final = 4.0


@dataclass
class _Turn:
    number: int
    log: TurnLog
    task: asyncio.Task[None] | None = None
    reply: TTSReply | None = None
    pieces: list[str] = field(default_factory=list)  # the text handed to the TTS, in order
    failed: bool = False  # the TTS failed while speaking it
    audio_at: float = 0.0  # when the TTS last sent audio for it (clock)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class CascadingCall:
    """Holds one cascading call from admission to hang-up."""

    def __init__(
        self,
        *,
        model: ChatModel,
        store: AsyncStore,
        telemetry: Telemetry,
        credentials: Credentials,
        http: HTTPClient,
        settings: Settings,
        speech_detector: Callable[[], SpeechDetector],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.model = model
        self.settings = settings  # the carriers' API URLs; the public URL Plivo fetches XML from
        self.store = store
        self.telemetry = telemetry
        self.credentials = credentials
        self.http = http
        self._clock = clock
        self._wall = wall
        # The caller's VAD, fed every inbound frame inline: Silero's ~70 µs a frame (bench/README.md,
        # "Voice activity") is far below what would need a thread.
        self._vad = speech_detector()
        self.history = History()
        self._turn: _Turn | None = None
        self._recent: dict[int, _Turn] = {}  # the last turns by number: a cut may follow their cancel
        self._numbers = 0  # turn numbers: 0 is the welcome, then one per turn started
        self._idle = asyncio.Event()  # set while nothing of ours is playing (the machine is IDLE)
        self._stt_ok = False  # the STT session is up and taking audio
        self._held = HeldAudio()  # the caller's audio while the STT connects
        self.stt: STTSession | None = None
        self.tts: TTSSession | None = None
        # Measurements (logged, and read by bench/media.py): caller frames from speech onset to a
        # clear (audio time), and the caller's utterance → the reply's first TTS request.
        self._frames = 0
        self._speech_from: int | None = None
        self._utterance_at: float | None = None
        self.barge_in_ms: list[float] = []
        self.eou_to_tts_ms: list[float] = []

    # --- the call ------------------------------------------------------------------------------

    async def run(self, admitted: Admitted, link: StreamLink) -> None:
        from callkit.audio import decode_mulaw

        self.admitted, self.link = admitted, link
        interface = admitted.interface
        self.call_id = admitted.call.call_id
        self.carrier, self.stream_id = admitted.carrier, admitted.start.stream_id
        self.machine = BargeIn(
            BargeInPolicy.from_interface(interface.interruptible, interface.interrupt_sensitivity)
        )
        self._decode = decode_mulaw
        core = CallCore(
            call=admitted.call,
            interface=interface,
            voice=self,
            carrier=CarrierRest(self.http, interface, self.call_id, self.credentials, self.settings),
            store=self.store,
            telemetry=self.telemetry,
            wall=self._wall,
        )
        self.tasks, self.books, self.ending, self.phrases = core.tasks, core.books, core.ending, core.phrases
        try:
            self.tasks.spawn(self._inbound(), name="inbound")
            self.tasks.spawn(self._ticks(), name="ticks")
            core.start()
            await self._connect()
            await self.ending.ended.wait()
        finally:
            await self._cancel_turn()  # the turn records itself as it stops
            await core.close()
            if self.stt is not None:
                with contextlib.suppress(Exception):
                    await self.stt.close()
            if self.tts is not None:
                with contextlib.suppress(Exception):
                    await self.tts.aclose()
            self.telemetry.info("cascading call ended", reason=self.ending.reason or "stream closed")

    async def _connect(self) -> None:
        """Open the voice, then the ears; a provider that cannot be had (down, or a key missing or
        refused) ends the call with the apology: in our voice if it works, else the carrier's."""
        interface = self.admitted.interface
        assert interface.stt is not None and interface.tts is not None  # CallInterface guarantees it
        try:
            self.tts = interface.tts.session(encoding="pcm_mulaw", sample_rate=8000)
            await self.tts.connect()
        except CallkitError as error:
            self.telemetry.error("speech synthesis unavailable at call start", reason=type(error).__name__)
            self.telemetry.count("ProviderFailures")
            self.ending.trigger(Failed("tts", voice_works=False))
            return
        try:
            self.stt = interface.stt.session(encoding="mulaw", sample_rate=8000)
            await self.stt.start()
        except CallkitError as error:
            self.telemetry.error("speech recognition unavailable at call start", reason=type(error).__name__)
            self.telemetry.count("ProviderFailures")
            self._held.release()
            self.ending.trigger(Failed("stt", voice_works=True))
            return
        self._stt_ok = True
        # What the caller said while we connected is not lost, and stays in order: frames that
        # arrive while the held ones are sent are held too, until none is left.
        while held := self._held.take():
            for audio in held:
                await self._send_to_stt(audio, held=True)
        self._held.release()
        self.tasks.spawn(self._transcripts(self.stt), name="transcripts")
        if self.admitted.interface.welcome_message:
            self._start_fixed(self.admitted.interface.welcome_message, kind="welcome")

    async def _inbound(self) -> None:
        from callkit.stream.server import carrier_events

        async for event in carrier_events(self.link, self.carrier, self.telemetry):
            if isinstance(event, StreamMedia):
                await self._send_to_stt(event.audio)
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
        self.ending.trigger(CallerHungUp())

    async def _send_to_stt(self, audio: bytes, *, held: bool = False) -> None:
        if self._held.holding and not held:  # still connecting
            self._held.hold(audio)
            return
        if not self._stt_ok or self.stt is None:
            return
        try:
            await self.stt.send_audio(audio)
        except ServiceError:
            self._stt_ok = False
            self.telemetry.error("speech recognition failed", exc_info=True)
            self.telemetry.count("ProviderFailures")
            self.ending.trigger(Failed("stt", voice_works=True))

    async def _transcripts(self, stt: STTSession) -> None:
        from callkit.stt.events import Interim, Utterance

        try:
            async for event in stt.events():
                if isinstance(event, Interim):
                    await self._act(CallerWords(event.text))
                elif isinstance(event, Utterance):
                    self._utterance_at = self._clock()
                    await self._act(CallerUtterance(event.text))
        except ServiceError:
            self._stt_ok = False
            self.telemetry.error("speech recognition failed", exc_info=True)
            self.telemetry.count("ProviderFailures")
            self.ending.trigger(Failed("stt", voice_works=True))

    async def _ticks(self) -> None:
        # Caller frames (50 a second) already carry the time to the machine; a Tick is only needed
        # for a timer of its own that falls between them, so sleep until the machine's deadline.
        while True:
            due = deadline(self.machine.state)
            await asyncio.sleep(0.1 if due is None else min(max(due - self._clock(), 0.0), 0.1))
            await self._act(Tick())

    # --- the barge-in machine and its actions --------------------------------------------------

    async def _act(self, event: Event) -> None:
        actions = self.machine.handle(event, self._clock())
        if self.machine.state.phase == "idle":
            self._idle.set()
        else:
            self._idle.clear()
        live = self.ending.live  # once the call is ending, nothing starts a new agent turn
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
                self._cut(action.turn, action.heard_text)
            elif not live:
                continue
            elif isinstance(action, ResumeSpeaking):
                self._start_fixed(action.remaining_text, kind="prompt")
            elif isinstance(action, Reprompt):
                await self._start_agent(self.phrases.reprompt, kind="prompt")
            elif isinstance(action, StartTurn):
                dtmf = action.kind == "dtmf"
                await self._start_agent(
                    self.phrases.keypad_text(action.text) if dtmf else action.text,
                    kind="dtmf" if dtmf else "prompt",
                )

    def _cut(self, number: int, heard_chars: str) -> None:
        """The caller cut turn ``number`` off: keep what they heard of it, ending on a word."""
        turn = self._recent.get(number)
        heard = cut_on_word(turn.text if turn is not None else heard_chars, len(heard_chars))
        self.history.cut(number, heard)
        self.books.record_heard(self.call_id, number, heard)

    # --- turns ---------------------------------------------------------------------------------

    def _next_number(self) -> int:
        self._numbers += 1
        return self._numbers

    async def _start_agent(self, text: str, *, kind: TurnKind) -> None:
        await self._cancel_turn()
        number = self._next_number()
        turn = self._turn = self._recent[number] = _Turn(number, self._log(number, kind, text))
        # Eager: the turn runs at once up to its first real wait (the model's first bytes) instead
        # of queueing behind every caller frame already on the loop (bench/media.py at 100 calls).
        turn.task = self.tasks.spawn(self._agent_turn(turn, text), name="turn", eager=True)

    def _start_fixed(self, text: str, *, kind: TurnKind) -> _Turn:
        """Speak ``text`` as it is (the welcome, words resumed after a false start) as a new turn."""
        if self._turn is not None and self._turn.task is not None and not self._turn.task.done():
            self._turn.task.cancel()  # only ever a turn whose reply the machine has let go of
        number = 0 if kind == "welcome" else self._next_number()
        turn = self._turn = self._recent[number] = _Turn(number, self._log(number, kind, ""))
        turn.task = self.tasks.spawn(self._fixed_turn(turn, text), name="turn")
        return turn

    def _log(self, number: int, kind: TurnKind, caller: str) -> TurnLog:
        for old in [n for n in self._recent if n < number - 2]:
            del self._recent[old]
        return TurnLog(self.admitted.call, number, kind, caller, clock=self._clock, wall=self._wall)

    async def _cancel_turn(self, number: int | None = None) -> None:
        turn = self._turn
        if turn is None or (number is not None and turn.number != number):
            return
        self._turn = None
        if turn.task is None or turn.task.done():  # it finished: nothing of it is left to cancel
            return
        if turn.reply is not None:
            with contextlib.suppress(ServiceError):
                await turn.reply.cancel()
        if turn.task is not asyncio.current_task():
            turn.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ServiceError):
                await turn.task

    async def _fixed_turn(self, turn: _Turn, text: str) -> None:
        async def pieces() -> AsyncIterator[str]:
            yield text

        try:
            await self._speak(turn, pieces(), known_text=text)
        except ServiceError:
            turn.failed = True
            self._tts_failed()
        finally:
            self.history.set(turn.number, [AssistantMessage(text)])
            self.books.record_turn(turn.log.record(spoken=turn.text))

    async def _agent_turn(self, turn: _Turn, text: str) -> None:
        interface = self.admitted.interface
        assert interface.agent is not None
        history = self.history.messages()
        self.history.set(turn.number, [UserMessage(text)])
        log = turn.log

        async def pieces() -> AsyncIterator[str]:
            chunker = SpeechChunker()
            events = run_turn(
                interface.agent,  # type: ignore[arg-type]
                self.model,
                history,
                text,
                apology=self.phrases.turn_apology,
                filler=self.phrases.filler,
            )
            async for item in events:
                log.observe(item)
                if isinstance(item, Speech):
                    for piece in chunker.feed(item.text):
                        yield piece
            if rest := chunker.flush():
                yield rest

        try:
            await self._speak(turn, pieces())
        except ServiceError:
            self._tts_failed()
            return
        finally:  # kept even when cut short (a barge-in, the caller hanging up)
            if log.completed is not None:
                self.history.set(turn.number, log.completed.new_messages)
            else:
                said = [AssistantMessage(turn.text)] if turn.text else []
                self.history.set(turn.number, [UserMessage(text), *said])
            self.books.record_turn(log.record(spoken=turn.text))
        for action in log.actions:
            await self._wait_played()
            self.ending.trigger(AgentEnded() if isinstance(action, EndCall) else TransferRequested(action.to))

    def _tts_failed(self) -> None:
        self.telemetry.error("speech synthesis failed", exc_info=True)
        self.telemetry.count("ProviderFailures")
        self.ending.trigger(Failed("tts", voice_works=False))

    async def _speak(self, turn: _Turn, pieces: AsyncIterator[str], *, known_text: str = "") -> None:
        """Speak a turn's pieces; raises ``ServiceError`` when the TTS fails or stalls."""
        if self.tts is None:
            raise ServiceError("no speech synthesis session")
        reply = turn.reply = self.tts.new_reply()
        await self._act(AgentStarted(turn.number, known_text))
        started = self._clock()
        sent_chars = [0]  # characters handed to the TTS so far: marks never point past them
        sender = asyncio.ensure_future(self._play(turn, reply, started, sent_chars))
        try:
            async for piece in pieces:
                await self._act(AgentText(piece))
                turn.pieces.append(piece)
                sent_chars[0] += len(piece)
                if self._utterance_at is not None:  # the first words of the answer to an utterance
                    self.eou_to_tts_ms.append((self._clock() - self._utterance_at) * 1000)
                    self.telemetry.info("answer started", eou_to_tts_ms=round(self.eou_to_tts_ms[-1], 3))
                    self._utterance_at = None
                await reply.send(piece)
            await self._act(AgentText("", final=True))
            await reply.end()
            turn.audio_at = self._clock()
            # All text is out: the audio must keep coming. Checked when a stall would be due, not
            # per chunk (a timeout per chunk costs a task each: bench/media.py at 100 calls).
            while not (
                await asyncio.wait({sender}, timeout=turn.audio_at + TTS_STALL_SECONDS - self._clock())
            )[0]:
                if self._clock() - turn.audio_at >= TTS_STALL_SECONDS:
                    raise ServiceError("the TTS stalled mid-reply", retryable=True)
            await sender
            await self._act(AgentFinished())
        finally:
            if not sender.done():
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ServiceError):
                    await sender

    async def _play(
        self,
        turn: _Turn,
        reply: TTSReply,
        started: float,
        sent_chars: list[int],
    ) -> None:
        buffered, sent_ms, piece = b"", 0.0, 0

        async def send_piece(audio: bytes) -> None:
            nonlocal sent_ms, piece
            piece += 1
            sent_ms += len(audio) / 8
            mark = f"t{turn.number}p{piece}"
            await self._send(self.carrier.encode_play_audio(self.stream_id, audio))
            await self._send(self.carrier.encode_mark(self.stream_id, mark))
            turn.log.output_started()
            await self._act(AgentPieceSent(mark, min(int(sent_ms / MS_PER_CHAR), sent_chars[0]), sent_ms))

        async for audio in reply.audio():
            turn.audio_at = self._clock()
            buffered += audio
            while len(buffered) >= PIECE_BYTES:
                chunk, buffered = buffered[:PIECE_BYTES], buffered[PIECE_BYTES:]
                await send_piece(chunk)
        if buffered:
            await send_piece(buffered)

    async def _wait_played(self, limit: float = 15.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), limit)

    # --- the voice the ending speaks with (callkit.call.ending.Voice) ---------------------------

    async def stop_agent(self) -> None:
        """Our own words come next: drop what plays and stop the agent; the caller cannot cut them."""
        await self._cancel_turn()
        await self._send(self.carrier.encode_clear(self.stream_id))
        self.machine = BargeIn(
            BargeInPolicy.from_interface("none", self.admitted.interface.interrupt_sensitivity)
        )
        await self._act(Tick())

    async def speak(self, text: str) -> None:
        turn = self._start_fixed(text, kind="prompt")
        async with asyncio.timeout(len(text) * MS_PER_CHAR / 1000 + SPEAK_SLACK_SECONDS):
            assert turn.task is not None
            await asyncio.shield(turn.task)
            if turn.failed or not turn.pieces:
                raise ServiceError("the closing words were not spoken")
            await self._idle.wait()

    async def prompt_agent(self, text: str) -> None:
        await self._start_agent(text, kind="prompt")

    async def _send(self, text: str) -> None:
        with contextlib.suppress(Exception):
            await self.link.send(text)
