"""Deepgram live transcription messages (docs/protocols/ai-providers.md §1), sans-I/O.

Server frames are decoded once into msgspec Structs that mirror the wire (§1.4), then mapped to
small typed events; a ``type`` we do not know becomes ``Unknown`` (Deepgram adds types over time
and says to ignore them). Client control messages (§1.3) are JSON text. ``UtteranceAssembler``
turns the event stream into caller utterances (§1.5) and ``classify_close`` says what a closed
socket means (§1.6). The encoders for the server's side exist for fakes (``callkit.testing``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import msgspec

from callkit.errors import MessageTooLargeError, ProtocolError, UnknownEventError
from callkit.stt.events import Interim, SpeechStarted, STTEvent, Utterance

__all__ = [
    "MAX_MESSAGE_BYTES",
    "ClientMessage",
    "CloseOutcome",
    "CloseStream",
    "DeepgramError",
    "DeepgramEvent",
    "Finalize",
    "Interim",
    "KeepAlive",
    "Metadata",
    "STTEvent",
    "SpeechStarted",
    "Transcript",
    "Unknown",
    "Utterance",
    "UtteranceAssembler",
    "UtteranceEnd",
    "Word",
    "classify_close",
    "close_stream",
    "encode_client_message",
    "encode_event",
    "finalize",
    "keep_alive",
    "parse_client_message",
    "parse_message",
]

#: Larger than any ``Results`` Deepgram sends for phone audio (a word list per segment).
MAX_MESSAGE_BYTES: Final = 1 << 20

# --- events (what callers see) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word; times in seconds of audio from the start of this socket's stream."""

    word: str
    start: float
    end: float
    confidence: float = 0.0
    punctuated_word: str | None = None


@dataclass(frozen=True, slots=True)
class Transcript:
    """A ``Results`` message: the text for the audio span ``start`` .. ``start + duration`` (seconds).

    ``is_final``: this span's text will not change again. ``speech_final``: endpointing saw a pause.
    ``from_finalize``: produced by our ``Finalize``. ``text`` may be ``""``.
    """

    text: str
    is_final: bool
    speech_final: bool
    from_finalize: bool
    start: float
    duration: float
    words: tuple[Word, ...] = ()
    confidence: float = 0.0


@dataclass(frozen=True, slots=True)
class UtteranceEnd:
    """No new word for ``utterance_end_ms`` after the word that ended at ``last_word_end`` (s)."""

    last_word_end: float


@dataclass(frozen=True, slots=True)
class Metadata:
    """Sent at the end of a stream (after ``CloseStream``); ``request_id`` is what Deepgram support asks for."""

    request_id: str
    duration: float = 0.0
    channels: int = 1


@dataclass(frozen=True, slots=True)
class DeepgramError:
    """An in-band ``Error`` message (a client text frame Deepgram could not use); not an exception."""

    description: str
    variant: str = ""


@dataclass(frozen=True, slots=True)
class Unknown:
    """A well-formed message of a ``type`` this module does not know; ignore it."""

    type: str


DeepgramEvent = Transcript | UtteranceEnd | SpeechStarted | Metadata | DeepgramError | Unknown


@dataclass(frozen=True, slots=True)
class KeepAlive:
    pass


@dataclass(frozen=True, slots=True)
class Finalize:
    pass


@dataclass(frozen=True, slots=True)
class CloseStream:
    pass


ClientMessage = KeepAlive | Finalize | CloseStream

# --- wire models --------------------------------------------------------------------------------


class _Wire(msgspec.Struct, omit_defaults=True, gc=False):
    """Base of the wire models: Deepgram's names are already snake_case; unknown fields are ignored."""


class _Word(_Wire):
    word: str
    start: float
    end: float
    confidence: float = 0.0
    punctuated_word: str | None = None
    speaker: int | None = None
    language: str | None = None


class _Alternative(_Wire):
    transcript: str = ""
    confidence: float = 0.0
    words: list[_Word] = msgspec.field(default_factory=list)


class _Channel(_Wire):
    alternatives: list[_Alternative] = msgspec.field(default_factory=list)


class _ResultsMetadata(_Wire):
    request_id: str = ""
    model_uuid: str | None = None


class _Results(_Wire, tag_field="type", tag="Results"):
    channel: _Channel
    start: float = 0.0
    duration: float = 0.0
    is_final: bool = False
    speech_final: bool = False
    from_finalize: bool = False
    channel_index: list[int] = msgspec.field(default_factory=lambda: [0, 1])
    metadata: _ResultsMetadata | None = None


class _UtteranceEnd(_Wire, tag_field="type", tag="UtteranceEnd"):
    last_word_end: float
    channel: list[int] = msgspec.field(default_factory=lambda: [0, 1])


class _SpeechStarted(_Wire, tag_field="type", tag="SpeechStarted"):
    timestamp: float
    channel: list[int] = msgspec.field(default_factory=lambda: [0, 1])


class _Metadata(_Wire, tag_field="type", tag="Metadata"):
    request_id: str = ""
    transaction_key: str | None = None
    sha256: str | None = None
    created: str | None = None
    duration: float = 0.0
    channels: int = 1


class _Error(_Wire, tag_field="type", tag="Error"):
    description: str = ""
    variant: str = ""
    message: str | None = None


_Server = _Results | _UtteranceEnd | _SpeechStarted | _Metadata | _Error
_SERVER: msgspec.json.Decoder[_Server] = msgspec.json.Decoder(_Server)
_SERVER_TAGS: Final = frozenset({"Results", "UtteranceEnd", "SpeechStarted", "Metadata", "Error"})


class _KeepAlive(_Wire, tag_field="type", tag="KeepAlive"):
    pass


class _Finalize(_Wire, tag_field="type", tag="Finalize"):
    channel: int | None = None


class _CloseStream(_Wire, tag_field="type", tag="CloseStream"):
    pass


_Client = _KeepAlive | _Finalize | _CloseStream
_CLIENT: msgspec.json.Decoder[_Client] = msgspec.json.Decoder(_Client)
_CLIENT_TAGS: Final = frozenset({"KeepAlive", "Finalize", "CloseStream"})

_ENCODER: Final = msgspec.json.Encoder()
_ENVELOPE: Final = msgspec.json.Decoder(dict[str, object])


def _decode[T](decoder: msgspec.json.Decoder[T], tags: frozenset[str], text: str | bytes) -> T | Unknown:
    # UTF-8 needs at most 4 bytes a code point, so a short str cannot be over the limit.
    if len(text) > MAX_MESSAGE_BYTES // 4:
        size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
        if size > MAX_MESSAGE_BYTES:
            raise MessageTooLargeError(f"Deepgram message of {size} bytes is over {MAX_MESSAGE_BYTES}")
    try:
        return decoder.decode(text)
    except (msgspec.DecodeError, UnicodeError) as exc:
        error = exc
    # Only on the error path: was the type itself the problem?
    try:
        envelope = _ENVELOPE.decode(text)
    except (msgspec.DecodeError, UnicodeError):
        envelope = {}
    tag = envelope.get("type")
    if isinstance(tag, str) and tag not in tags:
        return Unknown(tag)
    raise ProtocolError(f"malformed Deepgram message: {error}") from None


# --- server -> us -------------------------------------------------------------------------------


def parse_message(text: str | bytes) -> DeepgramEvent:
    """Decode one frame Deepgram sent (§1.4).

    An unknown ``type`` gives ``Unknown``; anything that does not fit raises ``ProtocolError``
    (``MessageTooLargeError`` over ``MAX_MESSAGE_BYTES``).
    """
    wire = _decode(_SERVER, _SERVER_TAGS, text)
    match wire:
        case _Results(channel=channel):
            if not channel.alternatives:
                return Transcript(
                    "", wire.is_final, wire.speech_final, wire.from_finalize, wire.start, wire.duration
                )
            best = channel.alternatives[0]
            words = tuple(Word(w.word, w.start, w.end, w.confidence, w.punctuated_word) for w in best.words)
            return Transcript(
                text=best.transcript,
                is_final=wire.is_final,
                speech_final=wire.speech_final,
                from_finalize=wire.from_finalize,
                start=wire.start,
                duration=wire.duration,
                words=words,
                confidence=best.confidence,
            )
        case _UtteranceEnd():
            return UtteranceEnd(wire.last_word_end)
        case _SpeechStarted():
            return SpeechStarted(wire.timestamp)
        case _Metadata():
            return Metadata(wire.request_id, wire.duration, wire.channels)
        case _Error():
            return DeepgramError(wire.description, wire.variant)
        case Unknown():
            return wire


def encode_event(event: DeepgramEvent, *, request_id: str = "") -> str:
    """Encode ``event`` as Deepgram sends it (for fakes); ``request_id`` goes into ``Results.metadata``."""
    wire: _Server | dict[str, str]
    match event:
        case Transcript():
            words = [_Word(w.word, w.start, w.end, w.confidence, w.punctuated_word) for w in event.words]
            wire = _Results(
                channel=_Channel([_Alternative(event.text, event.confidence, words)]),
                start=event.start,
                duration=event.duration,
                is_final=event.is_final,
                speech_final=event.speech_final,
                from_finalize=event.from_finalize,
                metadata=_ResultsMetadata(request_id),
            )
        case UtteranceEnd():
            wire = _UtteranceEnd(event.last_word_end)
        case SpeechStarted():
            wire = _SpeechStarted(event.timestamp)
        case Metadata():
            wire = _Metadata(event.request_id, "deprecated", duration=event.duration, channels=event.channels)
        case DeepgramError():
            wire = _Error(event.description, event.variant)
        case Unknown():
            wire = {"type": event.type}
    return _ENCODER.encode(wire).decode()


# --- us -> server (§1.3: always text frames) ----------------------------------------------------

_KEEP_ALIVE: Final = '{"type":"KeepAlive"}'
_FINALIZE: Final = '{"type":"Finalize"}'
_CLOSE_STREAM: Final = '{"type":"CloseStream"}'


def keep_alive() -> str:
    """Keeps the socket open while no audio flows; Deepgram does not answer it."""
    return _KEEP_ALIVE


def finalize() -> str:
    """Flush buffered audio now; the result carries ``from_finalize: true``."""
    return _FINALIZE


def close_stream() -> str:
    """Flush, send the remaining ``Results`` and a ``Metadata``, then close with 1000."""
    return _CLOSE_STREAM


def encode_client_message(message: ClientMessage) -> str:
    match message:
        case KeepAlive():
            return _KEEP_ALIVE
        case Finalize():
            return _FINALIZE
        case CloseStream():
            return _CLOSE_STREAM


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Decode a client text frame (for fakes). Raises ``UnknownEventError`` or ``ProtocolError``."""
    wire = _decode(_CLIENT, _CLIENT_TAGS, text)
    match wire:
        case _KeepAlive():
            return KeepAlive()
        case _Finalize():
            return Finalize()
        case _CloseStream():
            return CloseStream()
        case Unknown(type=tag):
            raise UnknownEventError(tag)


# --- closes (§1.6) ------------------------------------------------------------------------------

CloseOutcome = Literal["ended", "dropped", "failed"]

# Codes that say our audio or our frames are wrong: a new socket would get the same answer.
_FATAL_CODES: Final = frozenset({1002, 1003, 1007, 1008, 1009})


def classify_close(code: int | None, reason: str, *, close_stream_sent: bool) -> CloseOutcome:
    """What a closed socket means for the session.

    ``ended``: we asked for it (``CloseStream``). ``failed``: Deepgram rejected our data
    (``DATA-0000``, 1002/1003/1007/1008/1009); reconnecting would fail the same way. ``dropped``:
    everything else (no close frame, 1006, 1011 ``NET-0001``/``NET-0000``, 1001, 1012, even 1000
    when we did not ask): worth one new socket.
    """
    if close_stream_sent:
        return "ended"
    if reason.startswith("DATA-") or code in _FATAL_CODES:
        return "failed"
    return "dropped"


# --- assembling utterances (§1.5) ---------------------------------------------------------------


_NOTHING: Final[tuple[STTEvent, ...]] = ()


class UtteranceAssembler:
    """§1.5: collect ``is_final`` pieces; ``speech_final`` or ``UtteranceEnd`` closes the turn.

    A ``from_finalize`` result closes the turn too: we only send ``Finalize`` when our own VAD
    decided the turn ended (§1.5 step 7), and Deepgram may answer it with ``speech_final: false``.
    ``SpeechStarted`` passes through as an early barge-in hint; other events give nothing.
    """

    __slots__ = ("_finals",)

    def __init__(self) -> None:
        self._finals: list[str] = []

    @property
    def pending(self) -> bool:
        """Whether final pieces are waiting for the end of the turn."""
        return bool(self._finals)

    def feed(self, event: DeepgramEvent) -> tuple[STTEvent, ...]:
        match event:
            case Transcript(is_final=False, text=text):
                text = text.strip()
                return (Interim(text),) if text else _NOTHING
            case Transcript(text=text):
                text = text.strip()
                if text:
                    self._finals.append(text)
                if event.speech_final or event.from_finalize:
                    return self._close()
                return _NOTHING
            case UtteranceEnd():
                # Empty: the turn was already emitted on speech_final. Else endpointing missed the pause.
                return self._close()
            case SpeechStarted():
                return (event,)
            case _:
                return _NOTHING

    def flush(self) -> Utterance | None:
        """The pending turn, if any (at the end of the stream), and clear."""
        if not self._finals:
            return None
        text = " ".join(self._finals)
        self._finals.clear()
        return Utterance(text)

    def _close(self) -> tuple[STTEvent, ...]:
        utterance = self.flush()
        return _NOTHING if utterance is None else (utterance,)
