"""The Silero strategies of ``SpeechDetector`` on short generated clips (no espeak at test time).

Speech is the formant synthesiser of ``callkit.testing.stream_client.speech`` (glottal pulses
through vowel formants); the noises are the ones the energy rule takes for speech (bench/README.md,
"Voice activity"): a door-slam-like impulse, a burst of pink noise, keyboard clicks.
"""

from __future__ import annotations

import numpy as np
import pytest

from callkit.audio import Samples, SpeechDetector, decode_mulaw, speech_detectors
from callkit.audio.silero import SileroModel, SileroStream
from callkit.audio.vad import DEFAULT_VOICE_ACTIVITY, VoiceActivity
from callkit.testing.stream_client import silence, speech

RATE = 8000
FRAME = 160


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


def flags(detector: SpeechDetector, samples: Samples) -> list[bool]:
    frames = samples[: samples.size // FRAME * FRAME].reshape(-1, FRAME)
    return [detector.process(frame).is_speech for frame in frames]


def line(seconds: float, seed: int) -> Samples:
    """A quiet telephone line: white noise at about -65 dBFS."""
    rng = np.random.default_rng(seed)
    return np.rint(rng.standard_normal(int(RATE * seconds)) * 18).astype(np.int16)


def with_event(event: Samples, seed: int) -> Samples:
    """0.5 s of line, the event, 0.5 s of line."""
    out = line(1.0 + event.size / RATE, seed)
    start = RATE // 2
    out[start : start + event.size] = np.clip(out[start : start + event.size] + event, -32768, 32767)
    return out


def door(seed: int) -> Samples:
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.5 * RATE)) / RATE
    slam = np.sin(2 * np.pi * 150 * t) * np.exp(-t / 0.08) + rng.standard_normal(t.size) * np.exp(-t / 0.015)
    return np.rint(slam * 8000).astype(np.int16)


def pink(seed: int) -> Samples:
    rng = np.random.default_rng(seed)
    n = int(1.2 * RATE)
    f = np.fft.rfftfreq(n, 1 / RATE)
    f[0] = f[1]
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.sqrt(f), n)
    return np.rint(x / np.std(x) * 3000).astype(np.int16)


def keyboard(seed: int) -> Samples:
    rng = np.random.default_rng(seed)
    out = np.zeros(int(1.2 * RATE))
    for at in range(0, out.size - 100, 900):
        out[at : at + 80] = rng.standard_normal(80) * np.exp(-np.arange(80) / 12) * 9000
    return np.rint(out).astype(np.int16)


def longest_run(values: list[bool]) -> int:
    best = run = 0
    for value in values:
        run = run + 1 if value else 0
        best = max(best, run)
    return best


def test_the_default_is_silero() -> None:
    assert DEFAULT_VOICE_ACTIVITY == "silero"


@pytest.mark.parametrize("activity", ["silero", "confirmed"])
def test_speech_fires_within_a_few_frames(model: SileroModel, activity: VoiceActivity) -> None:
    clip = decode_mulaw(silence(400) + speech(800) + silence(600))
    decisions = flags(SpeechDetector(RATE, activity=activity, model=model), clip)
    onset = 400 // 20
    assert not any(decisions[:onset])
    first = decisions.index(True)
    assert onset <= first <= onset + 5  # within 100 ms of the onset
    assert longest_run(decisions) >= 30  # 600 of the 800 ms, in one piece
    assert not any(decisions[onset + 40 + 10 :])  # over within 200 ms of the end


@pytest.mark.parametrize("activity", ["silero", "confirmed"])
@pytest.mark.parametrize("make", [door, pink, keyboard])
def test_noise_bursts_are_not_speech(model: SileroModel, activity: VoiceActivity, make: object) -> None:
    assert callable(make)
    clip = with_event(make(3), seed=4)
    # The energy rule takes each for speech long enough to cut the agent off at high sensitivity.
    assert longest_run(flags(SpeechDetector(RATE, activity="energy"), clip)) >= 6
    assert longest_run(flags(SpeechDetector(RATE, activity=activity, model=model), clip)) < 6


def test_decisions_do_not_depend_on_chunking(model: SileroModel) -> None:
    clip = decode_mulaw(silence(200) + speech(500) + silence(300))
    whole = flags(SpeechDetector(RATE, model=model), clip)
    odd = SpeechDetector(RATE, model=model)
    seen = []
    for start in range(0, clip.size, 70):  # chunks that straddle frames and Silero's windows
        before = odd.frames_evaluated
        decision = odd.process(clip[start : start + 70])
        if odd.frames_evaluated > before:
            seen.append(decision.is_speech)
    assert odd.frames_evaluated == len(whole)
    assert seen == whole  # 70 < 160: each call completes at most one frame, whose decision it returns
    assert odd.process(np.zeros(0, dtype=np.int16)).is_speech == seen[-1]


def test_streams_sharing_a_model_keep_their_own_state(model: SileroModel) -> None:
    talk = decode_mulaw(speech(600))
    quiet = line(0.6, seed=1)
    a, b, alone = (SpeechDetector(RATE, model=model) for _ in range(3))
    mixed_a, mixed_b = [], []
    for i in range(0, talk.size, FRAME):  # interleaved, as calls on one event loop are
        mixed_a.append(a.process(talk[i : i + FRAME]).is_speech)
        mixed_b.append(b.process(quiet[i : i + FRAME]).is_speech)
    assert mixed_a == flags(alone, talk)
    assert any(mixed_a) and not any(mixed_b)


def test_silero_stream_windows_are_256_samples_at_8khz(model: SileroModel) -> None:
    stream = SileroStream(model, RATE)
    assert stream.window == 256
    stream.feed(np.zeros(255, dtype=np.int16))
    assert stream.probability == 0.0  # no window yet
    stream.feed(np.zeros(1, dtype=np.int16))
    assert 0.0 < stream.probability < 0.1


def test_speech_detectors_share_one_model() -> None:
    make = speech_detectors("silero")
    first, second = make(), make()
    assert first.activity == second.activity == "silero"
    assert first._silero is not None and second._silero is not None
    assert first._silero.model is second._silero.model
    assert speech_detectors("energy")()._silero is None


def test_bad_arguments_are_refused(model: SileroModel) -> None:
    with pytest.raises(ValueError, match="8000 or 16000"):
        SpeechDetector(24000, activity="silero", model=model)
    with pytest.raises(ValueError, match="activity"):
        SpeechDetector(RATE, activity="neural")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        SpeechDetector(RATE, model=model, threshold=1.0)


def test_quiet_windows_are_not_run(model: SileroModel) -> None:
    stream = SileroStream(model, RATE)
    stream.feed(line(1.0, seed=2))  # about -65 dBFS: a caller listening on a quiet line
    assert stream.windows_run == 0
    assert stream.probability == model.quiet[RATE][0] < 0.1
    stream.feed(decode_mulaw(speech(300)))
    assert stream.windows_run > 0
