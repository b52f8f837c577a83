"""``make call`` / ``callkit call``: be the caller, typing, through the same stack as the demo.

Your lines go to the agent as ConversationRelay ``prompt`` messages (what Twilio sends after
speech recognition); ``/press 5`` sends a key press, ``/bye`` or Ctrl-D hangs up. Type while the
agent is still answering and the answer is cut where it had got to, as a barge-in would.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import TextIO

from callkit.demo.managed import CALLER, NUMBER, demo_model, managed_interface
from callkit.runtime import AgentRuntime
from callkit.testing import SimulatedCarrier
from callkit.testing.relay_client import ConversationRelayCaller

HELP = "type what the caller says · /press 5 for a key · /bye or Ctrl-D to hang up"


async def _read_line(prompt: str) -> str | None:
    try:
        return await asyncio.to_thread(input, prompt)
    except EOFError:
        return None


async def run_interactive(out: TextIO = sys.stdout) -> int:
    import httpx

    async with demo_model() as (model, model_name):
        runtime = AgentRuntime(interfaces=[managed_interface()], port=0, model=model)
        async with runtime, httpx.AsyncClient(timeout=10) as http:
            carrier = SimulatedCarrier("twilio", base_url=runtime.url, client=http)
            request = carrier.incoming_call(to=NUMBER, from_=CALLER)
            answered = await carrier.send(request)
            if answered.answer is None:
                out.write(f"the webhook did not answer (HTTP {answered.status})\n")
                return 1
            out.write(f"calling the agent on {model_name}\n{HELP}\n")
            caller = ConversationRelayCaller(
                answered.answer,
                call_id=request.form["CallSid"][0],
                account_id=carrier.account_id,
                from_number=CALLER,
                to_number=NUMBER,
                auth_token=carrier.auth_token,
            )
            async with caller:
                out.write(f"agent> {caller.welcome}\n")
                while caller.ended is None:
                    line = await _read_line("you> ")
                    if line is None or line.strip() == "/bye":
                        break
                    if not line.strip():
                        continue
                    if line.startswith("/press "):
                        reply = await caller.press(line.split(maxsplit=1)[1].strip()[:1] or "0")
                    else:
                        reply = await caller.prompt(line.strip())
                    latency = f"{reply.first_frame_ms:.0f} ms" if reply.first_frame_ms is not None else "-"
                    out.write(f"agent> {reply.text.strip()}   [{latency}]\n")
                if caller.ended is not None:
                    out.write(f"the agent ended the call: {caller.handoff()}\n")
    return 0


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(asyncio.run(run_interactive()))
