"""Plivo audio stream frames (docs/protocols/plivo.md §5): JSON text both ways, decoded once into msgspec Structs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

import msgspec

from callkit.carriers._frames import DECODE_ERRORS, check_frame, counter
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
from callkit.carriers.plivo import _wire
from callkit.errors import ProtocolError, UnknownEventError, UnsupportedError

if TYPE_CHECKING:
    from collections.abc import Mapping

# playAudio takes the type without ";rate=" and the rate separately; both must match the
# <Stream contentType> (docs/protocols/plivo.md §5, us -> Plivo).
_PLAY_RATES: Final[dict[str, frozenset[int]]] = {
    "audio/x-mulaw": frozenset({8000}),
    "audio/x-l16": frozenset({8000, 16000}),
}
# Bounded so int() never meets a pathological digit string; covers every int64.
_INTEGER: Final = re.compile(r"-?[0-9]{1,19}")
_PLAIN_HEADER_KEY: Final = re.compile(r"[A-Za-z0-9]+")
_PLAIN_HEADER_VALUE: Final = re.compile(r"[A-Za-z0-9]*")
_HEADER_SEPARATORS: Final = re.compile(r"[;,]")

_EVENTS: Final[msgspec.json.Decoder[_wire.Event]] = msgspec.json.Decoder(_wire.Event)
_COMMANDS: Final[msgspec.json.Decoder[_wire.Command]] = msgspec.json.Decoder(_wire.Command)
_ENVELOPE: Final = msgspec.json.Decoder(_wire.Envelope)
_HEADER_OBJECT: Final = msgspec.json.Decoder(dict[str, str | int | float | bool | None])
_ENCODER: Final = msgspec.json.Encoder()


# --- Plivo -> us ------------------------------------------------------------------------------


def decode_stream_message(text: str | bytes) -> StreamEvent:
    """Decode one frame Plivo sent on the audio stream.

    Raises ``MessageTooLargeError`` over ``MAX_STREAM_MESSAGE_BYTES``, ``UnknownEventError`` for a
    well-formed frame with an ``event`` we do not know, ``ProtocolError`` for anything else wrong.
    """
    frame = _decode(_EVENTS, _wire.EVENT_TAGS, text)
    if isinstance(frame, _wire.Media):  # the hot path: ~50 frames a second
        media = frame.media
        return StreamMedia(
            stream_id=frame.streamId,
            audio=media.payload,
            timestamp_ms=_timestamp(media.timestamp),
            chunk=counter(media.chunk, "media.chunk"),
            sequence=_sequence(frame),
        )
    if isinstance(frame, _wire.Start):
        start = frame.start
        return StreamStarted(
            stream_id=start.streamId,
            call_id=start.callId,
            account_id=start.accountId,
            encoding=start.mediaFormat.encoding,
            sample_rate=start.mediaFormat.sampleRate,
            parameters=_parameters(frame.extra_headers),
            sequence=_sequence(frame),
        )
    if isinstance(frame, _wire.Dtmf):
        return StreamDtmf(stream_id=frame.streamId, digit=frame.dtmf.digit, sequence=_sequence(frame))
    if isinstance(frame, _wire.PlayedStream):  # also the "played" spelling
        return StreamMarkPlayed(stream_id=frame.streamId, name=frame.name, sequence=_sequence(frame))
    if isinstance(frame, _wire.ClearedAudio):
        return StreamCleared(stream_id=frame.streamId, sequence=_sequence(frame))
    stop = frame.stop
    return StreamStopped(
        stream_id=frame.streamId or (stop.streamId if stop and stop.streamId else ""),
        call_id=stop.callId if stop else None,
        sequence=_sequence(frame),
    )


def encode_stream_event(event: StreamEvent) -> str:
    """The frame Plivo would send for ``event`` (for the simulated carrier).

    Raises ``UnsupportedError`` for ``StreamConnected``: Plivo has no such frame.
    """
    frame: _wire.Event
    if isinstance(event, StreamMedia):
        timestamp = None if event.timestamp_ms is None else str(event.timestamp_ms)
        body = _wire.MediaBody(payload=event.audio, track="inbound", timestamp=timestamp, chunk=event.chunk)
        frame = _wire.Media(streamId=event.stream_id, media=body, sequenceNumber=event.sequence)
    elif isinstance(event, StreamStarted):
        media_format = _wire.MediaFormat(encoding=event.encoding, sampleRate=event.sample_rate)
        start = _wire.StartBody(
            callId=event.call_id,
            streamId=event.stream_id,
            accountId=event.account_id,
            tracks=["inbound"],
            mediaFormat=media_format,
        )
        headers = format_extra_headers(event.parameters)
        frame = _wire.Start(start=start, sequenceNumber=event.sequence, extra_headers=headers)
    elif isinstance(event, StreamDtmf):
        dtmf = _wire.DtmfBody(digit=event.digit, track="inbound")
        frame = _wire.Dtmf(streamId=event.stream_id, dtmf=dtmf, sequenceNumber=event.sequence)
    elif isinstance(event, StreamMarkPlayed):
        frame = _wire.PlayedStream(name=event.name, streamId=event.stream_id, sequenceNumber=event.sequence)
    elif isinstance(event, StreamCleared):
        frame = _wire.ClearedAudio(streamId=event.stream_id, sequenceNumber=event.sequence)
    elif isinstance(event, StreamStopped):
        stop = None if event.call_id is None else _wire.StopBody(callId=event.call_id)
        frame = _wire.Stop(streamId=event.stream_id, stop=stop, sequenceNumber=event.sequence)
    else:
        assert isinstance(event, StreamConnected)
        raise UnsupportedError("Plivo streams have no 'connected' frame; the first frame is 'start'")
    return _ENCODER.encode(frame).decode("utf-8")


# --- us -> Plivo ------------------------------------------------------------------------------


def encode_play_audio(
    stream_id: str, audio: bytes, *, content_type: str = "audio/x-mulaw", sample_rate: int = 8000
) -> str:
    """``playAudio``: queue raw audio (no WAV header) in the stream's format for playback.

    Raises ``ProtocolError`` for a ``content_type``/``sample_rate`` pair Plivo does not play.
    """
    if sample_rate not in _PLAY_RATES.get(content_type, frozenset()):
        raise ProtocolError(f"Plivo cannot play {content_type!r} at {sample_rate} Hz")
    media = _wire.PlayMedia(contentType=content_type, sampleRate=sample_rate, payload=audio)
    return _ENCODER.encode(_wire.PlayAudio(media=media, streamId=stream_id)).decode("utf-8")


def encode_mark(stream_id: str, name: str) -> str:
    """``checkpoint``: Plivo answers ``playedStream`` with ``name`` once the audio before it played."""
    return _ENCODER.encode(_wire.Checkpoint(streamId=stream_id, name=name)).decode("utf-8")


def encode_clear(stream_id: str) -> str:
    """``clearAudio``: drop queued audio (barge-in); Plivo answers ``clearedAudio``."""
    return _ENCODER.encode(_wire.ClearAudio(streamId=stream_id)).decode("utf-8")


def decode_stream_command(text: str | bytes) -> StreamCommand:
    """Decode a frame we sent (for the simulated carrier); errors as ``decode_stream_message``."""
    frame = _decode(_COMMANDS, _wire.COMMAND_TAGS, text)
    if isinstance(frame, _wire.PlayAudio):
        return PlayAudio(stream_id=frame.streamId, audio=frame.media.payload)
    if isinstance(frame, _wire.Checkpoint):
        return PlaceMark(stream_id=frame.streamId, name=frame.name)
    return ClearAudio(stream_id=frame.streamId)


# --- extraHeaders -------------------------------------------------------------------------------


def parse_extra_headers(text: str) -> dict[str, str]:
    """``extra_headers`` of a ``start`` frame as a map, parsed defensively (docs/protocols/plivo.md §5 Uncertain).

    The docs show ``k=v;k=v``, ``<Stream extraHeaders>`` is written ``k=v,k=v``, and a Plivo
    clone sends a JSON object; all three are accepted. Never raises.
    """
    if text.lstrip().startswith("{"):
        try:
            return _parameters(_HEADER_OBJECT.decode(text))
        except DECODE_ERRORS:
            pass
    parameters: dict[str, str] = {}
    for part in _HEADER_SEPARATORS.split(text):
        key, separator, value = part.partition("=")
        if separator and key.strip():
            parameters[key.strip()] = value.strip()
    return parameters


def format_extra_headers(parameters: Mapping[str, str]) -> str:
    """The inverse of ``parse_extra_headers``: Plivo's ``k=v;k=v`` when every key and value is
    alphanumeric (all ``extraHeaders`` allows), else a JSON object so any map survives."""
    plain = all(
        _PLAIN_HEADER_KEY.fullmatch(key) and _PLAIN_HEADER_VALUE.fullmatch(value)
        for key, value in parameters.items()
    )
    if plain:
        return ";".join(f"{key}={value}" for key, value in parameters.items())
    return _ENCODER.encode(dict(parameters)).decode("utf-8")


# --- helpers ------------------------------------------------------------------------------------


def _decode[T](decoder: msgspec.json.Decoder[T], known: frozenset[str], text: str | bytes) -> T:
    frame = check_frame(text)
    try:
        return decoder.decode(frame)
    except msgspec.ValidationError as exc:
        event = _event_name(frame)
        if event is not None and event not in known:
            raise UnknownEventError(event) from None
        raise ProtocolError(f"malformed Plivo stream frame: {exc}") from None
    except DECODE_ERRORS as exc:
        raise ProtocolError(f"Plivo stream frame is not JSON: {exc}") from None


def _event_name(text: str | bytes) -> str | None:
    try:
        return _ENVELOPE.decode(text).event
    except DECODE_ERRORS:
        return None


def _sequence(frame: _wire.Event) -> int | None:
    return counter(frame.sequenceNumber, "sequenceNumber")


def _timestamp(value: str | int | None) -> int | None:
    if isinstance(value, str):
        return int(value) if _INTEGER.fullmatch(value) else None
    return value


def _parameters(headers: _wire.ExtraHeaders | None) -> dict[str, str]:
    if headers is None:
        return {}
    if isinstance(headers, str):
        return parse_extra_headers(headers)
    return {
        key: value if isinstance(value, str) else _ENCODER.encode(value).decode("utf-8")
        for key, value in headers.items()
        if value is not None
    }
