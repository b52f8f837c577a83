"""Bytes in one ``AudioFormat`` -> bytes in another: decode, resample, encode.

``Converter`` is the streaming form (one per direction per call); ``convert`` is for a whole clip.
Same-format conversion passes bytes through untouched (μ-law is not re-encoded: 0x7F, negative
zero, would come back as 0xFF).
"""

from __future__ import annotations

import numpy as np

from callkit.audio.format import AudioFormat, Encoding
from callkit.audio.g711 import decode_mulaw, encode_mulaw
from callkit.audio.pcm import Samples, decode_pcm16, encode_pcm16
from callkit.audio.resampler import Resampler


def decode(data: bytes | bytearray | memoryview, encoding: Encoding) -> Samples:
    """Audio bytes -> 16-bit samples."""
    return decode_mulaw(data) if encoding == "mulaw" else decode_pcm16(data)


def encode(samples: Samples, encoding: Encoding) -> bytes:
    """16-bit samples -> audio bytes."""
    return encode_mulaw(samples) if encoding == "mulaw" else encode_pcm16(samples)


class Converter:
    """Convert a stream of audio bytes from ``source`` to ``target``, chunk by chunk.

    Chunks may be any size: a 16-bit sample split across two chunks is carried over. Because of
    the resampler's look-ahead the first output is a little shorter than its input and ``flush``
    returns the rest; the whole output is the same however the input was chunked. A byte of a
    half sample left at ``flush`` is dropped: it cannot be played.
    """

    __slots__ = ("_carry", "_resampler", "source", "target")

    def __init__(self, source: AudioFormat, target: AudioFormat) -> None:
        self.source = source
        self.target = target
        self._carry = b""
        self._resampler = (
            Resampler(source.sample_rate, target.sample_rate)
            if source.sample_rate != target.sample_rate
            else None
        )

    def process(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed source bytes; get the target bytes ready so far."""
        if self.source == self.target:
            return bytes(data)
        if self.source.encoding == "pcm16" and (self._carry or len(data) % 2):
            data = self._carry + bytes(data)
            whole = len(data) - len(data) % 2
            data, self._carry = data[:whole], data[whole:]
        samples = decode(data, self.source.encoding)
        if self._resampler is not None:
            samples = self._resampler.process(samples)
        return encode(samples, self.target.encoding)

    def flush(self) -> bytes:
        """End the stream: the remaining target bytes; the converter is then ready for a new one."""
        self._carry = b""
        if self._resampler is None:
            return b""
        return encode(self._resampler.flush(), self.target.encoding)


def convert(data: bytes | bytearray | memoryview, source: AudioFormat, target: AudioFormat) -> bytes:
    """Convert a whole clip, e.g. μ-law 8 kHz -> PCM16 16 kHz (twice the samples, time-aligned)."""
    converter = Converter(source, target)
    head = converter.process(data)
    return head + converter.flush()


def silence(fmt: AudioFormat, ms: int) -> bytes:
    """``ms`` milliseconds of digital silence in ``fmt`` (μ-law 0xFF, PCM zeros)."""
    return encode(np.zeros(fmt.frame_samples(ms), dtype=np.int16), fmt.encoding)
