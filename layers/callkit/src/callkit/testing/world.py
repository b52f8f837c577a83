"""One loopback world for stream calls: every fake, the local runtime and the simulated carrier.

``loopback_world`` starts what a cascading or realtime call talks to, all on loopback and speaking
the real wire protocols (the scripted chat model, FakeDeepgram, FakeCartesia, FakeRealtime and the
carriers' REST API), an ``AgentRuntime`` serving one interface pointed at them, and a
``SimulatedCarrier`` that places calls to it::

    async with loopback_world(provider="plivo", pipeline="cascading", store=store) as world:
        call = await world.call()             # webhook answered, media stream connected
        await call.stream.say(speech(700) + silence(900))
        world.api.hangups                     # what the call asked the carrier's REST API to do

The carriers' API URLs go to the runtime through ``Settings``, never the process environment, so
several worlds can run at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import httpx

from callkit.agent import Agent
from callkit.interface import CallInterface
from callkit.llm.openai_chat import OpenAIChatModel
from callkit.realtime import OpenAIRealtimeProvider
from callkit.runtime import AgentRuntime
from callkit.settings import Settings
from callkit.stt.deepgram import DeepgramSTT
from callkit.testing.carrier import SimulatedCarrier
from callkit.testing.carrier_api import FakeCarrierApi
from callkit.testing.cartesia import FakeCartesia
from callkit.testing.deepgram import TEST_DEEPGRAM_API_KEY, FakeDeepgram
from callkit.testing.openai_chat import ScriptedChatServer, support_script
from callkit.testing.openai_realtime import TEST_OPENAI_API_KEY, FakeRealtime
from callkit.testing.stream_client import SimulatedMediaStream
from callkit.tts.cartesia import CartesiaTTS

if TYPE_CHECKING:
    from callkit.store._base import CallStore
    from callkit.testing.deepgram import Script as DeepgramScript
    from callkit.testing.openai_chat import Script as ChatScript
    from callkit.testing.openai_realtime import ScriptEntry

__all__ = ["ACCOUNTS", "Call", "World", "loopback_world"]

#: The carrier account each provider's world uses (their formats: Twilio AC + 32 hex, Plivo MA...).
ACCOUNTS: dict[str, str] = {"twilio": "AC" + "4" * 32, "plivo": "MATESTAUTHID00000004"}
AUTH_TOKEN = "carrier-token"
NUMBER = "+15550009001"


@dataclass
class Call:
    call_id: str
    stream: SimulatedMediaStream


@dataclass
class World:
    runtime: AgentRuntime
    carrier: SimulatedCarrier
    api: FakeCarrierApi
    llm: ScriptedChatServer
    deepgram: FakeDeepgram
    cartesia: FakeCartesia
    realtime: FakeRealtime
    interface: CallInterface
    calls: list[Call] = field(default_factory=list)

    @property
    def store(self) -> CallStore:
        return self.runtime.store

    async def call(self, **stream_options: Any) -> Call:
        """Place a call: the carrier's signed webhook, our answer, then its media stream, connected."""
        request = self.carrier.incoming_call(to=self.interface.phone_number)
        call_id = request.form.get("CallSid", request.form.get("CallUUID", [""]))[0]
        answer = (await self.carrier.send(request)).answer
        assert answer is not None, "the webhook gave no answer"
        stream = SimulatedMediaStream(
            answer,
            provider=self.carrier.provider,
            call_id=call_id,
            account_id=self.carrier.account_id,
            auth_token=AUTH_TOKEN,
            **stream_options,
        )
        await stream.connect()
        self.calls.append(Call(call_id, stream))
        return self.calls[-1]


@contextlib.asynccontextmanager
async def loopback_world(
    *,
    provider: Literal["twilio", "plivo"] = "twilio",
    pipeline: Literal["cascading", "realtime"] = "cascading",
    store: CallStore | None = None,
    agent: Agent | None = None,
    chat: ChatScript | None = None,
    heard: DeepgramScript | None = None,
    realtime: Sequence[ScriptEntry] = (),
    realtime_heard: Sequence[str] = (),
    realtime_voice: str = "marin",
    realtime_faults: dict[str, Any] | None = None,
    cartesia: dict[str, Any] | None = None,
    deepgram_key: str = TEST_DEEPGRAM_API_KEY,
    **interface_options: Any,
) -> AsyncIterator[World]:
    """A world for one interface of ``provider`` and ``pipeline``; see the module docstring.

    ``chat``: the scripted model (default ``support_script``); ``heard``: what FakeDeepgram hears
    in the caller's speech; ``realtime`` / ``realtime_heard``: FakeRealtime's script and what it
    hears; ``cartesia``: FakeCartesia's options (faults); ``interface_options``: more
    ``CallInterface`` arguments (``welcome_message``, ``interrupt_sensitivity``, ...).
    """
    from callkit.examples import support_agent

    account = ACCOUNTS[provider]
    async with (
        ScriptedChatServer(chat or support_script) as llm,
        FakeDeepgram(heard or ["Where is my order 1001?"]) as deepgram,
        FakeCartesia(**(cartesia or {})) as tts,
        FakeRealtime(list(realtime), heard=list(realtime_heard), **(realtime_faults or {})) as rt,
        FakeCarrierApi({account: AUTH_TOKEN}) as api,
    ):
        options: dict[str, Any] = {"welcome_message": "Hello!", **interface_options}
        if pipeline == "cascading":
            options["stt"] = DeepgramSTT(api_key=deepgram_key, base_url=deepgram.base_url)
            options["tts"] = CartesiaTTS(api_key="cartesia-key", voice_id="voice-1", base_url=tts.base_url)
        else:
            options["realtime"] = OpenAIRealtimeProvider(
                api_key=TEST_OPENAI_API_KEY, voice=realtime_voice, base_url=rt.base_url
            )
        interface = CallInterface(
            agent=agent or support_agent,
            provider=provider,
            phone_number=NUMBER,
            account_sid=account if provider == "twilio" else "",
            auth_id=account if provider == "plivo" else "",
            auth_token=AUTH_TOKEN,
            pipeline=pipeline,
            **options,
        )
        settings = Settings(twilio_api_url=api.base_url, plivo_api_url=api.base_url)
        model = OpenAIChatModel("gpt-4o-mini", base_url=llm.base_url, api_key="test")
        async with (
            AgentRuntime(
                interfaces=[interface], port=0, store=store, model=model, settings=settings
            ) as runtime,
            httpx.AsyncClient(timeout=10) as http,
        ):
            carrier = SimulatedCarrier(
                provider, base_url=runtime.url, auth_token=AUTH_TOKEN, account_id=account, client=http
            )
            world = World(runtime, carrier, api, llm, deepgram, tts, rt, interface)
            try:
                yield world
            finally:  # a call still open hangs up before the runtime goes
                for call in world.calls:
                    with contextlib.suppress(Exception):
                        await call.stream.hang_up()
