"""A barge-in before the agent's turn completes: the history keeps the previous reply as it was
and the interrupted one as heard, cut on a word (the call core's ``History``, keyed by turn)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from callkit.carriers._types import PlayAudio
from callkit.llm.protocol import AssistantMessage, Message, UserMessage
from callkit.store._base import CallStore
from callkit.testing.openai_chat import Reply, TextReply
from callkit.testing.stream_client import silence, speech
from callkit.testing.world import loopback_world

FIRST = "Order 1001 shipped on Monday and arrives tomorrow."
LONG = "Our opening hours are from nine until six on weekdays, from ten until four on Saturdays, and we are closed."


def script(messages: Sequence[Message]) -> Reply:
    last = messages[-1]
    assert isinstance(last, UserMessage)
    if "order" in last.content:
        return FIRST
    if "hours" in last.content:
        return TextReply(LONG, delay=0.15)  # still streaming when the caller cuts in
    return "We are closed on Sundays."


async def until(condition: object, limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition(), "timed out"  # type: ignore[operator]


def assistant_texts(messages: Sequence[Message]) -> list[str]:
    return [m.content for m in messages if isinstance(m, AssistantMessage) and m.content]


def test_a_barge_in_before_the_turn_completes_keeps_the_previous_reply(dynamodb: CallStore) -> None:
    async def call() -> None:
        heard = ["Where is my order 1001?", "What are your opening hours?", "Do you open on Sunday?"]
        async with loopback_world(
            store=dynamodb, chat=script, heard=heard, welcome_message=None, interrupt_sensitivity="high"
        ) as world:
            stream = (await world.call()).stream
            llm = world.llm
            plays = lambda: sum(isinstance(c, PlayAudio) for c in stream.received)  # noqa: E731
            await stream.say(silence(300) + speech(700) + silence(800))  # the order: answered whole
            await until(lambda: plays() > 5)
            await until(lambda: stream.queued_ms == 0, 15)
            await stream.say(speech(700) + silence(800))  # the hours: a slow, long answer
            await until(lambda: stream.heard_ms > 0 and stream.queued_ms > 0 and len(llm.requests) == 2)
            await asyncio.sleep(0.8)  # part of the reply plays; the model is still streaming
            assert not llm.requests[1].completed, "the turn has not completed"
            await stream.say(speech(700) + silence(900))  # the caller cuts in with a question
            await until(lambda: stream.clears > 0, 5)
            await until(lambda: len(llm.requests) == 3, 10)
            call_id = world.calls[0].call_id
            history = llm.requests[2].messages
            said = assistant_texts(history)
            assert said[0] == FIRST, "the previous reply is unchanged"
            assert len(said) == 2, said
            cut = said[1]
            assert cut and LONG.startswith(cut) and len(cut) < len(LONG), cut
            assert LONG[len(cut)] in " ,.", f"ends on a word: {cut!r}"
            turns = {t.turn: t for t in dynamodb.list_turns(call_id)}
            interrupted = [t for t in turns.values() if t.interrupted]
            assert len(interrupted) == 1 and interrupted[0].heard_text == cut
            assert turns[1].heard_text is None and FIRST in turns[1].assistant_text

    asyncio.run(call())
