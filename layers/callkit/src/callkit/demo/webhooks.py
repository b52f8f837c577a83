"""Demo part 1: a local runtime answering simulated Twilio and Plivo calls. No accounts, no keys.

Part of ``make demo`` (``python -m callkit.demo``). It starts ``AgentRuntime`` on a free loopback
port with one number per carrier and pipeline, then, like the carriers would:

1. places a signed call to each number and prints the answer the carrier gets back;
2. retries one webhook and shows the same answer and still one call item;
3. sends a forged and an unsigned request and shows them refused (403, nothing written);
4. sends the status callbacks that end the calls and prints the stored call items.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from callkit.examples import support_agent
from callkit.interface import CallInterface
from callkit.realtime.openai import OpenAIRealtimeProvider
from callkit.runtime import AgentRuntime
from callkit.store.memory import MemoryCallStore
from callkit.stt.deepgram import DeepgramSTT
from callkit.testing import (
    TEST_PLIVO_AUTH_ID,
    TEST_PLIVO_AUTH_TOKEN,
    TEST_TWILIO_ACCOUNT_SID,
    TEST_TWILIO_AUTH_TOKEN,
)
from callkit.testing.carrier import CarrierResponse, SimulatedCarrier
from callkit.tts.cartesia import CartesiaTTS

WELCOME = "Hello! Thanks for calling Acme Shop. How can I help you today?"


@dataclass(frozen=True)
class DemoLine:
    provider: str
    pipeline: str
    number: str


LINES = (
    DemoLine("twilio", "managed", "+15550001001"),
    DemoLine("twilio", "cascading", "+15550001002"),
    DemoLine("twilio", "realtime", "+15550001003"),
    DemoLine("plivo", "cascading", "+15550002001"),
    DemoLine("plivo", "realtime", "+15550002002"),
)


def demo_interfaces() -> list[CallInterface]:
    interfaces = []
    for line in LINES:
        twilio = line.provider == "twilio"
        interfaces.append(
            CallInterface(
                agent=support_agent,
                provider=line.provider,
                phone_number=line.number,
                pipeline=line.pipeline,
                account_sid=TEST_TWILIO_ACCOUNT_SID if twilio else "",
                auth_id="" if twilio else TEST_PLIVO_AUTH_ID,
                auth_token=TEST_TWILIO_AUTH_TOKEN if twilio else TEST_PLIVO_AUTH_TOKEN,
                welcome_message=WELCOME,
                stt=DeepgramSTT(api_key="demo") if line.pipeline == "cascading" else None,
                tts=CartesiaTTS(api_key="demo", voice_id="demo-voice")
                if line.pipeline == "cascading"
                else None,
                realtime=OpenAIRealtimeProvider(api_key="demo", voice="marin")
                if line.pipeline == "realtime"
                else None,
            )
        )
    return interfaces


def _show(out: TextIO, title: str, response: CarrierResponse) -> None:
    answer = response.answer
    out.write(f"\n── {title}\n   HTTP {response.status} {response.content_type}\n")
    if answer is None:
        out.write(f"   body: {response.body!r}\n")
        return
    out.write(f"   carrier will: {answer.kind}")
    if answer.url:
        out.write(f" → {answer.url}")
    if answer.token:
        out.write(f"  (stream token {answer.token[:12]}…{answer.token[-6:]}, {len(answer.token)} hex chars)")
    out.write("\n")
    for line in response.body.splitlines():
        out.write(f"   │ {line}\n")


async def run_webhooks(out: TextIO = sys.stdout) -> int:
    """Run the demo; returns a process exit code (0 when every step behaved as expected)."""
    import httpx

    from callkit.demo.managed import demo_model

    store = MemoryCallStore()
    failures: list[str] = []

    def expect(condition: bool, what: str) -> None:
        out.write(f"   {'ok ' if condition else 'FAIL'} {what}\n")
        if not condition:
            failures.append(what)

    # The model is never asked here (no call gets past its answer), but the runtime checks that
    # every interface has one before it starts (callkit.preflight).
    async with (
        demo_model() as (model, _),
        AgentRuntime(interfaces=demo_interfaces(), port=0, store=store, model=model) as runtime,
        httpx.AsyncClient(timeout=10) as client,
    ):
        out.write(f"callkit demo: AgentRuntime serving {len(LINES)} numbers at {runtime.url}/call/incoming\n")
        carriers = {p: SimulatedCarrier(p, base_url=runtime.url, client=client) for p in ("twilio", "plivo")}
        placed: dict[str, tuple[SimulatedCarrier, str]] = {}
        for line in LINES:
            carrier = carriers[line.provider]
            request = carrier.incoming_call(to=line.number)
            response = await carrier.send(request)
            _show(out, f"{line.provider} {line.pipeline} call to {line.number[:6]}…", response)
            expected = "relay" if line.pipeline == "managed" else "stream"
            expect(
                response.status == 200 and response.answer is not None and response.answer.kind == expected,
                f"answered with a {expected} instruction",
            )
            placed[line.number] = (
                carrier,
                request.form.get("CallSid", request.form.get("CallUUID", [""]))[0],
            )

        out.write("\n── a carrier retries the first webhook\n")
        carrier = carriers["twilio"]
        retry = carrier.incoming_call(to=LINES[0].number, call_id=placed[LINES[0].number][1])
        first, second = await carrier.send(retry), await carrier.send(retry)
        expect(first.body == second.body, "same answer document both times")
        expect(len(store) == len(LINES), f"still {len(LINES)} call items")

        out.write("\n── forged and unsigned requests\n")
        forged = carrier.incoming_call(to=LINES[1].number).tampered("From", "+19005550199")
        response = await carrier.send(forged)
        expect(response.status == 403, f"tampered Twilio request refused (HTTP {response.status})")
        plivo_forged = carriers["plivo"].incoming_call(to=LINES[3].number).unsigned()
        response = await carriers["plivo"].send(plivo_forged)
        expect(response.status == 403, f"unsigned Plivo request refused (HTTP {response.status})")
        expect(len(store) == len(LINES), "nothing written for them")

        out.write("\n── the calls end: status callbacks\n")
        for number, (carrier, call_id) in placed.items():
            status = await carrier.send(carrier.status_callback(call_id, "completed", duration_seconds=37))
            record = store.get_call(call_id)
            ok = status.status == 200 and record is not None and record.status == "completed"
            expect(
                ok,
                f"{carrier.provider} call to {number[:6]}… stored as "
                f"{record.status if record else 'missing'}, {record.duration_seconds if record else '?'} s",
            )

    return 1 if failures else 0
