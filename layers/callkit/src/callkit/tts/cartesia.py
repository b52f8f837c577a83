"""Cartesia streaming TTS: configuration and request shapes (docs/protocols/ai-providers.md §2).

This object is a configuration; every call opens its own socket from it with ``session()``: the
client is ``callkit.tts.cartesia_session`` (needs ``websockets``), the messages ``cartesia_protocol``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from callkit._env import masked, resolve
from callkit.errors import ConfigurationError

if TYPE_CHECKING:
    from callkit.tts.cartesia_protocol import Encoding, SampleRate
    from callkit.tts.cartesia_session import CartesiaSession

ENV_CARTESIA_API_KEY: Final = "CARTESIA_API_KEY"
CARTESIA_TTS_URL: Final = "wss://api.cartesia.ai/tts/websocket"
#: A version date that maintained clients send today (docs/protocols/ai-providers.md §2.1).
CARTESIA_VERSION: Final = "2026-03-01"

Speed = Literal["slow", "normal", "fast"]
_SPEEDS: Final[dict[str, float]] = {"slow": 0.8, "normal": 1.0, "fast": 1.2}


@dataclass(frozen=True, slots=True, repr=False)
class CartesiaTTS:
    """Cartesia Sonic settings; parameter names follow the seed API.

    ``model`` defaults to ``sonic-3``: the seed's ``sonic-2`` now serves only dated snapshots
    (docs/protocols/ai-providers.md §2.2). ``speed`` maps to ``generation_config.speed``.
    """

    api_key: str = ""
    model: str = "sonic-3"
    voice_id: str = ""
    language: str = "en"
    speed: Speed = "normal"
    cartesia_version: str = CARTESIA_VERSION
    base_url: str = CARTESIA_TTS_URL

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_key", resolve(self.api_key, ENV_CARTESIA_API_KEY))
        if self.speed not in _SPEEDS:
            raise ConfigurationError(
                f"CartesiaTTS speed={self.speed!r} is not one of 'slow', 'normal', 'fast'"
            )

    @property
    def generation_speed(self) -> float:
        return _SPEEDS[self.speed]

    def require_voice(self) -> str:
        """The voice id; a call cannot be spoken without one."""
        if not self.voice_id:
            raise ConfigurationError("CartesiaTTS needs voice_id= (a voice UUID from the Cartesia console)")
        return self.voice_id

    def session(
        self,
        *,
        encoding: Encoding = "pcm_mulaw",
        sample_rate: SampleRate = 8000,
        add_timestamps: bool = False,
    ) -> CartesiaSession:
        """A new, unconnected session for one call (``await session.connect()`` or ``async with``)."""
        from callkit.tts.cartesia_session import CartesiaSession

        return CartesiaSession(
            self, encoding=encoding, sample_rate=sample_rate, add_timestamps=add_timestamps
        )

    def __repr__(self) -> str:
        return (
            f"CartesiaTTS(model={self.model!r}, voice_id={self.voice_id!r}, api_key={masked(self.api_key)})"
        )
