"""Audio for the media server: formats, G.711 μ-law, L16, speech detection.

Everything here is synchronous and vectorised (numpy lookup tables; Silero VAD's small network on
onnxruntime) and runs per 20-ms frame; nothing does I/O. numpy and onnxruntime come with the
``callkit[media]`` extra and are never imported by ``import callkit`` nor by the Lambda functions:
``callkit.audio.format`` (``AudioFormat``) is pure Python, and the numpy-backed names below are
imported on first use::

    from callkit.audio import decode_mulaw, speech_detectors

    make_detector = speech_detectors()             # once per process: loads Silero's model
    vad = make_detector()                          # one per call
    decision = vad.process(decode_mulaw(frame))    # 160 bytes μ-law -> speech or not
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from callkit.audio.format import (
    MULAW_8K,
    PCM16_8K,
    PCM16_16K,
    PCM16_24K,
    SAMPLE_RATES,
    AudioFormat,
    Encoding,
)

if TYPE_CHECKING:
    from callkit.audio.g711 import decode_mulaw, encode_mulaw
    from callkit.audio.pcm import Samples, decode_pcm16, encode_pcm16
    from callkit.audio.vad import (
        FrameDecision,
        SpeechDetector,
        VoiceActivity,
        frame_energy_db,
        speech_detectors,
    )

__all__ = [
    "MULAW_8K",
    "PCM16_8K",
    "PCM16_16K",
    "PCM16_24K",
    "SAMPLE_RATES",
    "AudioFormat",
    "Encoding",
    "FrameDecision",
    "Samples",
    "SpeechDetector",
    "VoiceActivity",
    "decode_mulaw",
    "decode_pcm16",
    "encode_mulaw",
    "encode_pcm16",
    "frame_energy_db",
    "speech_detectors",
]

# name -> the module that defines it; importing that module imports numpy.
_NUMPY_BACKED: dict[str, str] = {
    "decode_mulaw": "g711",
    "encode_mulaw": "g711",
    "Samples": "pcm",
    "decode_pcm16": "pcm",
    "encode_pcm16": "pcm",
    "FrameDecision": "vad",
    "SpeechDetector": "vad",
    "VoiceActivity": "vad",
    "speech_detectors": "vad",
    "frame_energy_db": "vad",
}


def __getattr__(name: str) -> Any:
    module = _NUMPY_BACKED.get(name)
    if module is None:
        raise AttributeError(f"module 'callkit.audio' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"callkit.audio.{module}"), name)
