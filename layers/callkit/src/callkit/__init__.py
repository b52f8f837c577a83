"""callkit: put an AI agent on a phone line, locally or split across Lambda and a small container.

The public API (docs/architecture.md §1)::

    from callkit import Agent, tool, CallInterface, AgentRuntime, OpenAIRealtimeProvider
    from callkit.stt.deepgram import DeepgramSTT
    from callkit.tts.cartesia import CartesiaTTS

``AgentRuntime`` (uvicorn, websockets) is imported on first use so that ``import callkit`` stays
cheap on a Lambda cold path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from callkit.agent import Agent, Tool, tool
from callkit.errors import CallkitError, ConfigurationError
from callkit.interface import CallInterface
from callkit.realtime.openai import OpenAIRealtimeProvider
from callkit.stt.deepgram import DeepgramSTT
from callkit.tts.cartesia import CartesiaTTS

if TYPE_CHECKING:
    from callkit.runtime import AgentRuntime

__all__ = [
    "Agent",
    "AgentRuntime",
    "CallInterface",
    "CallkitError",
    "CartesiaTTS",
    "ConfigurationError",
    "DeepgramSTT",
    "OpenAIRealtimeProvider",
    "Tool",
    "tool",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "AgentRuntime":
        from callkit.runtime import AgentRuntime

        return AgentRuntime
    raise AttributeError(f"module 'callkit' has no attribute {name!r}")
