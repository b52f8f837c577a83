"""The connection pool at phone-call concurrency: no request waits for another call's stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from callkit.llm import OpenAIChatModel, TextDelta, UserMessage
from callkit.net import HTTPClient, ProxyConfig
from callkit.testing.flaky_chat import FlakyChatServer

DELAY = 0.3
CALLS = 200


def run[T](main: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        return await main()

    return asyncio.run(wrapper())


def test_200_concurrent_streams_take_about_one_delay() -> None:
    async def main() -> None:
        async with (
            FlakyChatServer(text="Your order ships today.", first_delay=DELAY) as server,
            HTTPClient(proxies=ProxyConfig()) as client,
        ):
            model = OpenAIChatModel("m", base_url=server.base_url, client=client)

            async def turn() -> str:
                events = [e async for e in model.stream([UserMessage("Where is my order?")], [])]
                return "".join(e.text for e in events if isinstance(e, TextDelta))

            for round_number in range(2):
                started = time.monotonic()
                answers = await asyncio.gather(*(turn() for _ in range(CALLS)))
                elapsed = time.monotonic() - started
                assert answers == ["Your order ships today."] * CALLS
                # With the old 10-connection pool: 20 delays in turn (and PoolTimeoutError after 5 s).
                assert elapsed < DELAY * 5, f"round {round_number}: {elapsed:.2f} s"
            # The second round reused the first round's connections (keep-alive, idle cap 256).
            assert server.connections == CALLS
            assert server.requests == 2 * CALLS

    run(main)


def test_idle_connections_beyond_the_cap_are_closed() -> None:
    async def main() -> None:
        async with (
            FlakyChatServer(first_delay=0.05) as server,
            HTTPClient(proxies=ProxyConfig(), max_idle_per_host=3) as client,
        ):

            async def get() -> None:
                async with client.stream("POST", f"{server.base_url}/chat/completions", body=b"{}") as r:
                    await r.aread()

            await asyncio.gather(*(get() for _ in range(8)))
            await asyncio.gather(*(get() for _ in range(8)))
            assert server.connections == 8 + 5  # 3 kept from the first round, 5 new ones

    run(main)
