"""Audio for the media server: formats, G.711 μ-law, L16, resampling, speech detection.

Everything here is synchronous and vectorised (numpy lookup tables and FIR dot products) and
runs per 20-ms frame; nothing does I/O. numpy comes with the ``callkit[media]`` extra and is never
imported by ``import callkit`` nor by the Lambda functions: ``callkit.audio.format``
(``AudioFormat``) is pure Python, and the numpy-backed names below are imported on first use::

    from callkit.audio import MULAW_8K, PCM16_16K, Converter, SpeechDetector

    inbound = Converter(MULAW_8K, PCM16_16K)      # one per call and direction
    pcm = inbound.process(frame)                   # 160 bytes μ-law -> ~640 bytes L16 16 kHz
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
    from callkit.audio.converter import Converter, convert, decode, encode, silence
    from callkit.audio.g711 import decode_mulaw, encode_mulaw
    from callkit.audio.pcm import Samples, decode_pcm16, encode_pcm16
    from callkit.audio.resampler import Resampler, resample
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
    "Converter",
    "Encoding",
    "FrameDecision",
    "Resampler",
    "Samples",
    "SpeechDetector",
    "VoiceActivity",
    "convert",
    "decode",
    "decode_mulaw",
    "decode_pcm16",
    "encode",
    "encode_mulaw",
    "encode_pcm16",
    "frame_energy_db",
    "resample",
    "silence",
    "speech_detectors",
]

# name -> the module that defines it; importing that module imports numpy.
_NUMPY_BACKED: dict[str, str] = {
    "Converter": "converter",
    "convert": "converter",
    "decode": "converter",
    "encode": "converter",
    "silence": "converter",
    "decode_mulaw": "g711",
    "encode_mulaw": "g711",
    "Samples": "pcm",
    "decode_pcm16": "pcm",
    "encode_pcm16": "pcm",
    "Resampler": "resampler",
    "resample": "resampler",
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
