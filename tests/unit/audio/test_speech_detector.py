"""The energy rule of ``SpeechDetector`` (``activity="energy"``) on generated signals: silence, noise,
speech-like bursts over noise. The Silero strategies: test_voice_activity.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callkit.audio import FrameDecision, Samples, SpeechDetector, frame_energy_db
from callkit.audio.vad import SILENCE_DB

RATE = 8000
FRAME = 160  # 20 ms at 8 kHz
HANGOVER_FRAMES = 10  # the default 200 ms


def amplitude(dbfs: float) -> float:
    """RMS for a level in dBFS (0 dBFS: RMS of a full-scale square wave)."""
    return 32768.0 * 10 ** (dbfs / 20)


def noise(seconds: float, dbfs: float, seed: int = 0, rate: int = RATE) -> Samples:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(rate * seconds)) * amplitude(dbfs)
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def speech_like(
    seconds: float, dbfs: float, seed: int = 1, rate: int = RATE, *, carrier: str = "noise"
) -> Samples:
    """Noise (or a 300 Hz tone) amplitude-modulated at a syllable rate (4 Hz), RMS ``dbfs`` at the peaks."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    envelope = 0.55 + 0.45 * np.cos(2 * np.pi * 4 * t)  # starts at its peak, dips ~20 dB
    source = rng.standard_normal(t.size) if carrier == "noise" else np.sqrt(2) * np.sin(2 * np.pi * 300 * t)
    x = source * envelope * amplitude(dbfs)
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def run(detector: SpeechDetector, signal: Samples) -> list[FrameDecision]:
    frames = signal[: len(signal) // detector.frame_samples * detector.frame_samples]
    return [detector.process(frame) for frame in frames.reshape(-1, detector.frame_samples)]


def speech_flags(detector: SpeechDetector, signal: Samples) -> list[bool]:
    return [d.is_speech for d in run(detector, signal)]


def test_energy_in_dbfs() -> None:
    square = np.where(np.arange(FRAME) % 2, 32767, -32768).astype(np.int16)
    assert frame_energy_db(square) == pytest.approx(0.0, abs=0.01)
    assert frame_energy_db(noise(0.02, -40.0)) == pytest.approx(-40.0, abs=1.5)
    assert frame_energy_db(np.zeros(FRAME, dtype=np.int16)) == SILENCE_DB
    assert frame_energy_db(np.zeros(0, dtype=np.int16)) == SILENCE_DB


def test_digital_silence_is_not_speech() -> None:
    decisions = run(SpeechDetector(RATE, activity="energy"), np.zeros(RATE * 5, dtype=np.int16))
    assert not any(d.is_speech for d in decisions)
    assert {d.energy_db for d in decisions} == {SILENCE_DB}


def test_mulaw_idle_and_comfort_noise_are_not_speech() -> None:
    idle = np.array([8, -8, 0, 8, 0, -8, 0, 0] * (RATE // 8 * 5), dtype=np.int16)  # μ-law's smallest steps
    assert not any(speech_flags(SpeechDetector(RATE, activity="energy"), idle))
    assert not any(speech_flags(SpeechDetector(RATE, activity="energy"), noise(5.0, -60.0)))


@pytest.mark.parametrize("dbfs", [-40.0, -30.0])
def test_no_false_positives_on_stationary_noise(dbfs: float) -> None:
    assert not any(speech_flags(SpeechDetector(RATE, activity="energy"), noise(10.0, dbfs)))


@pytest.mark.parametrize("carrier", ["noise", "tone"])
@pytest.mark.parametrize("noise_db", [-60.0, -45.0])
def test_onset_within_two_frames_and_offset_within_the_hangover(noise_db: float, carrier: str) -> None:
    lead, tail = noise(1.0, noise_db, seed=2), noise(1.0, noise_db, seed=3)
    burst = speech_like(1.0, -20.0, carrier=carrier)
    signal = np.concatenate(
        (lead, (burst.astype(np.int32) + noise(1.0, noise_db, seed=4)).clip(-32768, 32767))
    )
    signal = np.concatenate((signal, tail)).astype(np.int16)
    flags = speech_flags(SpeechDetector(RATE, activity="energy"), signal)
    onset, offset = 50, 100  # frames: 1 s of noise, then 1 s of speech
    assert not any(flags[:onset])
    assert flags.index(True) - onset <= 1  # within 2 frames (40 ms)
    assert all(flags[onset:offset])  # the 4 Hz dips do not split it
    last = max(i for i, f in enumerate(flags) if f)
    assert last - offset < HANGOVER_FRAMES + 1
    assert not any(flags[offset + HANGOVER_FRAMES + 1 :])


def test_bursts_over_noise_are_each_found() -> None:
    detector = SpeechDetector(RATE, activity="energy")
    parts: list[Samples] = []
    for i in range(5):
        parts.append(noise(1.0, -50.0, seed=10 + i))
        parts.append(
            (speech_like(0.5, -25.0, seed=20 + i).astype(np.int32) + noise(0.5, -50.0, seed=30 + i))
            .clip(-32768, 32767)
            .astype(np.int16)
        )
    flags = speech_flags(detector, np.concatenate(parts))
    onsets = [i for i in range(1, len(flags)) if flags[i] and not flags[i - 1]]
    assert onsets == [50 + 75 * k for k in range(5)]


def test_a_step_up_in_noise_is_speech_only_briefly() -> None:
    signal = np.concatenate((noise(2.0, -70.0), noise(10.0, -40.0, seed=5)))
    flags = speech_flags(SpeechDetector(RATE, activity="energy"), signal)
    assert not any(flags[:100])
    assert not any(flags[100 + 75 :])  # the floor catches up within 1.5 s
    detector = SpeechDetector(RATE, activity="energy")
    run(detector, signal)
    assert detector.noise_floor_db == pytest.approx(-40.0, abs=2.0)


def test_long_speech_does_not_lift_the_floor() -> None:
    detector = SpeechDetector(RATE, activity="energy")
    run(detector, noise(1.0, -60.0))
    floor = detector.noise_floor_db
    assert floor is not None
    flags = speech_flags(
        detector, (speech_like(8.0, -20.0).astype(np.int32) + noise(8.0, -60.0, seed=9)).astype(np.int16)
    )
    assert all(flags)
    assert detector.noise_floor_db is not None
    assert detector.noise_floor_db < floor + 12.0


def test_quiet_speech_below_the_absolute_minimum_is_ignored() -> None:
    detector = SpeechDetector(RATE, activity="energy", min_energy_db=-50.0)
    signal = np.concatenate((np.zeros(RATE, dtype=np.int16), speech_like(1.0, -56.0)))
    assert not any(speech_flags(detector, signal))


def test_wideband_frames() -> None:
    detector = SpeechDetector(16000, activity="energy", frame_ms=10, hangover_ms=100)
    assert detector.frame_samples == 160
    assert detector.hangover_frames == 10
    signal = np.concatenate((noise(1.0, -55.0, rate=16000), speech_like(0.5, -20.0, rate=16000)))
    flags = speech_flags(detector, signal)
    assert not any(flags[:100])
    assert flags[100]


def test_configuration_is_checked() -> None:
    detector = SpeechDetector(RATE, activity="energy")
    with pytest.raises(ValueError, match="whole number"):
        SpeechDetector(22050, activity="energy", frame_ms=3)
    with pytest.raises(ValueError, match="hangover"):
        SpeechDetector(RATE, activity="energy", hangover_ms=-1)
    assert detector.noise_floor_db is None


# --- media frames of any size (a carrier frame is not always 20 ms) -------------------------------


@pytest.mark.parametrize("length", [0, 1, 80, 159, 161, 320, 333, 4000])
def test_any_frame_length_is_accepted(length: int) -> None:
    detector = SpeechDetector(RATE, activity="energy")
    decision = detector.process(noise(length / RATE, -30.0)[:length])
    assert isinstance(decision, FrameDecision)
    assert detector.frames_evaluated == length // FRAME
    assert detector.pending_samples == length % FRAME


def test_empty_input_returns_the_last_decision() -> None:
    detector = SpeechDetector(RATE, activity="energy")
    assert detector.process(np.zeros(0, dtype=np.int16)) == FrameDecision(False, SILENCE_DB)
    flags = speech_flags(detector, np.concatenate((noise(1.0, -60.0), speech_like(0.2, -20.0))))
    assert flags[-1]
    last = detector.process(speech_like(0.02, -20.0))
    assert detector.process(np.zeros(0, dtype=np.int16)) == last
    assert detector.frames_evaluated == len(flags) + 1


def test_a_partial_frame_is_completed_by_the_next_call() -> None:
    detector = SpeechDetector(RATE, activity="energy")
    detector.process(np.zeros(100, dtype=np.int16))
    assert (detector.frames_evaluated, detector.pending_samples, detector.noise_floor_db) == (0, 100, None)
    detector.process(np.zeros(60, dtype=np.int16))
    assert (detector.frames_evaluated, detector.pending_samples) == (1, 0)
    assert detector.noise_floor_db is not None


def test_decisions_do_not_depend_on_how_the_audio_is_cut() -> None:
    signal = np.concatenate((noise(1.0, -55.0), speech_like(0.6, -20.0), noise(0.6, -55.0)))
    expected = run(SpeechDetector(RATE, activity="energy"), signal)
    assert any(d.is_speech for d in expected)
    cut = SpeechDetector(RATE, activity="energy")
    rng = np.random.default_rng(7)
    position = 0
    while position < signal.size:
        size = int(rng.integers(0, 500))
        decision = cut.process(signal[position : position + size])
        position += size
        if cut.frames_evaluated:  # what comes back is always the newest whole frame's decision
            assert decision == expected[cut.frames_evaluated - 1]
    assert cut.frames_evaluated == len(expected)


def samples(length: int, level: float, seed: int) -> Samples:
    x = np.random.default_rng(seed).standard_normal(length) * amplitude(level)
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=1000), max_size=20),
    level=st.floats(min_value=-100.0, max_value=6.0),
    rate=st.sampled_from([8000, 16000]),
)
def test_random_lengths_never_raise_and_count_whole_frames(
    lengths: list[int], level: float, rate: int
) -> None:
    detector = SpeechDetector(rate, activity="energy")
    total = 0
    for seed, length in enumerate(lengths):
        decision = detector.process(samples(length, level, seed))
        assert isinstance(decision, FrameDecision)
        total += length
        assert detector.frames_evaluated == total // detector.frame_samples
        assert detector.pending_samples == total % detector.frame_samples


@pytest.mark.parametrize("payload_bytes", [0, 1, 80, 159, 320, 481])
def test_decoded_media_payloads_of_any_size_are_classified(payload_bytes: int) -> None:
    """What the cascading pipeline does with each media frame's payload: μ-law decode, then VAD."""
    from callkit.audio import decode_mulaw

    detector = SpeechDetector(RATE, activity="energy")
    for _ in range(3):
        detector.process(decode_mulaw((bytes(range(256)) * 2)[:payload_bytes]))
    assert detector.frames_evaluated == 3 * payload_bytes // FRAME
