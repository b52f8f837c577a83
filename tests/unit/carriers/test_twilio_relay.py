"""ConversationRelay codec (docs/protocols/twilio.md §5): wire examples, round trips, malformed frames."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callkit.carriers._types import MAX_STREAM_MESSAGE_BYTES
from callkit.carriers.twilio import (
    RelayCommand,
    RelayDtmf,
    RelayEnd,
    RelayError,
    RelayEvent,
    RelayInfo,
    RelayInterrupt,
    RelayLanguage,
    RelayPlay,
    RelayPrompt,
    RelaySendDigits,
    RelaySetup,
    RelayText,
    decode_relay_command,
    decode_relay_message,
    encode_end,
    encode_language,
    encode_play,
    encode_relay_event,
    encode_send_digits,
    encode_text,
)
from callkit.errors import CallkitError, MessageTooLargeError, ProtocolError, UnknownEventError

# docs/protocols/twilio.md §5, verbatim.
SETUP = (
    '{"type":"setup","sessionId":"VX0001","accountSid":"AC0001","parentCallSid":"","callSid":"CA0001",'
    '"from":"+14155550100","to":"+14155550199","forwardedFrom":"","callType":"PSTN","callerName":"",'
    '"direction":"inbound","callStatus":"RINGING","customParameters":{"tenant":"acme"}}'
)
PROMPT = '{"type":"prompt","voicePrompt":"What are your opening hours?","lang":"en-US","last":true}'
DTMF = '{"type":"dtmf","digit":"1"}'
INTERRUPT = (
    '{"type":"interrupt","utteranceUntilInterrupt":"We are open from nine","durationUntilInterruptMs":1240}'
)
ERROR = '{"type":"error","description":"Invalid message received: {\\"foo\\":\\"bar\\"}"}'


@pytest.mark.parametrize(
    ("frame", "event"),
    [
        (
            SETUP,
            RelaySetup(
                session_id="VX0001",
                call_id="CA0001",
                account_id="AC0001",
                from_number="+14155550100",
                to_number="+14155550199",
                direction="inbound",
                call_status="RINGING",
                custom_parameters={"tenant": "acme"},
                call_type="PSTN",
            ),
        ),
        (PROMPT, RelayPrompt(text="What are your opening hours?", lang="en-US", last=True)),
        (DTMF, RelayDtmf(digit="1")),
        (INTERRUPT, RelayInterrupt("We are open from nine", duration_until_interrupt_ms=1240)),
        (ERROR, RelayError(description='Invalid message received: {"foo":"bar"}')),
        ('{"type":"info","name":"agentSpeaking","value":"on"}', RelayInfo(name="agentSpeaking", value="on")),
    ],
)
def test_decode_wire_examples(frame: str, event: RelayEvent) -> None:
    assert decode_relay_message(frame) == event
    assert decode_relay_message(frame.encode()) == event
    assert decode_relay_message(encode_relay_event(event)) == event


@pytest.mark.parametrize(("raw", "ms"), [("1240", 1240), ('"1240"', 1240), ("1240.7", 1240), ('"12.5"', 12)])
def test_interrupt_duration_number_or_string(raw: str, ms: int) -> None:
    frame = f'{{"type":"interrupt","utteranceUntilInterrupt":"x","durationUntilInterruptMs":{raw}}}'
    assert decode_relay_message(frame) == RelayInterrupt("x", ms)


def test_defaults_for_absent_optional_fields() -> None:
    assert decode_relay_message('{"type":"prompt","voicePrompt":"hi"}') == RelayPrompt("hi", None, last=True)
    assert decode_relay_message('{"type":"interrupt","utteranceUntilInterrupt":""}') == RelayInterrupt("")
    assert decode_relay_message('{"type":"info","name":"n"}') == RelayInfo("n", "")


@pytest.mark.parametrize(("raw", "value"), [("120", "120"), ("true", "true"), ("1.5", "1.5"), ("null", "")])
def test_info_values_become_text(raw: str, value: str) -> None:
    assert decode_relay_message(f'{{"type":"info","name":"n","value":{raw}}}') == RelayInfo("n", value)


def test_our_messages_match_the_wire_examples() -> None:
    assert json.loads(encode_text("We are open ", last=False)) == {
        "type": "text",
        "token": "We are open ",
        "last": False,
    }
    assert json.loads(encode_text("nine to five.", last=True, interruptible=True, preemptible=False)) == {
        "type": "text",
        "token": "nine to five.",
        "last": True,
        "interruptible": True,
        "preemptible": False,
    }
    assert json.loads(
        encode_play("https://cdn.example.com/hold.mp3", loop=1, preemptible=True, interruptible=True)
    ) == {
        "type": "play",
        "source": "https://cdn.example.com/hold.mp3",
        "loop": 1,
        "preemptible": True,
        "interruptible": True,
    }
    assert json.loads(encode_send_digits("9w1234#")) == {"type": "sendDigits", "digits": "9w1234#"}
    assert json.loads(encode_language("es-MX", "es-MX")) == {
        "type": "language",
        "ttsLanguage": "es-MX",
        "transcriptionLanguage": "es-MX",
    }
    handoff = '{"reasonCode":"live-agent-handoff","reason":"caller asked for a person"}'
    assert json.loads(encode_end(handoff)) == {"type": "end", "handoffData": handoff}
    assert json.loads(encode_end(None)) == {"type": "end"}


@pytest.mark.parametrize("digits", ["", "12a", "1 2", "١٢", "W", "12\n"])
def test_send_digits_validated(digits: str) -> None:
    with pytest.raises(ProtocolError):
        encode_send_digits(digits)
    with pytest.raises(ProtocolError):
        decode_relay_command(json.dumps({"type": "sendDigits", "digits": digits}))


def test_commands_twilio_would_reject() -> None:
    with pytest.raises(ProtocolError):
        encode_language()
    with pytest.raises(ProtocolError):
        decode_relay_command('{"type":"language"}')
    with pytest.raises(ProtocolError):
        encode_play("https://x/a.mp3", loop=-1)
    with pytest.raises(ProtocolError):
        decode_relay_command('{"type":"play","source":"https://x/a.mp3","loop":-1}')


# --- round trips ------------------------------------------------------------------------------------

texts = st.text(max_size=30)
maybe_text = st.none() | texts
maybe_bool = st.none() | st.booleans()
events = st.one_of(
    st.builds(
        RelaySetup,
        session_id=texts,
        call_id=texts,
        account_id=texts,
        from_number=texts,
        to_number=texts,
        direction=texts,
        call_status=texts,
        custom_parameters=st.dictionaries(texts, texts, max_size=4),
        parent_call_id=texts,
        forwarded_from=texts,
        caller_name=texts,
        call_type=texts,
    ),
    st.builds(RelayPrompt, text=texts, lang=maybe_text, last=st.booleans()),
    st.builds(RelayDtmf, digit=st.sampled_from("0123456789*#ABCD")),
    st.builds(
        RelayInterrupt,
        utterance_until_interrupt=texts,
        duration_until_interrupt_ms=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    ),
    st.builds(RelayError, description=texts),
    st.builds(RelayInfo, name=texts, value=texts),
)
digit_strings = st.from_regex(r"[0-9*#w]+", fullmatch=True)
commands = st.one_of(
    st.builds(
        RelayText,
        token=texts,
        last=st.booleans(),
        lang=maybe_text,
        interruptible=maybe_bool,
        preemptible=maybe_bool,
    ),
    st.builds(
        RelayPlay, source=texts, loop=st.integers(0, 2**31), preemptible=maybe_bool, interruptible=maybe_bool
    ),
    st.builds(RelaySendDigits, digits=digit_strings),
    st.builds(RelayLanguage, tts_language=maybe_text, transcription_language=maybe_text).filter(
        lambda c: c.tts_language is not None or c.transcription_language is not None
    ),
    st.builds(RelayEnd, handoff_data=maybe_text),
)


def encode_command(command: RelayCommand) -> str:
    match command:
        case RelayText():
            return encode_text(
                command.token,
                last=command.last,
                lang=command.lang,
                interruptible=command.interruptible,
                preemptible=command.preemptible,
            )
        case RelayPlay():
            return encode_play(
                command.source,
                loop=command.loop,
                preemptible=command.preemptible,
                interruptible=command.interruptible,
            )
        case RelaySendDigits():
            return encode_send_digits(command.digits)
        case RelayLanguage():
            return encode_language(command.tts_language, command.transcription_language)
        case RelayEnd():
            return encode_end(command.handoff_data)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(events)
def test_event_round_trip(event: RelayEvent) -> None:
    assert decode_relay_message(encode_relay_event(event)) == event


@settings(max_examples=300, deadline=None, derandomize=True)
@given(commands)
def test_command_round_trip(command: RelayCommand) -> None:
    assert decode_relay_command(encode_command(command)) == command


# --- malformed frames -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "nope",
        "[1]",
        "{}",
        '{"type":null}',
        '{"event":"prompt"}',
        '{"type":"prompt"}',
        '{"type":"prompt","voicePrompt":5}',
        '{"type":"prompt","voicePrompt":"a","last":"yes"}',
        '{"type":"setup","sessionId":"VX1","accountSid":"AC1","callSid":"CA1","from":"+1"}',
        '{"type":"setup","sessionId":"VX1","accountSid":"AC1","callSid":"CA1","from":"+1","to":"+2",'
        '"customParameters":[]}',
        '{"type":"dtmf","digit":1}',
        '{"type":"interrupt","utteranceUntilInterrupt":"x","durationUntilInterruptMs":"soon"}',
        '{"type":"interrupt","utteranceUntilInterrupt":"x","durationUntilInterruptMs":-5}',
        '{"type":"interrupt","utteranceUntilInterrupt":"x","durationUntilInterruptMs":"nan"}',
        '{"type":"interrupt","utteranceUntilInterrupt":"x","durationUntilInterruptMs":"1e999"}',
        '{"type":"interrupt","utteranceUntilInterrupt":"x","durationUntilInterruptMs":true}',
        '{"type":"error"}',
        '{"type":"info","value":"on"}',
        '{"type":"info","name":"n","value":[1]}',
    ],
)
def test_malformed_frames_are_protocol_errors(frame: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_relay_message(frame)
    assert type(caught.value) is ProtocolError


@pytest.mark.parametrize("frame", ['{"type":"text","token":"hi"}', '{"type":"transcript","x":1}'])
def test_unknown_event(frame: str) -> None:
    with pytest.raises(UnknownEventError):
        decode_relay_message(frame)


def test_unknown_command() -> None:
    with pytest.raises(UnknownEventError):
        decode_relay_command(PROMPT)
    with pytest.raises(ProtocolError):
        decode_relay_command('{"type":"text","last":true}')


def test_oversized_frames() -> None:
    big = "x" * MAX_STREAM_MESSAGE_BYTES
    with pytest.raises(MessageTooLargeError):
        decode_relay_message(json.dumps({"type": "prompt", "voicePrompt": big}))
    with pytest.raises(MessageTooLargeError):
        decode_relay_command(encode_text(big, last=True).encode())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# Every field and type of both directions, taken from real frames.
examples = [
    json.loads(f) for f in (SETUP, PROMPT, DTMF, INTERRUPT, ERROR, '{"type":"info","name":"n","value":1}')
]
examples += [
    json.loads(f)
    for f in (
        encode_text("t", last=True, lang="en-US", interruptible=True, preemptible=True),
        encode_play("https://x/a.mp3", loop=2, preemptible=True, interruptible=True),
        encode_send_digits("1"),
        encode_language("en-US", "en-US"),
        encode_end("{}"),
    )
]
field_names = sorted({name for example in examples for name in example} - {"type"})
types = sorted({example["type"] for example in examples} | {"other"})
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(types)}, optional={name: json_values for name in field_names}
).map(json.dumps)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.text() | st.binary() | frame_like)
def test_decoders_raise_only_callkit_errors(frame: str | bytes) -> None:
    for decoder in (decode_relay_message, decode_relay_command):
        with contextlib.suppress(CallkitError):
            decoder(frame)
