"""Deepgram live messages, sans-I/O (docs/protocols/ai-providers.md §1.3-1.6): parser, encoders, assembler."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callkit.errors import MessageTooLargeError, ProtocolError, UnknownEventError
from callkit.stt.deepgram_protocol import (
    MAX_MESSAGE_BYTES,
    CloseStream,
    DeepgramError,
    DeepgramEvent,
    Finalize,
    Interim,
    KeepAlive,
    Metadata,
    SpeechStarted,
    Transcript,
    Unknown,
    Utterance,
    UtteranceAssembler,
    UtteranceEnd,
    Word,
    classify_close,
    close_stream,
    encode_client_message,
    encode_event,
    finalize,
    keep_alive,
    parse_client_message,
    parse_message,
)

# The examples of §1.4, verbatim.
RESULTS = """{"type":"Results","channel_index":[0,1],"start":3.42,"duration":1.18,"is_final":true,"speech_final":true,
 "channel":{"alternatives":[{"transcript":"I need to move my appointment.","confidence":0.97,
   "words":[{"word":"i","start":3.48,"end":3.6,"confidence":0.99,"punctuated_word":"I"}]}]},
 "metadata":{"request_id":"5b1e0c4e-0000-4000-8000-000000000001","model_uuid":"00000000-0000-4000-8000-00000000000a",
   "model_info":{"name":"general-nova-3","version":"2025-01-01.0","arch":"nova-3"}}}"""
UTTERANCE_END = '{"type":"UtteranceEnd","channel":[0,1],"last_word_end":4.6}'
SPEECH_STARTED = '{"type":"SpeechStarted","channel":[0,1],"timestamp":9.04}'
METADATA = (
    '{"type":"Metadata","transaction_key":"deprecated","request_id":"...","sha256":"...",'
    '"created":"2026-01-01T10:00:00.000Z","duration":12.3,"channels":1}'
)
ERROR = '{"type":"Error","variant":"SchemaError","description":"...","message":"<original client message>"}'


# --- parser -------------------------------------------------------------------------------------


def test_results_example() -> None:
    assert parse_message(RESULTS) == Transcript(
        text="I need to move my appointment.",
        is_final=True,
        speech_final=True,
        from_finalize=False,
        start=3.42,
        duration=1.18,
        words=(Word("i", 3.48, 3.6, 0.99, "I"),),
        confidence=0.97,
    )


def test_results_from_bytes_and_from_finalize() -> None:
    text = '{"type":"Results","is_final":true,"from_finalize":true,"channel":{"alternatives":[{"transcript":""}]}}'
    event = parse_message(text.encode())
    assert event == Transcript("", True, False, True, 0.0, 0.0)


def test_results_without_alternatives_is_empty_text() -> None:
    event = parse_message('{"type":"Results","is_final":false,"channel":{"alternatives":[]}}')
    assert isinstance(event, Transcript)
    assert event.text == ""
    assert not event.is_final


@pytest.mark.parametrize(
    ("text", "event"),
    [
        (UTTERANCE_END, UtteranceEnd(4.6)),
        (SPEECH_STARTED, SpeechStarted(9.04)),
        (METADATA, Metadata("...", 12.3, 1)),
        (ERROR, DeepgramError("...", "SchemaError")),
        ('{"type":"FutureThing","x":1}', Unknown("FutureThing")),
    ],
)
def test_other_examples(text: str, event: DeepgramEvent) -> None:
    assert parse_message(text) == event


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1,2]",
        '{"no":"type"}',
        '{"type":7}',
        '{"type":"Results"}',  # no channel
        '{"type":"Results","channel":{"alternatives":[{"transcript":3}]}}',
        '{"type":"UtteranceEnd","last_word_end":"soon"}',
        '{"type":"SpeechStarted"}',
        b"\xff\xfe",
    ],
)
def test_malformed_messages_raise_protocol_error(text: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_message(text)


def test_oversized_message() -> None:
    text = '{"type":"Metadata","request_id":"' + "x" * MAX_MESSAGE_BYTES + '"}'
    with pytest.raises(MessageTooLargeError):
        parse_message(text)


# --- encoders -----------------------------------------------------------------------------------

finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
words = st.builds(
    Word,
    word=st.text(max_size=8),
    start=finite,
    end=finite,
    confidence=st.floats(0, 1),
    punctuated_word=st.none() | st.text(max_size=8),
)
transcripts = st.builds(
    Transcript,
    text=st.text(max_size=40),
    is_final=st.booleans(),
    speech_final=st.booleans(),
    from_finalize=st.booleans(),
    start=finite,
    duration=finite,
    words=st.lists(words, max_size=4).map(tuple),
    confidence=st.floats(0, 1),
)
events = st.one_of(
    transcripts,
    st.builds(UtteranceEnd, finite),
    st.builds(SpeechStarted, finite),
    st.builds(Metadata, st.text(max_size=12), finite, st.integers(1, 8)),
    st.builds(DeepgramError, st.text(max_size=12), st.text(max_size=12)),
    st.builds(Unknown, st.sampled_from(["Future", "Warning"])),
)


@given(events)
def test_encode_event_round_trips(event: DeepgramEvent) -> None:
    assert parse_message(encode_event(event, request_id="rid")) == event


def test_encoded_results_carry_the_request_id() -> None:
    text = encode_event(Transcript("hi", True, True, False, 1.0, 0.5), request_id="rid-1")
    wire = json.loads(text)
    assert wire["type"] == "Results"
    assert wire["metadata"]["request_id"] == "rid-1"
    assert wire["channel"]["alternatives"][0]["transcript"] == "hi"


def test_client_messages_are_the_documented_json() -> None:
    assert json.loads(keep_alive()) == {"type": "KeepAlive"}
    assert json.loads(finalize()) == {"type": "Finalize"}
    assert json.loads(close_stream()) == {"type": "CloseStream"}
    for message in (KeepAlive(), Finalize(), CloseStream()):
        assert parse_client_message(encode_client_message(message)) == message
    assert parse_client_message('{"type":"Finalize","channel":0}') == Finalize()


def test_client_message_errors() -> None:
    with pytest.raises(UnknownEventError):
        parse_client_message('{"type":"Shout"}')
    with pytest.raises(ProtocolError):
        parse_client_message("KeepAlive")


# --- closes (§1.6) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "sent", "outcome"),
    [
        (1000, "", True, "ended"),
        (1011, "NET-0001", True, "ended"),
        (1000, "", False, "dropped"),
        (1006, "", False, "dropped"),
        (None, "", False, "dropped"),
        (1011, "NET-0001", False, "dropped"),
        (1011, "NET-0000", False, "dropped"),
        (1012, "", False, "dropped"),
        (1011, "DATA-0000", False, "failed"),
        (1002, "", False, "failed"),
        (1008, "", False, "failed"),
    ],
)
def test_classify_close(code: int | None, reason: str, sent: bool, outcome: str) -> None:
    assert classify_close(code, reason, close_stream_sent=sent) == outcome


# --- assembler (§1.5) ---------------------------------------------------------------------------


def interim(text: str) -> Transcript:
    return Transcript(text, False, False, False, 0.0, 0.0)


def final(text: str, *, speech_final: bool = False, from_finalize: bool = False) -> Transcript:
    return Transcript(text, True, speech_final, from_finalize, 0.0, 0.0)


def feed_all(assembler: UtteranceAssembler, sequence: list[DeepgramEvent]) -> list[object]:
    return [out for event in sequence for out in assembler.feed(event)]


def test_assembler_walkthrough() -> None:
    assembler = UtteranceAssembler()
    out = feed_all(
        assembler,
        [
            SpeechStarted(0.2),
            interim("I need"),
            interim(""),
            final("I need to move"),
            interim("my appoint"),
            final("my appointment.", speech_final=True),
            UtteranceEnd(1.2),  # already emitted: nothing
            Metadata("rid"),
            Unknown("Future"),
        ],
    )
    assert out == [
        SpeechStarted(0.2),
        Interim("I need"),
        Interim("my appoint"),
        Utterance("I need to move my appointment."),
    ]
    assert not assembler.pending
    assert assembler.flush() is None


def test_empty_final_with_speech_final_closes_the_turn() -> None:
    assembler = UtteranceAssembler()
    assert feed_all(assembler, [final("Yes."), final("", speech_final=True)]) == [Utterance("Yes.")]
    assert feed_all(assembler, [final("", speech_final=True)]) == []


def test_utterance_end_closes_when_endpointing_missed_the_pause() -> None:
    assembler = UtteranceAssembler()
    assert feed_all(assembler, [final("over"), final("the noise")]) == []
    assert assembler.pending
    assert feed_all(assembler, [UtteranceEnd(3.0)]) == [Utterance("over the noise")]


def test_from_finalize_closes_the_turn() -> None:
    assembler = UtteranceAssembler()
    assert feed_all(assembler, [final("stop there", from_finalize=True)]) == [Utterance("stop there")]


def test_flush_returns_what_is_pending() -> None:
    assembler = UtteranceAssembler()
    feed_all(assembler, [final(" half "), interim("ignored")])
    assert assembler.flush() == Utterance("half")
    assert assembler.flush() is None


pieces = st.one_of(
    st.builds(interim, st.text(max_size=12)),
    st.builds(final, st.text(max_size=12), speech_final=st.booleans(), from_finalize=st.booleans()),
    st.builds(UtteranceEnd, finite),
    st.builds(SpeechStarted, finite),
    st.just(Metadata("rid")),
    st.just(Unknown("Future")),
)


@given(st.lists(pieces, max_size=40))
def test_any_interleaving_gives_the_concatenation_of_finals(sequence: list[DeepgramEvent]) -> None:
    assembler = UtteranceAssembler()
    out = feed_all(assembler, sequence)
    tail = assembler.flush()
    utterances = [e.text for e in out if isinstance(e, Utterance)] + ([tail.text] if tail else [])
    finals = [e.text.strip() for e in sequence if isinstance(e, Transcript) and e.is_final]
    assert " ".join(utterances) == " ".join(f for f in finals if f)
    assert all(utterances)
    interims = [e.text.strip() for e in sequence if isinstance(e, Transcript) and not e.is_final]
    assert [e for e in out if isinstance(e, Interim)] == [Interim(t) for t in interims if t]
    assert [e for e in out if isinstance(e, SpeechStarted)] == [
        e for e in sequence if isinstance(e, SpeechStarted)
    ]


@given(st.lists(pieces, max_size=40))
def test_a_turn_closes_exactly_at_a_closing_event(sequence: list[DeepgramEvent]) -> None:
    assembler = UtteranceAssembler()
    for event in sequence:
        had_pending = assembler.pending
        out = assembler.feed(event)
        closing = isinstance(event, UtteranceEnd) or (
            isinstance(event, Transcript) and event.is_final and (event.speech_final or event.from_finalize)
        )
        emitted = any(isinstance(e, Utterance) for e in out)
        if isinstance(event, Transcript) and event.is_final and event.text.strip():
            had_pending = True
        assert emitted == (closing and had_pending)
        if closing:
            assert not assembler.pending
