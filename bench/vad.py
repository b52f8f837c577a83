"""Benchmark: the caller's speech detector, energy vs Silero VAD, as barge-in sees it.

    uv run python bench/vad.py [--repeats 5]   # builds bench/vad_set.py's audio set on first use

For each strategy of ``callkit.audio.SpeechDetector`` (``energy``: today's frame-energy rule;
``silero``: Silero VAD on every sample; ``confirmed``: Silero only while the energy rule fires)
each clip of the set is fed in 20-ms frames to a fresh detector (a new call) and the frames'
decisions drive the real barge-in machine (``callkit.bargein.BargeIn``) while an agent reply is
playing, once per sensitivity, with the speech thresholds of ``THRESHOLDS`` (120/250/400 ms,
pauses under 100 ms bridged) and no words needed: what the VAD alone lets through.

Reported per strategy: barge-ins on the 32 noise clips and on the 24 backchannel clips; on the 24
speech clips, how many cut (and how many cut before the speech began, from the background) and
the reaction time (ms from the speech onset to the cut, at the end of the deciding frame; median
and max); CPU as µs per 20-ms frame over the whole set and over a quiet line (10 s, -65 dBFS: a
caller who listens), with % of one core for one call; memory per call (tracemalloc, detectors
fed a frame) and, for Silero, the process's one-off RSS growth for onnxruntime and the model.
Timings are medians over ``--repeats`` runs; the decisions are deterministic.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vad_set

from callkit.audio.vad import VOICE_ACTIVITIES, SpeechDetector, VoiceActivity
from callkit.bargein import (
    THRESHOLDS,
    AgentPieceSent,
    AgentStarted,
    BargeIn,
    BargeInPolicy,
    CallerVad,
    CancelSpeech,
)

FRAME = 160
Clip = tuple[dict[str, Any], npt.NDArray[np.int16]]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def decisions(
    activity: VoiceActivity, model: Any, samples: npt.NDArray[np.int16]
) -> tuple[list[bool], float]:
    """Per-frame decisions of a fresh detector, and the seconds spent in ``process``."""
    detector = SpeechDetector(8000, activity=activity, model=model)
    frames = samples[: samples.size // FRAME * FRAME].reshape(-1, FRAME)
    out: list[bool] = []
    clock = time.perf_counter
    spent = 0.0
    for frame in frames:
        start = clock()
        decision = detector.process(frame)
        spent += clock() - start
        out.append(decision.is_speech)
    return out, spent


def first_cut(flags: list[bool], min_speech_ms: float) -> float | None:
    """When the barge-in machine cuts the agent off on these VAD frames (end of the frame, s)."""
    machine = BargeIn(BargeInPolicy(speech=True, dtmf=False, min_speech_ms=min_speech_ms, min_words=0))
    machine.handle(AgentStarted(1, "Your order ships on Tuesday."), 0.0)
    machine.handle(AgentPieceSent("m1", 28, 600_000.0), 0.0)
    for i, speech in enumerate(flags):
        now = (i + 1) * 0.02
        if any(isinstance(a, CancelSpeech) for a in machine.handle(CallerVad(speech), now)):
            return now
    return None


def evaluate(activity: VoiceActivity, model: Any, clips: list[Clip]) -> tuple[dict[str, Any], float]:
    """Barge-in counts and reactions for one strategy, and its µs per frame over the set."""
    spent, frames = 0.0, 0
    result: dict[str, Any] = {}
    per_clip = []
    for entry, samples in clips:
        flags, seconds = decisions(activity, model, samples)
        spent += seconds
        frames += len(flags)
        per_clip.append((entry, flags))
    for sensitivity, (min_ms, _) in THRESHOLDS.items():
        noise = back = cut = early = 0
        reactions: list[float] = []
        fired_on: list[str] = []
        for entry, flags in per_clip:
            at = first_cut(flags, min_ms)
            if at is None:
                continue
            if entry["kind"] == "noise":
                noise += 1
                fired_on.append(entry["name"])
            elif entry["kind"] == "backchannel":
                back += 1
            else:
                cut += 1
                onset = entry["speech"][0]
                if at < onset:
                    early += 1
                else:
                    reactions.append((at - onset) * 1000)
        result[sensitivity] = {
            "noise": noise,
            "backchannel": back,
            "speech_cut": cut,
            "speech_early": early,
            "reaction_ms_p50": statistics.median(reactions) if reactions else None,
            "reaction_ms_max": max(reactions) if reactions else None,
            "noise_fired_on": fired_on,
        }
    return result, spent / frames * 1e6


def quiet_us(activity: VoiceActivity, model: Any) -> float:
    rng = np.random.default_rng(7)
    line = np.rint(rng.standard_normal(8000 * 10) * 32768 * 10 ** (-65 / 20)).astype(np.int16)
    flags, seconds = decisions(activity, model, line)
    return seconds / len(flags) * 1e6


def bytes_per_call(activity: VoiceActivity, model: Any, n: int = 200) -> float:
    frame = np.zeros(FRAME, dtype=np.int16)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    detectors = [SpeechDetector(8000, activity=activity, model=model) for _ in range(n)]
    for _ in range(2):  # a window completes on the second frame
        for detector in detectors:
            detector.process(frame)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--set", type=Path, default=vad_set.DEFAULT_OUT, help="where the audio set is (built if missing)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON lines")
    args = parser.parse_args()

    clips = vad_set.load(args.set)
    base = rss_mb()
    from callkit.audio.silero import SileroModel

    started = time.perf_counter()
    model = SileroModel()
    load_ms = (time.perf_counter() - started) * 1000
    model_mb = rss_mb() - base

    rows: list[dict[str, Any]] = []
    for activity in VOICE_ACTIVITIES:
        runs = [evaluate(activity, model, clips) for _ in range(args.repeats)]
        counts = runs[0][0]
        assert all(r[0] == counts for r in runs), "decisions changed between runs"
        us = statistics.median(r[1] for r in runs)
        quiet = statistics.median(quiet_us(activity, model) for _ in range(args.repeats))
        rows.append(
            {
                "activity": activity,
                "barge_in": counts,
                "us_per_frame": round(us, 1),
                "us_per_frame_quiet": round(quiet, 1),
                "core_percent_one_call": round(us / 20_000 * 100, 3),
                "bytes_per_call": round(bytes_per_call(activity, model)),
            }
        )
    kinds = {k: sum(e["kind"] == k for e, _ in clips) for k in ("speech", "backchannel", "noise")}
    if args.json:
        for row in rows:
            print(json.dumps(row))
    print(f"clips: {kinds}; Silero model: loaded in {load_ms:.0f} ms, process RSS +{model_mb:.1f} MB once")
    print(f"timings: medians of {args.repeats} runs")
    print()
    print(
        "| detector | sensitivity | noise barge-ins | backchannel barge-ins | speech cut (early) | reaction p50 / max ms |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        for sensitivity, c in row["barge_in"].items():
            p50, top = c["reaction_ms_p50"], c["reaction_ms_max"]
            reaction = f"{p50:.0f} / {top:.0f}" if p50 is not None else "-"
            print(
                f"| {row['activity']} | {sensitivity} | {c['noise']}/{kinds['noise']} | "
                f"{c['backchannel']}/{kinds['backchannel']} | {c['speech_cut']}/{kinds['speech']} "
                f"({c['speech_early']}) | {reaction} |"
            )
    print()
    print(
        "| detector | µs per 20-ms frame (set) | µs per frame (quiet line) | % of a core, 1 call | memory per call |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['activity']} | {row['us_per_frame']} | {row['us_per_frame_quiet']} | "
            f"{row['core_percent_one_call']} | {row['bytes_per_call'] / 1024:.1f} KiB |"
        )
    print()
    for row in rows:
        fired = row["barge_in"]["high"]["noise_fired_on"]
        print(f"{row['activity']}, high: noise barge-ins on {fired}")


if __name__ == "__main__":
    main()
