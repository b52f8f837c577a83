"""A model key that fails mid-call (rejected, or missing after startup): the caller hears an apology, never silence."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
import pytest

from callkit import AgentRuntime, CallInterface
from callkit.call.phrases import Phrases
from callkit.errors import ConfigurationError
from callkit.examples import support_agent
from callkit.llm.openai_chat import OpenAIChatModel
from callkit.llm.protocol import Message
from callkit.testing import TEST_TWILIO_ACCOUNT_SID, TEST_TWILIO_AUTH_TOKEN, SimulatedCarrier
from callkit.testing.openai_chat import ErrorReply, Reply, ScriptedChatServer
from callkit.testing.relay_client import ConversationRelayCaller

NUMBER = "+15550007001"


def rejected(_messages: Sequence[Message]) -> Reply:
    return ErrorReply(401, "Incorrect API key provided.", code="invalid_api_key")


def interface() -> CallInterface:
    return CallInterface(
        agent=support_agent,
        provider="twilio",
        phone_number=NUMBER,
        account_sid=TEST_TWILIO_ACCOUNT_SID,
        auth_token=TEST_TWILIO_AUTH_TOKEN,
        pipeline="managed",
        welcome_message="Hello!",
    )


@pytest.mark.parametrize("case", ["invalid-key", "missing-key"])
def test_the_caller_hears_an_apology(case: str) -> None:
    async def call() -> str:
        async with ScriptedChatServer(rejected) as llm:
            model = OpenAIChatModel("gpt-4o-mini", base_url=llm.base_url, api_key="sk-wrong")

            def model_for(_interface: CallInterface) -> OpenAIChatModel:
                if case == "missing-key":
                    raise ConfigurationError(
                        "OpenAIChatModel needs an API key: pass api_key= or set OPENAI_API_KEY"
                    )
                return model

            async with (
                AgentRuntime(interfaces=[interface()], port=0, model=model_for) as runtime,
                httpx.AsyncClient() as http,
            ):
                carrier = SimulatedCarrier("twilio", base_url=runtime.url, client=http)
                request = carrier.incoming_call(to=NUMBER)
                answer = (await carrier.send(request)).answer
                assert answer is not None
                caller = ConversationRelayCaller(
                    answer,
                    call_id=request.form["CallSid"][0],
                    account_id=carrier.account_id,
                    from_number="+14155550100",
                    to_number=NUMBER,
                    auth_token=carrier.auth_token,
                )
                async with caller:
                    reply = await caller.prompt("Where is my order 1001?")
            await model.aclose()
            return reply.text

    assert asyncio.run(call()).strip() == Phrases().turn_apology
