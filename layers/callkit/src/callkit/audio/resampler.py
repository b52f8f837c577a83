"""Streaming sample-rate conversion between 8, 16 and 24 kHz: a windowed-sinc polyphase FIR.

Converting ``from_rate`` to ``to_rate`` upsamples by ``L``, low-pass filters and keeps every
``M``-th sample (``L/M`` = 2, 3, 3/2 or an inverse), computed polyphase: each output sample is one
dot product of ``ceil(N/L)`` input samples with one of the ``L`` phases of the filter. The filter
is a Kaiser-windowed sinc with its pass band to 7/16 and its stop band (70 dB) from 1/2 of the
lower rate: 3.5 kHz is kept and nothing above 4 kHz folds back when going to 8 kHz.

Exact arithmetic, so chunking never changes the output: the taps are quantised to integers
(Q15) and the samples are integers, so every product and sum is an integer below 2**53 and float64
computes it exactly, in whatever order BLAS adds. One call on a whole signal and any split of it
into chunks give the same bits.

Time alignment: the filter is linear-phase and its delay is taken out, so output sample ``n`` sits
at time ``n / to_rate`` exactly like input sample ``j`` at ``j / from_rate``. The price is a
look-ahead of half the filter (about 4.4 ms): the first ``process`` returns that much less, and
``flush`` returns the tail, for ``ceil(len(input) * L / M)`` samples in all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from callkit.audio.format import SAMPLE_RATES
from callkit.audio.pcm import Samples

_Q: Final = 15  # taps are integers in units of 2**-15
_STOPBAND_DB: Final = 70.0
_PASS_EDGE: Final = 7 / 16  # of the lower rate: 3.5 kHz at 8 kHz
_STOP_EDGE: Final = 1 / 2  # of the lower rate: its Nyquist frequency


@dataclass(frozen=True, slots=True)
class _Polyphase:
    """One rate pair's filter: ``phases[p]`` are taps ``p, p+L, p+2L, ...`` reversed, as float64."""

    up: int
    down: int
    center: int  # the filter's delay, in samples at the upsampled rate
    phases: NDArray[np.float64]  # shape (up, taps_per_phase)

    @property
    def taps_per_phase(self) -> int:
        return int(self.phases.shape[1])


def _design(from_rate: int, to_rate: int) -> _Polyphase:
    gcd = math.gcd(from_rate, to_rate)
    up, down = to_rate // gcd, from_rate // gcd
    upsampled_rate = from_rate * up
    lower_rate = min(from_rate, to_rate)
    transition = (_STOP_EDGE - _PASS_EDGE) * lower_rate / upsampled_rate  # cycles per sample
    cutoff = (_STOP_EDGE + _PASS_EDGE) / 2 * lower_rate / upsampled_rate
    # Kaiser's estimates of length and beta for the stop-band attenuation.
    length = math.ceil((_STOPBAND_DB - 7.95) / (14.36 * transition)) + 1
    length += 1 - length % 2  # odd, so the delay is a whole number of samples
    beta = 0.1102 * (_STOPBAND_DB - 8.7)
    center = (length - 1) // 2
    offsets = np.arange(length, dtype=np.float64) - center
    taps = 2 * cutoff * np.sinc(2 * cutoff * offsets) * np.kaiser(length, beta)
    taps *= up / taps.sum()  # unity gain at DC after zero-stuffing by ``up``
    per_phase = -(-length // up)
    padded = np.zeros(per_phase * up, dtype=np.float64)
    padded[:length] = np.rint(taps * (1 << _Q))
    phases = np.ascontiguousarray(padded.reshape(per_phase, up).T[:, ::-1])
    phases.flags.writeable = False
    return _Polyphase(up=up, down=down, center=center, phases=phases)


# Built once at import for every pair; shared (read-only) by every Resampler.
_FILTERS: Final[dict[tuple[int, int], _Polyphase]] = {
    (a, b): _design(a, b) for a in SAMPLE_RATES for b in SAMPLE_RATES if a != b
}
_EMPTY: Final = np.zeros(0, dtype=np.int16)


class Resampler:
    """Convert a stream of 16-bit samples from ``from_rate`` to ``to_rate``.

    ``process`` takes chunks of any size and returns what is ready; ``flush`` ends the stream,
    returns the rest and leaves the resampler ready for a new stream. The concatenated outputs
    do not depend on how the input was chunked. Equal rates pass samples through.
    """

    __slots__ = ("_buffer", "_buffer_start", "_filter", "_inputs", "_outputs", "from_rate", "to_rate")

    def __init__(self, from_rate: int, to_rate: int) -> None:
        for rate in (from_rate, to_rate):
            if rate not in SAMPLE_RATES:
                raise ValueError(f"sample rate must be one of {SAMPLE_RATES}, not {rate!r}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._filter = _FILTERS.get((from_rate, to_rate))
        self._reset()

    @property
    def delay_samples(self) -> int:
        """Input samples held back for look-ahead between ``process`` calls."""
        if self._filter is None:
            return 0
        return -(-self._filter.center // self._filter.up)

    def _reset(self) -> None:
        history = 0 if self._filter is None else self._filter.taps_per_phase - 1
        # Input samples with global index >= _buffer_start that later outputs still need; the
        # zeros before the stream are the signal's silent past.
        self._buffer: NDArray[np.float64] = np.zeros(history, dtype=np.float64)
        self._buffer_start = -history
        self._inputs = 0
        self._outputs = 0

    def process(self, samples: Samples) -> Samples:
        """Feed samples; get the output samples that no later input can change."""
        chunk = np.asarray(samples, dtype=np.int16)
        poly = self._filter
        if poly is None:
            return chunk.copy()
        if chunk.size:
            self._buffer = np.concatenate((self._buffer, chunk))
            self._inputs += chunk.size
        # Output n needs inputs up to floor((n*M + center) / L).
        ready = (poly.up * self._inputs - 1 - poly.center) // poly.down + 1
        return self._emit(poly, ready)

    def flush(self) -> Samples:
        """End the stream: the remaining outputs (as if silence followed), then reset."""
        poly = self._filter
        if poly is None:
            return _EMPTY.copy()
        total = -(-self._inputs * poly.up // poly.down)
        last_input = ((total - 1) * poly.down + poly.center) // poly.up
        missing = last_input + 1 - (self._buffer_start + self._buffer.size)
        if total > self._outputs and missing > 0:
            self._buffer = np.concatenate((self._buffer, np.zeros(missing, dtype=np.float64)))
        tail = self._emit(poly, total)
        self._reset()
        return tail

    def _emit(self, poly: _Polyphase, end: int) -> Samples:
        start = self._outputs
        if end <= start:
            return _EMPTY.copy()
        up, down, width = poly.up, poly.down, poly.taps_per_phase
        out = np.empty(end - start, dtype=np.float64)
        # Outputs n, n+L, n+2L, ... use one phase, on windows M inputs apart: one correlation per
        # phase (numpy's correlate is a loop of BLAS dot products).
        for first in range(start, min(start + up, end)):
            position = first * down + poly.center
            row = position // up - width + 1 - self._buffer_start
            count = (end - 1 - first) // up + 1
            span = self._buffer[row : row + (count - 1) * down + width]
            out[first - start :: up] = np.correlate(span, poly.phases[position % up])[::down]
        self._outputs = end
        keep_from = (end * down + poly.center) // up - width + 1
        drop = keep_from - self._buffer_start
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._buffer_start = keep_from
        out *= 2.0**-_Q
        np.rint(out, out=out)
        return out.clip(-32768, 32767).astype(np.int16)


def resample(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    """Resample a whole signal: ``ceil(len * to_rate / from_rate)`` samples, time-aligned."""
    resampler = Resampler(from_rate, to_rate)
    head = resampler.process(samples)
    return np.concatenate((head, resampler.flush()))
