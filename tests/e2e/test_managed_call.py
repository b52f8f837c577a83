"""A whole managed (ConversationRelay) call through the local runtime: real HTTP, real WebSocket,
the scripted OpenAI-compatible model on loopback, the simulated Twilio on the other side."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import httpx
import pytest

from callkit import AgentRuntime, CallInterface
from callkit.examples import support_agent
from callkit.llm.openai_chat import OpenAIChatModel
from callkit.llm.protocol import AssistantMessage, Message, UserMessage
from callkit.store.memory import MemoryCallStore
from callkit.testing import TEST_TWILIO_ACCOUNT_SID, TEST_TWILIO_AUTH_TOKEN, SimulatedCarrier
from callkit.testing.openai_chat import Reply, ScriptedChatServer, TextReply, support_script
from callkit.testing.relay_client import ConversationRelayCaller, RelayRefusedError

NUMBER = "+15550001001"
LONG_ANSWER = (
    "We are open from nine in the morning until six in the evening on weekdays, "
    "from ten until four on Saturdays, and we are closed on Sundays and public holidays."
)


def script(messages: Sequence[Message]) -> Reply:
    last = messages[-1]
    if isinstance(last, UserMessage) and "hours" in last.content:
        return TextReply(LONG_ANSWER, delay=0.02)
    if isinstance(last, UserMessage) and "keypad" in last.content:
        return "You pressed one: that's the order line. What's your order number?"
    return support_script(messages)


def interface() -> CallInterface:
    return CallInterface(
        agent=support_agent,
        provider="twilio",
        phone_number=NUMBER,
        account_sid=TEST_TWILIO_ACCOUNT_SID,
        auth_token=TEST_TWILIO_AUTH_TOKEN,
        pipeline="managed",
        welcome_message="Hello! Thanks for calling Acme Shop.",
    )


def test_full_managed_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLKIT_TRANSFER_NUMBER", "+15557654321")
    store = MemoryCallStore()

    async def call() -> None:
        async with ScriptedChatServer(script) as llm:
            model = OpenAIChatModel("gpt-4o-mini", base_url=llm.base_url, api_key="test")
            async with (
                AgentRuntime(interfaces=[interface()], port=0, store=store, model=model) as runtime,
                httpx.AsyncClient() as http,
            ):
                carrier = SimulatedCarrier("twilio", base_url=runtime.url, client=http)
                request = carrier.incoming_call(to=NUMBER)
                call_id = request.form["CallSid"][0]
                answered = await carrier.send(request)
                assert answered.answer is not None and answered.answer.kind == "relay"
                caller = ConversationRelayCaller(
                    answered.answer,
                    call_id=call_id,
                    account_id=carrier.account_id,
                    from_number="+14155550100",
                    to_number=NUMBER,
                    auth_token=carrier.auth_token,
                )
                async with caller:
                    greeting = await caller.prompt("Hi there")
                    assert greeting.complete and "order" in greeting.text

                    order = await caller.prompt("Where is my order 1001?")
                    assert order.complete and "shipped on Monday" in order.text
                    assert len(order.pieces) >= 2, "streamed in speakable pieces, not one frame"
                    assert all(p for p in order.pieces[:-1]), "only the last frame may be empty"

                    cut = await caller.prompt("What are your opening hours?", interrupt_after_chars=30)
                    assert cut.interrupted_at is not None and not cut.complete
                    assert await caller.drain(0.4) == [], "a stale turn posts nothing after the interrupt"

                    keypad = await caller.press("1")
                    assert keypad.complete and "order line" in keypad.text
                    # The model saw the interrupted answer cut to what was heard.
                    seen = [
                        m for m in llm.requests[-1].messages if isinstance(m, AssistantMessage) and m.content
                    ]
                    assert any(m.content == cut.text for m in seen)
                    assert not any(m.content == LONG_ANSWER for m in seen)

                    transfer = await caller.prompt("Can I talk to a person please?")
                    ended = await caller.wait_for_end()
                    assert transfer.text and ended is not None
                    assert caller.handoff() == {
                        "reasonCode": "transfer",
                        "reason": "caller asked for a person",
                        "to": "+15557654321",
                    }
                assert caller.action_url is not None
                after = await carrier.send(
                    carrier.relay_ended(
                        caller.action_url,
                        call_id,
                        session_id=caller.session_id,
                        handoff_data=ended.handoff_data,
                    )
                )
                assert "<Dial" in after.body and "+15557654321" in after.body
                await asyncio.sleep(0.1)  # $disconnect is handled after the socket closes

                turns = store.list_turns(call_id)
                assert [t.kind for t in turns] == ["welcome", "prompt", "prompt", "prompt", "dtmf", "prompt"]
                hours = turns[3]
                assert hours.interrupted and hours.heard_text == cut.text
                assert json.loads(turns[2].tool_calls)[0]["name"] == "check_order"
                assert all(t.total_ms is not None for t in turns[1:])
                record = store.get_call(call_id)
                assert record is not None and record.status == "completed"

    asyncio.run(call())


def test_forged_and_unknown_relay_connections_are_refused() -> None:
    store = MemoryCallStore()

    async def call() -> None:
        async with ScriptedChatServer(script) as llm:
            model = OpenAIChatModel("gpt-4o-mini", base_url=llm.base_url, api_key="test")
            async with (
                AgentRuntime(interfaces=[interface()], port=0, store=store, model=model) as runtime,
                httpx.AsyncClient() as http,
            ):
                carrier = SimulatedCarrier("twilio", base_url=runtime.url, client=http)
                request = carrier.incoming_call(to=NUMBER)
                answer = (await carrier.send(request)).answer
                assert answer is not None
                kwargs = {
                    "call_id": request.form["CallSid"][0],
                    "account_id": carrier.account_id,
                    "from_number": "+14155550100",
                    "to_number": NUMBER,
                }
                forged = ConversationRelayCaller(answer, auth_token="not-the-token", **kwargs)
                with pytest.raises(RelayRefusedError) as refused:
                    await forged.connect()
                assert refused.value.status == 403
                unknown = answer.__class__(
                    kind="relay",
                    url=f"{runtime.settings.relay_url}?call=CAunknown",
                    attributes=answer.attributes,
                )
                with pytest.raises(RelayRefusedError):
                    await ConversationRelayCaller(unknown, auth_token=carrier.auth_token, **kwargs).connect()
                record = store.get_call(request.form["CallSid"][0])
                assert record is not None and record.connection_id is None and record.status == "ringing"

    asyncio.run(call())


def test_callkit_call_lets_a_person_be_the_caller() -> None:
    """`make call`: lines typed on stdin become the caller's turns; Ctrl-D hangs up."""
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENAI_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "callkit", "call"],
        input="Hi\nWhere is my order 1002?\n/press 1\n/press 5\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "agent> Hello! Thanks for calling Acme Shop." in result.stdout
    assert "Order 1002 is being packed" in result.stdout
    assert "You pressed one" in result.stdout
    assert "You pressed five" in result.stdout
