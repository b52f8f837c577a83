"""What the cascading pipeline knows of any speech recogniser: vendor-neutral events and session.

A vendor module (``callkit.stt.deepgram_session``) turns its wire protocol into these; the pipeline
(``callkit.stream.cascading``) depends on nothing else, so a second STT vendor needs no change
there: an ``STTConfig``, whose ``session()`` returns an ``STTSession``. The socket's policy
(connect, reconnect, held audio) is ``callkit.net.websocket_session``'s; a vendor writes its protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Interim", "STTConfig", "STTEvent", "STTSession", "SpeechStarted", "Utterance"]


@dataclass(frozen=True, slots=True)
class Interim:
    """Non-empty interim text: a barge-in signal, never part of an utterance."""

    text: str


@dataclass(frozen=True, slots=True)
class Utterance:
    """One caller turn, final. Never empty."""

    text: str


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The recogniser heard speech begin at ``timestamp`` (s). A hint only: may be a false positive."""

    timestamp: float


STTEvent = Interim | Utterance | SpeechStarted


class STTSession(Protocol):
    """One call's recogniser connection. Failures are ``ServiceError`` (``retryable`` as they are)."""

    async def start(self) -> None:
        """Connect; raises ``CallkitError`` when the recogniser cannot be had (down, key refused)."""
        ...

    async def send_audio(self, audio: bytes) -> None: ...

    def events(self) -> AsyncIterator[STTEvent]:
        """The caller's words as they come; ends when the session closes, raises when it fails."""
        ...

    async def close(self) -> None: ...


class STTConfig(Protocol):
    """A recogniser's configuration (``CallInterface(stt=...)``): every call opens its own session."""

    def session(self, *, encoding: Literal["mulaw"], sample_rate: Literal[8000]) -> STTSession:
        """A new, unstarted session for one call; the pipeline sends μ-law at 8 kHz (a phone line)."""
        ...
