"""The voice-activity audio set: labelled 8 kHz μ-law clips of speech, backchannels and noise.

    uv run python bench/vad_set.py [--out bench/results/vad_set]   # needs espeak-ng and sox

``bench/vad.py`` builds it on demand (a few seconds). Nothing of it is
committed: it is made again from this script, byte for byte on the same espeak-ng and sox (every
random choice is seeded). Each clip is what a carrier delivers: a background bed, one foreground
event starting at 1.0 s, band-limited to the telephone band (300-3400 Hz) and μ-law encoded.

* **speech**: espeak-ng sentences, four voices at two rates, over pink noise, babble, hum or a
  quiet line at 20, 10 and 5 dB SNR (speech active level -20 dBFS).
* **backchannel**: "mhm", "okay", "yeah", "uh-huh", spoken short, same beds and SNRs.
* **noise** (no speech at all): pink and brown noise bursts, babble (four espeak voices mixed at a
  low level, so each is unintelligible), keyboard clicks, a door slam, mains hum, breathing (band-
  limited noise in breath-shaped swells), line crackle, each at two levels over two beds.

``manifest.json`` lists every clip: file (raw μ-law), kind, name, and the foreground's speech
interval in seconds (``null`` for noise).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from callkit.audio import decode_mulaw, encode_mulaw

Floats = npt.NDArray[np.float64]

RATE = 8000
LEAD_S = 1.0  # the bed alone before the event
TAIL_S = 1.5  # the bed alone after it
SPEECH_DBFS = -20.0  # active speech level
VERSION = 1  # bump when the set changes, so cached copies are rebuilt
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "vad_set"

VOICES = ["en-us", "en-us+f3", "en-gb+m3", "en-us+f4"]
RATES = [150, 200]
SENTENCES = [
    "I need to change my delivery address please.",
    "Wait, that is not what I asked for.",
    "Can you tell me when the store opens tomorrow?",
    "No, my account number ends in four seven two.",
]
BACKCHANNELS = ["mhm", "okay", "yeah", "uh-huh"]
SNRS = [20.0, 10.0, 5.0]
BEDS = ["quiet", "pink", "babble", "hum"]


def dbfs(x: Floats) -> float:
    power = float(np.mean(x**2)) if x.size else 0.0
    return 10 * math.log10(max(power, 1e-12) / 32768.0**2)


def active_dbfs(x: Floats) -> float:
    """Level over the 20-ms frames within 30 dB of the loudest (speech's active level, roughly)."""
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    levels = np.array([dbfs(f) for f in frames])
    return dbfs(frames[levels > levels.max() - 30].ravel())


def at_level(x: Floats, level: float, *, active: bool = False) -> Floats:
    return x * 10 ** ((level - (active_dbfs(x) if active else dbfs(x))) / 20)


def telephone(x: Floats) -> Floats:
    """300-3400 Hz, smooth edges (an FFT mask: the whole clip at once, no phase distortion)."""
    spectrum = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.size, 1 / RATE)
    mask = np.clip((f - 200) / 100, 0, 1) * np.clip((3600 - f) / 200, 0, 1)
    return np.fft.irfft(spectrum * mask, x.size)


def colored(n: int, exponent: float, rng: np.random.Generator) -> Floats:
    """Noise with power spectrum 1/f**exponent (1: pink, 2: brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    f[0] = f[1]
    return np.fft.irfft(spectrum / f ** (exponent / 2), n)


def espeak(text: str, voice: str, rate: int, tmp: Path) -> Floats:
    """espeak-ng's voice at 8 kHz (sox's resampler, no dither: the set is the same on every build), leading and trailing silence trimmed."""
    wide, narrow = tmp / "wide.wav", tmp / "narrow.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(wide), text], check=True)
    subprocess.run(["sox", "-D", str(wide), "-r", str(RATE), "-b", "16", "-c", "1", str(narrow)], check=True)
    with wave.open(str(narrow)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    loud = np.flatnonzero(np.abs(x) > 32768 * 10 ** (-50 / 20))
    return x[loud[0] : loud[-1] + 1] if loud.size else x


def babble(n: int, rng: np.random.Generator, tmp: Path) -> Floats:
    """Four voices saying different sentences at once, looped to ``n`` samples."""
    out = np.zeros(n)
    for k, voice in enumerate(VOICES):
        talk = np.concatenate([espeak(s, voice, 170, tmp) for s in np.roll(SENTENCES, k)])
        talk = np.tile(talk, n // talk.size + 2)
        start = int(rng.integers(0, talk.size - n))
        out += at_level(talk[start : start + n], -20.0, active=True)
    return out


def bed(kind: str, n: int, level: float, rng: np.random.Generator, tmp: Path) -> Floats:
    """The background: a quiet line (-65 dBFS white noise) or noise at ``level`` dBFS."""
    if kind == "quiet":
        return at_level(rng.standard_normal(n), -65.0)
    if kind == "pink":
        return at_level(colored(n, 1.0, rng), level)
    if kind == "babble":
        return at_level(babble(n, rng, tmp), level)
    if kind == "hum":
        t = np.arange(n) / RATE
        hum = sum(np.sin(2 * np.pi * 60 * h * t + rng.uniform(0, 6.3)) / h for h in range(1, 12))
        return at_level(np.asarray(hum) + 0.05 * rng.standard_normal(n), level)
    raise ValueError(kind)


def envelope(n: int, attack_s: float, release_s: float) -> Floats:
    e = np.ones(n)
    a, r = min(n, int(attack_s * RATE)), min(n, int(release_s * RATE))
    e[:a] = np.linspace(0, 1, a)
    if r:
        e[n - r :] = np.linspace(1, 0, r)
    return e


def noise_event(kind: str, rng: np.random.Generator, tmp: Path) -> Floats:
    """One non-speech event, unscaled (the caller sets its level)."""
    if kind == "pink":
        n = int(1.5 * RATE)
        return colored(n, 1.0, rng) * envelope(n, 0.02, 0.1)
    if kind == "brown":
        n = int(1.5 * RATE)
        return colored(n, 2.0, rng) * envelope(n, 0.02, 0.1)
    if kind == "babble":
        n = int(2.0 * RATE)
        return babble(n, rng, tmp) * envelope(n, 0.1, 0.2)
    if kind == "keyboard":
        n = int(1.5 * RATE)
        out = np.zeros(n)
        at = 0
        while at < n - 200:
            click = rng.standard_normal(80) * np.exp(-np.arange(80) / rng.uniform(8, 20))
            out[at : at + click.size] += click * rng.uniform(0.5, 1.0)
            at += int(rng.uniform(0.06, 0.2) * RATE)
        return out
    if kind == "door":
        n = int(0.6 * RATE)
        t = np.arange(n) / RATE
        thump = np.sin(2 * np.pi * rng.uniform(120, 200) * t) * np.exp(-t / 0.08)
        crack = rng.standard_normal(n) * np.exp(-t / 0.015)
        rattle = rng.standard_normal(n) * np.exp(-t / 0.15) * 0.2
        return thump + crack + rattle
    if kind == "hum":
        n = int(2.0 * RATE)
        t = np.arange(n) / RATE
        hum = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in range(1, 14))
        return np.asarray(hum) * envelope(n, 0.05, 0.05)
    if kind == "breathing":
        breaths: list[Floats] = []
        for _ in range(2):  # in, out
            n = int(rng.uniform(0.6, 0.9) * RATE)
            hiss = np.fft.irfft(
                np.fft.rfft(rng.standard_normal(n)) * (np.abs(np.fft.rfftfreq(n, 1 / RATE) - 1500) < 900), n
            )
            breaths += [hiss * np.sin(np.pi * np.arange(n) / n) ** 2, np.zeros(int(0.3 * RATE))]
        return np.concatenate(breaths)
    if kind == "crackle":
        n = int(1.5 * RATE)
        out = np.zeros(n)
        pops = rng.integers(0, n - 20, size=40)
        for p in pops:
            out[p : p + 12] += rng.standard_normal(12) * rng.uniform(0.2, 1.0)
        return out + 0.02 * rng.standard_normal(n)
    raise ValueError(kind)


NOISES = ["pink", "brown", "babble", "keyboard", "door", "hum", "breathing", "crackle"]


def clip(foreground: Floats, bed_kind: str, bed_level: float, rng: np.random.Generator, tmp: Path) -> bytes:
    """Bed + foreground at ``LEAD_S``, telephone band, μ-law."""
    n = int((LEAD_S + TAIL_S) * RATE) + foreground.size
    x = bed(bed_kind, n, bed_level, rng, tmp)
    start = int(LEAD_S * RATE)
    x[start : start + foreground.size] += foreground
    x = telephone(x)
    samples = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return encode_mulaw(samples)


def build(out: Path) -> Path:
    """Write the set into ``out`` (replacing it); return the manifest's path."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed to build the audio set: apt-get install -y espeak-ng sox")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rng = np.random.default_rng(20240610)
    clips: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)

        def add(kind: str, name: str, audio: bytes, speech: tuple[float, float] | None) -> None:
            file = f"{len(clips):03d}-{kind}.ulaw"
            (out / file).write_bytes(audio)
            clips.append({"file": file, "kind": kind, "name": name, "speech": speech})

        for i, (voice, rate, text) in enumerate(
            (v, r, SENTENCES[(j + k) % len(SENTENCES)])
            for j, v in enumerate(VOICES)
            for k, r in enumerate(RATES)
        ):
            said = at_level(espeak(text, voice, rate, tmp), SPEECH_DBFS, active=True)
            for k, snr in enumerate(SNRS):
                where = BEDS[(i + k) % len(BEDS)]
                audio = clip(said, where, SPEECH_DBFS - snr, rng, tmp)
                add(
                    "speech",
                    f"{voice} {rate} wpm, {where} at {snr:g} dB",
                    audio,
                    (LEAD_S, LEAD_S + said.size / RATE),
                )
        for i, (word, voice) in enumerate((w, v) for w in BACKCHANNELS for v in VOICES[:3]):
            said = at_level(espeak(word, voice, 190, tmp), SPEECH_DBFS, active=True)
            for snr in SNRS[:2]:
                where = BEDS[i % len(BEDS)]
                audio = clip(said, where, SPEECH_DBFS - snr, rng, tmp)
                add(
                    "backchannel",
                    f"{word!r} {voice}, {where} at {snr:g} dB",
                    audio,
                    (LEAD_S, LEAD_S + said.size / RATE),
                )
        for kind in NOISES:
            for level in (-20.0, -30.0):
                for where, bed_level in (("quiet", 0.0), ("pink", -45.0)):
                    event = at_level(noise_event(kind, rng, tmp), level)
                    add(
                        "noise",
                        f"{kind} at {level:g} dBFS over {where}",
                        clip(event, where, bed_level, rng, tmp),
                        None,
                    )
    manifest = out / "manifest.json"
    manifest.write_text(
        json.dumps({"version": VERSION, "rate": RATE, "encoding": "mulaw", "clips": clips}, indent=1)
    )
    return manifest


def load(out: Path = DEFAULT_OUT) -> list[tuple[dict[str, Any], npt.NDArray[np.int16]]]:
    """The clips as (entry, 16-bit samples), building the set first when missing or stale."""
    manifest = out / "manifest.json"
    if not manifest.exists() or json.loads(manifest.read_text()).get("version") != VERSION:
        build(out)
    entries = json.loads(manifest.read_text())["clips"]
    return [(e, decode_mulaw((out / e["file"]).read_bytes())) for e in entries]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    manifest = build(args.out)
    clips = json.loads(manifest.read_text())["clips"]
    kinds = {k: sum(c["kind"] == k for c in clips) for k in ("speech", "backchannel", "noise")}
    print(f"{len(clips)} clips in {args.out}: {kinds}")


if __name__ == "__main__":
    main()
