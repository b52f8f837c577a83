"""OpenAI Realtime GA messages (docs/protocols/ai-providers.md §3), sans-I/O."""

from __future__ import annotations

import json

import pytest

from callkit.errors import ProtocolError
from callkit.realtime.openai import OpenAIRealtimeProvider
from callkit.realtime.openai_protocol import (
    AudioDelta,
    AudioDone,
    FunctionCall,
    InputTranscript,
    RealtimeError,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TranscriptDelta,
    TranscriptDone,
    Truncated,
    Unknown,
    append_audio,
    function_call_output,
    parse_server_event,
    response_cancel,
    response_create,
    session_update,
    truncate,
    user_text,
)

KEY = "sk-test"
TOOL = {
    "type": "function",
    "name": "book_slot",
    "description": "Book an appointment slot",
    "parameters": {"type": "object", "properties": {"slot_id": {"type": "string"}}, "required": ["slot_id"]},
}
INSTRUCTIONS = "You are the front desk of Acme Dental. Be brief."
EXAMPLE_VAD = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "create_response": True,
    "interrupt_response": True,
}


def test_session_update_is_the_ga_example_field_by_field() -> None:
    config = OpenAIRealtimeProvider(
        api_key=KEY, voice="marin", transcription_model="gpt-4o-mini-transcribe", turn_detection=EXAMPLE_VAD
    )
    expected = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": "You are the front desk of Acme Dental. Be brief.",
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "transcription": {"model": "gpt-4o-mini-transcribe"},
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 500,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
            },
            "tools": [
                {
                    "type": "function",
                    "name": "book_slot",
                    "description": "Book an appointment slot",
                    "parameters": {
                        "type": "object",
                        "properties": {"slot_id": {"type": "string"}},
                        "required": ["slot_id"],
                    },
                }
            ],
            "tool_choice": "auto",
            # Not in the example (server default): the provider's setting is always sent.
            "max_output_tokens": "inf",
        },
    }
    built = session_update(config, instructions=INSTRUCTIONS, tools=[TOOL])
    assert built == expected
    assert json.loads(json.dumps(built)) == expected
    # Nothing of the beta shape, and no temperature.
    flat = json.dumps(built)
    for beta in ('modalities":', "input_audio_format", "max_response_output_tokens", "temperature"):
        assert f'"{beta}' not in flat.replace('"output_modalities"', "")


@pytest.mark.parametrize(
    ("sensitivity", "threshold", "silence"), [("high", 0.5, 400), ("medium", 0.6, 500), ("low", 0.75, 700)]
)
@pytest.mark.parametrize(
    ("interruptible", "interrupt"), [("any", True), ("speech", True), ("dtmf", False), ("none", False)]
)
def test_sensitivity_mapping(
    sensitivity: str, threshold: float, silence: int, interruptible: str, interrupt: bool
) -> None:
    config = OpenAIRealtimeProvider(api_key=KEY, max_response_output_tokens=300)
    built = session_update(
        config,
        instructions="x",
        interrupt_sensitivity=sensitivity,  # type: ignore[arg-type]
        interruptible=interruptible,  # type: ignore[arg-type]
    )
    assert built["session"]["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": threshold,
        "prefix_padding_ms": 300,
        "silence_duration_ms": silence,
        "create_response": True,
        "interrupt_response": interrupt,
    }
    assert built["session"]["max_output_tokens"] == 300
    assert built["session"]["tools"] == []


def test_client_events() -> None:
    assert json.loads(append_audio("/v7+fn18")) == {"type": "input_audio_buffer.append", "audio": "/v7+fn18"}
    assert json.loads(response_create()) == {"type": "response.create"}
    assert json.loads(response_create("Greet the caller.")) == {
        "type": "response.create",
        "response": {"instructions": "Greet the caller."},
    }
    assert json.loads(function_call_output("call_Q1", '{"booked":true}')) == {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_Q1", "output": '{"booked":true}'},
    }
    assert json.loads(user_text("Hi")) == {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
    }
    assert json.loads(truncate("item_A7", 1840)) == {
        "type": "conversation.item.truncate",
        "item_id": "item_A7",
        "content_index": 0,
        "audio_end_ms": 1840,
    }
    assert json.loads(response_cancel()) == {"type": "response.cancel"}


@pytest.mark.parametrize(
    ("text", "event"),
    [
        (
            '{"type":"session.created","event_id":"e1","session":{"id":"sess_1","type":"realtime"}}',
            SessionCreated("sess_1"),
        ),
        ('{"type":"session.updated","event_id":"e2","session":{"id":"sess_1"}}', SessionUpdated("sess_1")),
        (
            '{"type":"input_audio_buffer.speech_started","event_id":"e3","audio_start_ms":1000,"item_id":"item_1"}',
            SpeechStarted(1000, "item_1"),
        ),
        (
            '{"type":"input_audio_buffer.speech_stopped","event_id":"e4","audio_end_ms":2000,"item_id":"item_1"}',
            SpeechStopped(2000, "item_1"),
        ),
        (
            '{"type":"response.output_audio.delta","event_id":"event_41","response_id":"resp_9","item_id":"item_A7",'
            '"output_index":0,"content_index":0,"delta":"/v7+fn18fHt7..."}',
            AudioDelta("resp_9", "item_A7", 0, "/v7+fn18fHt7..."),
        ),
        (
            '{"type":"response.output_audio.done","event_id":"e5","response_id":"resp_9","item_id":"item_A7",'
            '"output_index":0,"content_index":0}',
            AudioDone("resp_9", "item_A7"),
        ),
        (
            '{"type":"response.output_audio_transcript.delta","event_id":"e6","response_id":"resp_9",'
            '"item_id":"item_A7","output_index":0,"content_index":0,"delta":"Hel"}',
            TranscriptDelta("resp_9", "item_A7", "Hel"),
        ),
        (
            '{"type":"response.output_audio_transcript.done","event_id":"e7","response_id":"resp_9",'
            '"item_id":"item_A7","output_index":0,"content_index":0,"transcript":"Hello"}',
            TranscriptDone("resp_9", "item_A7", "Hello"),
        ),
        (
            '{"type":"conversation.item.input_audio_transcription.completed","event_id":"e8","item_id":"item_1",'
            '"content_index":0,"transcript":"I need an appointment"}',
            InputTranscript("item_1", "I need an appointment"),
        ),
        (
            '{"type":"response.function_call_arguments.done","event_id":"event_55","response_id":"resp_9",'
            '"item_id":"item_B2","output_index":1,"call_id":"call_Q1","name":"book_slot",'
            '"arguments":"{\\"slot_id\\":\\"s-14\\"}"}',
            FunctionCall("call_Q1", "book_slot", '{"slot_id":"s-14"}', "item_B2"),
        ),
        (
            '{"type":"response.created","event_id":"e9","response":{"id":"resp_9","status":"in_progress","output":[]}}',
            ResponseCreated("resp_9"),
        ),
        (
            '{"type":"response.done","event_id":"e10","response":{"id":"resp_9","status":"completed",'
            '"status_details":null,"output":[{"id":"item_A7","type":"message","role":"assistant","content":[]},'
            '{"id":"item_B2","type":"function_call","call_id":"call_Q1","name":"book_slot","arguments":"{}"}],'
            '"usage":{"total_tokens":10}}}',
            ResponseDone("resp_9", "completed", (FunctionCall("call_Q1", "book_slot", "{}", "item_B2"),)),
        ),
        (
            '{"type":"response.done","event_id":"e11","response":{"id":"resp_9","status":"cancelled",'
            '"status_details":{"type":"cancelled","reason":"turn_detected"},"output":[]}}',
            ResponseDone("resp_9", "cancelled", (), "turn_detected"),
        ),
        (
            '{"type":"conversation.item.truncated","event_id":"e12","item_id":"item_A7","content_index":0,'
            '"audio_end_ms":1840}',
            Truncated("item_A7", 0, 1840),
        ),
        (
            '{"type":"error","event_id":"event_60","error":{"type":"invalid_request_error",'
            '"code":"conversation_already_has_active_response","message":"...","param":null,"event_id":"evt_c_12"}}',
            RealtimeError("invalid_request_error", "conversation_already_has_active_response", "..."),
        ),
        (
            '{"type":"rate_limits.updated","event_id":"event_61","rate_limits":[{"name":"tokens","limit":40000,'
            '"remaining":38520,"reset_seconds":2.2}]}',
            Unknown("rate_limits.updated"),
        ),
        (
            '{"type":"input_audio_buffer.committed","event_id":"e","item_id":"i","previous_item_id":null}',
            Unknown("input_audio_buffer.committed"),
        ),
        ('{"type":"conversation.item.added","event_id":"e","item":{}}', Unknown("conversation.item.added")),
    ],
)
def test_server_events(text: str, event: object) -> None:
    assert parse_server_event(text) == event
    assert parse_server_event(text.encode()) == event


@pytest.mark.parametrize(
    "name",
    [
        "response.audio.delta",
        "response.audio.done",
        "response.audio_transcript.delta",
        "response.audio_transcript.done",
        "response.text.delta",
    ],
)
def test_beta_names_are_unknown(name: str) -> None:
    text = json.dumps({"type": name, "event_id": "e", "response_id": "r", "item_id": "i", "delta": "AAAA"})
    assert parse_server_event(text) == Unknown(name, beta=True)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"event_id":"e1"}',
        '{"type":7}',
        '{"type":"response.output_audio.delta","response_id":"r"}',
        '{"type":"input_audio_buffer.speech_started","audio_start_ms":"soon"}',
        '{"type":"response.done","response":{"id":"r","status":"exploded"}}',
        '{"type":"error"}',
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_server_event(text)
