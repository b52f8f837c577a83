"""Twilio Media Streams codec (docs/protocols/twilio.md §4): wire examples, round trips, malformed frames."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
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
from callkit.carriers.twilio import (
    decode_stream_command,
    decode_stream_message,
    encode_clear,
    encode_mark,
    encode_play_audio,
    encode_stream_event,
)
from callkit.errors import (
    CallkitError,
    MessageTooLargeError,
    ProtocolError,
    UnknownEventError,
    UnsupportedError,
)

# docs/protocols/twilio.md §4, verbatim.
CONNECTED = '{"event":"connected","protocol":"Call","version":"1.0.0"}'
START = (
    '{"event":"start","sequenceNumber":"1","streamSid":"MZ0001","start":{"streamSid":"MZ0001",'
    '"accountSid":"AC0001","callSid":"CA0001","tracks":["inbound"],"customParameters":{"tenant":"acme"},'
    '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}'
)
MEDIA = (
    '{"event":"media","sequenceNumber":"2","streamSid":"MZ0001","media":{"track":"inbound","chunk":"1",'
    '"timestamp":"20","payload":"/////w=="}}'
)
DTMF = (
    '{"event":"dtmf","sequenceNumber":"40","streamSid":"MZ0001","dtmf":{"track":"inbound_track","digit":"5"}}'
)
MARK = '{"event":"mark","sequenceNumber":"41","streamSid":"MZ0001","mark":{"name":"reply-7"}}'
STOP = (
    '{"event":"stop","sequenceNumber":"90","streamSid":"MZ0001",'
    '"stop":{"accountSid":"AC0001","callSid":"CA0001"}}'
)


@pytest.mark.parametrize(
    ("frame", "event"),
    [
        (CONNECTED, StreamConnected(protocol="Call", version="1.0.0")),
        (
            START,
            StreamStarted(
                stream_id="MZ0001",
                call_id="CA0001",
                account_id="AC0001",
                encoding="audio/x-mulaw",
                sample_rate=8000,
                parameters={"tenant": "acme"},
                sequence=1,
            ),
        ),
        (MEDIA, StreamMedia(stream_id="MZ0001", audio=b"\xff" * 4, timestamp_ms=20, chunk=1, sequence=2)),
        (DTMF, StreamDtmf(stream_id="MZ0001", digit="5", sequence=40)),
        (MARK, StreamMarkPlayed(stream_id="MZ0001", name="reply-7", sequence=41)),
        (STOP, StreamStopped(stream_id="MZ0001", call_id="CA0001", sequence=90)),
    ],
)
def test_decode_wire_examples(frame: str, event: StreamEvent) -> None:
    assert decode_stream_message(frame) == event
    assert decode_stream_message(frame.encode()) == event
    assert decode_stream_message(encode_stream_event(event)) == event


def test_encoded_start_looks_like_twilio() -> None:
    assert json.loads(encode_stream_event(decode_stream_message(START))) == json.loads(START)


def test_commands_match_the_wire_examples() -> None:
    assert json.loads(encode_play_audio("MZ0001", b"\xff" * 4)) == {
        "event": "media",
        "streamSid": "MZ0001",
        "media": {"payload": "/////w=="},
    }
    assert json.loads(encode_mark("MZ0001", "reply-7")) == {
        "event": "mark",
        "streamSid": "MZ0001",
        "mark": {"name": "reply-7"},
    }
    assert json.loads(encode_clear("MZ0001")) == {"event": "clear", "streamSid": "MZ0001"}


def test_optional_counters_may_be_absent_or_numbers() -> None:
    frame = '{"event":"media","streamSid":"MZ1","media":{"payload":""}}'
    assert decode_stream_message(frame) == StreamMedia("MZ1", b"", timestamp_ms=None, chunk=None)
    frame = (
        '{"event":"media","streamSid":"MZ1","sequenceNumber":7,'
        '"media":{"payload":"","chunk":3,"timestamp":60}}'
    )
    assert decode_stream_message(frame) == StreamMedia("MZ1", b"", timestamp_ms=60, chunk=3, sequence=7)
    assert decode_stream_message('{"event":"stop","streamSid":"MZ1"}') == StreamStopped("MZ1")


def test_cleared_is_not_a_twilio_event() -> None:
    with pytest.raises(UnsupportedError):
        encode_stream_event(StreamCleared(stream_id="MZ1"))


# --- round trips ------------------------------------------------------------------------------------

texts = st.text(max_size=30)
counters = st.none() | st.integers(min_value=0, max_value=2**63 - 1)
events = st.one_of(
    st.builds(StreamConnected, protocol=texts, version=texts),
    st.builds(
        StreamStarted,
        stream_id=texts,
        call_id=texts,
        account_id=texts,
        encoding=texts,
        sample_rate=st.integers(min_value=0, max_value=2**31),
        parameters=st.dictionaries(texts, texts, max_size=4),
        sequence=counters,
    ),
    st.builds(
        StreamMedia,
        stream_id=texts,
        audio=st.binary(max_size=400),
        timestamp_ms=counters,
        chunk=counters,
        sequence=counters,
    ),
    st.builds(StreamDtmf, stream_id=texts, digit=st.sampled_from("0123456789*#ABCD"), sequence=counters),
    st.builds(StreamMarkPlayed, stream_id=texts, name=texts, sequence=counters),
    st.builds(StreamStopped, stream_id=texts, call_id=st.none() | texts, sequence=counters),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(events)
def test_event_round_trip(event: StreamEvent) -> None:
    assert decode_stream_message(encode_stream_event(event)) == event


@settings(max_examples=300, deadline=None, derandomize=True)
@given(stream_id=texts, audio=st.binary(max_size=400), name=texts)
def test_command_round_trip(stream_id: str, audio: bytes, name: str) -> None:
    assert decode_stream_command(encode_play_audio(stream_id, audio)) == PlayAudio(stream_id, audio)
    assert decode_stream_command(encode_mark(stream_id, name).encode()) == PlaceMark(stream_id, name)
    assert decode_stream_command(encode_clear(stream_id)) == ClearAudio(stream_id)


# --- malformed frames -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "not json",
        "[]",
        '"media"',
        "{",
        '{"event":"media"}',
        '{"event":5}',
        '{"streamSid":"MZ1"}',
        '{"event":"media","streamSid":"MZ1","media":{}}',
        '{"event":"media","streamSid":5,"media":{"payload":""}}',
        '{"event":"media","streamSid":"MZ1","media":{"payload":"!!!!"}}',
        '{"event":"media","streamSid":"MZ1","media":{"payload":"/////w="}}',
        '{"event":"media","streamSid":"MZ1","media":{"payload":"//// ////"}}',
        '{"event":"media","streamSid":"MZ1","sequenceNumber":"-1","media":{"payload":""}}',
        '{"event":"media","streamSid":"MZ1","sequenceNumber":"1e3","media":{"payload":""}}',
        '{"event":"media","streamSid":"MZ1","sequenceNumber":-1,"media":{"payload":""}}',
        '{"event":"media","streamSid":"MZ1","media":{"payload":"","chunk":"' + "9" * 5000 + '"}}',
        '{"event":"start","streamSid":"MZ1","start":{"streamSid":"MZ1","accountSid":"AC1","callSid":"CA1"}}',
        '{"event":"start","start":{"streamSid":"MZ1","accountSid":"AC1","callSid":"CA1",'
        '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":"8000"}}}',
        '{"event":"start","start":{"streamSid":"MZ1","accountSid":"AC1","callSid":"CA1",'
        '"customParameters":{"a":1},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000}}}',
        '{"event":"dtmf","streamSid":"MZ1","dtmf":{"digit":5}}',
        '{"event":"mark","streamSid":"MZ1","mark":{}}',
        '{"event":"connected","protocol":"Call"}',
        '{"event":"media","streamSid":"\\ud800","media":{"payload":""}}',
        '{"event":"media","streamSid":"MZ\ud800","media":{"payload":""}}',
    ],
)
def test_malformed_frames_are_protocol_errors(frame: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_stream_message(frame)
    assert type(caught.value) is ProtocolError


def test_invalid_utf8_bytes() -> None:
    with pytest.raises(ProtocolError):
        decode_stream_message(b'{"event":"mark","streamSid":"\xff","mark":{"name":"a"}}')


@pytest.mark.parametrize("frame", ['{"event":"clear","streamSid":"MZ1"}', '{"event":"future","x":1}'])
def test_unknown_event(frame: str) -> None:
    with pytest.raises(UnknownEventError) as caught:
        decode_stream_message(frame)
    assert caught.value.event in {"clear", "future"}


def test_unknown_command() -> None:
    with pytest.raises(UnknownEventError):
        decode_stream_command(MARK.replace('"mark"', '"playAudio"', 1))
    with pytest.raises(ProtocolError):
        decode_stream_command('{"event":"media","streamSid":"MZ1","media":{"payload":"%%%"}}')


def test_oversized_frames() -> None:
    padding = "x" * MAX_STREAM_MESSAGE_BYTES
    with pytest.raises(MessageTooLargeError):
        decode_stream_message(f'{{"event":"mark","streamSid":"MZ1","mark":{{"name":"{padding}"}}}}')
    with pytest.raises(MessageTooLargeError):
        decode_stream_command(b" " * (MAX_STREAM_MESSAGE_BYTES + 1))
    # Under the limit in characters, over it in UTF-8 bytes.
    wide = "😀" * (MAX_STREAM_MESSAGE_BYTES // 4 + 1)
    with pytest.raises(MessageTooLargeError):
        decode_stream_message(f'{{"event":"mark","streamSid":"MZ1","mark":{{"name":"{wide}"}}}}')
    # Exactly at the limit is fine (and decodes).
    name = "y" * (MAX_STREAM_MESSAGE_BYTES - len(encode_mark("MZ1", "")))
    assert decode_stream_command(encode_mark("MZ1", name)) == PlaceMark("MZ1", name)


# --- fuzz: nothing but CallkitError escapes -------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
frame_like = st.fixed_dictionaries(
    {"event": st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "clear", "x"])},
    optional={
        "streamSid": json_values,
        "sequenceNumber": json_values,
        "start": json_values,
        "media": st.fixed_dictionaries({}, optional={"payload": json_values, "chunk": json_values}),
        "dtmf": json_values,
        "mark": json_values,
        "stop": json_values,
        "protocol": json_values,
        "version": json_values,
    },
).map(json.dumps)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.text() | st.binary() | frame_like)
def test_decoders_raise_only_callkit_errors(frame: str | bytes) -> None:
    for decoder in (decode_stream_message, decode_stream_command):
        with contextlib.suppress(CallkitError):
            decoder(frame)
