"""Issue 8: with 20 concurrent calls, every media-server log line names the right call.

Twenty cascading calls run at once through ``AgentRuntime`` (the same admission and pipelines as
the container) with the media server's telemetry (``MediaTelemetry``) and its JSON log lines
(``configure_logging``), captured from the root logger. Each call has its own caller number and
asks about its own order, so the lines can be checked for what must never be in them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from callkit import AgentRuntime, CallInterface, CartesiaTTS, DeepgramSTT
from callkit.carriers._types import PlayAudio
from callkit.examples import support_agent
from callkit.llm.openai_chat import OpenAIChatModel
from callkit.store import MemoryCallStore
from callkit.testing import SimulatedCarrier
from callkit.testing.carrier_api import FakeCarrierApi
from callkit.testing.cartesia import FakeCartesia
from callkit.testing.deepgram import TEST_DEEPGRAM_API_KEY, FakeDeepgram, Segment
from callkit.testing.openai_chat import ScriptedChatServer, support_script
from callkit.testing.stream_client import SimulatedMediaStream, silence, speech
from media_server.telemetry import MediaTelemetry, configure_logging

ACCOUNT = "AC" + "3" * 32
NUMBER = "+15550005002"
CALLS = 20


def caller(index: int) -> str:
    return f"+1415555{index:04d}"


def question(segment: Segment) -> str:
    return f"Where is my order {1001 + segment.connection % 3}?"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The root logger as the media server sets it up (``LOG_LEVEL=INFO``), into a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("INFO", buffer)
    yield buffer
    root.handlers[:], level = saved
    root.setLevel(level)


def parse(buffer: io.StringIO, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue()[start:end].splitlines()]


@contextlib.asynccontextmanager
async def runtime(
    telemetry: MediaTelemetry, store: MemoryCallStore, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[SimulatedCarrier]:
    async with (
        ScriptedChatServer(support_script) as llm,
        FakeDeepgram(question) as deepgram,
        FakeCartesia() as cartesia,
        FakeCarrierApi({ACCOUNT: "carrier-token"}) as api,
    ):
        monkeypatch.setenv("CALLKIT_TWILIO_API_URL", api.base_url)
        interface = CallInterface(
            agent=support_agent,
            provider="twilio",
            phone_number=NUMBER,
            account_sid=ACCOUNT,
            auth_token="carrier-token",
            pipeline="cascading",
            welcome_message="Hello!",
            stt=DeepgramSTT(api_key=TEST_DEEPGRAM_API_KEY, base_url=deepgram.base_url),
            tts=CartesiaTTS(api_key="k", voice_id="v", base_url=cartesia.base_url),
        )
        model = OpenAIChatModel("gpt-4o-mini", base_url=llm.base_url, api_key="test")
        async with (
            AgentRuntime(
                interfaces=[interface], port=0, store=store, model=model, telemetry=telemetry
            ) as served,
            httpx.AsyncClient(timeout=10) as http,
        ):
            yield SimulatedCarrier(
                "twilio", base_url=served.url, auth_token="carrier-token", account_id=ACCOUNT, client=http
            )


async def place_call(carrier: SimulatedCarrier, index: int) -> tuple[str, SimulatedMediaStream]:
    request = carrier.incoming_call(to=NUMBER, from_=caller(index))
    call_id = request.form["CallSid"][0]
    answer = (await carrier.send(request)).answer
    assert answer is not None
    stream = SimulatedMediaStream(
        answer, provider="twilio", call_id=call_id, account_id=ACCOUNT, auth_token="carrier-token"
    )
    await stream.connect()
    return call_id, stream


async def until(condition: Any, limit: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition()


async def quiet(buffer: io.StringIO, seconds: float = 0.1) -> None:
    """Until no line has been logged for ``seconds``."""
    size = -1
    while size != len(buffer.getvalue()):
        size = len(buffer.getvalue())
        await asyncio.sleep(seconds)


def test_every_line_of_20_concurrent_calls_names_its_own_call(
    log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics: list[str] = []
    telemetry = MediaTelemetry(service_name="callkit-media", cluster_name="test", write=metrics.append)
    store = MemoryCallStore()
    hung_up: dict[str, list[dict[str, Any]]] = {}

    async def scenario() -> tuple[list[str], int, int]:
        async with runtime(telemetry, store, monkeypatch) as carrier:
            first = len(log_output.getvalue())
            calls = [await place_call(carrier, index) for index in range(CALLS)]

            async def converse(call_id: str, stream: SimulatedMediaStream) -> None:
                await until(lambda: any(isinstance(c, PlayAudio) for c in stream.received))
                await stream.say(silence(300) + speech(600) + silence(900))
                await until(lambda: any(t.kind == "prompt" for t in store.list_turns(call_id)))

            await asyncio.gather(*(converse(call_id, stream) for call_id, stream in calls))
            # Hang up one call at a time, each once the others are quiet: what is logged then is
            # about that call alone, whatever the pipeline logs when a caller hangs up.
            for call_id, stream in calls:
                await quiet(log_output)
                start = len(log_output.getvalue())
                await stream.hang_up()
                await until(lambda start=start: "\n" in log_output.getvalue()[start:], 5)
                await quiet(log_output)
                hung_up[call_id] = [line for line in parse(log_output, start) if served(line)]
            return [call_id for call_id, _ in calls], first, len(log_output.getvalue())

    # An empty context: no call bound by an earlier test in this thread.
    call_ids, first, last = contextvars.Context().run(asyncio.run, scenario())
    during = [line for line in parse(log_output, first, last) if served(line)]

    # Every line the server logged during the calls names a call, and one of these calls.
    assert during and all(line.get("call_id") in call_ids for line in during), [
        line for line in during if line.get("call_id") not in call_ids
    ]
    # Each call has its own lines: what the server logs once per call (twenty times in all), its
    # own module's and other modules' (speech recognition) alike, every call has logged once.
    totals = Counter((line["logger"], line["message"]) for line in during)
    once_per_call = {key for key, total in totals.items() if total == CALLS}
    assert len(once_per_call) >= 4 and len({logger for logger, _ in once_per_call}) >= 2, totals
    for call_id in call_ids:
        mine = Counter((line["logger"], line["message"]) for line in during if line["call_id"] == call_id)
        assert all(mine[key] == 1 for key in once_per_call), (call_id, mine)
    # What the server logs when a caller hangs up names that caller's call.
    assert any(hung_up.values())
    for call_id, lines in hung_up.items():
        assert {line["call_id"] for line in lines} <= {call_id}, (call_id, lines)

    # No caller or agent number, no words of the callers anywhere.
    text = log_output.getvalue()
    for number in [NUMBER, *(caller(index) for index in range(CALLS))]:
        assert number.lstrip("+") not in text and number[2:] not in text, number
    assert "order 100" not in text and "Where is" not in text

    # The counters of all twenty calls, summed in one EMF line.
    telemetry.flush()
    (document,) = (json.loads(line) for line in metrics)
    assert document["StreamsAdmitted"] == CALLS


def served(line: dict[str, Any]) -> bool:
    """A line of the server's (callkit, uvicorn), not of the fakes and clients in this process."""
    return str(line["logger"]).split(".")[0] in ("callkit", "uvicorn")
