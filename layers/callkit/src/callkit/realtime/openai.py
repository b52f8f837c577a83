"""OpenAI Realtime (GA protocol) configuration (docs/protocols/ai-providers.md §3).

This object is a configuration; every call opens its own session from it. The client arrives with
the realtime pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from callkit._env import masked, resolve
from callkit.errors import ConfigurationError

if TYPE_CHECKING:
    from callkit.realtime.openai_session import OpenAIRealtimeSession

ENV_OPENAI_API_KEY: Final = "OPENAI_API_KEY"
OPENAI_REALTIME_URL: Final = "wss://api.openai.com/v1/realtime"
#: GA voices (docs/protocols/ai-providers.md §3.2).
VOICES: Final = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
)


@dataclass(frozen=True, slots=True, repr=False)
class OpenAIRealtimeProvider:
    """OpenAI Realtime settings; parameter names follow the seed API.

    The seed targeted the retired beta protocol; on GA ``max_response_output_tokens`` becomes
    ``max_output_tokens`` and ``temperature`` no longer exists in the session (kept here so seed code
    constructs unchanged; it is validated but not sent). ``turn_detection`` overrides the
    server-VAD settings that ``interrupt_sensitivity`` would otherwise choose.
    """

    api_key: str = ""
    model: str = "gpt-realtime"
    voice: str = "alloy"
    temperature: float = 0.8
    max_response_output_tokens: int | str = "inf"
    turn_detection: Mapping[str, Any] | None = field(default=None)
    transcription_model: str = "gpt-4o-mini-transcribe"
    base_url: str = OPENAI_REALTIME_URL

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_key", resolve(self.api_key, ENV_OPENAI_API_KEY))
        if self.voice not in VOICES:
            raise ConfigurationError(
                f"OpenAIRealtimeProvider voice={self.voice!r} is not a Realtime voice: {', '.join(sorted(VOICES))}"
            )
        tokens = self.max_response_output_tokens
        if not (tokens == "inf" or (isinstance(tokens, int) and 1 <= tokens <= 4096)):
            raise ConfigurationError("max_response_output_tokens must be 1-4096 or 'inf'")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigurationError("temperature must be between 0 and 2")
        if self.turn_detection is not None and self.turn_detection.get("type") not in (
            "server_vad",
            "semantic_vad",
        ):
            raise ConfigurationError("turn_detection['type'] must be 'server_vad' or 'semantic_vad'")

    def url(self) -> str:
        return f"{self.base_url}?model={self.model}"

    def session(self) -> OpenAIRealtimeSession:
        """A new, unconnected session for one call (``await session.connect(session_update(...))``)."""
        from callkit.realtime.openai_session import OpenAIRealtimeSession

        return OpenAIRealtimeSession(self)

    def __repr__(self) -> str:
        return f"OpenAIRealtimeProvider(model={self.model!r}, voice={self.voice!r}, api_key={masked(self.api_key)})"
