"""``OpenAIChatModel`` over real loopback HTTP against ``ScriptedChatServer``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from callkit.agent import ModelRef
from callkit.errors import ConfigurationError, ServiceError
from callkit.examples import support_agent
from callkit.llm import (
    ChatEvent,
    Finished,
    Message,
    ModelError,
    OpenAIChatModel,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolCallDone,
    UserMessage,
)
from callkit.net import ConnectionLostError, HTTPClient, RetryPolicy, TransportError
from callkit.testing.openai_chat import (
    CutReply,
    ErrorReply,
    Reply,
    ScriptedChatServer,
    TextReply,
    ToolCallsReply,
    call,
)

API_KEY = "sk-test-0123456789abcdefghij"
TOOLS = [t.openai_schema() for t in support_agent.tools.values()]
MESSAGES: list[Message] = [SystemMessage("Be brief."), UserMessage("Hi")]


def run[T](main: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        return await main()

    return asyncio.run(wrapper())


def replying(*replies: Reply) -> Callable[[Sequence[Message]], Reply]:
    queue = list(replies)
    return lambda _: queue.pop(0)


@asynccontextmanager
async def scripted(*replies: Reply) -> AsyncIterator[tuple[ScriptedChatServer, OpenAIChatModel]]:
    async with ScriptedChatServer(replying(*replies)) as server:
        model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key=API_KEY)
        try:
            yield server, model
        finally:
            await model.aclose()


async def events_of(model: OpenAIChatModel, **kwargs: Any) -> list[ChatEvent]:
    return [event async for event in model.stream(MESSAGES, TOOLS, **kwargs)]


def test_text_stream_and_the_request_sent() -> None:
    async def main() -> None:
        async with scripted("Hello there, caller.") as (server, model):
            events = await events_of(model, max_tokens=64)
            request = server.requests[0]
        texts = [e.text for e in events if isinstance(e, TextDelta)]
        assert texts == ["Hello", " there,", " caller."]
        assert isinstance(events[-1], Finished)
        assert events[-1].reason == "stop"
        assert events[-1].usage is not None
        assert events[-1].usage.completion_tokens == 3
        assert request.body["model"] == "gpt-4o-mini"
        assert request.body["stream"] is True
        assert request.body["stream_options"] == {"include_usage": True}
        assert request.body["max_completion_tokens"] == 64
        assert request.body["tools"] == TOOLS
        assert request.tool_names == ["check_order", "transfer_call"]
        assert request.messages == MESSAGES
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.headers["content-type"] == "application/json"

    run(main)


def test_tool_calls_stream() -> None:
    reply = ToolCallsReply(
        [call("check_order", "call_a", order_id="1001"), call("transfer_call", "call_b", reason="asked")],
        text="One moment.",
    )

    async def main() -> None:
        async with scripted(reply) as (_, model):
            events = await events_of(model)
        assert events[:3] == [
            TextDelta("One"),
            TextDelta(" moment."),
            ToolCallDone(call("check_order", "call_a", order_id="1001")),
        ]
        assert events[3] == ToolCallDone(ToolCall("call_b", "transfer_call", '{"reason": "asked"}'))
        assert isinstance(events[4], Finished)
        assert events[4].reason == "tool_calls"

    run(main)


def test_connection_is_kept_between_completions() -> None:
    async def main() -> None:
        async with scripted("One.", "Two.", "Three.") as (server, model):
            for _ in range(3):
                await events_of(model)
            assert len({r.client_port for r in server.requests}) == 1

    run(main)


@pytest.mark.parametrize("status", [400, 401])
def test_http_errors_that_are_not_retried(status: int) -> None:
    async def main() -> None:
        async with scripted(ErrorReply(status, message="You said: my card is 4111.")) as (server, model):
            with pytest.raises(ModelError) as caught:
                await events_of(model)
            assert len(server.requests) == 1
        assert caught.value.status == status
        assert not caught.value.retryable
        # The provider's message can quote the caller: only the status and the type are kept.
        assert str(caught.value) == f"model API answered {status} (server_error)"

    run(main)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_http_errors_when_retrying_is_off(status: int) -> None:
    async def main() -> None:
        async with ScriptedChatServer(replying(ErrorReply(status, message="You said: 4111."))) as server:
            model = OpenAIChatModel(
                "gpt-4o-mini", base_url=server.base_url, retry=RetryPolicy(max_attempts=1)
            )
            try:
                with pytest.raises(ServiceError) as caught:
                    await events_of(model)
            finally:
                await model.aclose()
        assert caught.value.retryable
        cause = caught.value.__cause__
        assert isinstance(cause, ModelError)
        assert cause.status == status
        assert cause.retryable
        assert "4111" not in str(caught.value)
        assert "4111" not in str(cause)

    run(main)


def test_error_message_keeps_the_key_out() -> None:
    echo = f"Incorrect API key provided: {API_KEY}."

    async def main() -> None:
        async with scripted(ErrorReply(401, message=echo, code="invalid_api_key")) as (_, model):
            with pytest.raises(ModelError) as caught:
                await events_of(model)
        assert API_KEY not in str(caught.value)
        assert caught.value.code == "invalid_api_key"

    run(main)


def test_stream_cut_mid_way_is_a_transport_error() -> None:
    async def main() -> None:
        async with scripted(CutReply("This answer will not finish", after_pieces=2)) as (server, model):
            seen: list[ChatEvent] = []

            async def consume() -> None:
                async for event in model.stream(MESSAGES, TOOLS):
                    seen.append(event)

            with pytest.raises(ConnectionLostError) as caught:
                await consume()
            assert len(server.requests) == 1  # bytes of the answer were read: never retried
        assert seen == [TextDelta("This"), TextDelta(" answer")]
        assert isinstance(caught.value, TransportError)
        assert caught.value.retryable

    run(main)


def test_cancelling_the_consumer_closes_the_request() -> None:
    async def main() -> None:
        async with scripted(TextReply("one two three four five six", delay=0.2)) as (server, model):
            first = asyncio.Event()

            async def consume() -> None:
                async for _ in model.stream(MESSAGES, TOOLS):
                    first.set()

            task = asyncio.create_task(consume())
            await first.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(server.requests[0].disconnected.wait(), 2)

    run(main)


def test_shared_client_is_not_closed_by_the_model() -> None:
    async def main() -> None:
        async with ScriptedChatServer(replying("a.", "b.")) as server, HTTPClient() as client:
            model = OpenAIChatModel(
                ModelRef.parse("openai/gpt-4o-mini"), base_url=server.base_url, client=client
            )
            assert model.model == "gpt-4o-mini"
            await events_of(model)
            await model.aclose()
            await events_of(model)
            assert "authorization" not in server.requests[0].headers  # no key, local server

    run(main)


def test_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIChatModel("gpt-4o-mini")
    with pytest.raises(ConfigurationError):
        OpenAIChatModel("gpt-4o-mini", base_url="ftp://x", api_key="k")
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    model = OpenAIChatModel("gpt-4o-mini")
    assert model.base_url == "https://api.openai.com/v1"
    assert API_KEY not in repr(model)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    assert OpenAIChatModel("m").base_url == "http://127.0.0.1:9/v1"
    assert OpenAIChatModel("m", base_url="http://other/v1").base_url == "http://other/v1"
