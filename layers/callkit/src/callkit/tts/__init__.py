"""Text-to-speech: the vendor-neutral configuration protocol and the providers callkit ships."""

from __future__ import annotations

from callkit.tts.cartesia import CartesiaTTS
from callkit.tts.reply import TTSConfig

__all__ = ["CartesiaTTS", "TTSConfig"]
