"""Deepgram live transcription: configuration and the listen URL (docs/protocols/ai-providers.md §1).

This object is a configuration. Every call opens its own socket from it (docs/architecture.md §1.2) with
``session()``; the client is ``callkit.stt.deepgram_session`` (needs ``websockets``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

from callkit._env import masked, resolve
from callkit.errors import ConfigurationError

if TYPE_CHECKING:
    from callkit.stt.deepgram_session import DeepgramSession, SessionPolicy

ENV_DEEPGRAM_API_KEY: Final = "DEEPGRAM_API_KEY"
DEEPGRAM_LISTEN_URL: Final = "wss://api.deepgram.com/v1/listen"


@dataclass(frozen=True, slots=True, repr=False)
class DeepgramSTT:
    """Deepgram streaming STT settings; parameter names follow the seed API.

    ``endpointing`` is the silence (ms) that ends a segment with ``speech_final``; ``0`` turns it
    off. ``utterance_end_ms`` needs ``interim_results``. ``keyterms`` (Nova-3 only) bias
    recognition towards product names and the like.
    """

    api_key: str = ""
    model: str = "nova-3"
    language: str = "en-US"
    interim_results: bool = True
    endpointing: int = 300
    vad_events: bool = True
    utterance_end_ms: int = 1000
    smart_format: bool = True
    punctuate: bool = True
    keepalive_interval: float = 5.0
    keyterms: tuple[str, ...] = field(default=())
    base_url: str = DEEPGRAM_LISTEN_URL

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_key", resolve(self.api_key, ENV_DEEPGRAM_API_KEY))
        if self.endpointing < 0:
            raise ConfigurationError("DeepgramSTT endpointing must be >= 0 ms (0 turns it off)")
        if self.utterance_end_ms and not self.interim_results:
            raise ConfigurationError(
                "DeepgramSTT utterance_end_ms needs interim_results=True (Deepgram rule)"
            )
        if self.utterance_end_ms and self.utterance_end_ms < 1000:
            raise ConfigurationError(
                "DeepgramSTT utterance_end_ms below 1000 adds nothing (interim results arrive about once a "
                "second); use 1000 or more, or 0 to turn it off"
            )
        if not 1.0 <= self.keepalive_interval < 10.0:
            raise ConfigurationError(
                "DeepgramSTT keepalive_interval must be between 1 and 10 seconds: Deepgram closes an idle "
                "socket after about 10 s"
            )

    def url(self, *, encoding: str = "mulaw", sample_rate: int = 8000, channels: int = 1) -> str:
        """The listen URL for one call's audio format."""
        params: list[tuple[str, str]] = [
            ("model", self.model),
            ("language", self.language),
            ("encoding", encoding),
            ("sample_rate", str(sample_rate)),
            ("channels", str(channels)),
            ("interim_results", _flag(self.interim_results)),
            ("endpointing", str(self.endpointing) if self.endpointing else "false"),
            ("vad_events", _flag(self.vad_events)),
            ("smart_format", _flag(self.smart_format)),
            ("punctuate", _flag(self.punctuate)),
        ]
        if self.utterance_end_ms:
            params.append(("utterance_end_ms", str(self.utterance_end_ms)))
        params.extend(("keyterm", term) for term in self.keyterms)
        return f"{self.base_url}?{urlencode(params)}"

    def session(
        self,
        *,
        encoding: str = "mulaw",
        sample_rate: int = 8000,
        channels: int = 1,
        policy: SessionPolicy | None = None,
    ) -> DeepgramSession:
        """A new, unstarted session for one call (``await session.start()`` or ``async with``)."""
        from callkit.stt.deepgram_session import DeepgramSession, SessionPolicy

        return DeepgramSession(
            self,
            encoding=encoding,
            sample_rate=sample_rate,
            channels=channels,
            policy=policy or SessionPolicy(),
        )

    def __repr__(self) -> str:
        return (
            f"DeepgramSTT(model={self.model!r}, language={self.language!r}, api_key={masked(self.api_key)})"
        )


def _flag(value: bool) -> str:
    return "true" if value else "false"
