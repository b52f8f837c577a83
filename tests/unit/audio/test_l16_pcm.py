"""L16: little-endian 16-bit PCM bytes ↔ samples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callkit.audio import decode_pcm16, encode_pcm16


def test_little_endian_on_the_wire() -> None:
    # docs/protocols/plivo.md §5 audio/x-l16: 16-bit signed linear, little-endian here.
    assert decode_pcm16(b"\x01\x00\xff\xff\x00\x80").tolist() == [1, -1, -32768]
    assert encode_pcm16(np.array([1, -1, 32767], dtype=np.int16)) == b"\x01\x00\xff\xff\xff\x7f"
    assert encode_pcm16(np.array([256], dtype=">i2")) == b"\x00\x01"


def test_decoded_samples_are_native_int16() -> None:
    samples = decode_pcm16(bytearray(b"\x00\x01"))
    assert samples.dtype == np.int16
    assert samples.dtype.isnative


def test_odd_length_is_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        decode_pcm16(b"\x00\x01\x02")


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(max_size=600).map(lambda b: b[: len(b) // 2 * 2]))
def test_round_trip(data: bytes) -> None:
    assert encode_pcm16(decode_pcm16(data)) == data
    assert encode_pcm16(decode_pcm16(memoryview(data))) == data
