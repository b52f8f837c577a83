"""Speech-to-text: the vendor-neutral configuration protocol and the providers callkit ships."""

from __future__ import annotations

from callkit.stt.deepgram import DeepgramSTT
from callkit.stt.events import STTConfig

__all__ = ["DeepgramSTT", "STTConfig"]
