"""A virtual-time driver for the barge-in machine: the media server, the carrier and the caller.

Time is a number the test moves forward; nothing sleeps. VAD frames are 20 ms apart, as the media
server would feed them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from callkit.bargein import (
    Action,
    AgentFinished,
    AgentPieceSent,
    AgentStarted,
    AgentText,
    BargeInPolicy,
    BargeInState,
    CallerDtmf,
    CallerUtterance,
    CallerVad,
    CallerWords,
    Event,
    MarkPlayed,
    Phase,
    Tick,
    step,
)
from callkit.interface import Interruptible, Sensitivity

FRAME_S = 0.02
A = TypeVar("A", bound=Action)

REPLY = "Your order shipped on Monday and should arrive by Thursday afternoon."


@dataclass
class Sim:
    policy: BargeInPolicy
    now: float = 100.0
    state: BargeInState = field(init=False)
    log: list[tuple[float, Action]] = field(default_factory=list)
    turn: int = 0
    pending: list[str] = field(default_factory=list)
    """Marks sent and not yet reported by the carrier, oldest first."""

    def __post_init__(self) -> None:
        self.state = BargeInState(self.policy)

    @classmethod
    def of(
        cls, interruptible: Interruptible = "any", sensitivity: Sensitivity = "medium", **overrides: Any
    ) -> Sim:
        return cls(replace(BargeInPolicy.from_interface(interruptible, sensitivity), **overrides))

    @property
    def phase(self) -> Phase:
        return self.state.phase

    def feed(self, event: Event, dt: float = 0.0) -> list[Action]:
        self.now = round(self.now + dt, 6)
        self.state, actions = step(self.state, event, self.now)
        self.log += [(self.now, action) for action in actions]
        return actions

    # --- the agent and the carrier ---------------------------------------------------------------

    def reply(
        self, text: str = REPLY, *, piece_chars: int = 5, piece_ms: float = 300.0, finish: bool = True
    ) -> None:
        """Start a turn with its whole text and send all of it, ``piece_chars`` characters a piece.

        Five characters take about 300 ms to say; the media server sends ahead of playback.
        """
        self.turn += 1
        self.feed(AgentStarted(self.turn))
        self.feed(AgentText(text, final=True))
        audio = 0.0
        for seq, end in enumerate(range(piece_chars, len(text) + piece_chars, piece_chars)):
            audio += piece_ms
            mark = f"t{self.turn}-{seq}"
            self.feed(AgentPieceSent(mark, min(end, len(text)), audio))
            self.pending.append(mark)
        if finish:
            self.feed(AgentFinished())

    def play(self, n: int = 1, dt: float = 0.04) -> None:
        """The carrier reports the next ``n`` marks as played, ``dt`` apart."""
        for _ in range(n):
            self.feed(MarkPlayed(self.pending.pop(0)), dt)

    def play_all(self, dt: float = 0.04) -> None:
        self.play(len(self.pending), dt)

    def echo_cleared(self) -> None:
        """Twilio after ``clear``: every pending mark comes back at once (docs/protocols/twilio.md §4)."""
        while self.pending:
            self.feed(MarkPlayed(self.pending.pop(0)))

    # --- the caller ------------------------------------------------------------------------------

    def speech(self, ms: float, *, words: str = "", words_after_ms: float = 200.0) -> None:
        """``ms`` of VAD speech; the STT's interim ``words`` arrive ``words_after_ms`` after onset."""
        for i in range(round(ms / 20)):
            self.feed(CallerVad(True), FRAME_S)
            if words and (i + 1) * 20 == round(words_after_ms):
                self.feed(CallerWords(words))

    def silence(self, ms: float) -> None:
        for _ in range(round(ms / 20)):
            self.feed(CallerVad(False), FRAME_S)

    def words(self, text: str, *, final: bool = False, dt: float = 0.0) -> list[Action]:
        return self.feed(CallerWords(text, is_final=final), dt)

    def utterance(self, text: str, dt: float = 0.0) -> list[Action]:
        return self.feed(CallerUtterance(text), dt)

    def dtmf(self, digit: str, dt: float = 0.0) -> list[Action]:
        return self.feed(CallerDtmf(digit), dt)

    def wait(self, seconds: float, every: float = FRAME_S) -> None:
        """Time passes with ticks (the media server ticks while anything is pending)."""
        for _ in range(round(seconds / every)):
            self.feed(Tick(), every)

    # --- what happened ---------------------------------------------------------------------------

    def of_type(self, kind: type[A]) -> list[A]:
        return [action for _, action in self.log if isinstance(action, kind)]

    def first(self, kind: type[Action]) -> float | None:
        return next((t for t, action in self.log if isinstance(action, kind)), None)
