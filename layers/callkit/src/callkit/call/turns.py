"""The record of one turn, the same in every mode, built from the agent loop's own events.

The relay and the cascading pipeline feed ``TurnLog.observe`` every event of ``run_turn`` (tool
calls, actions, the completed turn with its messages); the realtime pipeline feeds the same log
from the session's events (``add_tool``, ``add_messages``). ``record`` then makes the
``TurnRecord``: latency measured once, tool calls kept in every mode.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callkit.conversation import ActionRequested, ToolFinished, TurnCompleted
from callkit.llm.protocol import to_wire
from callkit.store._base import TurnRecord

if TYPE_CHECKING:
    from callkit.actions import Action
    from callkit.call.tools import ToolOutcome
    from callkit.conversation import TurnEvent
    from callkit.store._base import CallRecord, TurnKind

__all__ = ["TurnLog"]


@dataclass
class TurnLog:
    """One turn as it happens: who said what, the tools it ran, its timings."""

    call: CallRecord
    number: int
    kind: TurnKind
    caller_text: str = ""
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    tools: list[dict[str, Any]] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    completed: TurnCompleted | None = None
    first_output_ms: float | None = None  # to the first words or audio handed to the carrier
    started: float = field(init=False)
    started_at: float = field(init=False)

    def __post_init__(self) -> None:
        self.started, self.started_at = self.clock(), self.wall()

    def observe(self, event: TurnEvent) -> None:
        """Take what a record needs from one ``run_turn`` event."""
        if isinstance(event, ToolFinished):
            self.tools.append(event.as_record())
        elif isinstance(event, ActionRequested):
            self.actions.append(event.action)
        elif isinstance(event, TurnCompleted):
            self.completed = event

    def add_tool(self, outcome: ToolOutcome) -> None:
        self.tools.append(outcome.as_record())
        if outcome.action is not None:
            self.actions.append(outcome.action)

    def output_started(self) -> None:
        """The first words or audio of this turn went to the carrier (kept once)."""
        if self.first_output_ms is None:
            self.first_output_ms = (self.clock() - self.started) * 1000

    def messages(self, spoken: str) -> list[dict[str, Any]]:
        """The chat messages of the turn: the agent loop's own, else who said what."""
        if self.completed is not None:
            return to_wire(self.completed.new_messages)
        said = [{"role": "user", "content": self.caller_text}] if self.caller_text else []
        return said + ([{"role": "assistant", "content": spoken}] if spoken else [])

    def record(self, *, spoken: str, messages: list[dict[str, Any]] | None = None) -> TurnRecord:
        """The turn as stored: ``spoken`` is what this turn sent to be spoken."""
        return TurnRecord(
            call_id=self.call.call_id,
            turn=self.number,
            kind=self.kind,
            caller_text=self.caller_text,
            assistant_text=spoken,
            messages=json.dumps(messages if messages is not None else self.messages(spoken)),
            tool_calls=json.dumps(self.tools),
            started_at=self.started_at,
            first_token_ms=self.first_output_ms,
            total_ms=(self.clock() - self.started) * 1000,
            expires_at=self.call.expires_at,
        )
