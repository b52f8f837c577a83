"""The caller's speech detector: frame energy with an adaptive noise floor, and Silero VAD.

``SpeechDetector`` decides speech or not per frame with one of three ``VoiceActivity`` strategies,
chosen at construction (the figures behind the default are in bench/README.md, "Voice activity"):

* ``"energy"``: the energy rule below alone. Cheap (a few µs a frame) but any loud non-speech
  sound (a door, a keyboard, babble, a step up in noise) is speech to it.
* ``"silero"``: the Silero VAD network (``callkit.audio.silero``) on every sample, its
  probability read with hysteresis (speech from ``threshold``, until it falls below
  ``threshold - 0.15``, as Silero's own streaming iterator does). The energy is still measured
  (``FrameDecision.energy_db``) but does not decide.
* ``"confirmed"``: the energy rule proposes and Silero confirms. Silero runs only while the energy
  rule says speech, restarted at each onset on the last ``_PREROLL_MS`` of audio, so a quiet call
  costs what the energy rule costs.

The energy rule:

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
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Final

import numpy as np

from callkit.audio.pcm import Samples
from callkit.settings import VoiceActivity as VoiceActivity  # how a detector decides (module docstring)

if TYPE_CHECKING:
    from callkit.audio.silero import SileroModel, SileroStream

VOICE_ACTIVITIES: Final[tuple[VoiceActivity, ...]] = ("energy", "silero", "confirmed")
#: The media server's choice: bench/README.md, "Voice activity".
DEFAULT_VOICE_ACTIVITY: Final[VoiceActivity] = "silero"
#: Silero's speech probability threshold; speech ends below it minus ``_RELEASE``.
DEFAULT_THRESHOLD: Final = 0.5
_RELEASE: Final = 0.15
#: Audio before an energy onset that Silero hears first in the "confirmed" strategy (3 windows).
_PREROLL_MS: Final = 96

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


def speech_detectors(
    activity: VoiceActivity = DEFAULT_VOICE_ACTIVITY, sample_rate: int = 8000
) -> Callable[[], SpeechDetector]:
    """What makes each call's detector. Silero's model is loaded here, once, and shared by them all.

    Build it when the server starts: loading the model takes about 0.1 s and ~50 MB of RSS for
    onnxruntime and the network (bench/README.md, "Voice activity"); each detector then adds a few KiB.
    """
    model = None
    if activity != "energy":
        from callkit.audio.silero import SileroModel

        model = SileroModel()
    return partial(SpeechDetector, sample_rate, activity=activity, model=model)


def _per_frame(time_constant_s: float, frame_s: float) -> float:
    return 1.0 - math.exp(-frame_s / time_constant_s)


class SpeechDetector:
    """Decide speech or not for each frame of one stream of 16-bit samples.

    A frame is ``frame_samples`` samples (``sample_rate * frame_ms / 1000``); ``process`` takes
    any number of samples and evaluates every whole frame they complete. One detector per stream,
    fed in order. The first frame sets the initial noise floor.

    ``activity`` picks the strategy (module docstring); the Silero ones need 8 or 16 kHz and take
    ``model``, the process's shared ``SileroModel`` (one is loaded here when none is given, which
    takes some tens of ms: a server should load one at start and pass it to every call).
    """

    __slots__ = (
        "_alpha_fall",
        "_alpha_flux",
        "_alpha_quiet",
        "_alpha_speech",
        "_alpha_stationary",
        "_confirming",
        "_flux",
        "_frames",
        "_hangover_left",
        "_last",
        "_noise_floor",
        "_pending",
        "_previous",
        "_recent",
        "_silero",
        "_speaking",
        "activity",
        "frame_ms",
        "frame_samples",
        "hangover_frames",
        "margin_db",
        "min_energy_db",
        "sample_rate",
        "threshold",
    )

    def __init__(
        self,
        sample_rate: int,
        *,
        frame_ms: int = 20,
        margin_db: float = 12.0,
        min_energy_db: float = -50.0,
        hangover_ms: int = 200,
        activity: VoiceActivity = DEFAULT_VOICE_ACTIVITY,
        model: SileroModel | None = None,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        if sample_rate <= 0 or frame_ms <= 0 or (sample_rate * frame_ms) % 1000:
            raise ValueError(f"a {frame_ms} ms frame at {sample_rate} Hz is not a whole number of samples")
        if hangover_ms < 0:
            raise ValueError("hangover_ms must not be negative")
        if activity not in VOICE_ACTIVITIES:
            raise ValueError(f"activity must be one of {VOICE_ACTIVITIES}, not {activity!r}")
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be a probability strictly between 0 and 1")
        self.activity: VoiceActivity = activity
        self.threshold = threshold
        self._silero: SileroStream | None = None
        if activity != "energy":
            from callkit.audio.silero import SileroModel, SileroStream

            self._silero = SileroStream(model if model is not None else SileroModel(), sample_rate)
        self._speaking = False  # Silero's hysteresis
        self._confirming = False  # "confirmed": Silero is running (the energy rule says speech)
        self._recent: Samples = np.zeros(sample_rate * _PREROLL_MS // 1000, dtype=np.int16)
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
        energy = self._decide(frame)
        silero = self._silero
        if silero is None:
            self._last = energy
        elif self.activity == "silero":
            self._last = FrameDecision(self._hysteresis(silero.feed(frame)), energy.energy_db)
        else:
            self._last = FrameDecision(self._confirm(silero, frame, energy.is_speech), energy.energy_db)
        return self._last

    def _hysteresis(self, probability: float) -> bool:
        threshold = self.threshold if not self._speaking else self.threshold - _RELEASE
        self._speaking = probability >= threshold
        return self._speaking

    def _confirm(self, silero: SileroStream, frame: Samples, proposed: bool) -> bool:
        """Silero's verdict while the energy rule says speech; Silero sleeps otherwise."""
        recent = self._recent
        if frame.size >= recent.size:
            self._recent = frame[-recent.size :].copy()
        else:
            self._recent = np.concatenate((recent[frame.size :], frame))
        if not proposed:
            self._confirming = self._speaking = False
            return False
        if self._confirming:
            probability = silero.feed(frame)
        else:  # an onset: start Silero afresh on the audio just before it
            self._confirming = True
            silero.reset()
            probability = silero.feed(self._recent)
        return self._hysteresis(probability)

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
