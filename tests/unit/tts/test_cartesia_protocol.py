"""The sans-I/O half of the Cartesia client: request shapes (docs/protocols/ai-providers.md §2.2), server messages (§2.3)."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callkit.errors import ConfigurationError, ProtocolError, UnknownEventError
from callkit.tts.cartesia import CartesiaTTS
from callkit.tts.cartesia_protocol import (
    MAX_BUFFER_DELAY_MS,
    AudioChunk,
    CartesiaError,
    ContextDone,
    FlushDone,
    Timestamps,
    cancel_request,
    generation_request,
    parse_message,
)

VOICE = "a0e99841-438c-4a64-b679-ae501e7d6091"
CONFIG = CartesiaTTS(api_key="sk_car_test", voice_id=VOICE)

# The examples of docs/protocols/ai-providers.md §2.2 and §2.3, verbatim.
SPEC_REQUEST = """{"model_id":"sonic-3","transcript":"Sure, let me check that for you. ","voice":{"mode":"id","id":"a0e99841-438c-4a64-b679-ae501e7d6091"},
 "language":"en","context_id":"turn-7f3a","output_format":{"container":"raw","encoding":"pcm_mulaw","sample_rate":8000},
 "add_timestamps":true,"continue":true}"""
SPEC_CANCEL = '{"context_id":"turn-7f3a","cancel":true}'
SPEC_CHUNK = '{"type":"chunk","data":"f39/fn5+fX18","done":false,"status_code":206,"step_time":41,"context_id":"turn-7f3a"}'
SPEC_TIMESTAMPS = '{"type":"timestamps","done":false,"status_code":206,"context_id":"turn-7f3a","word_timestamps":{"words":["Sure,","let"],"start":[0.0,0.31],"end":[0.28,0.45]}}'
SPEC_DONE = '{"type":"done","done":true,"status_code":206,"context_id":"turn-7f3a"}'
SPEC_ERROR = """{"type":"error","done":true,"status_code":429,"error_code":"concurrency_limited","title":"Too many concurrent requests",
 "message":"You have exceeded your plan's concurrency limit.","request_id":"<id>","context_id":"turn-7f3a"}"""
SPEC_OLD_ERROR = '{"type":"error","done":true,"error":"Title: message","status_code":400,"context_id":"..."}'


def request(transcript: str = "Hi. ", **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("continue_", True)
    config = kwargs.pop("config", CONFIG)
    parsed: dict[str, Any] = json.loads(generation_request(config, "turn-7f3a", transcript, **kwargs))
    return parsed


# --- generation requests (§2.2) ------------------------------------------------------------------------


def test_the_spec_example_request_verbatim_then_our_two_additions() -> None:
    text = generation_request(
        CONFIG, "turn-7f3a", "Sure, let me check that for you. ", continue_=True, add_timestamps=True
    )
    example = json.dumps(json.loads(SPEC_REQUEST), separators=(",", ":"), ensure_ascii=False)
    # Same fields, same values, same order as the documentation; then the two we add.
    assert (
        text
        == example[:-1]
        + f',"max_buffer_delay_ms":{MAX_BUFFER_DELAY_MS},"generation_config":{{"speed":1.0}}}}'
    )


def test_every_field_of_the_request() -> None:
    config = CartesiaTTS(api_key="k", voice_id=VOICE, model="sonic-3-2026-01-12", language="es", speed="fast")
    body = request(" hola, ", config=config, continue_=False, encoding="pcm_s16le", sample_rate=16000)
    assert body == {
        "model_id": "sonic-3-2026-01-12",
        "transcript": " hola, ",  # verbatim, spaces at both edges kept
        "voice": {"mode": "id", "id": VOICE},
        "language": "es",
        "context_id": "turn-7f3a",
        "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 16000},
        "add_timestamps": False,
        "continue": False,
        "max_buffer_delay_ms": MAX_BUFFER_DELAY_MS,
        "generation_config": {"speed": 1.2},
    }


def test_defaults_are_mulaw_8000_for_phone_lines() -> None:
    body = request()
    assert body["output_format"] == {"container": "raw", "encoding": "pcm_mulaw", "sample_rate": 8000}
    assert body["add_timestamps"] is False
    assert body["continue"] is True


@pytest.mark.parametrize(("speed", "value"), [("slow", 0.8), ("normal", 1.0), ("fast", 1.2)])
def test_speed_maps_to_generation_config(speed: Any, value: float) -> None:
    body = request(config=CartesiaTTS(api_key="k", voice_id=VOICE, speed=speed))
    assert body["generation_config"] == {"speed": value}


def test_a_small_buffer_delay_because_we_send_whole_clauses() -> None:
    assert 0 <= request()["max_buffer_delay_ms"] <= 200  # Cartesia's default is 3000
    assert request(max_buffer_delay_ms=0)["max_buffer_delay_ms"] == 0
    with pytest.raises(ValueError, match="0-5000"):
        request(max_buffer_delay_ms=5001)


def test_inputs_of_one_context_repeat_every_field_but_transcript_and_continue() -> None:
    pieces = [request("Sure, "), request("let me check. "), request("", continue_=False)]
    fixed = [{k: v for k, v in p.items() if k not in ("transcript", "continue")} for p in pieces]
    assert fixed[0] == fixed[1] == fixed[2]
    assert [p["transcript"] for p in pieces] == ["Sure, ", "let me check. ", ""]
    assert [p["continue"] for p in pieces] == [True, True, False]


def test_a_request_needs_a_voice_and_a_format_cartesia_has() -> None:
    with pytest.raises(ConfigurationError, match="voice_id"):
        generation_request(CartesiaTTS(api_key="k"), "c", "Hi.", continue_=False)
    with pytest.raises(ValueError, match="encoding"):
        request(encoding="opus")
    with pytest.raises(ValueError, match="sample rate"):
        request(sample_rate=11025)


@given(st.text())
def test_any_transcript_goes_out_verbatim(text: str) -> None:
    assert request(text)["transcript"] == text


def test_cancel_request_is_the_spec_example() -> None:
    assert cancel_request("turn-7f3a") == SPEC_CANCEL


# --- server messages (§2.3) -----------------------------------------------------------------------------


def test_chunk() -> None:
    assert parse_message(SPEC_CHUNK) == AudioChunk("turn-7f3a", base64.b64decode("f39/fn5+fX18"))


def test_timestamps() -> None:
    assert parse_message(SPEC_TIMESTAMPS) == Timestamps(
        "turn-7f3a", ("Sure,", "let"), (0.0, 0.31), (0.28, 0.45)
    )


def test_done_and_flush_done() -> None:
    assert parse_message(SPEC_DONE) == ContextDone("turn-7f3a")
    flush = (
        '{"type":"flush_done","done":false,"flush_done":true,"flush_id":2,"status_code":206,"context_id":"c"}'
    )
    assert parse_message(flush) == FlushDone("c", 2)


def test_error_2026_03_01_shape() -> None:
    assert parse_message(SPEC_ERROR) == CartesiaError(
        context_id="turn-7f3a",
        status_code=429,
        code="concurrency_limited",
        title="Too many concurrent requests",
        message="You have exceeded your plan's concurrency limit.",
        retryable=True,
    )


def test_error_older_shape() -> None:
    assert parse_message(SPEC_OLD_ERROR) == CartesiaError(
        "...", 400, None, "Title", "message", retryable=False
    )


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (401, False), (404, False), (429, True), (500, True), (503, True)]
)
def test_error_retryable_for_429_and_5xx_in_both_shapes(status: int, retryable: bool) -> None:
    new = {
        "type": "error",
        "done": True,
        "status_code": status,
        "error_code": "x",
        "title": "T",
        "message": "m",
    }
    old = {"type": "error", "done": True, "status_code": status, "error": "T: m"}
    for shape in (new, old):
        error = parse_message(json.dumps(shape | {"context_id": "c"}))
        assert isinstance(error, CartesiaError)
        assert error.retryable is retryable


def test_error_edge_cases() -> None:
    sunset = parse_message(
        '{"type":"error","done":true,"status_code":400,"error_code":"model_sunsetted","title":"Model sunset","message":"Use sonic-3."}'
    )
    assert sunset == CartesiaError(
        None, 400, "model_sunsetted", "Model sunset", "Use sonic-3.", retryable=False
    )
    no_title = parse_message('{"type":"error","done":true,"error":"something broke","context_id":"c"}')
    assert no_title == CartesiaError("c", 500, None, "", "something broke", retryable=True)


@pytest.mark.parametrize("kind", ["phoneme_timestamps", "brand_new_type"])
def test_unknown_types_are_ignorable(kind: str) -> None:
    with pytest.raises(UnknownEventError) as caught:
        parse_message(json.dumps({"type": kind, "context_id": "c"}))
    assert caught.value.event == kind


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"context_id":"c"}',
        '{"type":"chunk","context_id":"c"}',
        '{"type":"chunk","data":"!!not base64!!","context_id":"c"}',
        '{"type":"chunk","data":"AAAA"}',
        '{"type":"done"}',
        '{"type":"timestamps","context_id":"c"}',
        '{"type":"timestamps","context_id":"c","word_timestamps":{"words":["a"],"start":[],"end":[]}}',
        '{"type":"error","status_code":"429"}',
    ],
)
def test_malformed_messages_raise_protocol_error(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_message(text)


@given(st.binary(), st.text(min_size=1))
def test_chunk_audio_round_trips(audio: bytes, context_id: str) -> None:
    text = json.dumps({"type": "chunk", "data": base64.b64encode(audio).decode(), "context_id": context_id})
    assert parse_message(text) == AudioChunk(context_id, audio)
    assert parse_message(text.encode()) == AudioChunk(context_id, audio)


@given(st.text())
def test_parser_raises_only_protocol_error(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        parse_message(text)
