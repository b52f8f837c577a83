"""A turn on a model that is slow, stalls or is cut off: the caller hears something within seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from callkit.agent import Agent, tool
from callkit.conversation import APOLOGY, Speech, ToolStarted, TurnCompleted, TurnEvent, run_turn
from callkit.llm.protocol import Finished, Message, TextDelta, ToolCall, ToolCallDone

ran: list[str] = []


@tool
def cancel_order(order_id: str) -> str:
    """Cancel an order."""
    ran.append(order_id)
    return "cancelled"


agent = Agent(instructions="Be brief.", tools=[cancel_order])


class Model:
    """Yields ``script`` items; a float is a pause of that many seconds."""

    def __init__(self, *script: Any) -> None:
        self.script = script

    async def stream(self, messages: Sequence[Message], tools: Sequence[Any], **_: Any) -> AsyncIterator[Any]:
        for item in self.script:
            if isinstance(item, float):
                await asyncio.sleep(item)
            else:
                yield item


async def collect(model: Model, **options: Any) -> tuple[list[tuple[float, TurnEvent]], TurnCompleted]:
    started = time.perf_counter()
    events = [(time.perf_counter() - started, e) async for e in run_turn(agent, model, [], "Hi", **options)]  # type: ignore[arg-type]
    completed = events[-1][1]
    assert isinstance(completed, TurnCompleted)
    return events, completed


def test_a_slow_model_is_covered_by_the_filler_then_heard() -> None:
    model = Model(0.6, TextDelta("Your order shipped."), Finished("stop", None))
    events, completed = asyncio.run(collect(model, filler="One moment, please.", filler_after=0.2))
    speech = [(at, e.text) for at, e in events if isinstance(e, Speech)]
    assert speech[0][1] == "One moment, please." and 0.15 < speech[0][0] < 0.5
    assert speech[1][1] == " Your order shipped."
    assert completed.assistant_text == "One moment, please. Your order shipped."
    assert completed.error is None


def test_no_filler_when_the_model_answers_in_time() -> None:
    model = Model(0.05, TextDelta("Hello."), Finished("stop", None))
    _, completed = asyncio.run(collect(model, filler="One moment, please.", filler_after=0.5))
    assert completed.assistant_text == "Hello."


def test_a_model_that_stalls_after_its_first_words_is_an_apology_within_the_stall_timeout() -> None:
    model = Model(TextDelta("Let me see"), 60.0, TextDelta(" ..."))
    events, completed = asyncio.run(collect(model, stall_timeout=0.3))
    at, last = [(at, e) for at, e in events if isinstance(e, Speech)][-1]
    assert isinstance(last, Speech) and APOLOGY in last.text
    assert at < 1.0, f"the apology came after {at:.1f} s"
    assert completed.error == "TimeoutError"


def test_a_model_that_never_answers_is_an_apology_after_the_first_token_timeout() -> None:
    model = Model(60.0, TextDelta("late"))
    events, completed = asyncio.run(
        collect(model, first_token_timeout=0.6, filler="One moment, please.", filler_after=0.2)
    )
    texts = [e.text for _, e in events if isinstance(e, Speech)]
    assert texts[0] == "One moment, please." and APOLOGY in texts[1]
    assert completed.error == "TimeoutError"


def test_tool_calls_cut_off_by_the_length_limit_are_not_run() -> None:
    ran.clear()
    model = Model(
        ToolCallDone(ToolCall("call_1", "cancel_order", '{"order_id": "10')), Finished("length", None)
    )
    events, completed = asyncio.run(collect(model))
    assert ran == [] and not any(isinstance(e, ToolStarted) for _, e in events)
    assert APOLOGY in completed.assistant_text  # nothing to say: the caller hears the apology
