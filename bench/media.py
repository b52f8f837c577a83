"""Benchmark: the media server under N concurrent cascading calls (zero-latency fakes).

    uv run python bench/media.py --calls 1 10 50 100

Two processes so the server's own cost can be read: the **server** (``AgentRuntime`` serving the
stream path, the same admission and ``CascadingCall`` as the container; in-memory store) and the
**load** (this process): the simulated carrier's streams, FakeDeepgram, FakeCartesia and the
scripted model, all on loopback and answering at once. Each call: connect, hear the greeting,
1 s of silence, a 0.8 s question (Deepgram's final arrives after its 300 ms endpointing), the
answer plays, the caller talks over it (0.4 s), then silence to the end; 50 caller frames a second
in real time throughout.

Reported, from the server process (``/proc``): CPU per call (% of one core, over the window when
all N calls stream) and memory per call (RSS growth over an idle baseline, divided by N); from
the fakes: frames lost (caller frames sent − frames Deepgram received), barge-in reaction (caller
audio sent between the barge-in's speech onset and the ``clear``, i.e. in audio time) and end of
utterance → first TTS request (Deepgram's ``speech_final`` leaves the fake → the reply's first
Cartesia request arrives; the model answers instantly).

``--slow-store-ms 300 --slow-share 0.2`` slows the call store by 300 ms a request (a blocking
sleep in the store's own thread, as a throttled DynamoDB would) for one call in five, chosen by
call id; the figures are then reported for the other calls and the slow ones apart: a slow store
must delay only its own call's bookkeeping, never another call's audio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stats import percentile

ROOT = Path(__file__).resolve().parents[1]
NUMBER = "+15550007001"
TOKEN = "bench-carrier-token"
ACCOUNT = "AC" + "7" * 32


def is_slow(call_id: str, share: float) -> bool:
    """Whether the store is slowed for ``call_id`` (the same choice in both processes)."""
    import hashlib

    return int(hashlib.sha256(call_id.encode()).hexdigest()[:8], 16) < share * 0x1_0000_0000


def slow_store(slow_ms: float, share: float) -> Any:
    """A memory store whose requests for a share of the calls block ``slow_ms`` (in the caller's thread)."""
    from callkit.store.memory import MemoryCallStore

    class SlowStore(MemoryCallStore):
        def _wait(self, call_id: str) -> None:
            if slow_ms and is_slow(call_id, share):
                time.sleep(slow_ms / 1000)

        def get_call(self, call_id: str) -> Any:
            self._wait(call_id)
            return super().get_call(call_id)

        def claim_stream(self, call_id: str, stream_id: str, *, now: float) -> Any:
            self._wait(call_id)
            return super().claim_stream(call_id, stream_id, now=now)

        def record_turn(self, turn: Any) -> None:
            self._wait(turn.call_id)
            super().record_turn(turn)

        def record_heard(self, call_id: str, turn: int, heard_text: str) -> None:
            self._wait(call_id)
            super().record_heard(call_id, turn, heard_text)

    return SlowStore()


def serve(
    port: int, deepgram: str, cartesia: str, model: str, slow_ms: float = 0.0, share: float = 0.0
) -> None:
    """The server process: one cascading interface pointed at the load process's fakes."""
    from callkit import AgentRuntime, CallInterface, CartesiaTTS, DeepgramSTT
    from callkit.examples import support_agent
    from callkit.llm.openai_chat import OpenAIChatModel
    from callkit.testing.deepgram import TEST_DEEPGRAM_API_KEY

    if deepgram == "realtime":  # the realtime pipeline: ``cartesia`` carries the Realtime fake's URL
        from callkit import OpenAIRealtimeProvider
        from callkit.testing.openai_realtime import TEST_OPENAI_API_KEY

        interface = CallInterface(
            agent=support_agent,
            provider="twilio",
            phone_number=NUMBER,
            account_sid=ACCOUNT,
            auth_token=TOKEN,
            pipeline="realtime",
            welcome_message="Hello!",
            realtime=OpenAIRealtimeProvider(api_key=TEST_OPENAI_API_KEY, base_url=cartesia),
        )
    else:
        interface = CallInterface(
            agent=support_agent,
            provider="twilio",
            phone_number=NUMBER,
            account_sid=ACCOUNT,
            auth_token=TOKEN,
            pipeline="cascading",
            welcome_message="Hello!",
            interrupt_sensitivity="high",
            stt=DeepgramSTT(api_key=TEST_DEEPGRAM_API_KEY, base_url=deepgram),
            tts=CartesiaTTS(api_key="bench", voice_id="bench", base_url=cartesia),
        )

    from callkit.llm.protocol import Finished, TextDelta

    class InstantModel:
        """Zero latency: the whole reply streams the moment it is asked for (in-process)."""

        async def stream(self, messages: Any, tools: Any, **_: Any) -> Any:
            for word in [
                "Hi!",
                "I",
                "can",
                "check",
                "on",
                "an",
                "order",
                "or",
                "connect",
                "you",
                "with",
                "a",
                "person.",
                "What",
                "can",
                "I",
                "do",
                "for",
                "you?",
            ]:
                yield TextDelta(word + " ")
            yield Finished("stop", None)

    from callkit.telemetry import StdlibTelemetry

    class Measurements(StdlibTelemetry):
        """Prints the pipeline's own measurements for the load process to collect."""

        def info(self, message: str, **fields: Any) -> None:
            if "reaction_ms" in fields or "eou_to_tts_ms" in fields:
                print("STAT", json.dumps(fields), flush=True)

    async def main() -> None:
        model_client = (
            InstantModel()
            if model == "instant"
            else OpenAIChatModel("gpt-4o-mini", base_url=model, api_key="bench")
        )
        runtime = AgentRuntime(
            interfaces=[interface],
            port=port,
            store=slow_store(slow_ms, share),
            model=model_client,
            telemetry=Measurements(),
        )
        async with runtime:
            print("READY", runtime.url, flush=True)
            await asyncio.Event().wait()

    import logging

    logging.basicConfig(level=logging.ERROR)
    profile_to = os.environ.get("CALLKIT_BENCH_PROFILE")  # cProfile the server: where to dump it
    if not profile_to:
        asyncio.run(main())
        return
    import cProfile
    import signal

    profiler = cProfile.Profile()

    def dump(*_: Any) -> None:
        profiler.disable()
        profiler.dump_stats(profile_to)
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)
    profiler.enable()
    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


STATS: list[dict[str, float]] = []


def collect(stream: Any) -> None:
    """Read the server's STAT lines (a thread: the server writes them as calls run)."""
    for line in stream:
        if line.startswith("STAT "):
            STATS.append(json.loads(line[5:]))


async def run_calls(
    n: int, url: str, pid: int, deepgram: Any, cartesia: Any, slow_share: float = 0.0
) -> dict[str, Any]:
    import httpx

    from callkit.carriers._types import PlayAudio
    from callkit.testing import SimulatedCarrier
    from callkit.testing.stream_client import SimulatedMediaStream, silence, speech

    async with httpx.AsyncClient(timeout=20) as http:
        carrier = SimulatedCarrier("twilio", base_url=url, auth_token=TOKEN, account_id=ACCOUNT, client=http)
        streams: list[SimulatedMediaStream] = []
        dg_before, tts_before = len(deepgram.connections), len(cartesia.connections)
        for _ in range(n):  # one at a time, so the fakes' connection order is the calls' order
            request = carrier.incoming_call(to=NUMBER)
            answer = (await carrier.send(request)).answer
            assert answer is not None
            stream = SimulatedMediaStream(
                answer,
                provider="twilio",
                call_id=request.form["CallSid"][0],
                account_id=ACCOUNT,
                auth_token=TOKEN,
            )
            await stream.connect()
            streams.append(stream)
        onsets: dict[int, int] = {}

        async def caller(index: int, stream: SimulatedMediaStream) -> None:
            await stream.say(silence(1000) + speech(800) + silence(700))
            while not any(isinstance(c, PlayAudio) for c in stream.received[5:]):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            await stream.say(silence(200))
            onsets[index] = stream.sent_ms
            await stream.say(speech(400) + silence(2400))

        STATS.clear()
        cpu0, wall0, rss_peak = cpu_seconds(pid), time.perf_counter(), 0

        async def sample() -> None:
            nonlocal rss_peak
            while True:
                rss_peak = max(rss_peak, rss_bytes(pid))
                await asyncio.sleep(0.2)

        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(caller(i, s) for i, s in enumerate(streams)))
        cpu1, wall1 = cpu_seconds(pid), time.perf_counter()
        sampler.cancel()
        sent_frames = [s.sent_ms // 20 for s in streams]
        for stream in streams:
            await stream.hang_up()
        await asyncio.sleep(0.5)
        if getattr(cartesia, "realtime", False):  # the Realtime fake counts the audio it was sent
            received = [int(c.audio_ms // 20) for c in cartesia.connections[tts_before:]]
        else:
            received = [c.audio_frames for c in deepgram.connections[dg_before:]]
        slow = [slow_share > 0 and is_slow(s.call_id, slow_share) for s in streams]
        reactions = [
            s.clear_audio_ms[0] - onsets[i]
            for i, s in enumerate(streams)
            if s.clear_audio_ms and i in onsets and not slow[i]
        ]
        slow_reactions = [
            s.clear_audio_ms[0] - onsets[i]
            for i, s in enumerate(streams)
            if s.clear_audio_ms and i in onsets and slow[i]
        ]
        lost = [sent - got for sent, got in zip(sent_frames, received, strict=False)]
        eou = []
        pairs = (
            []
            if getattr(cartesia, "realtime", False)
            else zip(  # no STT/TTS split in realtime
                deepgram.connections[dg_before:], cartesia.connections[tts_before:], strict=False
            )
        )
        for conn_dg, conn_tts in pairs:
            finals = [
                t
                for text, t in zip(conn_dg.sent, conn_dg.sent_at, strict=False)
                if '"speech_final":true' in text
            ]
            starts = sorted(c.first_request_at for c in conn_tts.contexts.values() if c.first_request_at)
            for final in finals[:1]:
                later = [t for t in starts if t > final]
                if later:
                    eou.append((later[0] - final) * 1000)
        apologies = (
            0
            if getattr(cartesia, "realtime", False)
            else sum(
                "trouble" in c.transcript
                for conn in cartesia.connections[tts_before:]
                for c in conn.contexts.values()
            )
        )
        server_barge = [x["reaction_ms"] for x in STATS if "reaction_ms" in x]
        server_eou = [x["eou_to_tts_ms"] for x in STATS if "eou_to_tts_ms" in x]

        def spread(values: list[float]) -> dict[str, float] | None:
            if not values:
                return None
            return {q: round(percentile(values, p), 2) for q, p in (("p50", 0.5), ("p90", 0.9), ("max", 1.0))}

        return {
            "calls": n,
            "server_barge_in_ms": spread(server_barge),
            "server_eou_to_tts_ms": spread(server_eou),
            "cpu_percent_per_call": round(100 * (cpu1 - cpu0) / (wall1 - wall0) / n, 3),
            "rss_peak_mb": round(rss_peak / 2**20, 1),
            "frames_sent": sum(sent_frames),
            "frames_lost": sum(sent_frames) - sum(received),
            "apologies": apologies,
            "slow_store_calls": sum(slow),
            "frames_lost_slow_calls": sum(x for x, is_s in zip(lost, slow, strict=False) if is_s),
            "barge_in_ms_slow_calls": spread([float(r) for r in slow_reactions]),
            "barge_in_ms": {
                q: percentile([float(r) for r in reactions], p)
                for q, p in (("p50", 0.5), ("p90", 0.9), ("max", 1.0))
            }
            if reactions
            else None,
            "barge_ins": f"{len(reactions)}/{n - sum(slow)}",
            "eou_to_tts_ms": {q: round(percentile(eou, p), 2) for q, p in (("p50", 0.5), ("p90", 0.9))}
            if eou
            else None,
        }


class _RealtimeSide:
    """The load side of a realtime run: the Realtime fake stands where Deepgram and Cartesia were."""

    realtime = True

    def __init__(self, fake: Any) -> None:
        self.fake = fake

    @property
    def connections(self) -> list[Any]:
        return list(self.fake.connections)


async def bench(
    calls: list[int],
    pipeline: str = "cascading",
    slow_ms: float = 0.0,
    slow_share: float = 0.0,
    model_delay: float = 0.0,
) -> list[dict[str, Any]]:
    from callkit.testing.cartesia import FakeCartesia
    from callkit.testing.deepgram import FakeDeepgram, Segment
    from callkit.testing.openai_chat import ScriptedChatServer, TextReply
    from callkit.testing.openai_realtime import FakeRealtime

    def line(segment: Segment) -> str:
        return "Hello, is anyone there?" if segment.index == 0 else "Wait."

    total = 2 * (1 + sum(calls))
    answer = (
        "We are open from nine until six on weekdays, from ten until four on Saturdays, closed on Sundays."
    )
    reply = "I can check on an order or connect you with a person. What can I do for you?"
    async with (
        ScriptedChatServer(lambda _: TextReply(reply, first_delay=model_delay)) as llm,
        FakeDeepgram(line) as deepgram,
        FakeCartesia() as cartesia,
        FakeRealtime([answer] * total, heard=["Hello, is anyone there?"] * total) as realtime,
    ):
        if pipeline == "realtime":
            stt_arg, tts_arg = "realtime", realtime.base_url
            deepgram_side: Any = _RealtimeSide(realtime)
            tts_side: Any = deepgram_side
        else:
            stt_arg, tts_arg = deepgram.base_url, cartesia.base_url
            deepgram_side, tts_side = deepgram, cartesia
        port = 0  # the server picks a free port and prints its URL
        server = subprocess.Popen(  # noqa: ASYNC220 - started once; its pipe is read in a thread
            [
                sys.executable,
                __file__,
                "--serve",
                str(port),
                stt_arg,
                tts_arg,
                llm.base_url if model_delay else "instant",
                str(slow_ms),
                str(slow_share),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        try:
            assert server.stdout is not None
            ready = await asyncio.to_thread(server.stdout.readline)
            url = ready.split()[1]
            import threading

            threading.Thread(target=collect, args=(server.stdout,), daemon=True).start()
            await run_calls(1, url, server.pid, deepgram_side, tts_side)  # warm-up: first-use imports, pools
            baseline = rss_bytes(server.pid)
            results = []
            for n in calls:
                result = await run_calls(
                    n, url, server.pid, deepgram_side, tts_side, slow_share if slow_ms else 0.0
                )
                result["pipeline"] = pipeline
                result["slow_store_ms"] = slow_ms
                result["model_delay_s"] = model_delay
                result["rss_per_call_mb"] = round((result["rss_peak_mb"] * 2**20 - baseline) / n / 2**20, 2)
                result["rss_baseline_mb"] = round(baseline / 2**20, 1)
                print(json.dumps(result), flush=True)
                results.append(result)
            return results
        finally:
            server.terminate()
            server.wait(10)
            if server.stdout is not None:
                server.stdout.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]), float(sys.argv[7]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--pipeline", choices=["cascading", "realtime", "both"], default="both")
    parser.add_argument("--slow-store-ms", type=float, default=0.0, help="slow the store this much a request")
    parser.add_argument("--slow-share", type=float, default=0.2, help="for this share of the calls")
    parser.add_argument(
        "--model-delay",
        type=float,
        default=0.0,
        help="the model over HTTP (the scripted server) with this first-token delay; 0: instant, in process",
    )
    args = parser.parse_args()
    pipelines = ["cascading", "realtime"] if args.pipeline == "both" else [args.pipeline]
    results = [
        r
        for p in pipelines
        for r in asyncio.run(bench(args.calls, p, args.slow_store_ms, args.slow_share, args.model_delay))
    ]
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "media.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
