"""Plivo XML answers (docs/protocols/plivo.md §3)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callkit.carriers._types import ErrorAnswer, RelayAnswer, StreamAnswer
from callkit.carriers.plivo import ANSWER_CONTENT_TYPE, render_answer
from callkit.errors import ProtocolError, UnsupportedError

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
# Text XML 1.0 can carry, with the characters that need escaping made likely.
xml_text = st.text(st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from("&<>\"'\t\n\r "))


def _parse(document: str) -> ET.Element:
    assert document.startswith(DECLARATION)
    return ET.fromstring(document.encode("utf-8"))


def test_stream_answer() -> None:
    answer = StreamAnswer(
        url="wss://media.example.com/plivo?a=1&b=2",
        token="0123abcdef",
        status_callback_url="https://voice.example.com/plivo/stream-status?x=<'\"&>",
    )
    document = render_answer(answer)
    assert "wss://media.example.com/plivo?a=1&amp;b=2</Stream>" in document
    root = _parse(document)
    assert root.tag == "Response"
    [stream] = root
    assert stream.tag == "Stream"
    assert stream.text == answer.url
    assert stream.attrib == {
        "bidirectional": "true",
        "keepCallAlive": "true",
        "audioTrack": "inbound",
        "contentType": "audio/x-mulaw;rate=8000",
        "extraHeaders": "token=0123abcdef",
        "statusCallbackUrl": answer.status_callback_url,
    }
    assert ANSWER_CONTENT_TYPE == "application/xml"


def test_stream_answer_without_status_callback() -> None:
    answer = StreamAnswer(url="wss://m.example.com/s", token="abc", content_type="audio/x-l16;rate=16000")
    [stream] = _parse(render_answer(answer))
    assert "statusCallbackUrl" not in stream.attrib
    assert stream.attrib["contentType"] == "audio/x-l16;rate=16000"


@given(url=xml_text, callback=xml_text)
def test_every_value_survives_escaping(url: str, callback: str) -> None:
    [stream] = _parse(render_answer(StreamAnswer(url=url, token="t0k3n", status_callback_url=callback)))
    assert (stream.text or "") == url
    assert stream.attrib["statusCallbackUrl"] == callback


@given(message=xml_text, language=xml_text)
def test_error_answer_apologises_and_hangs_up(message: str, language: str) -> None:
    root = _parse(render_answer(ErrorAnswer(message=message, language=language)))
    assert [child.tag for child in root] == ["Speak", "Hangup"]
    speak, hangup = root
    assert (speak.text or "") == message
    assert speak.attrib == {"language": language}
    assert hangup.attrib == {}
    assert not list(hangup)


def test_default_error_answer() -> None:
    document = render_answer(ErrorAnswer(message="Sorry, the assistant is unavailable."))
    assert document == (
        f'{DECLARATION}<Response><Speak language="en-US">Sorry, the assistant is unavailable.</Speak>'
        "<Hangup/></Response>"
    )


@pytest.mark.parametrize("token", ["", "abc-def", "tok en", "tok,en=1", "ä1", "a" * 507])
def test_tokens_outside_extra_headers_alphabet(token: str) -> None:
    with pytest.raises(ProtocolError):
        render_answer(StreamAnswer(url="wss://m.example.com/s", token=token))


def test_characters_xml_cannot_carry() -> None:
    with pytest.raises(ProtocolError):
        render_answer(ErrorAnswer(message="bell \x07"))
    with pytest.raises(ProtocolError):
        render_answer(StreamAnswer(url="wss://m.example.com/\x00", token="abc"))


def test_relay_answer_is_unsupported() -> None:
    relay = RelayAnswer(
        url="wss://relay.example.com",
        welcome_greeting="Hi",
        voice=None,
        language="en-US",
        interruptible="any",
        interrupt_sensitivity="high",
        tts_provider="ElevenLabs",
        transcription_provider="Deepgram",
    )
    with pytest.raises(UnsupportedError):
        render_answer(relay)
