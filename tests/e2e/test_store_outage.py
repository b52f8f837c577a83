"""A call store that stops answering mid-call: the call goes on, and no call's audio waits for it.

DynamoDB runs on a moto server behind a ``FaultyLink``; mid-call the link hangs (every request runs
into botocore's timeouts, as with a throttled or unreachable table). The caller's question is still
answered, the event loop that carries every call's audio never stalls (store calls run in the
store's own threads), and once the store is back the call ends cleanly.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from callkit.aws_clients import MEDIA_SERVER_POLICY, AwsClients
from callkit.carriers._types import PlayAudio
from callkit.store import DynamoDBCallStore, create_table
from callkit.testing.faults import FaultyLink
from callkit.testing.stream_client import silence, speech
from callkit.testing.world import loopback_world

ANSWER = "Order 1001 shipped on Monday and arrives tomorrow."
CALL_TASKS = {"inbound", "ticks", "deadline", "transcripts", "turn", "ending", "bookkeeping", "outbound"}


@pytest.fixture
def faulty_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DynamoDBCallStore, FaultyLink]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    urllib.request.urlopen(
        urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"), timeout=5
    ).close()
    with FaultyLink((host, port)) as link:
        client = AwsClients(MEDIA_SERVER_POLICY).client("dynamodb", endpoint_url=link.url)
        create_table(client, "calls")
        yield DynamoDBCallStore("calls", client), link
    server.stop()


class LagMonitor:
    """How late the event loop runs a 10-ms timer: a blocked loop shows up here."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.perf_counter() - before - 0.01)

    def __enter__(self) -> LagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def until(condition: object, limit: float = 10.0) -> None:
    deadline = time.perf_counter() + limit
    while not condition() and time.perf_counter() < deadline:  # type: ignore[operator]  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition(), "timed out"  # type: ignore[operator]


@pytest.mark.parametrize("pipeline", ["cascading", "realtime"])
def test_a_store_that_hangs_mid_call_holds_up_no_audio(
    pipeline: str, faulty_store: tuple[DynamoDBCallStore, FaultyLink]
) -> None:
    store, link = faulty_store

    async def scenario() -> None:
        async with loopback_world(
            pipeline=pipeline,  # type: ignore[arg-type]
            store=store,
            heard=["Where is my order 1001?"],
            realtime=[ANSWER],
            realtime_heard=["Where is my order 1001?"],
        ) as world:
            call = await world.call()
            stream = call.stream
            plays = lambda: sum(isinstance(c, PlayAudio) for c in stream.received)  # noqa: E731
            await until(lambda: plays() > 0 and stream.queued_ms == 0)  # the greeting, played
            link.hang()  # the table stops answering
            with LagMonitor() as lag:
                before = plays()
                await stream.say(silence(300) + speech(700) + silence(900))
                await until(lambda: plays() > before + 5, 10)  # answered during the outage
                await until(lambda: stream.queued_ms == 0, 15)
            assert lag.worst < 0.05, f"the event loop stalled {lag.worst * 1000:.0f} ms"
            link.heal()
            await stream.hang_up()
            await until(lambda: not [t for t in asyncio.all_tasks() if t.get_name() in CALL_TASKS], 15)

    asyncio.run(scenario())
