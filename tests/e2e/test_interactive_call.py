"""``make call``: the scripted agent answers about the key actually pressed, typing over it cuts it off, and asking
for a person transfers to the demo number."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

import pytest

from callkit.call.phrases import Phrases
from callkit.demo.interactive import run_interactive
from callkit.demo.managed import HOURS, TRANSFER_TO
from callkit.llm.protocol import UserMessage
from callkit.testing.openai_chat import support_script


@pytest.mark.parametrize(
    ("digit", "reply"),
    [
        ("5", "You pressed five. Press one for orders, or zero for a person."),
        ("1", "You pressed one, our order line. What's your order number?"),
        ("0", "You pressed zero, the operator. Just ask for a person and I'll connect you."),
        ("#", "You pressed pound. Press one for orders, or zero for a person."),
    ],
)
def test_the_scripted_agent_answers_about_the_key_pressed(digit: str, reply: str) -> None:
    assert support_script([UserMessage(Phrases().keypad_text(digit))]) == reply


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition(), "timed out"


def test_typing_over_the_agent_cuts_it_off_and_a_person_means_a_transfer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the scripted model
    monkeypatch.delenv("CALLKIT_TRANSFER_NUMBER", raising=False)
    out = io.StringIO()

    async def call() -> int:
        typed: asyncio.Queue[str | None] = asyncio.Queue()
        session = asyncio.create_task(run_interactive(out, typed.get, wait_for_replies=False))
        await until(lambda: "agent> Hello!" in out.getvalue())
        await typed.put("What are your opening hours?")
        await until(lambda: "agent> We are open" in out.getvalue())
        await typed.put("/press 5")  # while the long answer is still coming
        await until(lambda: "You pressed five" in out.getvalue())
        await typed.put("Can I talk to a person, please?")
        return await asyncio.wait_for(session, 10)

    assert asyncio.run(call()) == 0
    text = out.getvalue()
    assert "✂ (you cut in)" in text
    assert HOURS not in text, "the long answer was cut off"
    assert f"transfers you to {TRANSFER_TO}" in text
    assert "the agent ended the call" in text and "<Dial" in text and TRANSFER_TO in text
