"""TwiML answers (docs/protocols/twilio.md §3): complete documents, every value visible and escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callkit.carriers._types import ErrorAnswer, RelayAnswer, StreamAnswer
from callkit.carriers.twilio import ANSWER_CONTENT_TYPE, render_answer
from callkit.errors import UnsupportedError

PROLOG = '<?xml version="1.0" encoding="UTF-8"?>'
NASTY = "a&b<c>d\"e'f g\th\ni\rj;&amp;"


def xml_allowed(char: str) -> bool:
    """XML 1.0 §2.2 Char."""
    code = ord(char)
    return (
        char in "\t\n\r" or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
    )


def stripped(value: str) -> str:
    return "".join(c for c in value if xml_allowed(c))


def parse(document: str) -> ET.Element:
    assert document.startswith(PROLOG)
    return ET.fromstring(document)


def relay_answer(**overrides: object) -> RelayAnswer:
    fields: dict[str, object] = {
        "url": "wss://relay.example.com/twilio/relay",
        "welcome_greeting": "Hi, how can I help?",
        "voice": "UgBBYS2sOqTuMpoF3BR0-flash_v2_5-1.0_0.8_0.6",
        "language": "en-US",
        "interruptible": "any",
        "interrupt_sensitivity": "high",
        "tts_provider": "ElevenLabs",
        "transcription_provider": "Deepgram",
        "dtmf_detection": True,
        "action_url": "https://voice.example.com/twilio/relay-ended",
        "parameters": {"tenant": "acme"},
    }
    fields.update(overrides)
    return RelayAnswer(**fields)  # type: ignore[arg-type]


def test_content_type() -> None:
    assert ANSWER_CONTENT_TYPE == "text/xml"


def test_stream_answer() -> None:
    answer = StreamAnswer(
        url="wss://media.example.com/twilio",
        token=NASTY,
        status_callback_url="https://voice.example.com/twilio/stream-status?a=1&b=2",
    )
    root = parse(render_answer(answer))
    assert root.tag == "Response"
    [connect] = root
    [stream] = connect
    assert (connect.tag, connect.attrib) == ("Connect", {})
    assert stream.tag == "Stream"
    assert stream.attrib == {"url": answer.url, "statusCallback": answer.status_callback_url}
    [parameter] = stream
    assert parameter.attrib == {"name": "token", "value": NASTY}


def test_stream_answer_without_status_callback() -> None:
    stream = parse(render_answer(StreamAnswer(url="wss://m.example.com/t", token="t")))[0][0]
    assert stream.attrib == {"url": "wss://m.example.com/t"}


def test_stream_answer_refuses_other_audio_formats() -> None:
    with pytest.raises(UnsupportedError):
        render_answer(
            StreamAnswer(url="wss://m.example.com/t", token="t", content_type="audio/x-l16;rate=16000")
        )


def test_relay_answer() -> None:
    answer = relay_answer(parameters={"tenant": "acme", NASTY: NASTY})
    [connect] = parse(render_answer(answer))
    assert connect.attrib == {"action": answer.action_url}
    [relay] = connect
    assert relay.tag == "ConversationRelay"
    assert relay.attrib == {
        "url": answer.url,
        "welcomeGreeting": "Hi, how can I help?",
        "welcomeGreetingInterruptible": "any",
        "language": "en-US",
        "voice": answer.voice,
        "ttsProvider": "ElevenLabs",
        "transcriptionProvider": "Deepgram",
        "interruptible": "any",
        "interruptSensitivity": "high",
        "dtmfDetection": "true",
    }
    assert [(p.tag, p.attrib["name"], p.attrib["value"]) for p in relay] == [
        ("Parameter", "tenant", "acme"),
        ("Parameter", NASTY, NASTY),
    ]


def test_relay_answer_omits_unset_attributes() -> None:
    answer = relay_answer(
        welcome_greeting=None, voice=None, action_url=None, parameters={}, dtmf_detection=False
    )
    [connect] = parse(render_answer(answer))
    [relay] = connect
    assert connect.attrib == {}
    assert list(relay) == []
    assert "welcomeGreeting" not in relay.attrib
    assert "welcomeGreetingInterruptible" not in relay.attrib
    assert "voice" not in relay.attrib
    assert relay.attrib["dtmfDetection"] == "false"


def test_error_answer_apologises_and_hangs_up() -> None:
    message = "Sorry, something went wrong <again> & again. Goodbye."
    root = parse(render_answer(ErrorAnswer(message=message, language="en-GB")))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    say = root[0]
    assert say.text == message
    assert say.attrib == {"language": "en-GB"}


def test_control_characters_are_stripped() -> None:
    document = render_answer(ErrorAnswer(message="Sorry\x00\x07\x1b\ufffe bye", language="en\x0b-US"))
    say = parse(document)[0]
    assert (say.text, say.attrib["language"]) == ("Sorry bye", "en-US")


values = st.text(st.characters(codec=None), max_size=40)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(url=values, token=values, callback=st.none() | values, greeting=values, name=values, message=values)
def test_every_value_round_trips_through_an_xml_parser(
    url: str, token: str, callback: str | None, greeting: str, name: str, message: str
) -> None:
    stream = parse(render_answer(StreamAnswer(url=url, token=token, status_callback_url=callback)))[0][0]
    assert stream.attrib.get("url") == stripped(url)
    assert stream.attrib.get("statusCallback") == (None if callback is None else stripped(callback))
    assert stream[0].attrib["value"] == stripped(token)

    relay = parse(render_answer(relay_answer(welcome_greeting=greeting, parameters={name: token})))[0][0]
    assert relay.attrib["welcomeGreeting"] == stripped(greeting)
    assert relay[0].attrib == {"name": stripped(name), "value": stripped(token)}

    say = parse(render_answer(ErrorAnswer(message=message)))[0]
    assert (say.text or "") == stripped(message)
