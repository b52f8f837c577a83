"""Media stream admission through the local runtime: signature, token, one stream per call."""

from __future__ import annotations

import asyncio
from typing import Literal

import httpx
import pytest

from callkit import AgentRuntime, CallInterface, CartesiaTTS, DeepgramSTT
from callkit.examples import support_agent
from callkit.store.memory import MemoryCallStore
from callkit.stream.admission import Admitted
from callkit.stream.server import StreamLink
from callkit.testing import SimulatedCarrier
from callkit.testing.stream_client import SimulatedMediaStream, silence

NUMBERS = {"twilio": "+15550003001", "plivo": "+15550003002"}


class Holding:
    """A pipeline that holds the stream until the carrier hangs up and remembers what it got."""

    def __init__(self) -> None:
        self.admitted: list[Admitted] = []
        self.frames = 0

    async def run(self, admitted: Admitted, link: StreamLink) -> None:
        self.admitted.append(admitted)
        while await link.receive() is not None:
            self.frames += 1


def interfaces() -> list[CallInterface]:
    return [
        CallInterface(
            agent=support_agent,
            provider=provider,
            phone_number=number,
            auth_token=f"token-{provider}",
            pipeline="cascading",
            stt=DeepgramSTT(api_key="k"),
            tts=CartesiaTTS(api_key="k", voice_id="v"),
        )
        for provider, number in NUMBERS.items()
    ]


@pytest.mark.parametrize("provider", ["twilio", "plivo"])
@pytest.mark.parametrize(
    "case", ["admitted", "replayed-token", "forged-handshake", "token-for-another-call", "no-token"]
)
def test_admission(provider: Literal["twilio", "plivo"], case: str) -> None:
    store = MemoryCallStore()
    holding = Holding()

    async def scenario() -> tuple[int | None, SimulatedMediaStream]:
        async with (
            AgentRuntime(
                interfaces=interfaces(), port=0, store=store, stream_pipeline=lambda _a: holding
            ) as runtime,
            httpx.AsyncClient() as http,
        ):
            carrier = SimulatedCarrier(
                provider, base_url=runtime.url, auth_token=f"token-{provider}", client=http
            )
            request = carrier.incoming_call(to=NUMBERS[provider])
            call_id = request.form.get("CallSid", request.form.get("CallUUID"))[0]  # type: ignore[index]
            answer = (await carrier.send(request)).answer
            assert answer is not None and answer.kind == "stream"
            kwargs = {"provider": provider, "call_id": call_id, "account_id": carrier.account_id}
            token = None
            auth = f"token-{provider}"
            if case == "forged-handshake":
                auth = "not-the-token"
            elif case == "no-token":
                token = ""
            elif case == "token-for-another-call":
                other = await carrier.send(carrier.incoming_call(to=NUMBERS[provider]))
                assert other.answer is not None
                token = other.answer.token
            if case == "replayed-token":
                first = SimulatedMediaStream(answer, auth_token=auth, **kwargs)  # type: ignore[arg-type]
                await first.connect()
                await first.say(silence(100), realtime=False)
            stream = SimulatedMediaStream(answer, auth_token=auth, token=token, **kwargs)  # type: ignore[arg-type]
            await stream.connect()
            await stream.say(silence(60), realtime=False)
            await asyncio.wait_for(stream.closed.wait(), 2) if case != "admitted" else await asyncio.sleep(
                0.2
            )
            code = stream.close_code
            await stream.hang_up()
            if case == "replayed-token":
                await first.hang_up()
            await asyncio.sleep(0.1)
            return code, stream

    code, _ = asyncio.run(scenario())
    records = {r.call_id: r for r in (store.get_call(c) for c in list(store._records)) if r}
    if case == "admitted":
        assert len(holding.admitted) == 1 and holding.frames >= 3
        (record,) = records.values()
        assert record.status == "in-progress" and record.stream_id is not None
    elif case == "replayed-token":
        assert code == 1008 and len(holding.admitted) == 1
    else:
        assert code == 1008 and holding.admitted == []
        assert all(r.stream_id is None and r.status == "ringing" for r in records.values())
