"""The playback ledger: which part of the agent's reply the caller has actually heard.

Barge-in follows playback, not generation (docs/architecture.md §2.6). The media server sends the reply to the
carrier in 20–50 ms pieces, each followed by a named mark (Twilio ``mark``, Plivo ``checkpoint``),
and the carrier reports each mark once the audio before it has played. The ledger keeps the pieces
sent but not yet reported, and the text offset and audio length reached by the last reported one.

What counts as heard: the reply text up to the **last played mark**, nothing of the piece in flight.
A piece is 20–50 ms of audio, shorter than one spoken word, so a proportional share of it would
never add a whole word; and under-counting is the safe side (the model repeats a few words rather
than believing the caller heard something they did not).

After a clear, marks stop counting (``cleared``). Twilio echoes every pending mark when ``clear``
discards it, indistinguishable from a mark that really played (docs/protocols/twilio.md §4); Plivo acknowledges
only checkpoints that played (docs/protocols/plivo.md §5). One rule serves both: what was heard is frozen at the
moment we decided to clear. The cost is at most the pieces that played while ``clear`` travelled to
the carrier (one network trip, well under a word).

Every method is pure: it returns a new ledger. Mark names must be unique per call (for example
``f"{turn}-{seq}"``): an echo of an older turn's mark is recognised only because its name is not
pending in this one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from callkit.errors import TransitionError

__all__ = ["Piece", "PlaybackLedger"]


@dataclass(frozen=True, slots=True)
class Piece:
    """One piece of the reply handed to the carrier, followed by the mark ``mark``."""

    mark: str
    text_end: int
    """Offset in the reply text reached when this piece has played."""
    audio_end_ms: float
    """Audio length of the reply, from its start, reached when this piece has played."""


@dataclass(frozen=True, slots=True)
class PlaybackLedger:
    """One reply's playback: its text so far, the pieces in the carrier's queue, what was heard."""

    turn: int
    text: str = ""
    text_complete: bool = False
    """The reply text is whole (no more ``append``); set by ``append(final=True)`` or ``finish``."""
    pending: tuple[Piece, ...] = ()
    sent_text_end: int = 0
    sent_audio_ms: float = 0.0
    played_text_end: int = 0
    played_audio_ms: float = 0.0
    finished: bool = False
    """The last piece has been queued (``AgentFinished``)."""
    cleared: bool = False
    """We cleared the carrier's queue: later marks do not count as played."""
    expected_end: float = float("-inf")
    """Virtual time by which everything sent should have played: pieces play one after another,
    each no earlier than it was sent."""

    def append(self, text: str, *, final: bool = False) -> PlaybackLedger:
        """More reply text, as it streams from the model to the TTS."""
        if self.text_complete and text:
            raise TransitionError(f"turn {self.turn}: reply text after the text was complete")
        return replace(self, text=self.text + text, text_complete=self.text_complete or final)

    def sent(self, mark: str, text_end: int, audio_end_ms: float, now: float) -> PlaybackLedger:
        """A piece went to the carrier at ``now``, followed by ``mark``."""
        if self.finished or self.cleared:
            raise TransitionError(f"turn {self.turn}: a piece sent after the reply was finished or cleared")
        if not self.sent_text_end <= text_end <= len(self.text):
            raise TransitionError(
                f"turn {self.turn}: piece text_end {text_end} outside {self.sent_text_end}..{len(self.text)}"
            )
        if audio_end_ms < self.sent_audio_ms:
            raise TransitionError(f"turn {self.turn}: piece audio_end_ms goes backwards")
        if any(piece.mark == mark for piece in self.pending):
            raise TransitionError(f"turn {self.turn}: mark {mark!r} is already pending")
        duration = (audio_end_ms - self.sent_audio_ms) / 1000
        return replace(
            self,
            pending=(*self.pending, Piece(mark, text_end, audio_end_ms)),
            sent_text_end=text_end,
            sent_audio_ms=audio_end_ms,
            expected_end=max(self.expected_end, now) + duration,
        )

    def played(self, mark: str) -> PlaybackLedger:
        """The carrier reports ``mark``; carriers play in order, so every earlier piece played too.

        A mark not pending here (an older turn's, a repeat) and any mark after a clear change nothing.
        """
        if self.cleared:
            return self
        for index, piece in enumerate(self.pending):
            if piece.mark == mark:
                return replace(
                    self,
                    pending=self.pending[index + 1 :],
                    played_text_end=piece.text_end,
                    played_audio_ms=piece.audio_end_ms,
                )
        return self

    def finish(self) -> PlaybackLedger:
        """The last piece has been queued; the text is complete."""
        if self.finished or self.cleared:
            raise TransitionError(f"turn {self.turn}: finished twice or after a clear")
        return replace(self, finished=True, text_complete=True)

    def clear(self) -> PlaybackLedger:
        """We send ``clear`` / ``clearAudio``: what was heard is fixed from here on."""
        return replace(self, cleared=True)

    @property
    def drained(self) -> bool:
        """Every piece of a finished reply has played."""
        return self.finished and not self.pending

    def overdue_at(self, grace_s: float) -> float | None:
        """When a finished reply still waiting for marks is taken as played anyway: ``grace_s``
        after its audio should have ended (an echo lost by the carrier must not hold the agent)."""
        if self.finished and self.pending:
            return self.expected_end + grace_s
        return None

    def heard_text(self) -> str:
        """The reply text up to the last played mark."""
        return self.text[: self.played_text_end]

    def heard_ms(self) -> float:
        """Milliseconds of the reply played, up to the last played mark."""
        return self.played_audio_ms

    def unheard_text(self) -> str:
        """The reply text after the last played mark (sent or not)."""
        return self.text[self.played_text_end :]
