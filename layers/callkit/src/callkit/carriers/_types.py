"""Carrier-neutral types that every carrier module produces or consumes.

Each carrier package (``twilio``, ``plivo``) parses its own wire format into these and renders
these into its own wire format, so the webhook app and the media server never see a carrier's
field names. Everything here is a plain frozen value: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs

from callkit.errors import ProtocolError
from callkit.lifecycle import CallStatus

#: Largest webhook body we parse. Twilio and Plivo callbacks are a few KB; anything near this is abuse.
MAX_WEBHOOK_BODY_BYTES = 64 * 1024
#: Largest stream/relay text frame we decode. A 20 ms media frame is ~300 bytes; API Gateway caps
#: WebSocket messages at 128 KB (docs/aws.md §1.5).
MAX_STREAM_MESSAGE_BYTES = 128 * 1024

Form = Mapping[str, list[str]]
"""Decoded form or query parameters, in wire order per name (``parse_qs`` shape)."""


def parse_form(body: bytes | str) -> dict[str, list[str]]:
    """Decode an ``application/x-www-form-urlencoded`` body (``+`` is a space, blanks kept)."""
    try:
        text = body.decode("utf-8", errors="strict") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise ProtocolError("form body is not UTF-8") from exc
    return parse_qs(text, keep_blank_values=True, strict_parsing=False)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """An HTTP request exactly as the carrier signed it.

    ``url`` is the public URL the carrier requested (scheme, host, port if any, path and the raw
    query string unchanged), never what a proxy or Lambda shows us. ``headers`` has lower-cased
    names. ``body`` is the raw body (already base64-decoded if API Gateway encoded it).
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""

    def form(self) -> dict[str, list[str]]:
        """The form parameters of a POST body (empty for GET or a non-form body)."""
        if self.method.upper() != "POST" or not self.body:
            return {}
        content_type = self.headers.get("content-type", "application/x-www-form-urlencoded")
        if not content_type.lower().startswith("application/x-www-form-urlencoded"):
            return {}
        return parse_form(self.body)


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """The incoming-call webhook (Twilio Voice URL, Plivo Answer URL)."""

    carrier: Literal["twilio", "plivo"]
    call_id: str
    account_id: str
    from_number: str
    to_number: str
    direction: str
    status: str
    forwarded_from: str | None = None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A call status callback (Twilio statusCallback, Plivo Hangup URL).

    ``sequence`` orders callbacks of one call when the carrier numbers them (Twilio
    ``SequenceNumber``); ``None`` when it does not. ``duration_seconds`` and ``ended_at`` (epoch
    seconds) are set on terminal updates when the carrier sends them.
    """

    carrier: Literal["twilio", "plivo"]
    call_id: str
    status: CallStatus
    sequence: int | None = None
    duration_seconds: int | None = None
    ended_at: float | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RelayEnded:
    """Twilio's ``<Connect action>`` callback after a ConversationRelay session (docs/protocols/twilio.md §3).

    ``handoff_data`` is exactly what we sent in ``end.handoffData`` (``None`` if we sent no ``end``).
    """

    call_id: str
    session_status: str
    handoff_data: str | None
    error_code: str | None = None


# --- answers: what we tell the carrier to do with the call -----------------------------------


@dataclass(frozen=True, slots=True)
class StreamAnswer:
    """Connect the call's audio to our media server WebSocket (cascading and realtime pipelines).

    ``url`` is a ``wss://`` URL without a query string (Twilio rejects one on ``<Stream>``); the
    token travels as a ``<Parameter>`` (Twilio) or in ``extraHeaders`` (Plivo).
    """

    url: str
    token: str
    #: Audio format both ways. μ-law 8 kHz is what every pipeline here consumes.
    content_type: Literal["audio/x-mulaw;rate=8000", "audio/x-l16;rate=8000", "audio/x-l16;rate=16000"] = (
        "audio/x-mulaw;rate=8000"
    )
    status_callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class RelayAnswer:
    """Connect the call to ConversationRelay (managed pipeline, Twilio only; docs/protocols/twilio.md §3)."""

    url: str
    welcome_greeting: str | None
    voice: str | None
    language: str
    interruptible: Literal["none", "dtmf", "speech", "any"]
    interrupt_sensitivity: Literal["low", "medium", "high"]
    tts_provider: str
    transcription_provider: str
    dtmf_detection: bool = True
    action_url: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """Apologise and hang up."""

    message: str
    language: str = "en-US"


@dataclass(frozen=True, slots=True)
class DialAnswer:
    """Connect the caller to another number (a transfer after a relay session; docs/protocols/twilio.md §3)."""

    number: str
    timeout_seconds: int = 30


@dataclass(frozen=True, slots=True)
class HangupAnswer:
    """End the call."""


Answer = StreamAnswer | RelayAnswer | ErrorAnswer | DialAnswer | HangupAnswer


# --- audio stream events (Twilio Media Streams, Plivo audio streams) --------------------------


@dataclass(frozen=True, slots=True)
class StreamConnected:
    """Twilio's first frame (``connected``); Plivo has none."""

    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """The stream's metadata, once, before any media.

    ``parameters`` are Twilio ``customParameters`` or Plivo ``extra_headers`` parsed to a map;
    the stream token is ``parameters["token"]``.
    """

    stream_id: str
    call_id: str
    account_id: str
    encoding: str
    sample_rate: int
    parameters: Mapping[str, str]
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class StreamMedia:
    """One inbound audio frame, decoded from base64 (raw samples in the stream's encoding)."""

    stream_id: str
    audio: bytes
    timestamp_ms: int | None
    chunk: int | None
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class StreamDtmf:
    stream_id: str
    digit: str
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class StreamMarkPlayed:
    """Playback reached a marker we queued (Twilio ``mark`` echo, Plivo ``playedStream``).

    Twilio also echoes marks discarded by ``clear``; Plivo does not acknowledge cleared checkpoints.
    """

    stream_id: str
    name: str
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class StreamCleared:
    """Plivo's ``clearedAudio`` acknowledgement of our ``clearAudio``."""

    stream_id: str
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class StreamStopped:
    stream_id: str
    call_id: str | None = None
    sequence: int | None = None


StreamEvent = (
    StreamConnected
    | StreamStarted
    | StreamMedia
    | StreamDtmf
    | StreamMarkPlayed
    | StreamCleared
    | StreamStopped
)


# --- commands we send on an audio stream (the fakes decode these) ------------------------------


@dataclass(frozen=True, slots=True)
class PlayAudio:
    """Queue raw audio (in the stream's encoding) for playback: Twilio ``media``, Plivo ``playAudio``."""

    stream_id: str
    audio: bytes


@dataclass(frozen=True, slots=True)
class PlaceMark:
    """Mark the current end of the playback queue: Twilio ``mark``, Plivo ``checkpoint``."""

    stream_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ClearAudio:
    """Drop queued, unplayed audio (barge-in): Twilio ``clear``, Plivo ``clearAudio``."""

    stream_id: str


StreamCommand = PlayAudio | PlaceMark | ClearAudio
