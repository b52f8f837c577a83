"""Cartesia TTS WebSocket messages as pure data: requests out, typed events in (docs/protocols/ai-providers.md §2).

No sockets and no asyncio here (STYLE 1); ``cartesia_session.py`` moves the text frames.

- ``generation_request`` renders one input of a context (§2.2). Every field but ``transcript`` and
  ``continue`` is a function of the configuration and the output format only, so the inputs of a
  context repeat them unchanged, as Cartesia requires.
- ``cancel_request`` is the barge-in message (§2.2 "Cancel").
- ``parse_message`` turns one server frame into a ``CartesiaEvent`` (§2.3), both error shapes
  included: ``error_code``/``title``/``message`` since version 2026-03-01, ``"error": "Title:
  message"`` before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from callkit.errors import ProtocolError, UnknownEventError

if TYPE_CHECKING:
    from callkit.tts.cartesia import CartesiaTTS

__all__ = [
    "MAX_BUFFER_DELAY_MS",
    "AudioChunk",
    "CartesiaError",
    "CartesiaEvent",
    "ContextDone",
    "Encoding",
    "FlushDone",
    "SampleRate",
    "Timestamps",
    "cancel_request",
    "generation_request",
    "is_retryable_status",
    "parse_message",
]

Encoding = Literal["pcm_f32le", "pcm_s16le", "pcm_mulaw", "pcm_alaw"]
SampleRate = Literal[8000, 16000, 22050, 24000, 44100, 48000]

#: Server-side text buffering before synthesis (§2.2 ``max_buffer_delay_ms``, default 3000). Our
#: chunker sends whole clauses, so a long buffer only adds latency; §2.4 suggests 0 for whole
#: sentences. A clause cut at a comma or a word boundary has no closing punctuation, and 0 would
#: make Cartesia voice it alone; 100 ms lets the next clause (usually tens of ms behind) join it
#: while costing at most 100 ms, and mostly nothing: earlier audio is still playing.
MAX_BUFFER_DELAY_MS: Final = 100

_ENCODINGS: Final = frozenset({"pcm_f32le", "pcm_s16le", "pcm_mulaw", "pcm_alaw"})
_SAMPLE_RATES: Final = frozenset({8000, 16000, 22050, 24000, 44100, 48000})


# --- client → server (§2.2) -------------------------------------------------------------------------


class _Voice(msgspec.Struct, frozen=True, kw_only=True):
    mode: str = "id"  # "embedding" was removed on 2026-06-01
    id: str


class _OutputFormat(msgspec.Struct, frozen=True, kw_only=True):
    container: str = "raw"
    encoding: str
    sample_rate: int


class _GenerationConfig(msgspec.Struct, frozen=True):
    speed: float


class _GenerationRequest(msgspec.Struct, frozen=True):
    # Field order follows the example in §2.2 so a request reads like the documentation.
    model_id: str
    transcript: str
    voice: _Voice
    language: str
    context_id: str
    output_format: _OutputFormat
    add_timestamps: bool
    continue_: bool = msgspec.field(name="continue")
    max_buffer_delay_ms: int
    generation_config: _GenerationConfig


_encoder: Final = msgspec.json.Encoder()


def generation_request(
    config: CartesiaTTS,
    context_id: str,
    transcript: str,
    *,
    continue_: bool,
    encoding: Encoding = "pcm_mulaw",
    sample_rate: SampleRate = 8000,
    add_timestamps: bool = False,
    max_buffer_delay_ms: int = MAX_BUFFER_DELAY_MS,
) -> str:
    """One input of context ``context_id``: ``continue_=True`` while more text will follow.

    ``transcript`` goes out verbatim (pieces are concatenated by Cartesia, spaces included). The
    last input of a context is ``transcript=""`` with ``continue_=False`` (§2.4 step 3).
    Raises ``ConfigurationError`` without a voice id, ``ValueError`` for a format Cartesia lacks.
    """
    if encoding not in _ENCODINGS:
        raise ValueError(f"Cartesia has no encoding {encoding!r}")
    if sample_rate not in _SAMPLE_RATES:
        raise ValueError(f"Cartesia has no sample rate {sample_rate!r}")
    if not 0 <= max_buffer_delay_ms <= 5000:
        raise ValueError("max_buffer_delay_ms must be within 0-5000")
    request = _GenerationRequest(
        model_id=config.model,
        transcript=transcript,
        voice=_Voice(id=config.require_voice()),
        language=config.language,
        context_id=context_id,
        output_format=_OutputFormat(encoding=encoding, sample_rate=sample_rate),
        add_timestamps=add_timestamps,
        continue_=continue_,
        max_buffer_delay_ms=max_buffer_delay_ms,
        generation_config=_GenerationConfig(config.generation_speed),
    )
    return _encoder.encode(request).decode()


class _Cancel(msgspec.Struct, frozen=True):
    context_id: str
    cancel: bool = True


def cancel_request(context_id: str) -> str:
    """``{"context_id": ..., "cancel": true}``: stop generating for this context (barge-in)."""
    return _encoder.encode(_Cancel(context_id)).decode()


# --- server → client (§2.3) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Audio of ``context_id`` in the requested format, no header."""

    context_id: str
    audio: bytes


@dataclass(frozen=True, slots=True)
class Timestamps:
    """Word timings (seconds from the start of the context's audio), when ``add_timestamps``."""

    context_id: str
    words: tuple[str, ...]
    start: tuple[float, ...]
    end: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class FlushDone:
    """Boundary after a ``flush`` request."""

    context_id: str | None
    flush_id: int


@dataclass(frozen=True, slots=True)
class ContextDone:
    """The context finished: no more messages for it."""

    context_id: str


@dataclass(frozen=True, slots=True)
class CartesiaError:
    """An ``error`` message: an event, not an exception (the session turns it into ``ServiceError``).

    ``context_id`` is ``None`` when Cartesia could not tie the error to a context. ``code`` is the
    ``error_code`` of the 2026-03-01 shape (``None`` in the older ``"error": "Title: message"``
    shape). ``retryable``: 429 and 5xx.
    """

    context_id: str | None
    status_code: int
    code: str | None
    title: str
    message: str
    retryable: bool


CartesiaEvent = AudioChunk | Timestamps | FlushDone | ContextDone | CartesiaError


def is_retryable_status(status: int) -> bool:
    """Whether a request answered with ``status`` may succeed when tried again (rate limit, outage)."""
    return status == 429 or status >= 500


class _WordTimestamps(msgspec.Struct, frozen=True):
    words: tuple[str, ...] = ()
    start: tuple[float, ...] = ()
    end: tuple[float, ...] = ()


class _Message(msgspec.Struct, frozen=True):
    """Every server message in one shape: ``type`` says which fields matter."""

    type: str
    context_id: str | None = None
    data: bytes | None = None  # base64 on the wire; msgspec decodes it
    status_code: int | None = None
    word_timestamps: _WordTimestamps | None = None
    flush_id: int | None = None
    error_code: str | None = None
    title: str | None = None
    message: str | None = None
    error: str | None = None


_decoder: Final = msgspec.json.Decoder(_Message)


def parse_message(text: str | bytes) -> CartesiaEvent:
    """One server text frame → its event.

    Raises ``UnknownEventError`` for a ``type`` we do not handle (``phoneme_timestamps``, future
    types: ignorable) and ``ProtocolError`` for anything malformed.
    """
    try:
        message = _decoder.decode(text)
    except msgspec.MsgspecError as exc:
        raise ProtocolError(f"malformed Cartesia message: {exc}") from None
    match message.type:
        case "chunk":
            if message.data is None or message.context_id is None:
                raise ProtocolError("Cartesia chunk without data or context_id")
            return AudioChunk(message.context_id, message.data)
        case "timestamps":
            stamps = message.word_timestamps
            if stamps is None or message.context_id is None:
                raise ProtocolError("Cartesia timestamps without word_timestamps or context_id")
            if not len(stamps.words) == len(stamps.start) == len(stamps.end):
                raise ProtocolError("Cartesia word_timestamps lists differ in length")
            return Timestamps(message.context_id, stamps.words, stamps.start, stamps.end)
        case "flush_done":
            return FlushDone(message.context_id, message.flush_id or 0)
        case "done":
            if message.context_id is None:
                raise ProtocolError("Cartesia done without context_id")
            return ContextDone(message.context_id)
        case "error":
            return _error(message)
        case other:
            raise UnknownEventError(other)


def _error(message: _Message) -> CartesiaError:
    status = message.status_code or 500  # no status: treat as the server's fault
    if message.error_code is not None or message.title is not None or message.message is not None:
        title, text = message.title or "", message.message or ""  # 2026-03-01 and later
    else:
        title, sep, text = (message.error or "").partition(": ")  # older: "Title: message"
        if not sep:
            title, text = "", title
    return CartesiaError(
        message.context_id, status, message.error_code, title, text, is_retryable_status(status)
    )
