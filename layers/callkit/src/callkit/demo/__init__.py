"""``make demo``: everything callkit does, locally, with no accounts and no keys.

1. ``webhooks``: simulated Twilio and Plivo calls to five numbers (each carrier and pipeline):
   signed webhooks, the answers they get, a retried webhook, forged requests refused, status
   callbacks.
2. ``managed``: one whole managed call through ConversationRelay, turn by turn with latencies.
3. ``cascading``: a call over Media Streams through Deepgram, the agent and Cartesia (loopback
   fakes), with a barge-in.
4. ``realtime``: a call over Media Streams with OpenAI Realtime (a loopback fake of the GA
   protocol): a tool and a barge-in truncated at what was played.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TextIO

from callkit.demo.cascading import run_cascading
from callkit.demo.managed import run_managed
from callkit.demo.realtime import run_realtime
from callkit.demo.webhooks import run_webhooks


async def run(out: TextIO = sys.stdout) -> int:
    """The whole demo; 0 when every step behaved as expected."""
    status = await run_webhooks(out)
    status |= await run_managed(out)
    status |= await run_cascading(out)
    status |= await run_realtime(out)
    out.write(
        f"\n{'demo finished: every step as expected' if status == 0 else 'demo finished with failures'}\n"
    )
    return status


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # refusals are part of the show, printed by the demo itself
    raise SystemExit(asyncio.run(run()))
