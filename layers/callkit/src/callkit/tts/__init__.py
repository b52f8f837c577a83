"""Text-to-speech provider configurations (cascading pipeline)."""

from __future__ import annotations

from callkit.tts.cartesia import CartesiaTTS

TTSConfig = CartesiaTTS
"""Every TTS configuration callkit knows; a union as more providers arrive."""

__all__ = ["CartesiaTTS", "TTSConfig"]
