"""The README's quick starts behind a tunnel: one public URL, and the carrier never sees 127.0.0.1.

Each quick start is run as the README writes it (its code blocks, executed), with the keys and
credentials in the environment and the providers' fakes on loopback. The runtime listens on
127.0.0.1 behind ``callkit.testing.reverse_proxy``, which plays ngrok: clients reach it as
``http://public.test:PORT`` and it rewrites ``Host`` on the way in. The carrier's signatures are
checked by the official ``twilio`` and ``plivo`` libraries over the public URL, every URL in the
answer is on the public host, and the call connects through the proxy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import pytest
from plivo.utils import validate_v3_signature
from twilio.request_validator import RequestValidator

from callkit import AgentRuntime, CallInterface
from callkit.carriers._types import PlayAudio
from callkit.testing import (
    TEST_PLIVO_AUTH_ID,
    TEST_PLIVO_AUTH_TOKEN,
    TEST_TWILIO_ACCOUNT_SID,
    TEST_TWILIO_AUTH_TOKEN,
    SimulatedCarrier,
)
from callkit.testing.carrier import CarrierRequest
from callkit.testing.carrier_api import FakeCarrierApi
from callkit.testing.cartesia import FakeCartesia
from callkit.testing.deepgram import TEST_DEEPGRAM_API_KEY, FakeDeepgram
from callkit.testing.openai_chat import ScriptedChatServer
from callkit.testing.openai_realtime import TEST_OPENAI_API_KEY, FakeRealtime
from callkit.testing.relay_client import ConversationRelayCaller
from callkit.testing.reverse_proxy import ReverseProxy, resolving_transport
from callkit.testing.stream_client import SimulatedMediaStream, silence, speech

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
SHARED = next(block for block in BLOCKS if "@tool" in block and "CallInterface(" not in block)
CALLER = "+14155550100"
PUBLIC_HOST = "public.test"


def quick_start(pipeline: str, provider: str) -> tuple[CallInterface, dict[str, Any]]:
    """The README's quick start for ``pipeline``, on ``provider``: its interface and runtime arguments."""
    block = next(b for b in BLOCKS if f'pipeline="{pipeline}"' in b and "@tool" not in b)
    block = re.sub(r'provider="\w+"', f'provider="{provider}"', block)
    code = re.sub(
        r"asyncio\.run\(AgentRuntime\((.*)\)\.start\(\)\)",
        r"_runtime = (lambda *a, **k: (a, k))(\1)",
        SHARED + "\n" + block,
    )
    namespace: dict[str, Any] = {}
    exec(compile(code, f"README quick start {pipeline}", "exec"), namespace)  # noqa: S102 - our own README
    args, kwargs = namespace["_runtime"]
    return namespace["call"], {"agent": args[0], **kwargs}


def official_signature_ok(provider: str, request: CarrierRequest, url: str) -> bool:
    """The carriers' own libraries accept the request's signature over ``url``."""
    params = {name: values[0] for name, values in request.form.items()}
    if provider == "twilio":
        return RequestValidator(TEST_TWILIO_AUTH_TOKEN).validate(
            url, params, request.headers["X-Twilio-Signature"]
        )
    return bool(
        validate_v3_signature(
            request.method,
            url,
            request.headers["X-Plivo-Signature-V3-Nonce"],
            TEST_PLIVO_AUTH_TOKEN,
            request.headers["X-Plivo-Signature-V3"],
            {name: [value] for name, value in params.items()},
        )
    )


def urls_in(body: str) -> list[str]:
    return re.findall(r"\b(?:https?|wss?)://[^\s\"'<>]+", body)


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition(), "timed out"


@asynccontextmanager
async def providers(pipeline: str, interface: CallInterface) -> AsyncIterator[None]:
    """Point the quick start's providers at their loopback fakes (the configuration is kept)."""
    async with AsyncExitStack() as stack:
        if pipeline == "cascading":
            assert interface.stt is not None and interface.tts is not None
            deepgram = await stack.enter_async_context(FakeDeepgram(["Where is my order 1001?"]))
            cartesia = await stack.enter_async_context(FakeCartesia())
            interface.stt = dataclasses.replace(interface.stt, base_url=deepgram.base_url)  # type: ignore[type-var]
            interface.tts = dataclasses.replace(interface.tts, base_url=cartesia.base_url)  # type: ignore[type-var]
        if pipeline == "realtime":
            assert interface.realtime is not None
            realtime = await stack.enter_async_context(
                FakeRealtime(["Order 1001 shipped on Monday."], heard=["Where is my order 1001?"])
            )
            interface.realtime = dataclasses.replace(interface.realtime, base_url=realtime.base_url)  # type: ignore[type-var]
        yield


@pytest.mark.parametrize(
    ("pipeline", "provider"),
    [
        ("managed", "twilio"),
        ("cascading", "twilio"),
        ("cascading", "plivo"),
        ("realtime", "twilio"),
    ],
)
def test_quick_start_behind_a_tunnel(
    pipeline: str, provider: Literal["twilio", "plivo"], monkeypatch: pytest.MonkeyPatch
) -> None:
    account = TEST_TWILIO_ACCOUNT_SID if provider == "twilio" else TEST_PLIVO_AUTH_ID
    token = TEST_TWILIO_AUTH_TOKEN if provider == "twilio" else TEST_PLIVO_AUTH_TOKEN
    for name, value in {
        "TWILIO_ACCOUNT_SID": TEST_TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TEST_TWILIO_AUTH_TOKEN,
        "PLIVO_AUTH_ID": TEST_PLIVO_AUTH_ID,
        "PLIVO_AUTH_TOKEN": TEST_PLIVO_AUTH_TOKEN,
        "OPENAI_API_KEY": TEST_OPENAI_API_KEY,
        "DEEPGRAM_API_KEY": TEST_DEEPGRAM_API_KEY,
        "CARTESIA_API_KEY": "cartesia-key",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("CALLKIT_PUBLIC_URL", "CALLKIT_RELAY_URL", "CALLKIT_MEDIA_URL", "CALLKIT_TABLE"):
        monkeypatch.delenv(name, raising=False)
    interface, runtime_kwargs = quick_start(pipeline, provider)
    number = interface.phone_number

    async def call() -> None:
        async with (
            ScriptedChatServer() as llm,
            FakeCarrierApi({account: token}) as api,
            providers(pipeline, interface),
            ReverseProxy() as proxy,
        ):
            monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)  # the default model, on the scripted server
            monkeypatch.setenv("CALLKIT_TWILIO_API_URL", api.base_url)
            monkeypatch.setenv("CALLKIT_PLIVO_API_URL", api.base_url)
            public = f"http://{PUBLIC_HOST}:{proxy.port}"
            runtime_kwargs.update(host="127.0.0.1", port=0, public_url=public)
            async with (
                AgentRuntime(**runtime_kwargs) as runtime,
                httpx.AsyncClient(transport=resolving_transport({PUBLIC_HOST: proxy.port})) as http,
            ):
                proxy.upstream = ("127.0.0.1", runtime.port)
                carrier = SimulatedCarrier(provider, base_url=runtime.url, client=http)
                request = carrier.incoming_call(to=number, from_=CALLER)
                assert official_signature_ok(provider, request, f"{public}/call/incoming")
                response = await carrier.send(request)
                answer = response.answer
                assert response.status == 200 and answer is not None, response.body
                urls = urls_in(response.body)
                assert urls and all(urlsplit(u).netloc == f"{PUBLIC_HOST}:{proxy.port}" for u in urls), urls
                call_id = request.form.get("CallSid", request.form.get("CallUUID", [""]))[0]
                destination = ("127.0.0.1", proxy.port)
                if pipeline == "managed":
                    assert answer.url.startswith(f"ws://{PUBLIC_HOST}:{proxy.port}/relay?")
                    caller = ConversationRelayCaller(
                        answer,
                        call_id=call_id,
                        account_id=account,
                        from_number=CALLER,
                        to_number=number,
                        auth_token=token,
                        connect_to=destination,
                    )
                    async with caller:
                        reply = await caller.prompt("Where is my order 1001?")
                        assert reply.complete and "shipped on Monday" in reply.text
                    assert caller.action_url is not None
                    ended = carrier.relay_ended(caller.action_url, call_id, session_id=caller.session_id)
                    assert official_signature_ok(provider, ended, caller.action_url)
                    assert (await carrier.send(ended)).status == 200
                else:
                    assert answer.url == f"ws://{PUBLIC_HOST}:{proxy.port}/call/stream"
                    stream = SimulatedMediaStream(
                        answer,
                        provider=provider,
                        call_id=call_id,
                        account_id=account,
                        auth_token=token,
                        connect_to=destination,
                    )
                    async with stream:
                        plays = lambda: sum(isinstance(c, PlayAudio) for c in stream.received)  # noqa: E731
                        await until(lambda: plays() > 0)  # the welcome, through the tunnel
                        await until(lambda: stream.queued_ms == 0)
                        before = plays()
                        await stream.say(speech(700) + silence(900))  # "Where is my order 1001?"
                        await until(lambda: plays() > before)
                status = await carrier.send(carrier.status_callback(call_id, "completed"))
                assert status.status == 200
            assert proxy.requests, "everything went through the tunnel"
            assert {r.host for r in proxy.requests} == {f"{PUBLIC_HOST}:{proxy.port}"}
            assert any(r.upgrade for r in proxy.requests), "the WebSocket too"
            if pipeline == "managed":
                assert llm.requests, "the agent answered through the default model"

    asyncio.run(call())


def test_explicit_relay_and_media_urls_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLKIT_RELAY_URL", "wss://relay.example.com/prod")
    monkeypatch.setenv("CALLKIT_MEDIA_URL", "wss://media.example.com")
    interface, _ = quick_start("managed", "twilio")
    runtime = AgentRuntime(
        interfaces=[interface], port=0, public_url="https://abcd.ngrok.app", model=object()
    )  # type: ignore[arg-type]
    try:
        assert runtime.settings.relay_url == "wss://relay.example.com/prod"
        assert runtime.settings.media_url == "wss://media.example.com"
    finally:
        asyncio.run(runtime._release())


def test_relay_and_media_urls_follow_the_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CALLKIT_RELAY_URL", "CALLKIT_MEDIA_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLKIT_PUBLIC_URL", "https://abcd.ngrok.app")
    interface, _ = quick_start("managed", "twilio")
    runtime = AgentRuntime(interfaces=[interface], port=0, model=object())  # type: ignore[arg-type]
    try:
        assert runtime.url == "https://abcd.ngrok.app"
        assert runtime.settings.relay_url == "wss://abcd.ngrok.app/relay"
        assert runtime.settings.media_url == "wss://abcd.ngrok.app"
    finally:
        asyncio.run(runtime._release())
