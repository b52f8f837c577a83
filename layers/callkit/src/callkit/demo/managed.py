"""A whole managed call: Twilio ConversationRelay ↔ the local relay ↔ the agent with tools.

The simulated Twilio places the call, opens ConversationRelay's WebSocket with a signed handshake,
and speaks as the caller: a question answered by the ``check_order`` tool, a question whose long
answer the caller interrupts, a key press, and a request for a person that ends in a real transfer
(``end`` with the handoff, then ``<Dial>`` from the webhook). Each turn prints with its latency.
Without ``OPENAI_API_KEY`` the agent talks to the scripted model in ``callkit.testing``; with it,
to the real model.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, TextIO

from callkit.examples import ENV_TRANSFER_NUMBER, support_agent
from callkit.interface import CallInterface
from callkit.llm.openai_chat import OpenAIChatModel
from callkit.llm.protocol import Message, UserMessage
from callkit.runtime import AgentRuntime
from callkit.store.memory import MemoryCallStore
from callkit.testing import TEST_TWILIO_ACCOUNT_SID, TEST_TWILIO_AUTH_TOKEN, SimulatedCarrier
from callkit.testing.openai_chat import Reply, ScriptedChatServer, TextReply, support_script
from callkit.testing.relay_client import ConversationRelayCaller, RelayReply

if TYPE_CHECKING:
    from callkit.llm import ChatModel

NUMBER = "+15550001001"
CALLER = "+14155550100"
#: Where the demo's transfers go when ``CALLKIT_TRANSFER_NUMBER`` is unset: a 555-01XX number,
#: reserved for fiction in the North American plan. Nothing is dialled: the simulated carrier only
#: gets the ``<Dial>``.
TRANSFER_TO = "+12025550199"
WELCOME = "Hello! Thanks for calling Acme Shop. How can I help you today?"
HOURS = (
    "We are open from nine in the morning until six in the evening on weekdays, from ten until four on "
    "Saturdays, and we are closed on Sundays and public holidays."
)


def demo_script(messages: Sequence[Message]) -> Reply:
    """The support script, plus a long answer to interrupt."""
    last = messages[-1] if messages else None
    if isinstance(last, UserMessage) and "hours" in last.content.lower():
        return TextReply(HOURS, delay=0.03)
    return support_script(messages)  # key presses included: it answers about the key pressed


def managed_interface() -> CallInterface:
    return CallInterface(
        agent=support_agent,
        provider="twilio",
        phone_number=NUMBER,
        account_sid=TEST_TWILIO_ACCOUNT_SID,
        auth_token=TEST_TWILIO_AUTH_TOKEN,
        pipeline="managed",
        welcome_message=WELCOME,
    )


@contextlib.asynccontextmanager
async def demo_model() -> AsyncIterator[tuple[ChatModel, str]]:
    """The real model when ``OPENAI_API_KEY`` is set, else the scripted one on loopback."""
    if os.environ.get("OPENAI_API_KEY"):
        yield OpenAIChatModel(support_agent.model), f"{support_agent.model.name} (OPENAI_API_KEY is set)"
        return
    async with ScriptedChatServer(demo_script) as server:
        model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="local")
        yield model, f"the scripted local model at {server.base_url}"
        await model.aclose()


def _turn(out: TextIO, said: str, reply: RelayReply) -> None:
    first = f"{reply.first_frame_ms:.0f} ms" if reply.first_frame_ms is not None else "-"
    out.write(f"   caller: {said}\n")
    out.write(f"   agent:  {reply.text.strip()}")
    if reply.interrupted_at is not None:
        out.write("  ✂ (the caller barged in here)")
    out.write(
        f"\n           first words after {first}, {len(reply.pieces)} pieces, {reply.total_ms:.0f} ms\n"
    )


async def run_managed(out: TextIO = sys.stdout) -> int:
    """One whole managed call; returns 0 when every step behaved as expected."""
    import httpx

    failures: list[str] = []
    scripted = not os.environ.get("OPENAI_API_KEY")

    def expect(condition: bool, what: str) -> None:
        if not condition:
            # A real model may phrase things its own way: only the scripted run must hit every mark.
            out.write(f"   {'FAIL' if scripted else 'note:'} {what}\n")
            if scripted:
                failures.append(what)

    previous = os.environ.get(ENV_TRANSFER_NUMBER)
    os.environ[ENV_TRANSFER_NUMBER] = previous or TRANSFER_TO
    store = MemoryCallStore()
    try:
        async with demo_model() as (model, model_name):
            runtime = AgentRuntime(interfaces=[managed_interface()], port=0, store=store, model=model)
            async with runtime, httpx.AsyncClient(timeout=10) as http:
                out.write(f"\n━━ a managed call (ConversationRelay) · agent on {model_name}\n")
                carrier = SimulatedCarrier("twilio", base_url=runtime.url, client=http)
                request = carrier.incoming_call(to=NUMBER, from_=CALLER)
                call_id = request.form["CallSid"][0]
                answered = await carrier.send(request)
                answer = answered.answer
                expect(answer is not None and answer.kind == "relay", "answered with <ConversationRelay>")
                if answer is None:
                    return 1
                out.write(f"   Twilio opens {answer.url.split('?')[0]} (signed handshake)\n")
                caller = ConversationRelayCaller(
                    answer,
                    call_id=call_id,
                    account_id=carrier.account_id,
                    from_number=CALLER,
                    to_number=NUMBER,
                    auth_token=carrier.auth_token,
                )
                async with caller:
                    out.write(f"   agent:  {caller.welcome}  (welcome, spoken by ConversationRelay)\n")
                    said = "Hi, where is my order 1001?"
                    reply = await caller.prompt(said)
                    _turn(out, said, reply)
                    expect("shipped" in reply.text, "the order tool answered")
                    said = "What are your opening hours?"
                    reply = await caller.prompt(said, interrupt_after_chars=40)
                    _turn(out, said, reply)
                    expect(await caller.drain(0.3) == [], "nothing more from the interrupted turn")
                    said = "[presses 1]"
                    reply = await caller.press("1")
                    _turn(out, said, reply)
                    said = "Can I talk to a person, please?"
                    reply = await caller.prompt(said)
                    _turn(out, said, reply)
                    ended = await caller.wait_for_end()
                    expect(ended is not None, "the agent ended the session for the transfer")
                handoff = caller.handoff()
                out.write(f"   relay → Twilio: end, handoffData {json.dumps(handoff)}\n")
                if caller.action_url and ended is not None:
                    after = await carrier.send(
                        carrier.relay_ended(
                            caller.action_url,
                            call_id,
                            session_id=caller.session_id,
                            handoff_data=ended.handoff_data,
                        )
                    )
                    dial = after.body.split("<Response>")[-1].removesuffix("</Response>")
                    out.write(f"   Twilio <Connect action> → webhook answers {dial}\n")
                    expect("<Dial" in after.body, "the transfer became a <Dial>")
                turns = store.list_turns(call_id)
                out.write("   saved turns (kind, latency to first words, tools, heard when cut):\n")
                for turn in turns:
                    tools = [t["name"] for t in json.loads(turn.tool_calls)]
                    first = f"{turn.first_token_ms:.0f} ms" if turn.first_token_ms is not None else "-"
                    heard = f", heard {turn.heard_text!r}" if turn.interrupted else ""
                    out.write(f"     #{turn.turn} {turn.kind:7s} {first:>7s} {tools or ''}{heard}\n")
                expect(len(turns) == 5, "every turn saved")
    finally:
        if previous is None:
            os.environ.pop(ENV_TRANSFER_NUMBER, None)
    return 1 if failures else 0
