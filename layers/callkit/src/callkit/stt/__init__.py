"""Speech-to-text provider configurations (cascading pipeline)."""

from __future__ import annotations

from callkit.stt.deepgram import DeepgramSTT

STTConfig = DeepgramSTT
"""Every STT configuration callkit knows; a union as more providers arrive."""

__all__ = ["DeepgramSTT", "STTConfig"]
