"""Format conversion: μ-law 8 kHz ↔ PCM16 16/24 kHz, whole clips and streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callkit.audio import (
    MULAW_8K,
    PCM16_8K,
    PCM16_16K,
    PCM16_24K,
    AudioFormat,
    Converter,
    convert,
    decode,
    decode_mulaw,
    encode,
    encode_mulaw,
    encode_pcm16,
    resample,
    silence,
)

FORMATS = [MULAW_8K, PCM16_8K, PCM16_16K, PCM16_24K, AudioFormat("mulaw", 16000)]


def sine_mulaw(ms: int = 200, freq: float = 440.0) -> bytes:
    t = np.arange(8 * ms) / 8000
    return encode_mulaw(np.rint(8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16))


def test_mulaw_8k_to_pcm16_16k_is_decode_then_resample() -> None:
    data = sine_mulaw()
    out = convert(data, MULAW_8K, PCM16_16K)
    assert len(out) == 4 * len(data)  # twice the samples, two bytes each
    assert out == encode_pcm16(resample(decode_mulaw(data), 8000, 16000))


def test_mulaw_8k_to_pcm16_8k_is_the_g711_table() -> None:
    data = bytes(range(256))
    assert convert(data, MULAW_8K, PCM16_8K) == decode_mulaw(data).astype("<i2").tobytes()
    assert convert(convert(data, MULAW_8K, PCM16_8K), PCM16_8K, MULAW_8K) == data.replace(b"\x7f", b"\xff")


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_format_passes_bytes_through(fmt: AudioFormat) -> None:
    data = bytes(range(256)) * 2
    assert convert(data, fmt, fmt) == data
    converter = Converter(fmt, fmt)
    assert converter.process(b"\x7f") == b"\x7f"
    assert converter.flush() == b""


@pytest.mark.parametrize("target", [PCM16_16K, PCM16_24K])
def test_round_trip_keeps_the_signal(target: AudioFormat) -> None:
    data = sine_mulaw(ms=400)
    back = convert(convert(data, MULAW_8K, target), target, MULAW_8K)
    assert len(back) == len(data)
    a = decode_mulaw(data).astype(np.float64)[400:-400]
    b = decode_mulaw(back).astype(np.float64)[400:-400]
    snr = 10 * np.log10(np.sum(a**2) / np.sum((a - b) ** 2))
    assert snr > 30.0


@st.composite
def streams(draw: st.DrawFn) -> tuple[AudioFormat, AudioFormat, bytes, list[int]]:
    source = draw(st.sampled_from(FORMATS))
    target = draw(st.sampled_from(FORMATS))
    data = draw(st.binary(max_size=900))
    if source.sample_width == 2:
        data = data[: len(data) // 2 * 2]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=10)))
    return source, target, data, cuts


@settings(max_examples=200, deadline=None, derandomize=True)
@given(streams())
def test_stream_in_any_chunks_equals_whole(case: tuple[AudioFormat, AudioFormat, bytes, list[int]]) -> None:
    source, target, data, cuts = case
    converter = Converter(source, target)
    pieces = [converter.process(data[a:b]) for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    pieces.append(converter.flush())
    whole = convert(data, source, target)
    assert b"".join(pieces) == whole
    samples = len(data) // source.sample_width
    assert len(whole) == -(-samples * target.sample_rate // source.sample_rate) * target.sample_width


def test_a_split_sample_is_carried_and_a_dangling_byte_dropped() -> None:
    converter = Converter(PCM16_8K, MULAW_8K)
    assert converter.process(b"\x00") == b""
    assert converter.process(b"\x80\x01") == encode_mulaw(np.array([-32768], dtype=np.int16))
    assert converter.flush() == b""
    assert converter.process(b"\x00\x00") == b"\xff"  # the dropped byte is not carried into a new stream


def test_converter_is_reusable_after_flush() -> None:
    converter = Converter(MULAW_8K, PCM16_16K)
    data = sine_mulaw()
    first = converter.process(data) + converter.flush()
    second = converter.process(data) + converter.flush()
    assert first == second == convert(data, MULAW_8K, PCM16_16K)


@pytest.mark.parametrize("fmt", FORMATS)
def test_silence(fmt: AudioFormat) -> None:
    quiet = silence(fmt, 20)
    assert len(quiet) == fmt.frame_bytes(20)
    assert not decode(quiet, fmt.encoding).any()
    assert encode(decode(quiet, fmt.encoding), fmt.encoding) == quiet
