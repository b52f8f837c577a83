"""Speech-to-speech provider configurations (realtime pipeline)."""

from __future__ import annotations

from callkit.realtime.openai import OpenAIRealtimeProvider

RealtimeConfig = OpenAIRealtimeProvider
"""Every realtime configuration callkit knows; a union as more providers arrive."""

__all__ = ["OpenAIRealtimeProvider", "RealtimeConfig"]
