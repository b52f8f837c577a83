"""What the cascading pipeline knows of any speech synthesiser: a session of replies.

A vendor module (``callkit.tts.cartesia_session``) implements these over its wire protocol; the
pipeline (``callkit.stream.cascading``) depends on nothing else, so a second TTS vendor needs no
change there: a ``TTSConfig``, whose ``session()`` returns a ``TTSSession``. The socket's policy is
``callkit.net.websocket_session``'s; a vendor writes its protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, Protocol

__all__ = ["TTSConfig", "TTSReply", "TTSSession"]


class TTSReply(Protocol):
    """One reply: text in as it streams, audio out in the session's encoding."""

    async def send(self, text: str) -> None:
        """More text of the reply (speakable pieces, in order)."""
        ...

    async def end(self) -> None:
        """No more text: the audio ends once what was sent is spoken."""
        ...

    async def cancel(self) -> None:
        """Stop at once (a barge-in); no more audio comes."""
        ...

    def audio(self) -> AsyncIterator[bytes]:
        """The reply's audio until it is done; raises ``ServiceError`` when synthesis fails."""
        ...


class TTSSession(Protocol):
    """One call's synthesiser connection; replies are made one after another."""

    async def connect(self) -> None:
        """Connect; raises ``CallkitError`` when the synthesiser cannot be had (down, key refused)."""
        ...

    def new_reply(self) -> TTSReply: ...

    async def aclose(self) -> None: ...


class TTSConfig(Protocol):
    """A synthesiser's configuration (``CallInterface(tts=...)``): every call opens its own session."""

    def session(self, *, encoding: Literal["pcm_mulaw"], sample_rate: Literal[8000]) -> TTSSession:
        """A new, unconnected session for one call; the pipeline plays μ-law at 8 kHz (a phone line)."""
        ...
