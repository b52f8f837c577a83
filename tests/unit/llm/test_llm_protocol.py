"""The sans-I/O half of the chat client: messages on the wire, request bodies, chunk decoding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callkit.errors import ProtocolError
from callkit.llm import (
    AssistantMessage,
    ChatStreamDecoder,
    Finished,
    Message,
    ModelError,
    SSEParser,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolCallDone,
    ToolMessage,
    Usage,
    UserMessage,
    decode_history,
    encode_history,
    from_wire,
    to_wire,
)
from callkit.llm.protocol import encode_request, error_from_response

# The example of docs/protocols/ai-providers.md §4.2, byte for byte.
SPEC_STREAM = b"""data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_7","type":"function","function":{"name":"check_slot","arguments":""}}]},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"day\\":\\"Tue\\","}}]},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\\"time\\":\\"15:00\\"}"}}]},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4.1-mini","choices":[],"usage":{"prompt_tokens":88,"completion_tokens":21,"total_tokens":109}}

data: [DONE]

"""


def decode(payloads: list[str | dict[str, Any]]) -> list[Any]:
    decoder = ChatStreamDecoder()
    events: list[Any] = []
    for payload in payloads:
        events.extend(decoder.feed(payload if isinstance(payload, str) else json.dumps(payload)))
    return events


def chunk(delta: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
        "usage": None,
    }


def test_spec_example() -> None:
    parser = SSEParser()
    decoder = ChatStreamDecoder()
    events = [event for payload in parser.feed(SPEC_STREAM) for event in decoder.feed(payload)]
    assert events == [
        ToolCallDone(ToolCall("call_7", "check_slot", '{"day":"Tue","time":"15:00"}')),
        Finished("tool_calls", Usage(88, 21, 109)),
    ]
    assert json.loads(events[0].call.arguments) == {"day": "Tue", "time": "15:00"}
    assert decoder.done
    assert decoder.close() == []


def test_text_stream() -> None:
    events = decode(
        [
            chunk({"role": "assistant", "content": "", "refusal": None}),
            chunk({"content": "Your order"}),
            chunk({"content": " shipped."}),
            chunk({}, "stop"),
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}},
            "[DONE]",
        ]
    )
    assert events == [TextDelta("Your order"), TextDelta(" shipped."), Finished("stop", Usage(5, 3, 8))]


def test_interleaved_tool_calls_assemble_by_index() -> None:
    events = decode(
        [
            chunk({"role": "assistant", "content": "Let me look."}),
            chunk(
                {"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "two", "arguments": ""}}]}
            ),
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "call_a", "function": {"name": "one", "arguments": '{"x"'}}
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"y":'}}]}),
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "function": {"arguments": ":1}"}},
                        {"index": 1, "function": {"arguments": "2}"}},
                    ]
                }
            ),
            chunk({}, "tool_calls"),
            "[DONE]",
        ]
    )
    assert events == [
        TextDelta("Let me look."),
        ToolCallDone(ToolCall("call_a", "one", '{"x":1}')),
        ToolCallDone(ToolCall("call_b", "two", '{"y":2}')),
        Finished("tool_calls", None),
    ]


def test_missing_id_is_filled_and_other_choices_ignored() -> None:
    events = decode(
        [
            chunk({"content": "other choice"}, index=1),
            chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}),
            chunk({}, "tool_calls"),
            "[DONE]",
        ]
    )
    assert events == [ToolCallDone(ToolCall("call_0", "f", "{}")), Finished("tool_calls", None)]


def test_stream_cut_after_finish_reason_still_finishes() -> None:
    decoder = ChatStreamDecoder()
    assert decoder.feed(json.dumps(chunk({"content": "Hi"}, "stop"))) == [TextDelta("Hi")]
    assert decoder.close() == [Finished("stop", None)]


def test_stream_cut_before_finish_reason_is_a_protocol_error() -> None:
    decoder = ChatStreamDecoder()
    decoder.feed(json.dumps(chunk({"content": "Hi"})))
    with pytest.raises(ProtocolError):
        decoder.close()


@pytest.mark.parametrize(
    "payload",
    [
        "{not json",
        '{"choices": "nope"}',
        '{"choices": [{"delta": {"content": 5}}]}',
        '{"choices": [{"delta": {"tool_calls": [{"function": {"name": "f"}}]}}]}',  # no index
        "[1, 2]",
    ],
)
def test_malformed_chunk(payload: str) -> None:
    with pytest.raises(ProtocolError):
        ChatStreamDecoder().feed(payload)


def test_tool_call_without_name_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode(
            [
                chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"arguments": "{}"}}]}),
                chunk({}, "stop"),
            ]
        )


def test_data_after_done_is_a_protocol_error() -> None:
    decoder = ChatStreamDecoder()
    decoder.feed(json.dumps(chunk({}, "stop")))
    decoder.feed("[DONE]")
    with pytest.raises(ProtocolError):
        decoder.feed(json.dumps(chunk({"content": "late"})))


def test_error_inside_the_stream() -> None:
    with pytest.raises(ModelError) as caught:
        ChatStreamDecoder().feed('{"error": {"message": "overloaded", "type": "server_error"}}')
    assert "overloaded" in str(caught.value)


# --- messages --------------------------------------------------------------------------------------

HISTORY: list[Message] = [
    SystemMessage("Be brief."),
    UserMessage("Where is order 1001?"),
    AssistantMessage(None, (ToolCall("call_1", "check_order", '{"order_id":"1001"}'),)),
    ToolMessage("call_1", "Order 1001 shipped."),
    AssistantMessage("It shipped on Monday."),
]


def test_wire_shape_matches_the_spec() -> None:
    wire = to_wire(HISTORY)
    assert wire[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "check_order", "arguments": '{"order_id":"1001"}'},
            }
        ],
    }
    assert wire[3] == {"role": "tool", "tool_call_id": "call_1", "content": "Order 1001 shipped."}
    assert wire[4] == {"role": "assistant", "content": "It shipped on Monday."}  # no empty tool_calls


def test_history_round_trips_through_json() -> None:
    data = encode_history(HISTORY)
    assert decode_history(data) == HISTORY
    assert json.loads(data) == to_wire(HISTORY)
    assert to_wire(from_wire(json.loads(data))) == json.loads(data)


text = st.text(max_size=40)
tool_calls = st.builds(ToolCall, text, text, text)
messages = st.one_of(
    st.builds(SystemMessage, text),
    st.builds(UserMessage, text),
    st.builds(AssistantMessage, st.none() | text, st.lists(tool_calls, max_size=3).map(tuple)),
    st.builds(ToolMessage, text, text),
)


@given(st.lists(messages, max_size=8))
def test_any_history_round_trips(history: list[Message]) -> None:
    assert decode_history(encode_history(history)) == history


@pytest.mark.parametrize(
    "wire",
    [
        [{"role": "wizard", "content": "x"}],
        [{"role": "user", "content": 3}],
        [{"role": "tool", "content": "x"}],
        [{"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}],
        ["not an object"],
    ],
)
def test_bad_wire_messages(wire: list[Any]) -> None:
    with pytest.raises(ProtocolError):
        from_wire(wire)


@pytest.mark.parametrize("data", [b"{not json", b'{"role": "user"}'])
def test_bad_history_json(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_history(data)


# --- requests and errors ---------------------------------------------------------------------------


def test_request_body() -> None:
    schema = {
        "type": "function",
        "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
    }
    body = json.loads(
        encode_request("gpt-4.1-mini", HISTORY[:2], [schema], max_tokens=50, tool_choice="none")
    )
    assert body == {
        "model": "gpt-4.1-mini",
        "messages": to_wire(HISTORY[:2]),
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [schema],
        "tool_choice": "none",
        "max_completion_tokens": 50,
    }
    bare = json.loads(encode_request("m", HISTORY[:2], [], tool_choice="none"))
    assert "tools" not in bare
    assert "tool_choice" not in bare
    assert "max_completion_tokens" not in bare


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, None, False),
        (401, "invalid_api_key", False),
        (429, "rate_limit_exceeded", True),
        (429, "insufficient_quota", False),
        (500, None, True),
        (503, None, True),
        (408, None, True),
    ],
)
def test_error_statuses(status: int, code: str | None, retryable: bool) -> None:
    body = json.dumps({"error": {"message": "nope", "type": "x", "code": code}}).encode()
    error = error_from_response(status, body)
    assert (error.status, error.code, error.retryable) == (status, code, retryable)
    assert "nope" in str(error)


def test_error_message_never_holds_the_key() -> None:
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    message = f"Incorrect API key provided: sk-proj-****************************6789. Also {key}."
    body = json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
    )
    error = error_from_response(401, body.encode(), secrets=[key])
    assert key not in str(error)
    assert "6789" not in str(error)
    assert "Incorrect API key provided" in str(error)


def test_error_body_that_is_not_json() -> None:
    error = error_from_response(502, b"<html>Bad Gateway</html>")
    assert error.retryable
    assert "Bad Gateway" in str(error)
