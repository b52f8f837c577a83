"""OpenAI Realtime messages, GA protocol only (docs/protocols/ai-providers.md §3), sans-I/O.

``session_update`` builds the GA ``session.update`` (§3.2); the client-event functions return the
JSON text of one client event (§3.3); ``parse_server_event`` decodes one server frame (§3.4) into a
small typed event. Server frames are decoded once into msgspec Structs that mirror the wire. A
``type`` we do not handle becomes ``Unknown`` (the server sends many we do not need); the retired
beta names (``response.audio.delta`` ...) become ``Unknown(beta=True)``: we speak GA only, and a
beta event means something is misconfigured, so sessions count them.

Turn detection from ``interrupt_sensitivity`` (server VAD; ``config.turn_detection`` overrides it):

========== ========= ===================== ===================
sensitivity threshold silence_duration_ms  why
========== ========= ===================== ===================
high        0.5       400                  barges in on quiet speech, replies fast
medium      0.6       500                  the usual phone line
low         0.75      700                  noisy lines: only clear speech counts
========== ========= ===================== ===================

``prefix_padding_ms`` is 300 and ``create_response`` true in all three. ``interrupt_response`` is
true unless ``interruptible`` is ``"none"`` or ``"dtmf"``: then speech must not cut the model off
(the server would cancel its own response on any ``speech_started``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from callkit.errors import MessageTooLargeError, ProtocolError
from callkit.realtime.openai import OpenAIRealtimeProvider

__all__ = [
    "BETA_EVENT_TYPES",
    "MAX_MESSAGE_BYTES",
    "AudioDelta",
    "AudioDone",
    "FunctionCall",
    "InputTranscript",
    "Interruptible",
    "RealtimeError",
    "RealtimeEvent",
    "ResponseCreated",
    "ResponseDone",
    "Sensitivity",
    "SessionCreated",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
    "TranscriptDelta",
    "TranscriptDone",
    "Truncated",
    "Unknown",
    "append_audio",
    "function_call_output",
    "parse_server_event",
    "response_cancel",
    "response_create",
    "server_vad",
    "session_update",
    "truncate",
    "user_text",
]

JSONSchema = dict[str, Any]
Sensitivity = Literal["low", "medium", "high"]
Interruptible = Literal["none", "dtmf", "speech", "any"]

#: A ``session.created``/``session.updated`` carries the whole config (tools included); 1 MiB is ample.
MAX_MESSAGE_BYTES: Final = 1 << 20
#: G.711 μ-law 8 kHz both ways: the carrier's media payload passes through untouched (§3.3).
PCMU: Final = {"type": "audio/pcmu"}
_VAD: Final[dict[str, tuple[float, int]]] = {"high": (0.5, 400), "medium": (0.6, 500), "low": (0.75, 700)}
#: Server event names of the retired beta protocol (§3.4, beta column) that GA renamed.
BETA_EVENT_TYPES: Final = frozenset(
    {
        "response.audio.delta",
        "response.audio.done",
        "response.audio_transcript.delta",
        "response.audio_transcript.done",
        "response.text.delta",
        "response.text.done",
    }
)

# --- session.update (§3.2) ----------------------------------------------------------------------


def server_vad(sensitivity: Sensitivity, interruptible: Interruptible) -> JSONSchema:
    """The ``server_vad`` turn detection for a sensitivity (table in the module docstring)."""
    threshold, silence_ms = _VAD[sensitivity]
    return {
        "type": "server_vad",
        "threshold": threshold,
        "prefix_padding_ms": 300,
        "silence_duration_ms": silence_ms,
        "create_response": True,
        "interrupt_response": interruptible not in ("none", "dtmf"),
    }


def session_update(
    config: OpenAIRealtimeProvider,
    *,
    instructions: str,
    tools: Sequence[JSONSchema] = (),
    interrupt_sensitivity: Sensitivity = "medium",
    interruptible: Interruptible = "any",
) -> JSONSchema:
    """The GA ``session.update`` event (§3.2 example shape); ``tools`` are flat Realtime tools.

    ``temperature`` is not part of GA and is not sent; ``max_response_output_tokens`` is sent as
    ``max_output_tokens`` (``"inf"`` included: GA accepts it).
    """
    turn_detection: Mapping[str, Any] = (
        config.turn_detection
        if config.turn_detection is not None
        else server_vad(interrupt_sensitivity, interruptible)
    )
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": instructions,
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": dict(PCMU),
                    "transcription": {"model": config.transcription_model},
                    "turn_detection": dict(turn_detection),
                },
                "output": {"format": dict(PCMU), "voice": config.voice},
            },
            "tools": [dict(tool) for tool in tools],
            "tool_choice": "auto",
            "max_output_tokens": config.max_response_output_tokens,
        },
    }


# --- client events (§3.3) -----------------------------------------------------------------------

_ENCODER: Final = msgspec.json.Encoder()


def _encode(event: JSONSchema) -> str:
    return _ENCODER.encode(event).decode()


def append_audio(b64_payload: str) -> str:
    """``input_audio_buffer.append``: the carrier's base64 μ-law payload, as is."""
    return _encode({"type": "input_audio_buffer.append", "audio": b64_payload})


def response_create(instructions: str | None = None) -> str:
    """``response.create``; ``instructions`` replace the session's for this response only."""
    if instructions is None:
        return '{"type":"response.create"}'
    return _encode({"type": "response.create", "response": {"instructions": instructions}})


def function_call_output(call_id: str, output: str) -> str:
    """A tool result item; follow it with one ``response.create`` (see ``ResponseGate``)."""
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return _encode({"type": "conversation.item.create", "item": item})


def user_text(text: str) -> str:
    """A user message item with ``input_text`` (DTMF digits, typed text)."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return _encode({"type": "conversation.item.create", "item": item})


def truncate(item_id: str, audio_end_ms: int, content_index: int = 0) -> str:
    """``conversation.item.truncate``: the assistant item was heard only up to ``audio_end_ms``."""
    return _encode(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": content_index,
            "audio_end_ms": audio_end_ms,
        }
    )


def response_cancel() -> str:
    """``response.cancel``; harmless when nothing is active (``response_cancel_not_active``)."""
    return '{"type":"response.cancel"}'


# --- events (what callers see) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionCreated:
    session_id: str


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    session_id: str


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Server VAD heard the caller start (ms of input audio); the barge-in signal."""

    audio_start_ms: int
    item_id: str


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    audio_end_ms: int
    item_id: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """Model audio, still base64 μ-law: it goes to the carrier as is."""

    response_id: str
    item_id: str
    content_index: int
    audio_b64: str


@dataclass(frozen=True, slots=True)
class AudioDone:
    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """A piece of the transcript of the model's audio (``response.output_audio_transcript.delta``)."""

    response_id: str
    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class TranscriptDone:
    response_id: str
    item_id: str
    transcript: str


@dataclass(frozen=True, slots=True)
class InputTranscript:
    """What the caller said (``conversation.item.input_audio_transcription.completed``)."""

    item_id: str
    transcript: str


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A tool call with complete ``arguments`` (a JSON string)."""

    call_id: str
    name: str
    arguments: str
    item_id: str


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: str


ResponseStatus = Literal["completed", "cancelled", "failed", "incomplete", "in_progress"]


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """The end of a response; ``output`` lists its function-call items (other items are left out).

    ``reason`` explains ``cancelled``/``incomplete``: ``turn_detected``, ``client_cancelled`` ...
    """

    response_id: str
    status: ResponseStatus
    output: tuple[FunctionCall, ...] = ()
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Truncated:
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class RealtimeError:
    """An in-band ``error`` event; most are recoverable and the session stays open (§3.4)."""

    type: str
    code: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """A well-formed event we do not handle; ``beta`` marks a retired beta name."""

    type: str
    beta: bool = False


RealtimeEvent = (
    SessionCreated
    | SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | AudioDelta
    | AudioDone
    | TranscriptDelta
    | TranscriptDone
    | InputTranscript
    | FunctionCall
    | ResponseCreated
    | ResponseDone
    | Truncated
    | RealtimeError
    | Unknown
)

# --- wire models --------------------------------------------------------------------------------


class _Wire(msgspec.Struct, gc=False):
    """Base of the wire models; unknown fields are ignored."""


class _Session(_Wire):
    id: str = ""


class _SessionCreated(_Wire, tag_field="type", tag="session.created"):
    session: _Session = msgspec.field(default_factory=_Session)


class _SessionUpdated(_Wire, tag_field="type", tag="session.updated"):
    session: _Session = msgspec.field(default_factory=_Session)


class _SpeechStarted(_Wire, tag_field="type", tag="input_audio_buffer.speech_started"):
    audio_start_ms: int
    item_id: str = ""


class _SpeechStopped(_Wire, tag_field="type", tag="input_audio_buffer.speech_stopped"):
    audio_end_ms: int
    item_id: str = ""


class _AudioDelta(_Wire, tag_field="type", tag="response.output_audio.delta"):
    response_id: str
    item_id: str
    delta: str
    content_index: int = 0


class _AudioDone(_Wire, tag_field="type", tag="response.output_audio.done"):
    response_id: str
    item_id: str


class _TranscriptDelta(_Wire, tag_field="type", tag="response.output_audio_transcript.delta"):
    response_id: str
    item_id: str
    delta: str


class _TranscriptDone(_Wire, tag_field="type", tag="response.output_audio_transcript.done"):
    response_id: str
    item_id: str
    transcript: str


class _InputTranscript(_Wire, tag_field="type", tag="conversation.item.input_audio_transcription.completed"):
    item_id: str
    transcript: str


class _ArgumentsDone(_Wire, tag_field="type", tag="response.function_call_arguments.done"):
    call_id: str
    name: str
    arguments: str
    item_id: str = ""


class _StatusDetails(_Wire):
    type: str = ""
    reason: str | None = None


class _OutputItem(_Wire):
    type: str
    id: str = ""
    call_id: str = ""
    name: str = ""
    arguments: str = ""


class _Response(_Wire):
    id: str
    status: ResponseStatus = "in_progress"
    status_details: _StatusDetails | None = None
    output: list[_OutputItem] = msgspec.field(default_factory=list)


class _ResponseCreated(_Wire, tag_field="type", tag="response.created"):
    response: _Response


class _ResponseDone(_Wire, tag_field="type", tag="response.done"):
    response: _Response


class _Truncated(_Wire, tag_field="type", tag="conversation.item.truncated"):
    item_id: str
    audio_end_ms: int
    content_index: int = 0


class _ErrorBody(_Wire):
    type: str = ""
    code: str | None = None
    message: str = ""


class _Error(_Wire, tag_field="type", tag="error"):
    error: _ErrorBody


_Server = (
    _SessionCreated
    | _SessionUpdated
    | _SpeechStarted
    | _SpeechStopped
    | _AudioDelta
    | _AudioDone
    | _TranscriptDelta
    | _TranscriptDone
    | _InputTranscript
    | _ArgumentsDone
    | _ResponseCreated
    | _ResponseDone
    | _Truncated
    | _Error
)
_SERVER: Final[msgspec.json.Decoder[_Server]] = msgspec.json.Decoder(_Server)
_SERVER_TAGS: Final = frozenset(
    str(cls.__struct_config__.tag)
    for cls in (
        _SessionCreated,
        _SessionUpdated,
        _SpeechStarted,
        _SpeechStopped,
        _AudioDelta,
        _AudioDone,
        _TranscriptDelta,
        _TranscriptDone,
        _InputTranscript,
        _ArgumentsDone,
        _ResponseCreated,
        _ResponseDone,
        _Truncated,
        _Error,
    )
)
_ENVELOPE: Final = msgspec.json.Decoder(dict[str, object])


def _decode(text: str | bytes) -> _Server | Unknown:
    if len(text) > MAX_MESSAGE_BYTES // 4:
        size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
        if size > MAX_MESSAGE_BYTES:
            raise MessageTooLargeError(f"Realtime event of {size} bytes is over {MAX_MESSAGE_BYTES}")
    try:
        return _SERVER.decode(text)
    except (msgspec.DecodeError, UnicodeError) as exc:
        error = exc
    # Only on the error path: was the type itself the problem?
    try:
        envelope = _ENVELOPE.decode(text)
    except (msgspec.DecodeError, UnicodeError):
        envelope = {}
    tag = envelope.get("type")
    if isinstance(tag, str) and tag not in _SERVER_TAGS:
        return Unknown(tag, beta=tag in BETA_EVENT_TYPES)
    raise ProtocolError(f"malformed Realtime event: {error}") from None


def _calls(response: _Response) -> tuple[FunctionCall, ...]:
    return tuple(
        FunctionCall(item.call_id, item.name, item.arguments, item.id)
        for item in response.output
        if item.type == "function_call"
    )


def parse_server_event(text: str | bytes) -> RealtimeEvent:
    """Decode one server event (§3.4). Unknown types give ``Unknown``; misfits raise ``ProtocolError``."""
    wire = _decode(text)
    match wire:
        case _SessionCreated(session=session):
            return SessionCreated(session.id)
        case _SessionUpdated(session=session):
            return SessionUpdated(session.id)
        case _SpeechStarted():
            return SpeechStarted(wire.audio_start_ms, wire.item_id)
        case _SpeechStopped():
            return SpeechStopped(wire.audio_end_ms, wire.item_id)
        case _AudioDelta():
            return AudioDelta(wire.response_id, wire.item_id, wire.content_index, wire.delta)
        case _AudioDone():
            return AudioDone(wire.response_id, wire.item_id)
        case _TranscriptDelta():
            return TranscriptDelta(wire.response_id, wire.item_id, wire.delta)
        case _TranscriptDone():
            return TranscriptDone(wire.response_id, wire.item_id, wire.transcript)
        case _InputTranscript():
            return InputTranscript(wire.item_id, wire.transcript)
        case _ArgumentsDone():
            return FunctionCall(wire.call_id, wire.name, wire.arguments, wire.item_id)
        case _ResponseCreated(response=response):
            return ResponseCreated(response.id)
        case _ResponseDone(response=response):
            details = response.status_details
            reason = details.reason if details is not None else None
            return ResponseDone(response.id, response.status, _calls(response), reason)
        case _Truncated():
            return Truncated(wire.item_id, wire.content_index, wire.audio_end_ms)
        case _Error(error=body):
            return RealtimeError(body.type, body.code, body.message)
        case Unknown():
            return wire
