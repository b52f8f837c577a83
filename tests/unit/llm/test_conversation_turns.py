"""``run_turn``: the agent turn loop against ``ScriptedChatServer`` over real loopback HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from callkit.actions import EndCall, Transfer
from callkit.agent import Agent, tool
from callkit.conversation import (
    APOLOGY,
    ActionRequested,
    Speech,
    ToolFinished,
    ToolStarted,
    TurnCompleted,
    TurnEvent,
    run_turn,
)
from callkit.errors import ConfigurationError
from callkit.examples import support_agent
from callkit.llm import (
    AssistantMessage,
    Message,
    OpenAIChatModel,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
    decode_history,
    encode_history,
)
from callkit.testing.openai_chat import (
    CutReply,
    ErrorReply,
    Reply,
    Script,
    ScriptedChatServer,
    TextReply,
    ToolCallsReply,
    call,
    support_script,
)


def run[T](main: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        return await main()

    return asyncio.run(wrapper())


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[ScriptedChatServer, OpenAIChatModel]]:
    async with ScriptedChatServer(script) as server:
        model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="sk-test")
        try:
            yield server, model
        finally:
            await model.aclose()


def replying(*replies: Reply) -> Script:
    queue = list(replies)
    return lambda _: queue.pop(0)


async def turn(
    agent: Agent, model: OpenAIChatModel, text: str, history: Sequence[Message] = (), **kwargs: Any
) -> tuple[list[TurnEvent], TurnCompleted]:
    events = [event async for event in run_turn(agent, model, history, text, **kwargs)]
    completed = events[-1]
    assert isinstance(completed, TurnCompleted)
    assert sum(isinstance(e, TurnCompleted) for e in events) == 1
    # What the caller heard is exactly what the turn reports.
    assert "".join(e.text for e in events if isinstance(e, Speech)) == completed.assistant_text
    return events, completed


def kinds(events: list[TurnEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


# --- plain answers and tool rounds -----------------------------------------------------------------


def test_plain_reply() -> None:
    async def main() -> None:
        async with scripted(support_script) as (server, model):
            events, done = await turn(support_agent, model, "Hello!")
            request = server.requests[0]
        assert kinds(events) == ["Speech"] * len(events[:-1]) + ["TurnCompleted"]
        assert len(events) > 3  # streamed in pieces
        assert done.assistant_text.startswith("Hi! I can check on an order")
        assert done.new_messages == [UserMessage("Hello!"), AssistantMessage(done.assistant_text)]
        assert done.tool_rounds == 0
        assert done.error is None
        assert done.first_token_seconds is not None
        assert 0 < done.first_token_seconds <= done.total_seconds
        assert done.usage is not None
        assert done.usage.completion_tokens == len(events) - 1
        assert request.messages == [SystemMessage(support_agent.instructions), UserMessage("Hello!")]
        assert request.tool_names == ["check_order", "transfer_call"]
        assert "tool_choice" not in request.body

    run(main)


def test_tool_round_sends_the_result_back() -> None:
    async def main() -> None:
        async with scripted(support_script) as (server, model):
            events, done = await turn(support_agent, model, "Where is my order 1001?")
            first, second = server.requests
        assert kinds(events)[:2] == ["ToolStarted", "ToolFinished"]
        started, finished = events[0], events[1]
        assert isinstance(started, ToolStarted)
        assert isinstance(finished, ToolFinished)
        assert started.call.name == "check_order"
        assert finished.result_text == "Order 1001 is shipped on Monday and arrives tomorrow."
        assert finished.error is None
        assert finished.seconds >= 0
        assert done.assistant_text.startswith("Order 1001 is shipped on Monday")
        assert done.tool_rounds == 1
        call_id = started.call.id
        assert done.new_messages == [
            UserMessage("Where is my order 1001?"),
            AssistantMessage(None, (ToolCall(call_id, "check_order", '{"order_id": "1001"}'),)),
            ToolMessage(call_id, "Order 1001 is shipped on Monday and arrives tomorrow."),
            AssistantMessage(done.assistant_text),
        ]
        # The second request carries the assistant's call and the tool's result.
        assert second.messages[1:] == done.new_messages[:3]
        assert len(first.messages) == 2
        assert done.usage is not None
        assert done.usage.completion_tokens > 0

    run(main)


def test_history_carries_into_the_next_turn() -> None:
    async def main() -> None:
        async with scripted(support_script) as (server, model):
            _, first = await turn(support_agent, model, "Order 1002 please")
            history = decode_history(encode_history(first.new_messages))  # as the relay stores it
            _, second = await turn(support_agent, model, "Thanks, bye", history)
            last = server.requests[-1]
        assert last.messages == [
            SystemMessage(support_agent.instructions),
            *first.new_messages,
            UserMessage("Thanks, bye"),
        ]
        assert "goodbye" in second.assistant_text

    run(main)


def test_history_that_starts_with_a_system_message_keeps_it() -> None:
    async def main() -> None:
        async with scripted(replying("Sure.")) as (server, model):
            await turn(support_agent, model, "Hi", [SystemMessage("Older instructions.")])
        assert server.requests[0].messages[0] == SystemMessage("Older instructions.")
        assert server.requests[0].messages.count(SystemMessage(support_agent.instructions)) == 0

    run(main)


def test_sync_and_async_tools() -> None:
    threads: dict[str, bool] = {}

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        threads["sync"] = threading.current_thread() is threading.main_thread()
        return a + b

    @tool
    async def weather(city: str) -> dict[str, Any]:
        """Weather in a city."""
        threads["async"] = threading.current_thread() is threading.main_thread()
        await asyncio.sleep(0)
        return {"city": city, "sky": "clear"}

    agent = Agent(instructions="Use tools.", tools=[add, weather])
    script = replying(
        ToolCallsReply([call("add", a=2, b=3), call("weather", city="Oslo")], text="Checking."),
        "Five, and clear skies in Oslo.",
    )

    async def main() -> None:
        async with scripted(script) as (server, model):
            events, done = await turn(agent, model, "2+3 and Oslo weather?")
            second = server.requests[1]
        results = [e.result_text for e in events if isinstance(e, ToolFinished)]
        assert results == ["5", '{"city": "Oslo", "sky": "clear"}']
        assert threads == {"sync": False, "async": True}  # the sync tool ran in a worker thread
        assert [m.content for m in second.messages if isinstance(m, ToolMessage)] == results
        # Text spoken before the tool calls and after them is one answer, with a space between.
        assert done.assistant_text == "Checking. Five, and clear skies in Oslo."
        assert done.new_messages[1] == AssistantMessage("Checking.", done.new_messages[1].tool_calls)  # type: ignore[union-attr]

    run(main)


def test_raising_tool_becomes_an_error_result() -> None:
    @tool
    def lookup(order_id: str) -> str:
        """Look up an order."""
        raise RuntimeError("database unavailable")

    agent = Agent(tools=[lookup])
    script = replying(ToolCallsReply([call("lookup", order_id="7")]), "Sorry, our system is down.")

    async def main() -> None:
        async with scripted(script) as (server, model):
            events, done = await turn(agent, model, "Order 7?")
            tool_message = server.requests[1].messages[-1]
        finished = next(e for e in events if isinstance(e, ToolFinished))
        assert finished.error is not None
        assert "database unavailable" in finished.error
        assert finished.result_text == finished.error
        assert isinstance(tool_message, ToolMessage)
        assert tool_message.content.startswith("Error:")
        assert done.assistant_text == "Sorry, our system is down."
        assert done.error is None

    run(main)


@pytest.mark.parametrize(
    ("bad_call", "expected"),
    [
        (call("launch_rockets", count=3), "no tool named 'launch_rockets'"),
        (ToolCall("", "check_order", '{"wrong": 1}'), "do not fit"),
        (ToolCall("", "check_order", "{not json"), "not JSON"),
    ],
)
def test_unknown_tool_and_bad_arguments(bad_call: ToolCall, expected: str) -> None:
    script = replying(ToolCallsReply([bad_call]), "Let me try that differently.")

    async def main() -> None:
        async with scripted(script) as (server, model):
            events, done = await turn(support_agent, model, "Do the thing")
            tool_message = server.requests[1].messages[-1]
        finished = next(e for e in events if isinstance(e, ToolFinished))
        assert finished.error is not None
        assert expected in finished.error
        assert isinstance(tool_message, ToolMessage)
        assert expected in tool_message.content
        assert done.assistant_text == "Let me try that differently."

    run(main)


def test_tool_rounds_are_bounded() -> None:
    def script(messages: Sequence[Message]) -> Reply:
        results = sum(isinstance(m, ToolMessage) for m in messages)
        return (
            "Order 1001 shipped." if results >= 2 else ToolCallsReply([call("check_order", order_id="1001")])
        )

    async def main() -> None:
        async with scripted(script) as (server, model):
            _, done = await turn(support_agent, model, "1001", max_tool_rounds=2)
        assert done.tool_rounds == 2
        assert len(server.requests) == 3
        assert ["tool_choice" in r.body for r in server.requests] == [False, False, True]
        assert server.requests[2].body["tool_choice"] == "none"
        assert server.requests[2].tool_names == ["check_order", "transfer_call"]  # still described
        assert done.assistant_text == "Order 1001 shipped."

    run(main)


def test_a_model_that_ignores_tool_choice_none_still_ends_the_turn() -> None:
    async def main() -> None:
        async with scripted(lambda _: ToolCallsReply([call("check_order", order_id="1")])) as (server, model):
            _, done = await turn(support_agent, model, "1", max_tool_rounds=1)
        assert len(server.requests) == 2
        assert done.assistant_text == APOLOGY
        assert done.error == "EmptyAnswerError"
        # Every call in the history has its result; the unanswerable last calls were dropped.
        calls = [c.id for m in done.new_messages if isinstance(m, AssistantMessage) for c in m.tool_calls]
        results = [m.tool_call_id for m in done.new_messages if isinstance(m, ToolMessage)]
        assert calls == results

    run(main)


# --- failures: the caller always hears something ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"), [(500, "ServiceError"), (429, "ServiceError"), (401, "ModelError")]
)
def test_model_error_gives_a_spoken_apology(status: int, error: str) -> None:
    async def main() -> None:
        # The same error every time: retried ones end as ServiceError once the retries are spent.
        async with scripted(lambda _: ErrorReply(status)) as (server, model):
            events, done = await turn(support_agent, model, "Hello")
        assert events[:-1] == [Speech(APOLOGY)]
        assert done.assistant_text == APOLOGY
        assert done.error == error
        assert len(server.requests) == (1 if status == 401 else model.retry.max_attempts)
        assert done.new_messages == [UserMessage("Hello"), AssistantMessage(APOLOGY)]

    run(main)


def test_first_token_timeout_gives_an_apology_and_hangs_up_the_request() -> None:
    async def main() -> None:
        async with scripted(replying(TextReply("Too late.", first_delay=5))) as (server, model):
            loop = asyncio.get_running_loop()
            started = loop.time()
            events, done = await turn(support_agent, model, "Hello", first_token_timeout=0.2)
            assert loop.time() - started < 2
            assert events[:-1] == [Speech(APOLOGY)]
            assert done.error == "TimeoutError"
            await asyncio.wait_for(server.requests[0].disconnected.wait(), 5)

    run(main)


def test_turn_timeout_mid_answer_apologises_after_what_was_said() -> None:
    async def main() -> None:
        async with scripted(replying(TextReply("Let me think about that for a while.", delay=0.3))) as (
            _,
            model,
        ):
            events, done = await turn(support_agent, model, "Hello", turn_timeout=0.5)
        speech = [e.text for e in events if isinstance(e, Speech)]
        assert speech[0] == "Let"
        assert speech[-1] == " " + APOLOGY
        assert done.assistant_text.endswith(" " + APOLOGY)
        assert done.new_messages[-1] == AssistantMessage(done.assistant_text)
        assert done.error == "TimeoutError"

    run(main)


def test_stream_cut_mid_way_apologises() -> None:
    async def main() -> None:
        async with scripted(replying(CutReply("Your order is on its way", after_pieces=2))) as (_, model):
            _, done = await turn(support_agent, model, "Order?")
        assert done.assistant_text == "Your order " + APOLOGY
        assert done.error == "ConnectionLostError"

    run(main)


def test_tool_outliving_the_turn_apologises_with_a_consistent_history() -> None:
    @tool
    async def slow() -> str:
        """A slow tool."""
        await asyncio.sleep(5)
        return "never"

    agent = Agent(tools=[slow])

    async def main() -> None:
        async with scripted(replying(ToolCallsReply([call("slow"), call("slow")]))) as (_, model):
            events, done = await turn(agent, model, "Go", turn_timeout=0.3)
        assert kinds(events) == ["ToolStarted", "Speech", "TurnCompleted"]
        assert done.error == "TimeoutError"
        calls = [c.id for m in done.new_messages if isinstance(m, AssistantMessage) for c in m.tool_calls]
        results = [m.tool_call_id for m in done.new_messages if isinstance(m, ToolMessage)]
        assert calls == results
        assert done.new_messages[-1] == AssistantMessage(APOLOGY)

    run(main)


def test_unreachable_model_apologises() -> None:
    async def main() -> None:
        model = OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1")
        try:
            _, done = await turn(support_agent, model, "Hello")
        finally:
            await model.aclose()
        assert done.assistant_text == APOLOGY
        assert done.error == "ServiceError"  # refused each time it was tried

    run(main)


def test_cancellation_mid_stream_propagates_and_closes_the_request() -> None:
    async def main() -> None:
        async with scripted(replying(TextReply("one two three four five six seven", delay=0.2))) as (
            server,
            model,
        ):
            heard: list[str] = []
            first = asyncio.Event()

            async def consume() -> None:
                async for event in run_turn(support_agent, model, [], "Hello"):
                    if isinstance(event, Speech):
                        heard.append(event.text)
                        first.set()

            task = asyncio.create_task(consume())
            await first.wait()
            task.cancel()  # the caller barged in
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(server.requests[0].disconnected.wait(), 2)
            assert heard == ["one"]

    run(main)


def test_closing_the_turn_early_closes_the_request() -> None:
    async def main() -> None:
        async with scripted(replying(TextReply("one two three four five six seven", delay=0.2))) as (
            server,
            model,
        ):
            turns = run_turn(support_agent, model, [], "Hello")
            assert await anext(turns) == Speech("one")
            await turns.aclose()
            await asyncio.wait_for(server.requests[0].disconnected.wait(), 2)

    run(main)


# --- call-control actions --------------------------------------------------------------------------


@pytest.mark.parametrize("action", [Transfer(to="+15550001111", reason="wants a person"), EndCall()])
def test_action_flow(action: Transfer | EndCall) -> None:
    @tool
    def control(reason: str) -> Transfer | EndCall:
        """Transfer or end the call."""
        return action

    agent = Agent(tools=[control])
    script = replying(ToolCallsReply([call("control", reason="asked")]), "Connecting you now. Goodbye!")

    async def main() -> None:
        async with scripted(script) as (server, model):
            events, done = await turn(agent, model, "Let me talk to someone")
            closing = server.requests[1]
        assert kinds(events) == [
            "ToolStarted",
            "ToolFinished",
            "ActionRequested",
            *["Speech"] * 4,
            "TurnCompleted",
        ]
        finished, requested = events[1], events[2]
        assert isinstance(finished, ToolFinished)
        assert finished.result_text == action.describe()
        assert isinstance(requested, ActionRequested)
        assert requested.action == action
        assert done.actions == (action,)
        assert done.assistant_text == "Connecting you now. Goodbye!"
        assert closing.body["tool_choice"] == "none"
        assert closing.messages[-1] == ToolMessage(finished.call.id, action.describe())
        assert "+1555" not in action.describe()

    run(main)


def test_transfer_validates_e164() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Transfer(to="555-0100")
    assert "555-0100" not in str(caught.value)
    assert Transfer(to="+442071838750").to == "+442071838750"


@pytest.mark.parametrize("number", ["+15550001111", ""])
def test_support_agent_transfer_request(monkeypatch: pytest.MonkeyPatch, number: str) -> None:
    monkeypatch.setenv("CALLKIT_TRANSFER_NUMBER", number)

    async def main() -> None:
        async with scripted(support_script) as (_, model):
            events, done = await turn(support_agent, model, "Can I speak to a human please?")
        started = next(e for e in events if isinstance(e, ToolStarted))
        assert started.call.name == "transfer_call"
        if number:
            assert done.actions == (Transfer(to=number, reason="caller asked for a person"),)
            assert "connecting you with a person" in done.assistant_text
        else:
            assert done.actions == ()
            assert "no one is available" in done.assistant_text

    run(main)
