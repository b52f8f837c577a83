"""A frame-energy speech detector with an adaptive noise floor.

Per frame (20 ms by default) it measures the energy in dBFS and calls the frame speech when that
is ``margin_db`` above the noise floor **and** above ``min_energy_db``, so digital silence and
comfort noise never count, whatever the floor. ``hangover_ms`` keeps speech on through short dips
(between syllables) so one utterance is not split.

The noise floor follows the quiet level: it falls fast toward a quieter frame, rises toward
frames that are not speech, and rises only very slowly under speech, so a long utterance does
not lift it. One exception: a loud signal that is *stationary* (its frame-to-frame energy change
stays under ``_STATIONARY_DB``, as noise does and speech does not) lifts the floor within about a
second, so a step up in background noise reads as speech only briefly.

Pure and synchronous: no clock inside. The caller feeds consecutive audio in chunks of any size
(a carrier's media frame is usually 20 ms, but nothing on the wire guarantees it): the detector
cuts it into whole frames itself and keeps a partial frame for the next call, so a 320-, 80- or
0-sample chunk never fails the call that sent it. ``frames_evaluated`` counts whole frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from callkit.audio.pcm import Samples

#: Energy reported for digital silence (an all-zero frame).
SILENCE_DB: Final = -100.0
_FULL_SCALE_POWER: Final = 32768.0**2
_SILENCE_POWER: Final = 10.0 ** (SILENCE_DB / 10)
_FLOOR_MIN_DB: Final = -80.0  # the floor never goes lower, so one silent frame cannot sink it

# Time constants (seconds) of the floor's moves toward the frame energy, turned into per-frame
# factors at construction so that the behaviour does not depend on the frame length.
_FALL_S: Final = 0.04
_QUIET_RISE_S: Final = 0.4
_STATIONARY_RISE_S: Final = 0.5
_SPEECH_RISE_S: Final = 30.0
_FLUX_S: Final = 0.2
_STATIONARY_DB: Final = 1.5  # mean |energy change| per frame below which a signal is noise-like
_FLUX_START_DB: Final = 6.0  # assume speech-like at first, until frames show otherwise


@dataclass(frozen=True, slots=True)
class FrameDecision:
    """One frame's verdict and its energy in dBFS (0 dBFS: RMS of a full-scale square wave)."""

    is_speech: bool
    energy_db: float


def frame_energy_db(frame: Samples) -> float:
    """Mean power of 16-bit samples in dBFS; ``SILENCE_DB`` for digital silence."""
    x = np.asarray(frame, dtype=np.float64)
    power = float(np.dot(x, x)) / (x.size * _FULL_SCALE_POWER) if x.size else 0.0
    return 10.0 * math.log10(max(power, _SILENCE_POWER))


def _per_frame(time_constant_s: float, frame_s: float) -> float:
    return 1.0 - math.exp(-frame_s / time_constant_s)


class SpeechDetector:
    """Decide speech or not for each frame of one stream of 16-bit samples.

    A frame is ``frame_samples`` samples (``sample_rate * frame_ms / 1000``); ``process`` takes
    any number of samples and evaluates every whole frame they complete. One detector per stream,
    fed in order. The first frame sets the initial noise floor.
    """

    __slots__ = (
        "_alpha_fall",
        "_alpha_flux",
        "_alpha_quiet",
        "_alpha_speech",
        "_alpha_stationary",
        "_flux",
        "_frames",
        "_hangover_left",
        "_last",
        "_noise_floor",
        "_pending",
        "_previous",
        "frame_ms",
        "frame_samples",
        "hangover_frames",
        "margin_db",
        "min_energy_db",
        "sample_rate",
    )

    def __init__(
        self,
        sample_rate: int,
        *,
        frame_ms: int = 20,
        margin_db: float = 12.0,
        min_energy_db: float = -50.0,
        hangover_ms: int = 200,
    ) -> None:
        if sample_rate <= 0 or frame_ms <= 0 or (sample_rate * frame_ms) % 1000:
            raise ValueError(f"a {frame_ms} ms frame at {sample_rate} Hz is not a whole number of samples")
        if hangover_ms < 0:
            raise ValueError("hangover_ms must not be negative")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_samples = sample_rate * frame_ms // 1000
        self.margin_db = margin_db
        self.min_energy_db = min_energy_db
        self.hangover_frames = -(-hangover_ms // frame_ms)
        frame_s = frame_ms / 1000
        self._alpha_fall = _per_frame(_FALL_S, frame_s)
        self._alpha_quiet = _per_frame(_QUIET_RISE_S, frame_s)
        self._alpha_stationary = _per_frame(_STATIONARY_RISE_S, frame_s)
        self._alpha_speech = _per_frame(_SPEECH_RISE_S, frame_s)
        self._alpha_flux = _per_frame(_FLUX_S, frame_s)
        self._noise_floor: float | None = None
        self._previous = 0.0
        self._flux = _FLUX_START_DB
        self._hangover_left = 0
        self._pending: Samples = np.zeros(0, dtype=np.int16)
        self._last = FrameDecision(is_speech=False, energy_db=SILENCE_DB)
        self._frames = 0

    @property
    def noise_floor_db(self) -> float | None:
        """The current noise floor estimate (``None`` before the first frame)."""
        return self._noise_floor

    @property
    def frames_evaluated(self) -> int:
        """How many whole frames have been classified so far."""
        return self._frames

    @property
    def pending_samples(self) -> int:
        """Samples held over from the last call, waiting for the rest of their frame."""
        return int(self._pending.size)

    def process(self, samples: Samples) -> FrameDecision:
        """Classify the whole frames that ``samples`` completes; return the last one's decision.

        Any length is accepted and nothing about the audio raises: the samples are appended to
        what the previous call left over, every whole frame is evaluated in order and a partial
        frame is kept for the next call. When no frame completes (empty input, or too few samples)
        the previous decision is returned (not speech, at ``SILENCE_DB``, before the first frame).
        A stream fed one exact frame per call gets exactly the decisions it always did.
        """
        chunk: Samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        size = self.frame_samples
        if not self._pending.size and chunk.size == size:  # the usual 20-ms media frame
            return self._classify(chunk)
        if self._pending.size:
            chunk = np.concatenate((self._pending, chunk))
        whole = chunk.size - chunk.size % size
        for start in range(0, whole, size):
            self._classify(chunk[start : start + size])
        self._pending = chunk[whole:].copy()
        return self._last

    def _classify(self, frame: Samples) -> FrameDecision:
        self._frames += 1
        self._last = self._decide(frame)
        return self._last

    def _decide(self, frame: Samples) -> FrameDecision:
        energy = frame_energy_db(frame)
        floor = self._noise_floor
        if floor is None:
            floor = max(energy, _FLOOR_MIN_DB)
            self._previous = energy
        self._flux += self._alpha_flux * (abs(energy - self._previous) - self._flux)
        self._previous = energy

        loud = energy > floor + self.margin_db and energy > self.min_energy_db
        if energy < floor:
            alpha = self._alpha_fall
        elif not loud:
            alpha = self._alpha_quiet
        elif self._flux < _STATIONARY_DB:
            alpha = self._alpha_stationary
        else:
            alpha = self._alpha_speech
        self._noise_floor = max(floor + alpha * (energy - floor), _FLOOR_MIN_DB)

        if loud:
            self._hangover_left = self.hangover_frames
            return FrameDecision(is_speech=True, energy_db=energy)
        if self._hangover_left:
            self._hangover_left -= 1
            return FrameDecision(is_speech=True, energy_db=energy)
        return FrameDecision(is_speech=False, energy_db=energy)
