"""Twilio Media Streams messages (docs/protocols/twilio.md §4): JSON text frames both ways, sans-I/O.

Frames are decoded once into msgspec Structs that mirror the wire, then mapped to the
carrier-neutral events in ``callkit.carriers._types``. Counters are decimal strings on the wire.
"""

from __future__ import annotations

import base64

import msgspec

from callkit.carriers._frames import Digit
from callkit.carriers._types import (
    ClearAudio,
    PlaceMark,
    PlayAudio,
    StreamCleared,
    StreamCommand,
    StreamConnected,
    StreamDtmf,
    StreamEvent,
    StreamMarkPlayed,
    StreamMedia,
    StreamStarted,
    StreamStopped,
)
from callkit.carriers.twilio._wire import b64decode, counter, decode
from callkit.errors import UnsupportedError

__all__ = [
    "decode_stream_command",
    "decode_stream_message",
    "encode_clear",
    "encode_mark",
    "encode_play_audio",
    "encode_stream_event",
]

# Counters are strings on the wire; ints are accepted too, because being strict gains nothing.
_Counter = int | str | None


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    """Base of the wire models: camelCase names, unknown fields ignored, ``None`` fields omitted."""


# --- Twilio -> us ------------------------------------------------------------------------------


class _Connected(_Wire, tag_field="event", tag="connected"):
    protocol: str
    version: str


class _MediaFormat(_Wire):
    encoding: str
    sample_rate: int
    channels: int | None = None


class _StartBody(_Wire):
    stream_sid: str
    account_sid: str
    call_sid: str
    media_format: _MediaFormat
    tracks: list[str] = msgspec.field(default_factory=list)
    custom_parameters: dict[str, str] = msgspec.field(default_factory=dict)


class _Start(_Wire, tag_field="event", tag="start"):
    start: _StartBody
    stream_sid: str | None = None
    sequence_number: _Counter = None


class _MediaBody(_Wire):
    payload: str
    track: str | None = None
    chunk: _Counter = None
    timestamp: _Counter = None


class _Media(_Wire, tag_field="event", tag="media"):
    stream_sid: str
    media: _MediaBody
    sequence_number: _Counter = None


class _DtmfBody(_Wire):
    digit: Digit  # one key: a 5,000-character "digit" is a malformed frame
    track: str | None = None


class _Dtmf(_Wire, tag_field="event", tag="dtmf"):
    stream_sid: str
    dtmf: _DtmfBody
    sequence_number: _Counter = None


class _MarkBody(_Wire):
    name: str


class _Mark(_Wire, tag_field="event", tag="mark"):
    stream_sid: str
    mark: _MarkBody
    sequence_number: _Counter = None


class _StopBody(_Wire):
    account_sid: str | None = None
    call_sid: str | None = None


class _Stop(_Wire, tag_field="event", tag="stop"):
    stream_sid: str
    stop: _StopBody | None = None
    sequence_number: _Counter = None


_Inbound = _Connected | _Start | _Media | _Dtmf | _Mark | _Stop
_INBOUND: msgspec.json.Decoder[_Inbound] = msgspec.json.Decoder(_Inbound)
_INBOUND_TAGS = frozenset({"connected", "start", "media", "dtmf", "mark", "stop"})

# --- us -> Twilio ------------------------------------------------------------------------------


class _OutMediaBody(_Wire):
    payload: str


class _OutMedia(_Wire, tag_field="event", tag="media"):
    stream_sid: str
    media: _OutMediaBody


class _OutMark(_Wire, tag_field="event", tag="mark"):
    stream_sid: str
    mark: _MarkBody


class _OutClear(_Wire, tag_field="event", tag="clear"):
    stream_sid: str


_Outbound = _OutMedia | _OutMark | _OutClear
_OUTBOUND: msgspec.json.Decoder[_Outbound] = msgspec.json.Decoder(_Outbound)
_OUTBOUND_TAGS = frozenset({"media", "mark", "clear"})
_ENCODER = msgspec.json.Encoder()


def decode_stream_message(text: str | bytes) -> StreamEvent:
    """Decode one frame Twilio sent on a Media Stream.

    Raises ``MessageTooLargeError`` (checked before parsing), ``UnknownEventError`` for a
    well-formed frame with an ``event`` we do not know, ``ProtocolError`` for anything else.
    """
    wire = decode(_INBOUND, "event", _INBOUND_TAGS, text)
    match wire:
        case _Media(stream_sid=sid, media=media, sequence_number=seq):
            return StreamMedia(
                stream_id=sid,
                audio=b64decode(media.payload, "media.payload"),
                timestamp_ms=counter(media.timestamp, "media.timestamp"),
                chunk=counter(media.chunk, "media.chunk"),
                sequence=counter(seq, "sequenceNumber"),
            )
        case _Connected():
            return StreamConnected(protocol=wire.protocol, version=wire.version)
        case _Start(start=start, sequence_number=seq):
            return StreamStarted(
                stream_id=wire.stream_sid or start.stream_sid,
                call_id=start.call_sid,
                account_id=start.account_sid,
                encoding=start.media_format.encoding,
                sample_rate=start.media_format.sample_rate,
                parameters=start.custom_parameters,
                sequence=counter(seq, "sequenceNumber"),
            )
        case _Dtmf(stream_sid=sid, dtmf=dtmf, sequence_number=seq):
            return StreamDtmf(stream_id=sid, digit=dtmf.digit, sequence=counter(seq, "sequenceNumber"))
        case _Mark(stream_sid=sid, mark=mark, sequence_number=seq):
            return StreamMarkPlayed(stream_id=sid, name=mark.name, sequence=counter(seq, "sequenceNumber"))
        case _Stop(stream_sid=sid, stop=stop, sequence_number=seq):
            call_id = stop.call_sid if stop is not None else None
            return StreamStopped(stream_id=sid, call_id=call_id, sequence=counter(seq, "sequenceNumber"))


def _seq(sequence: int | None) -> str | None:
    return None if sequence is None else str(sequence)


def encode_stream_event(event: StreamEvent) -> str:
    """Encode ``event`` as Twilio would send it (for the fake carrier).

    ``StreamCleared`` is Plivo's; Twilio has no such event, so it raises ``UnsupportedError``.
    """
    wire: _Inbound
    match event:
        case StreamConnected():
            wire = _Connected(protocol=event.protocol, version=event.version)
        case StreamStarted():
            body = _StartBody(
                stream_sid=event.stream_id,
                account_sid=event.account_id,
                call_sid=event.call_id,
                media_format=_MediaFormat(encoding=event.encoding, sample_rate=event.sample_rate, channels=1),
                tracks=["inbound"],
                custom_parameters=dict(event.parameters),
            )
            wire = _Start(start=body, stream_sid=event.stream_id, sequence_number=_seq(event.sequence))
        case StreamMedia():
            media = _MediaBody(
                payload=base64.b64encode(event.audio).decode("ascii"),
                track="inbound",
                chunk=_seq(event.chunk),
                timestamp=_seq(event.timestamp_ms),
            )
            wire = _Media(stream_sid=event.stream_id, media=media, sequence_number=_seq(event.sequence))
        case StreamDtmf():
            dtmf = _DtmfBody(digit=event.digit, track="inbound_track")
            wire = _Dtmf(stream_sid=event.stream_id, dtmf=dtmf, sequence_number=_seq(event.sequence))
        case StreamMarkPlayed():
            mark = _MarkBody(name=event.name)
            wire = _Mark(stream_sid=event.stream_id, mark=mark, sequence_number=_seq(event.sequence))
        case StreamStopped():
            stop = _StopBody(call_sid=event.call_id)
            wire = _Stop(stream_sid=event.stream_id, stop=stop, sequence_number=_seq(event.sequence))
        case StreamCleared():
            raise UnsupportedError("Twilio Media Streams have no cleared-audio acknowledgement")
    return _ENCODER.encode(wire).decode("utf-8")


def encode_play_audio(stream_id: str, audio: bytes) -> str:
    """Queue raw audio in the stream's encoding (μ-law 8 kHz, no file header; docs/protocols/twilio.md §4)."""
    media = _OutMediaBody(payload=base64.b64encode(audio).decode("ascii"))
    return _ENCODER.encode(_OutMedia(stream_sid=stream_id, media=media)).decode("utf-8")


def encode_mark(stream_id: str, name: str) -> str:
    """Place a mark after the audio queued so far; Twilio echoes it when played or cleared."""
    return _ENCODER.encode(_OutMark(stream_sid=stream_id, mark=_MarkBody(name=name))).decode("utf-8")


def encode_clear(stream_id: str) -> str:
    """Drop queued, unplayed audio (barge-in); Twilio echoes pending marks at once."""
    return _ENCODER.encode(_OutClear(stream_sid=stream_id)).decode("utf-8")


def decode_stream_command(text: str | bytes) -> StreamCommand:
    """Decode a frame we sent (for the fake carrier); same errors as ``decode_stream_message``."""
    wire = decode(_OUTBOUND, "event", _OUTBOUND_TAGS, text)
    match wire:
        case _OutMedia():
            return PlayAudio(stream_id=wire.stream_sid, audio=b64decode(wire.media.payload, "media.payload"))
        case _OutMark():
            return PlaceMark(stream_id=wire.stream_sid, name=wire.mark.name)
        case _OutClear():
            return ClearAudio(stream_id=wire.stream_sid)
