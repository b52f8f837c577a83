"""16-bit linear PCM (L16) bytes ↔ sample arrays.

On the wire L16 is little-endian here (Plivo ``audio/x-l16``, Cartesia ``pcm_s16le``, OpenAI
``audio/pcm``; docs/protocols/plivo.md §5, docs/protocols/ai-providers.md §2.2 and §3.2), whatever the host's byte order.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

#: Mono 16-bit samples, native byte order: what every function in ``callkit.audio`` passes around.
type Samples = NDArray[np.int16]

_WIRE: Final = np.dtype("<i2")


def decode_pcm16(data: bytes | bytearray | memoryview) -> Samples:
    """Little-endian 16-bit bytes -> samples.

    On a little-endian host this is a read-only view of ``data``, not a copy. ``data`` must hold a
    whole number of samples.
    """
    if len(data) % 2:
        raise ValueError(f"16-bit PCM needs an even number of bytes, got {len(data)}")
    wire = np.frombuffer(data, dtype=_WIRE)
    return wire.astype(np.int16, copy=False)


def encode_pcm16(samples: Samples) -> bytes:
    """Samples -> little-endian 16-bit bytes."""
    return np.asarray(samples, dtype=_WIRE).tobytes()
