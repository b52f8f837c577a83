"""G.711 μ-law ↔ 16-bit linear PCM by table lookup.

Both tables are built once at import and shared by every call: decoding indexes a 256-entry
``int16`` table with the code bytes; encoding indexes a 65536-entry ``uint8`` table with the
samples' bits read as ``uint16``. The tables reproduce the G.711 reference as CPython's
``audioop.lin2ulaw``/``ulaw2lin`` implement it (Sun's ``g711.c``) bit for bit: encoding drops the
two low bits with an arithmetic shift (so -1..-4 encode as -8, 0x7E, and 0..3 as 0, 0xFF), biases
the 14-bit magnitude by 33 and clips it into the top segment; decoding maps both zeros (0xFF and
0x7F, which the encoder never produces) to 0.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from callkit.audio.pcm import Samples

_BIAS: Final = 0x84  # the 16-bit bias; the 14-bit encoder adds BIAS >> 2
_CLIP_14: Final = 8159  # largest 14-bit magnitude before the bias
# Segment ends of the biased 14-bit magnitude (g711.c ``seg_uend``).
_SEGMENT_ENDS: Final = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _build_decode_table() -> NDArray[np.int16]:
    inverted = ~np.arange(256, dtype=np.int32) & 0xFF  # μ-law transmits every bit inverted
    magnitude = (((inverted & 0x0F) << 3) + _BIAS) << ((inverted & 0x70) >> 4)
    table = np.where(inverted & 0x80, _BIAS - magnitude, magnitude - _BIAS).astype(np.int16)
    table.flags.writeable = False
    return table


def _build_encode_table() -> NDArray[np.uint8]:
    # Entry i is the code of the int16 sample whose bits, read as uint16, are i.
    pcm14 = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32) >> 2
    negative = pcm14 < 0
    magnitude = np.minimum(np.abs(pcm14), _CLIP_14) + (_BIAS >> 2)
    segment = np.searchsorted(_SEGMENT_ENDS, magnitude).astype(np.int32)
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= len(_SEGMENT_ENDS), 0x7F, code)  # past the last segment: full scale
    table = (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8)
    table.flags.writeable = False
    return table


#: μ-law code -> linear sample.
DECODE_TABLE: Final = _build_decode_table()
#: Linear sample (as uint16) -> μ-law code.
ENCODE_TABLE: Final = _build_encode_table()


def decode_mulaw(data: bytes | bytearray | memoryview) -> Samples:
    """μ-law bytes -> 16-bit samples (a new array, one sample per byte)."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return DECODE_TABLE[codes]


def encode_mulaw(samples: Samples) -> bytes:
    """16-bit samples -> μ-law bytes."""
    pcm = np.asarray(samples, dtype=np.int16)
    return ENCODE_TABLE[pcm.view(np.uint16)].tobytes()
