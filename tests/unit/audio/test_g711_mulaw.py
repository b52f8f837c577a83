"""G.711 μ-law: bit-exact with the reference (CPython's ``audioop``) and round trips."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callkit.audio import decode_mulaw, encode_mulaw
from callkit.audio.g711 import DECODE_TABLE, ENCODE_TABLE

with warnings.catch_warnings():
    # audioop is deprecated (PEP 594, gone in 3.13); here it is only the reference to compare with.
    warnings.filterwarnings("ignore", message=".*audioop.*", category=DeprecationWarning)
    import audioop

ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)


def test_decode_is_bit_exact_for_all_256_codes() -> None:
    assert decode_mulaw(ALL_CODES).tobytes() == audioop.ulaw2lin(ALL_CODES, 2)


def test_encode_is_bit_exact_for_all_65536_samples() -> None:
    assert encode_mulaw(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2)


def test_known_codes() -> None:
    # Both zeros decode to 0; the extremes are ±32124 (G.711 Table 2a, scaled to 16 bits).
    assert decode_mulaw(b"\xff\x7f\x00\x80").tolist() == [0, 0, -32124, 32124]
    samples = np.array([0, 3, -1, -4, -5, 32767, -32768, 8], dtype=np.int16)
    assert encode_mulaw(samples) == b"\xff\xff\x7e\x7e\x7e\x80\x00\xfe"


def test_tables_are_shared_and_read_only() -> None:
    assert DECODE_TABLE.shape == (256,)
    assert DECODE_TABLE.dtype == np.int16
    assert ENCODE_TABLE.shape == (65536,)
    assert ENCODE_TABLE.dtype == np.uint8
    with pytest.raises(ValueError, match="read-only"):
        DECODE_TABLE[0] = 1


def test_decode_then_encode_is_identity_except_negative_zero() -> None:
    again = encode_mulaw(decode_mulaw(ALL_CODES))
    assert [(c, d) for c, d in zip(ALL_CODES, again, strict=True) if c != d] == [(0x7F, 0xFF)]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=1000))
def test_random_bytes_match_the_reference_both_ways(data: bytes) -> None:
    pcm = decode_mulaw(data)
    assert pcm.tobytes() == audioop.ulaw2lin(data, 2)
    assert encode_mulaw(pcm) == audioop.lin2ulaw(pcm.tobytes(), 2)
    even = data[: len(data) // 2 * 2]
    samples = np.frombuffer(even, dtype=np.int16)
    assert encode_mulaw(samples) == audioop.lin2ulaw(even, 2)


def test_encode_accepts_strided_and_foreign_byte_order() -> None:
    samples = ALL_SAMPLES[::7]
    assert encode_mulaw(samples) == audioop.lin2ulaw(samples.tobytes(), 2)
    swapped = samples.astype(">i2")
    assert encode_mulaw(swapped) == encode_mulaw(samples)


def test_empty() -> None:
    assert decode_mulaw(b"").shape == (0,)
    assert encode_mulaw(np.zeros(0, dtype=np.int16)) == b""
