"""Benchmark: turn first-token latency through ``OpenAIChatModel`` at N concurrent streams.

    uv run python bench/model_client.py --streams 25 50 100 200 --delay 0.3

One process, one event loop, as on the media server: N turns start together, each streaming a
completion from ``FlakyChatServer`` on loopback, which waits ``--delay`` seconds before its first
byte (the model's own latency). Reported per N, from the request to the first ``TextDelta``:
median and p90, for a cold round (every stream opens its connection) and a warm one (kept-alive
connections reused), the connections the server saw, and failures. ``--pool 10`` limits the pool
as the client did before (10 connections per host): turns then queue behind each other and fail
with ``PoolTimeoutError`` after ``connect_timeout`` (5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stats import percentile

from callkit.llm import OpenAIChatModel, TextDelta, UserMessage
from callkit.net import HTTPClient, ProxyConfig, RetryPolicy
from callkit.testing.flaky_chat import FlakyChatServer

ROOT = Path(__file__).resolve().parents[1]


async def first_token(model: OpenAIChatModel) -> float | None:
    """Seconds to the first ``TextDelta``; the answer is read to its end, as a turn does."""
    started = time.monotonic()
    latency: float | None = None
    try:
        async for event in model.stream([UserMessage("Where is my order?")], []):
            if latency is None and isinstance(event, TextDelta):
                latency = time.monotonic() - started
    except Exception:
        return None
    return latency


async def measure(streams: int, delay: float, pool: int | None) -> dict[str, Any]:
    async with FlakyChatServer(text="Your order ships today.", first_delay=delay) as server:
        client = HTTPClient(proxies=ProxyConfig(), max_connections_per_host=pool)
        # No retries: a pool wait is what is measured, not hidden behind a second attempt.
        model = OpenAIChatModel(
            "m", base_url=server.base_url, client=client, retry=RetryPolicy(max_attempts=1)
        )
        rounds: dict[str, Any] = {}
        try:
            for name in ("cold", "warm"):
                results = await asyncio.gather(*(first_token(model) for _ in range(streams)))
                ok = [r * 1000 for r in results if r is not None]
                rounds[name] = {
                    "median_ms": round(statistics.median(ok), 1) if ok else None,
                    "p90_ms": round(percentile(ok, 0.9), 1) if ok else None,
                    "failed": streams - len(ok),
                }
        finally:
            await client.aclose()
        return {"streams": streams, "connections": server.connections, **rounds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--pool", type=int, default=None, help="max connections per host (default: no limit)")
    args = parser.parse_args()
    results = [asyncio.run(measure(n, args.delay, args.pool)) for n in args.streams]
    pool = f"pool of {args.pool}" if args.pool else "pool without limit"
    print(f"first token through OpenAIChatModel, model delay {args.delay * 1000:.0f} ms, {pool}")
    for r in results:
        cold, warm = r["cold"], r["warm"]
        print(
            f"{r['streams']:>4} streams: cold median {cold['median_ms']} ms p90 {cold['p90_ms']} ms "
            f"failed {cold['failed']} | warm median {warm['median_ms']} ms p90 {warm['p90_ms']} ms "
            f"failed {warm['failed']} | connections {r['connections']}"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    suffix = f"-pool{args.pool}" if args.pool else ""
    (out / f"model_client{suffix}.json").write_text(
        json.dumps({"delay_s": args.delay, "pool": args.pool, "results": results}, indent=2)
    )


if __name__ == "__main__":
    main()
