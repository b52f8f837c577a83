"""``make call`` / ``callkit call``: be the caller, typing, through the same stack as the demo.

Your lines go to the agent as ConversationRelay ``prompt`` messages (what Twilio sends after
speech recognition); ``/press 5`` sends a key press, ``/bye`` or Ctrl-D hangs up. The agent's
words print as they arrive; type while it is still answering and you cut it off there, as a
barge-in would (an ``interrupt`` with what you had heard). Input piped from a file is a script:
each line waits for the answer to the one before.

Asking for a person transfers the call: to ``CALLKIT_TRANSFER_NUMBER`` if set, else to the demo
number ``TRANSFER_TO`` (nothing is dialled; the simulated Twilio shows the ``<Dial>`` it gets).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO

from callkit.carriers.twilio import RelayEnd, RelayText
from callkit.demo.managed import CALLER, NUMBER, TRANSFER_TO, demo_model, managed_interface
from callkit.examples import ENV_TRANSFER_NUMBER
from callkit.runtime import AgentRuntime
from callkit.testing import SimulatedCarrier
from callkit.testing.relay_client import ConversationRelayCaller

HELP = "type what the caller says (type over the agent to cut it off) · /press 5 for a key · /bye or Ctrl-D to hang up"
#: Reads the next line typed; ``None`` at the end of input.
LineSource = Callable[[], Awaitable[str | None]]


class StdinLines:
    """Lines from stdin, read by the event loop itself (``add_reader``), never by a blocked thread.

    A thread stuck in ``input()`` would keep the process alive after the agent ends the call; a
    reader on the file descriptor is simply removed. Where the loop cannot watch a file (Windows),
    lines come from ``input()`` in a thread after all.
    """

    def __init__(self, fd: int = 0) -> None:
        self._fd = fd
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._pending = b""
        self._watching = False

    def _readable(self) -> None:
        data = os.read(self._fd, 4096)
        if not data:
            self.close()
            if self._pending:
                self._lines.put_nowait(self._pending.decode(errors="replace"))
            self._lines.put_nowait(None)
            return
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self._lines.put_nowait(line.decode(errors="replace"))

    async def __call__(self) -> str | None:
        if not self._watching:
            try:
                asyncio.get_running_loop().add_reader(self._fd, self._readable)
            except NotImplementedError:
                try:
                    return await asyncio.to_thread(input)
                except EOFError:
                    return None
            self._watching = True
        return await self._lines.get()

    def close(self) -> None:
        if self._watching:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._watching = False


@dataclass
class _Speaking:
    """The agent's reply being printed: what the caller has heard of it so far."""

    text: str = ""
    started: float = 0.0
    active: bool = False
    muted: bool = False  # after a cut: the interrupted turn's last frames in flight are not shown


async def run_interactive(
    out: TextIO = sys.stdout, lines: LineSource | None = None, *, wait_for_replies: bool | None = None
) -> int:
    """One call, typed. ``wait_for_replies`` (default: when stdin is not a terminal) plays lines as a script."""
    import httpx

    if wait_for_replies is None:
        wait_for_replies = not sys.stdin.isatty()
    stdin = StdinLines() if lines is None else None
    read_line: LineSource = stdin if stdin is not None else lines  # type: ignore[assignment]
    previous = os.environ.get(ENV_TRANSFER_NUMBER)
    os.environ[ENV_TRANSFER_NUMBER] = previous or TRANSFER_TO  # the demo's own, never a deployment's
    try:
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
                out.write(f"(asking for a person transfers you to {os.environ[ENV_TRANSFER_NUMBER]})\n")
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
                    await _converse(caller, read_line, out, wait_for_replies)
                    if caller.ended is not None and caller.action_url:
                        after = await carrier.send(
                            carrier.relay_ended(
                                caller.action_url,
                                request.form["CallSid"][0],
                                session_id=caller.session_id,
                                handoff_data=caller.ended.handoff_data,
                            )
                        )
                        dial = after.body.split("<Response>")[-1].removesuffix("</Response>")
                        out.write(f"the agent ended the call: {caller.handoff()}\nTwilio is told: {dial}\n")
    finally:
        if stdin is not None:
            stdin.close()
        if previous is None:
            os.environ.pop(ENV_TRANSFER_NUMBER, None)
    return 0


async def _converse(
    caller: ConversationRelayCaller, read_line: LineSource, out: TextIO, wait_for_replies: bool
) -> None:
    speaking = _Speaking()
    replied = asyncio.Event()
    replied.set()

    async def listen() -> None:
        while (command := await caller.receive()) is not None:
            if isinstance(command, RelayEnd):
                break
            if not isinstance(command, RelayText) or speaking.muted:
                continue
            if not speaking.active:
                speaking.active, speaking.text = True, ""
                out.write("agent> ")
            out.write(command.token)
            speaking.text += command.token
            out.flush()
            if command.last:
                speaking.active = False
                out.write(f"   [{(time.perf_counter() - speaking.started) * 1000:.0f} ms]\n")
                replied.set()
        replied.set()

    listener = asyncio.create_task(listen())
    try:
        while not listener.done():
            if wait_for_replies:
                await replied.wait()
                if listener.done():
                    break
            typing = asyncio.ensure_future(read_line())
            await asyncio.wait({typing, listener}, return_when=asyncio.FIRST_COMPLETED)
            if not typing.done():
                typing.cancel()
                break  # the agent ended the call
            line = typing.result()
            if line is None or line.strip() == "/bye":
                break
            if not line.strip():
                continue
            if speaking.active:  # typed over the agent: cut it where the caller had got to
                speaking.active, speaking.muted = False, True
                out.write("  ✂ (you cut in)\n")
                await caller.interrupt(speaking.text)
            speaking.muted = False
            speaking.started = time.perf_counter()
            replied.clear()
            if line.startswith("/press"):
                digit = line.removeprefix("/press").strip()[:1] or "0"
                await caller.send_dtmf(digit)
            else:
                await caller.send_prompt(line.strip())
    finally:
        if not listener.done():
            listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(asyncio.run(run_interactive()))
