"""Polyphase FIR resampling: lengths, alignment, frequency response, streaming equals one shot."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callkit.audio import Resampler, Samples, resample

RATES = (8000, 16000, 24000)
PAIRS = [(a, b) for a in RATES for b in RATES]


def tone(freq: float, rate: int, seconds: float = 0.5, amplitude: float = 10000.0) -> Samples:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def level_db(samples: Samples) -> float:
    """RMS in dB of the middle half (away from the edges' transients)."""
    middle = samples[len(samples) // 4 : -len(samples) // 4].astype(np.float64)
    return float(10 * np.log10(np.mean(middle**2) + 1e-12))


def gain_db(freq: float, from_rate: int, to_rate: int) -> float:
    x = tone(freq, from_rate)
    return level_db(resample(x, from_rate, to_rate)) - level_db(x)


@pytest.mark.parametrize(("from_rate", "to_rate"), PAIRS)
def test_output_length_is_the_rate_ratio(from_rate: int, to_rate: int) -> None:
    for n in (0, 1, 2, 3, 159, 160, 161, 1000):
        x = np.ones(n, dtype=np.int16)
        assert len(resample(x, from_rate, to_rate)) == -(-n * to_rate // from_rate)


def test_one_khz_keeps_its_amplitude_through_8k_16k_8k() -> None:
    x = tone(1000, 8000)
    there = resample(x, 8000, 16000)
    back = resample(there, 16000, 8000)
    assert abs(level_db(there) - level_db(x)) < 1.0
    assert abs(level_db(back) - level_db(x)) < 1.0
    # Linear phase with its delay removed: the round trip lands on the original samples.
    assert np.max(np.abs(back[100:-100].astype(np.int32) - x[100:-100])) <= 4


@pytest.mark.parametrize(("from_rate", "to_rate"), [p for p in PAIRS if p[0] != p[1]])
def test_pass_band_is_flat(from_rate: int, to_rate: int) -> None:
    for freq in (300.0, 1000.0, 3000.0, 3500.0):
        assert abs(gain_db(freq, from_rate, to_rate)) < 0.5, freq


def test_3500_hz_is_kept_going_to_8k() -> None:
    assert abs(gain_db(3500, 16000, 8000)) < 1.0
    assert abs(gain_db(3500, 24000, 8000)) < 1.0


@pytest.mark.parametrize("freq", [4500.0, 5000.0, 6000.0, 7500.0])
def test_anti_aliasing_16k_to_8k(freq: float) -> None:
    # 6 kHz at 16 kHz would fold to 2 kHz at 8 kHz; the filter takes it down first.
    assert gain_db(freq, 16000, 8000) < -30.0


@pytest.mark.parametrize(("from_rate", "to_rate", "freq"), [(24000, 8000, 9000.0), (24000, 16000, 10000.0)])
def test_anti_aliasing_from_24k(from_rate: int, to_rate: int, freq: float) -> None:
    assert gain_db(freq, from_rate, to_rate) < -30.0


@pytest.mark.parametrize(("from_rate", "to_rate"), [(8000, 16000), (8000, 24000), (16000, 24000)])
def test_upsampling_leaves_no_images(from_rate: int, to_rate: int) -> None:
    # A 3 kHz tone upsampled has its image at from_rate - 3 kHz; measure what is above the old Nyquist.
    y = resample(tone(3000, from_rate, seconds=1.0), from_rate, to_rate).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / to_rate)
    image = spectrum[freqs > from_rate / 2 + 100].sum()
    assert 10 * np.log10(image / spectrum.sum()) < -50.0


def test_full_scale_is_clipped_not_wrapped() -> None:
    square = np.where(np.arange(800) % 16 < 8, 32767, -32768).astype(np.int16)
    y = resample(square, 8000, 16000)
    assert y.max() == 32767
    assert y.min() == -32768
    assert np.all(np.abs(np.diff(y.astype(np.int32))) < 40000)  # no wrap-around jumps


def test_equal_rates_pass_through() -> None:
    r = Resampler(16000, 16000)
    x = tone(1000, 16000)
    y = r.process(x)
    assert np.array_equal(y, x)
    assert y is not x
    assert r.flush().size == 0
    assert r.delay_samples == 0


def test_look_ahead_is_a_few_milliseconds() -> None:
    r = Resampler(8000, 16000)
    first = r.process(np.zeros(160, dtype=np.int16))
    second = r.process(np.zeros(160, dtype=np.int16))
    assert len(second) == 320  # after the first frame, a frame in is a frame out
    assert len(first) == 2 * (160 - r.delay_samples)
    assert r.delay_samples * 1000 / 8000 < 5  # ms
    assert len(r.flush()) == 640 - len(first) - len(second)


def test_flush_resets_for_a_new_stream() -> None:
    r = Resampler(16000, 8000)
    x = tone(700, 16000, seconds=0.1)
    once = np.concatenate((r.process(x), r.flush()))
    twice = np.concatenate((r.process(x), r.flush()))
    assert np.array_equal(once, twice)
    assert r.flush().size == 0


def test_unsupported_rate() -> None:
    with pytest.raises(ValueError, match="sample rate"):
        Resampler(8000, 44100)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[Samples, list[int]]:
    values = draw(st.lists(st.integers(-32768, 32767), max_size=700))
    cuts = draw(st.lists(st.integers(0, len(values)), max_size=12))
    return np.array(values, dtype=np.int16), sorted(cuts)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.sampled_from(PAIRS), chunked())
def test_streaming_in_any_chunks_equals_one_call(
    pair: tuple[int, int], case: tuple[Samples, list[int]]
) -> None:
    samples, cuts = case
    whole = resample(samples, *pair)
    r = Resampler(*pair)
    pieces = [r.process(chunk) for chunk in np.split(samples, cuts)]
    pieces.append(r.flush())
    assert np.array_equal(np.concatenate(pieces), whole)  # exact integer arithmetic: bit for bit


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.sampled_from([(8000, 16000), (16000, 8000), (24000, 16000)]), st.integers(1, 400))
def test_many_small_chunks(pair: tuple[int, int], size: int) -> None:
    x = tone(440, pair[0], seconds=0.2)
    r = Resampler(*pair)
    streamed = np.concatenate([*(r.process(x[i : i + size]) for i in range(0, len(x), size)), r.flush()])
    assert np.array_equal(streamed, resample(x, *pair))
