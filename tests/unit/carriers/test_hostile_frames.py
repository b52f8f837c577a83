"""Every carrier stream decoder is total: any text or bytes is an event or a ``ProtocolError``.

Media frames and relay frames come off the network; a decoder that lets another exception out
(``RecursionError`` on deep nesting, ``TypeError`` on a wrong type, ...) ends the call it serves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callkit.carriers import plivo, twilio
from callkit.carriers._frames import MAX_JSON_DEPTH
from callkit.carriers._types import MAX_STREAM_MESSAGE_BYTES, StreamDtmf, StreamMarkPlayed, StreamMedia
from callkit.carriers.twilio import relay
from callkit.errors import MessageTooLargeError, ProtocolError

Decoder = Callable[[str | bytes], object]

DECODERS: dict[str, Decoder] = {
    "twilio-media-stream": twilio.decode_stream_message,
    "twilio-media-stream-commands": twilio.decode_stream_command,
    "twilio-relay": relay.decode_relay_message,
    "twilio-relay-commands": relay.decode_relay_command,
    "plivo-audio-stream": plivo.decode_stream_message,
    "plivo-audio-stream-commands": plivo.decode_stream_command,
}
#: The tag field and tag values of each decoder, so generated frames reach past the tag check.
TAGS: dict[str, tuple[str, list[str]]] = {
    "twilio-media-stream": ("event", ["connected", "start", "media", "dtmf", "mark", "stop"]),
    "twilio-media-stream-commands": ("event", ["media", "mark", "clear"]),
    "twilio-relay": ("type", ["setup", "prompt", "dtmf", "interrupt", "error", "info"]),
    "twilio-relay-commands": ("type", ["text", "play", "sendDigits", "language", "end"]),
    "plivo-audio-stream": (
        "event",
        ["start", "media", "dtmf", "playedStream", "played", "clearedAudio", "stop"],
    ),
    "plivo-audio-stream-commands": ("event", ["playAudio", "checkpoint", "clearAudio"]),
}
NAMES = sorted(DECODERS)


def total(decode: Decoder, frame: Any) -> object:
    """Decode ``frame``; only a ``ProtocolError`` may escape (``pytest`` shows anything else)."""
    try:
        return decode(frame)
    except ProtocolError as error:
        return error


def nested(depth: int, tag_field: str = "event", tag: str = "start") -> str:
    """A small frame (about 4 KB at depth 2,000) whose payload is ``depth`` nested arrays."""
    return f'{{"{tag_field}":"{tag}","{tag}":' + "[" * depth + "]" * depth + "}"


# --- the reported cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 2_000, 20_000])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_deep_nesting_is_a_protocol_error(name: str, depth: int, as_bytes: bool) -> None:
    tag_field, tags = TAGS[name]
    frame = nested(depth, tag_field, tags[0])
    with pytest.raises(ProtocolError):
        DECODERS[name](frame.encode() if as_bytes else frame)


@pytest.mark.parametrize("name", NAMES)
def test_nesting_within_the_limit_is_parsed_not_refused(name: str) -> None:
    tag_field, tags = TAGS[name]
    # Fails on the shape (a list is not the body), not on depth: a plain ProtocolError.
    with pytest.raises(ProtocolError) as raised:
        DECODERS[name](nested(MAX_JSON_DEPTH - 1, tag_field, tags[0]))
    assert "deeper" not in str(raised.value)


@pytest.mark.parametrize("name", NAMES)
def test_brackets_inside_strings_do_not_count_as_nesting(name: str) -> None:
    tag_field, tags = TAGS[name]
    frame = json.dumps({tag_field: tags[0], "junk": "[{" * 5_000})
    with pytest.raises(ProtocolError) as raised:
        DECODERS[name](frame)
    assert "deeper" not in str(raised.value)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "frame",
    [
        b"\xff\xfe\xfd",
        b'{"event":"media","streamSid":"\xc3\x28"}',
        "\ud800",
        '{"event":"\ud800"}',
        "",
        b"",
        "\x00",
        "null",
        "[]",
        "1e99999",
        '{"event":null,"type":null}',
        '{"event":["start"],"type":{"a":1}}',
    ],
)
def test_binary_invalid_utf8_and_wrong_types_are_protocol_errors(name: str, frame: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        DECODERS[name](frame)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("frame", [None, 5, 1.5, ["a"], {"event": "media"}, object()])
def test_input_that_is_not_text_is_a_protocol_error(name: str, frame: Any) -> None:
    with pytest.raises(ProtocolError):
        DECODERS[name](frame)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [MAX_STREAM_MESSAGE_BYTES + 1, 1024 * 1024])
def test_oversized_frames_are_refused_before_parsing(name: str, size: int) -> None:
    tag_field, tags = TAGS[name]
    head = f'{{"{tag_field}":"{tags[0]}","x":"'
    frame = head + "a" * (size - len(head) - 2) + '"}'
    with pytest.raises(MessageTooLargeError):
        DECODERS[name](frame)
    with pytest.raises(MessageTooLargeError):
        DECODERS[name](frame.encode())
    with pytest.raises(MessageTooLargeError):  # 1 MB of brackets: refused on size, never walked
        DECODERS[name]("[" * size)


def test_a_multibyte_frame_is_measured_in_utf8_bytes() -> None:
    frame = json.dumps(
        {"event": "mark", "streamSid": "MZ1", "mark": {"name": "é" * 70_000}}, ensure_ascii=False
    )
    assert len(frame) < MAX_STREAM_MESSAGE_BYTES < len(frame.encode())
    with pytest.raises(MessageTooLargeError):
        twilio.decode_stream_message(frame)


# --- DTMF: one key -----------------------------------------------------------------------------------

DTMF_FRAMES: dict[str, Callable[[str], str]] = {
    "twilio-media-stream": lambda digit: json.dumps(
        {
            "event": "dtmf",
            "streamSid": "MZ1",
            "sequenceNumber": "5",
            "dtmf": {"track": "inbound_track", "digit": digit},
        }
    ),
    "twilio-relay": lambda digit: json.dumps({"type": "dtmf", "digit": digit}),
    "plivo-audio-stream": lambda digit: json.dumps(
        {"event": "dtmf", "streamId": "s1", "sequenceNumber": 5, "dtmf": {"digit": digit}}
    ),
}


@pytest.mark.parametrize("name", sorted(DTMF_FRAMES))
@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_every_dtmf_key_is_accepted(name: str, digit: str) -> None:
    event = DECODERS[name](DTMF_FRAMES[name](digit))
    assert isinstance(event, StreamDtmf | relay.RelayDtmf) and event.digit == digit


@pytest.mark.parametrize("name", sorted(DTMF_FRAMES))
@pytest.mark.parametrize("digit", ["1" * 5_000, "", "12", "E", "x", " 1", "1\n", "١", "*#"])
def test_a_dtmf_digit_that_is_not_one_key_is_a_protocol_error(name: str, digit: str) -> None:
    with pytest.raises(ProtocolError):
        DECODERS[name](DTMF_FRAMES[name](digit))


# --- Plivo counters: a number or a numeric string --------------------------------------------------


def test_plivo_counters_may_be_numeric_strings() -> None:
    media = plivo.decode_stream_message(
        '{"event":"media","sequenceNumber":"7","streamId":"s1",'
        '"media":{"track":"inbound","timestamp":"1718000000020","chunk":"3","payload":"/////w=="}}'
    )
    assert isinstance(media, StreamMedia) and (media.sequence, media.chunk) == (7, 3)
    played = plivo.decode_stream_message(
        '{"event":"playedStream","sequenceNumber":"41","streamId":"s1","name":"m1"}'
    )
    assert played == StreamMarkPlayed(stream_id="s1", name="m1", sequence=41)
    dtmf = plivo.decode_stream_message(
        '{"event":"dtmf","sequenceNumber":"9","streamId":"s1","dtmf":{"digit":"#"}}'
    )
    assert dtmf == StreamDtmf(stream_id="s1", digit="#", sequence=9)


@pytest.mark.parametrize("value", ['"x"', '"-1"', "-1", '"1.5"', "1.5", '"1' + "0" * 30 + '"', "true", '""'])
def test_plivo_counters_that_are_not_counts_are_protocol_errors(value: str) -> None:
    with pytest.raises(ProtocolError):
        plivo.decode_stream_message(
            f'{{"event":"playedStream","sequenceNumber":{value},"streamId":"s1","name":"m1"}}'
        )


# --- fuzz: arbitrary input -> an event or a ProtocolError -------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "streamSid", "streamId", "callSid", "accountSid", "sequenceNumber", "media", "payload", "chunk",
    "timestamp", "start", "mediaFormat", "encoding", "sampleRate", "customParameters", "dtmf", "digit",
    "mark", "name", "stop", "extra_headers", "callId", "sessionId", "from", "to", "voicePrompt", "last",
    "utteranceUntilInterrupt", "durationUntilInterruptMs", "description", "value", "token", "source",
    "loop", "digits", "ttsLanguage", "handoffData", "checkpoint", "contentType", "protocol", "version",
]  # fmt: skip


@st.composite
def tagged_frames(draw: st.DrawFn, name: str) -> str | bytes:
    """JSON objects with a real tag and real field names holding values of any JSON type."""
    tag_field, tags = TAGS[name]
    body: dict[str, Any] = {tag_field: draw(st.sampled_from(tags))}
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=8)):
        body[field] = draw(JSON_VALUES)
    text = json.dumps(body)
    return text.encode() if draw(st.booleans()) else text


def fuzz(name: str) -> Any:
    return st.one_of(st.text(), st.binary(), tagged_frames(name))


HYPOTHESIS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(st.data())
def test_fuzz_twilio_media_stream(data: st.DataObject) -> None:
    total(twilio.decode_stream_message, data.draw(fuzz("twilio-media-stream")))
    total(twilio.decode_stream_command, data.draw(fuzz("twilio-media-stream-commands")))


@HYPOTHESIS
@given(st.data())
def test_fuzz_twilio_relay(data: st.DataObject) -> None:
    total(relay.decode_relay_message, data.draw(fuzz("twilio-relay")))
    total(relay.decode_relay_command, data.draw(fuzz("twilio-relay-commands")))


@HYPOTHESIS
@given(st.data())
def test_fuzz_plivo_audio_stream(data: st.DataObject) -> None:
    total(plivo.decode_stream_message, data.draw(fuzz("plivo-audio-stream")))
    total(plivo.decode_stream_command, data.draw(fuzz("plivo-audio-stream-commands")))


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(NAMES), depth=st.integers(min_value=0, max_value=3_000), wrap=st.sampled_from("[{")
)
def test_fuzz_nesting_depth(name: str, depth: int, wrap: str) -> None:
    tag_field, tags = TAGS[name]
    inner = ("[" * depth + "]" * depth) if wrap == "[" else ('{"a":' * depth + "1" + "}" * depth)
    total(DECODERS[name], f'{{"{tag_field}":"{tags[0]}","x":{inner}}}')
