"""The carrier's side of a bidirectional media stream (docs/protocols/twilio.md §4, docs/protocols/plivo.md §5), for tests and the demo.

``SimulatedMediaStream`` does what Twilio or Plivo does once the answer said ``<Connect><Stream>`` /
``<Stream bidirectional>``: opens the WebSocket with the carrier's handshake signature, sends
``connected`` (Twilio) and ``start`` with the stream token, then the caller's audio as 20-ms μ-law
``media`` frames in real time. It plays our audio back on a playback clock (8 bytes of μ-law a
millisecond), echoes each ``mark``/``checkpoint`` when the audio queued before it has played, and
on ``clear``/``clearAudio`` drops what is queued: Twilio echoes the pending marks at once, Plivo
drops its checkpoints and answers ``clearedAudio``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from callkit.carriers import carrier_format
from callkit.carriers._types import (
    ClearAudio,
    PlaceMark,
    PlayAudio,
    StreamCleared,
    StreamConnected,
    StreamDtmf,
    StreamMarkPlayed,
    StreamMedia,
    StreamStarted,
    StreamStopped,
)

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from callkit.testing.answers import ParsedAnswer

FRAME_BYTES = 160  # 20 ms of μ-law at 8 kHz
SILENCE = b"\xff" * FRAME_BYTES


def _mulaw(sample: int) -> int:
    """G.711 μ-law encode one 16-bit sample (for synthetic test speech; callkit.audio has the fast one)."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), clip) + bias
    exponent = max(0, min(7, magnitude.bit_length() - 8))
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


#: First three formants (Hz) of the vowels in "father", "feet", "boot", "bet", "bought": the
#: synthetic speech walks through them, one per syllable.
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410))
_BANDWIDTHS = (90.0, 110.0, 170.0)


def speech(ms: int, *, frequency: float = 120.0, level: float = 0.1) -> bytes:
    """Synthetic voiced speech that a neural VAD (Silero) takes for speech, as well as an energy one.

    A formant synthesiser: glottal pulses at ``frequency`` Hz with a slow intonation, through three
    resonators tuned to one vowel per 180-ms syllable, with a syllabic swell that never falls silent
    (so one call of ``speech`` is one utterance); RMS ``level`` × 0.45 of full scale. Deterministic.
    """
    n, rate, syllable = ms * 8, 8000.0, 1440
    pitch_phase, pulse = 0.0, 0.0
    resonators = [[0.0, 0.0] for _ in _BANDWIDTHS]
    out: list[float] = []
    for i in range(n):
        f0 = frequency * (1 + 0.12 * math.sin(2 * math.pi * 0.7 * i / rate))
        pitch_phase += f0 / rate
        if pitch_phase >= 1.0:
            pitch_phase -= 1.0
            pulse = 1.0
        x, pulse = pulse, pulse * 0.88  # a glottal pulse decaying over ~1 ms
        formants = _VOWELS[(i // syllable) % len(_VOWELS)]
        for (f, bandwidth), state in zip(zip(formants, _BANDWIDTHS, strict=True), resonators, strict=True):
            r = math.exp(-math.pi * bandwidth / rate)
            b, c = 2 * r * math.cos(2 * math.pi * f / rate), -r * r
            y = (1 - b - c) * x + b * state[0] + c * state[1]
            state[1], state[0] = state[0], y
            x = y
        out.append(x * (0.35 + 0.65 * math.sin(math.pi * (i % syllable) / syllable)))
    rms = math.sqrt(sum(v * v for v in out) / n) if n else 1.0
    scale = 32767 * level * 0.45 / (rms or 1.0)
    return bytes(_mulaw(max(-32768, min(32767, int(v * scale)))) for v in out)


def silence(ms: int) -> bytes:
    return b"\xff" * (ms * 8)


@dataclass(slots=True)
class _Playback:
    """Audio and markers queued for playback, in order."""

    queue: deque[bytes | str] = field(default_factory=deque)  # audio bytes, or a mark name
    played_bytes: int = 0
    played_marks: list[str] = field(default_factory=list)


class SimulatedMediaStream:
    """One carrier media stream to the stream URL in ``answer``."""

    def __init__(
        self,
        answer: ParsedAnswer,
        *,
        provider: Literal["twilio", "plivo"],
        call_id: str,
        account_id: str,
        auth_token: str,
        sign: bool = True,
        token: str | None = None,
        lose_marks: bool = False,
        connect_to: tuple[str, int] | None = None,
    ) -> None:
        """``lose_marks``: never echo a mark (the audio still plays), as a carrier may lose them."""
        if answer.kind != "stream":
            raise ValueError(f"not a stream answer: {answer.kind}")
        self.provider = provider
        self.url = answer.url
        self.call_id = call_id
        self.account_id = account_id
        self.stream_id = ("MZ" + secrets.token_hex(16)) if provider == "twilio" else str(uuid.uuid4())
        self.token = answer.token if token is None else token
        self.lose_marks = lose_marks
        self._format = carrier_format(provider)
        self._headers = self._format.signature_headers(auth_token, "GET", self.url, None) if sign else {}
        self._socket: ClientConnection | None = None
        # Where the TCP connection goes when the URL's host is a name only the test knows (a
        # reverse proxy playing a tunnel): the Host header and the signature keep the URL's name.
        self._destination: dict[str, Any] = (
            {"host": connect_to[0], "port": connect_to[1]} if connect_to else {}
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._sequence = 0
        self._chunk = 0
        self._sent_ms = 0
        self.playback = _Playback()
        self.received: list[object] = []
        self.clears = 0
        self.clear_times: list[float] = []
        self.clear_audio_ms: list[int] = []  # how much caller audio had been sent when each clear came
        self.closed: asyncio.Event = asyncio.Event()
        self.close_code: int | None = None

    # --- connection ---------------------------------------------------------------------------

    async def connect(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        self._socket = await connect(
            self.url, additional_headers=self._headers, open_timeout=5, **self._destination
        )
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._play())]
        try:
            await self._start()
        except ConnectionClosed:  # refused: the server closed (1008) before or while we started
            await self.closed.wait()

    async def _start(self) -> None:
        if self.provider == "twilio":
            await self._send(self._format.encode_stream_event(StreamConnected("Call", "1.0.0")))
        start = StreamStarted(
            stream_id=self.stream_id,
            call_id=self.call_id,
            account_id=self.account_id,
            encoding="audio/x-mulaw",
            sample_rate=8000,
            parameters={"token": self.token} if self.token else {},
            sequence=self._next_sequence(),
        )
        await self._send(self._format.encode_stream_event(start))

    async def __aenter__(self) -> SimulatedMediaStream:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hang_up()

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    async def _send(self, text: str | bytes) -> None:
        if self._socket is None:
            raise RuntimeError("not connected")
        await self._socket.send(text)

    # --- the caller ---------------------------------------------------------------------------

    async def say(self, audio: bytes, *, realtime: bool = True) -> None:
        """Send the caller's audio as 20-ms frames, paced like a phone line unless ``realtime=False``.

        Stops quietly once the stream is closed (the server ended the call or refused it)."""
        started = time.perf_counter()
        for index in range(0, len(audio), FRAME_BYTES):
            if self.closed.is_set():
                return
            frame = audio[index : index + FRAME_BYTES].ljust(FRAME_BYTES, b"\xff")
            self._chunk += 1
            self._sent_ms += 20
            event = StreamMedia(self.stream_id, frame, self._sent_ms, self._chunk, self._next_sequence())
            await self._send(self._format.encode_stream_event(event))
            if realtime:
                delay = started + (index // FRAME_BYTES + 1) * 0.02 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)

    async def send_raw(self, frame: str | bytes) -> None:
        """Send ``frame`` as it is: a text frame for ``str``, a binary frame for ``bytes`` (what a
        carrier should never send, for tests of what a call does with it)."""
        await self._send(frame)

    def media_frame(self, audio: bytes) -> str:
        """A well-formed ``media`` frame of this stream carrying ``audio`` as it is (any length)."""
        self._chunk += 1
        event = StreamMedia(self.stream_id, audio, self._sent_ms, self._chunk, self._next_sequence())
        return self._format.encode_stream_event(event)

    async def press(self, digit: str) -> None:
        await self._send(
            self._format.encode_stream_event(StreamDtmf(self.stream_id, digit, self._next_sequence()))
        )

    async def hang_up(self) -> None:
        if self._socket is not None and self.provider == "twilio":
            with contextlib.suppress(Exception):
                stop = StreamStopped(self.stream_id, self.call_id, self._next_sequence())
                await self._send(self._format.encode_stream_event(stop))
        if self._socket is not None:
            await self._socket.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._socket = None

    # --- what we hear -------------------------------------------------------------------------

    @property
    def sent_ms(self) -> int:
        """Caller audio sent so far, in ms (the stream's own audio clock)."""
        return self._sent_ms

    @property
    def heard_ms(self) -> float:
        return self.playback.played_bytes / 8

    @property
    def queued_ms(self) -> float:
        return sum(len(item) for item in self.playback.queue if isinstance(item, bytes)) / 8

    async def _read(self) -> None:
        assert self._socket is not None
        try:
            async for message in self._socket:
                command = self._format.decode_stream_command(message)
                self.received.append(command)
                if isinstance(command, PlayAudio):
                    self.playback.queue.append(command.audio)
                elif isinstance(command, PlaceMark):
                    self.playback.queue.append(command.name)
                elif isinstance(command, ClearAudio):
                    await self._clear()
        except Exception:  # noqa: S110 - the socket closed: the stream is over
            pass
        finally:
            if self._socket is not None:
                self.close_code = self._socket.close_code
            self.closed.set()

    async def _clear(self) -> None:
        self.clears += 1
        self.clear_times.append(time.perf_counter())
        self.clear_audio_ms.append(self._sent_ms)
        pending = [item for item in self.playback.queue if isinstance(item, str)]
        self.playback.queue.clear()
        if self.provider == "twilio":  # Twilio echoes the marks of discarded audio at once
            for name in pending:
                await self._echo(name)
        else:  # Plivo drops the checkpoints and acknowledges the clear
            await self._send(
                self._format.encode_stream_event(StreamCleared(self.stream_id, self._next_sequence()))
            )

    async def _echo(self, name: str) -> None:
        self.playback.played_marks.append(name)
        if self.lose_marks:
            return
        with contextlib.suppress(Exception):
            await self._send(
                self._format.encode_stream_event(
                    StreamMarkPlayed(self.stream_id, name, self._next_sequence())
                )
            )

    async def _play(self) -> None:
        """Play 20 ms of queued audio every 20 ms; marks fire when reached."""
        tick = time.perf_counter()
        while True:
            budget = FRAME_BYTES
            while self.playback.queue and (budget > 0 or isinstance(self.playback.queue[0], str)):
                head = self.playback.queue[0]
                if isinstance(head, str):
                    self.playback.queue.popleft()
                    await self._echo(head)
                    continue
                take = min(budget, len(head))
                self.playback.played_bytes += take
                budget -= take
                if take == len(head):
                    self.playback.queue.popleft()
                else:
                    self.playback.queue[0] = head[take:]
            tick += 0.02
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))
