"""Plivo audio stream frames (docs/protocols/plivo.md §5): documented examples, round trips, malformed input."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callkit.carriers._types import (
    MAX_STREAM_MESSAGE_BYTES,
    ClearAudio,
    PlaceMark,
    PlayAudio,
    StreamCleared,
    StreamConnected,
    StreamDtmf,
    StreamEvent,
    StreamMarkPlayed,
    StreamMedia,
    StreamStarted,
    StreamStopped,
)
from callkit.carriers.plivo import (
    decode_stream_command,
    decode_stream_message,
    encode_clear,
    encode_mark,
    encode_play_audio,
    encode_stream_event,
)
from callkit.carriers.plivo.audio_stream import format_extra_headers, parse_extra_headers
from callkit.errors import (
    CallkitError,
    MessageTooLargeError,
    ProtocolError,
    UnknownEventError,
    UnsupportedError,
)

STREAM = "20170ada-f610-433b-8758-c02a2aab3662"
CALL = "9f6c1c8e-2b1a-4c3e-9d2e-1f0a7b6c5d4e"

# docs/protocols/plivo.md §5, Plivo -> us, verbatim.
START = (
    '{"event":"start","sequenceNumber":1,"start":{"callId":"9f6c1c8e-2b1a-4c3e-9d2e-1f0a7b6c5d4e",'
    '"streamId":"20170ada-f610-433b-8758-c02a2aab3662","accountId":"MAXXXXXXXXXXXXXXXXXX","tracks":["inbound"],'
    '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000}},"extra_headers":"tenant=acme;callRef=abc123"}'
)
MEDIA = (
    '{"event":"media","sequenceNumber":2,"streamId":"20170ada-f610-433b-8758-c02a2aab3662","media":{"track":"inbound",'
    '"timestamp":"1718000000020","chunk":1,"payload":"/////w=="},"extra_headers":"tenant=acme;callRef=abc123"}'
)
DTMF = (
    '{"event":"dtmf","sequenceNumber":40,"streamId":"20170ada-f610-433b-8758-c02a2aab3662",'
    '"dtmf":{"track":"inbound","digit":"5","timestamp":"1718000000800"}}'
)
PLAYED = (
    '{"event":"playedStream","sequenceNumber":41,"streamId":"20170ada-f610-433b-8758-c02a2aab3662",'
    '"name":"reply-7"}'
)
CLEARED = '{"event":"clearedAudio","sequenceNumber":42,"streamId":"20170ada-f610-433b-8758-c02a2aab3662"}'


@pytest.mark.parametrize(
    ("frame", "event"),
    [
        (
            START,
            StreamStarted(
                stream_id=STREAM,
                call_id=CALL,
                account_id="MAXXXXXXXXXXXXXXXXXX",
                encoding="audio/x-mulaw",
                sample_rate=8000,
                parameters={"tenant": "acme", "callRef": "abc123"},
                sequence=1,
            ),
        ),
        (
            MEDIA,
            StreamMedia(
                stream_id=STREAM, audio=b"\xff\xff\xff\xff", timestamp_ms=1718000000020, chunk=1, sequence=2
            ),
        ),
        (DTMF, StreamDtmf(stream_id=STREAM, digit="5", sequence=40)),
        (PLAYED, StreamMarkPlayed(stream_id=STREAM, name="reply-7", sequence=41)),
        (
            PLAYED.replace("playedStream", "played"),
            StreamMarkPlayed(stream_id=STREAM, name="reply-7", sequence=41),
        ),
        ('{"event":"playedStream","name":"reply-7"}', StreamMarkPlayed(stream_id="", name="reply-7")),
        (CLEARED, StreamCleared(stream_id=STREAM, sequence=42)),
        (
            '{"event":"stop","streamId":"s1","stop":{"callId":"c1"}}',
            StreamStopped(stream_id="s1", call_id="c1"),
        ),
        (
            '{"event":"stop","stop":{"streamId":"s1"},"sequenceNumber":9}',
            StreamStopped(stream_id="s1", sequence=9),
        ),
    ],
)
def test_documented_frames(frame: str, event: StreamEvent) -> None:
    assert decode_stream_message(frame) == event
    assert decode_stream_message(frame.encode()) == event


def test_extra_headers_as_a_json_object() -> None:
    frame = json.loads(START)
    frame["extra_headers"] = {"token": "0ab1", "n": 5, "gone": None}
    started = decode_stream_message(json.dumps(frame))
    assert isinstance(started, StreamStarted)
    assert started.parameters == {"token": "0ab1", "n": "5"}
    frame["extra_headers"] = {"nested": {"no": 1}}
    with pytest.raises(ProtocolError):
        decode_stream_message(json.dumps(frame))


def test_unknown_fields_are_ignored_and_timestamps_are_opaque() -> None:
    frame = json.loads(MEDIA)
    frame["media"].update(timestamp="soon", extra=1)
    frame["new"] = {"nested": [1, 2]}
    assert decode_stream_message(json.dumps(frame)) == StreamMedia(STREAM, b"\xff\xff\xff\xff", None, 1, 2)
    frame["media"]["timestamp"] = 20
    assert decode_stream_message(json.dumps(frame)) == StreamMedia(STREAM, b"\xff\xff\xff\xff", 20, 1, 2)


@pytest.mark.parametrize(
    ("text", "parameters"),
    [
        ("tenant=acme;callRef=abc123", {"tenant": "acme", "callRef": "abc123"}),
        ("tenant=acme,token=0ab1", {"tenant": "acme", "token": "0ab1"}),
        (" token = 0ab1 ; bare ; =x", {"token": "0ab1"}),
        ('{"token":"0ab1","n":5,"b":true,"z":null}', {"token": "0ab1", "n": "5", "b": "true"}),
        ("{}", {}),
        ("", {}),
        ("{token=0ab1", {"{token": "0ab1"}),
    ],
)
def test_extra_headers_are_parsed_defensively(text: str, parameters: dict[str, str]) -> None:
    assert parse_extra_headers(text) == parameters


def test_our_frames_match_the_documented_shape() -> None:
    assert json.loads(encode_play_audio(STREAM, b"\xff\xff\xff\xff")) == {
        "event": "playAudio",
        "streamId": STREAM,
        "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": "/////w=="},
    }
    assert json.loads(encode_mark(STREAM, "reply-7")) == {
        "event": "checkpoint",
        "streamId": STREAM,
        "name": "reply-7",
    }
    assert json.loads(encode_clear(STREAM)) == {"event": "clearAudio", "streamId": STREAM}
    l16 = json.loads(encode_play_audio(STREAM, b"\x00\x01", content_type="audio/x-l16", sample_rate=16000))
    assert l16["media"] == {"contentType": "audio/x-l16", "sampleRate": 16000, "payload": "AAE="}


@pytest.mark.parametrize(
    ("content_type", "rate"),
    [("audio/x-mulaw", 16000), ("audio/x-mulaw;rate=8000", 8000), ("audio/wav", 8000)],
)
def test_play_audio_formats_plivo_cannot_play(content_type: str, rate: int) -> None:
    with pytest.raises(ProtocolError):
        encode_play_audio(STREAM, b"", content_type=content_type, sample_rate=rate)


def test_plivo_has_no_connected_frame() -> None:
    with pytest.raises(UnsupportedError):
        encode_stream_event(StreamConnected(protocol="Call", version="1.0.0"))


# --- round trips -------------------------------------------------------------------------------

ids = st.text()
sequences = st.none() | st.integers(min_value=0, max_value=2**63 - 1)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
plain = st.from_regex(r"[A-Za-z0-9]+", fullmatch=True)
parameters = st.dictionaries(plain, st.from_regex(r"[A-Za-z0-9]*", fullmatch=True)) | st.dictionaries(
    st.text(), st.text()
)

events = st.one_of(
    st.builds(StreamStarted, ids, ids, ids, st.text(), int64, parameters, sequences),
    st.builds(StreamMedia, ids, st.binary(), st.none() | int64, sequences, sequences),
    st.builds(StreamDtmf, ids, st.sampled_from("0123456789*#ABCDabcd"), sequences),
    st.builds(StreamMarkPlayed, ids, st.text(), sequences),
    st.builds(StreamCleared, ids, sequences),
    st.builds(StreamStopped, ids, st.none() | ids, sequences),
)


@given(events)
def test_events_round_trip(event: StreamEvent) -> None:
    assert decode_stream_message(encode_stream_event(event)) == event


@given(parameters)
def test_extra_headers_round_trip(parameters: dict[str, str]) -> None:
    assert parse_extra_headers(format_extra_headers(parameters)) == parameters


@given(
    ids,
    st.binary(),
    st.sampled_from([("audio/x-mulaw", 8000), ("audio/x-l16", 8000), ("audio/x-l16", 16000)]),
)
def test_play_audio_round_trips(stream_id: str, audio: bytes, audio_format: tuple[str, int]) -> None:
    content_type, rate = audio_format
    frame = encode_play_audio(stream_id, audio, content_type=content_type, sample_rate=rate)
    assert decode_stream_command(frame) == PlayAudio(stream_id=stream_id, audio=audio)


@given(ids, st.text())
def test_mark_and_clear_round_trip(stream_id: str, name: str) -> None:
    assert decode_stream_command(encode_mark(stream_id, name)) == PlaceMark(stream_id=stream_id, name=name)
    assert decode_stream_command(encode_clear(stream_id)) == ClearAudio(stream_id=stream_id)


# --- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "{",
        "not json",
        b"\xff\xfe",
        b'{"event":"media","streamId":"\xff"}',
        "[1, 2]",
        '"start"',
        "null",
        "[" * 100_000,
        "\ud800",
        "{}",
        '{"event": 5}',
        '{"event":"connected","weird":[',
        # wrong types
        START.replace('"sequenceNumber":1', '"sequenceNumber":"one"'),
        START.replace('"sequenceNumber":1', '"sequenceNumber":"-1"'),
        START.replace('"sequenceNumber":1', '"sequenceNumber":-1'),
        START.replace('"sequenceNumber":1', '"sequenceNumber":"1.5"'),
        MEDIA.replace('"chunk":1', '"chunk":"1e3"'),
        START.replace('"sampleRate":8000', '"sampleRate":"8000"'),
        MEDIA.replace('"chunk":1', '"chunk":true'),
        MEDIA.replace('"payload":"/////w=="', '"payload":255'),
        MEDIA.replace('"streamId":"20170ada-f610-433b-8758-c02a2aab3662"', '"streamId":5'),
        DTMF.replace('"digit":"5"', '"digit":"55"'),
        DTMF.replace('"digit":"5"', '"digit":"x"'),
        # missing fields
        MEDIA.replace('"streamId":"20170ada-f610-433b-8758-c02a2aab3662",', ""),
        '{"event":"start","sequenceNumber":1}',
        START.replace('"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000}', '"x":1'),
        '{"event":"playedStream","streamId":"s"}',
        '{"event":"dtmf","streamId":"s","dtmf":{}}',
        '{"event":"media","streamId":"s","media":{"chunk":1}}',
        # not base64
        MEDIA.replace("/////w==", "not base64!"),
        MEDIA.replace("/////w==", "/////w"),
        MEDIA.replace("/////w==", "_-__"),
    ],
)
def test_malformed_frames(frame: str | bytes) -> None:
    with pytest.raises(ProtocolError) as raised:
        decode_stream_message(frame)
    assert type(raised.value) is ProtocolError


@pytest.mark.parametrize(
    ("frame", "event"),
    [
        ('{"event":"mark","mark":{"name":"x"}}', "mark"),
        ('{"event":"connected","protocol":"Call","version":"1.0.0"}', "connected"),
        ('{"streamId":5,"event":""}', ""),
    ],
)
def test_unknown_events(frame: str, event: str) -> None:
    with pytest.raises(UnknownEventError) as raised:
        decode_stream_message(frame)
    assert raised.value.event == event


def test_commands_reject_plivo_events_and_unknown_events() -> None:
    with pytest.raises(UnknownEventError):
        decode_stream_command(MEDIA)
    with pytest.raises(UnknownEventError):
        decode_stream_message(encode_mark(STREAM, "x"))
    with pytest.raises(ProtocolError):
        decode_stream_command('{"event":"checkpoint","streamId":"s"}')


def test_oversized_frames_are_refused_before_parsing() -> None:
    padding = "x" * (MAX_STREAM_MESSAGE_BYTES + 1)
    for decode in (decode_stream_message, decode_stream_command):
        with pytest.raises(MessageTooLargeError):
            decode(padding)  # not JSON either: the size check comes first
        with pytest.raises(MessageTooLargeError):
            decode(padding.encode())
        # Few characters, but more than the limit in UTF-8.
        with pytest.raises(MessageTooLargeError):
            decode("日" * (MAX_STREAM_MESSAGE_BYTES // 3 + 1))
    big = encode_stream_event(StreamMedia(STREAM, b"\x00" * (MAX_STREAM_MESSAGE_BYTES // 4 * 3), None, None))
    assert len(big) > MAX_STREAM_MESSAGE_BYTES
    with pytest.raises(MessageTooLargeError):
        decode_stream_message(big)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary().map(repr),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
tags = st.sampled_from(
    [
        "start",
        "media",
        "dtmf",
        "playedStream",
        "played",
        "clearedAudio",
        "stop",
        "playAudio",
        "checkpoint",
        "clearAudio",
        "x",
    ]
)
frames = st.builds(
    lambda tag, body: json.dumps({**body, "event": tag}),
    tags,
    st.dictionaries(
        st.sampled_from(
            ["start", "media", "dtmf", "streamId", "name", "sequenceNumber", "extra_headers", "stop"]
        ),
        json_values,
    ),
)


@given(st.text() | st.binary() | frames | frames.map(str.encode))
def test_arbitrary_input_raises_only_callkit_errors(frame: str | bytes) -> None:
    for decode in (decode_stream_message, decode_stream_command):
        with contextlib.suppress(CallkitError):
            decode(frame)
