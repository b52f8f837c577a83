"""The conversation as the model should see it: every turn, with interrupted replies cut to what
the caller actually heard (docs/architecture.md §2.5; docs/protocols/twilio.md §5 ``utteranceUntilInterrupt``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from callkit.llm.protocol import Message, from_wire

if TYPE_CHECKING:
    from callkit.store._base import TurnRecord


def _cut_to_heard(messages: list[dict[str, Any]], heard: str) -> list[dict[str, Any]]:
    """Replace the spoken reply (the last assistant message with text) by what was heard."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") == "assistant" and message.get("content"):
            if heard:
                messages[index] = {**message, "content": heard}
            elif message.get("tool_calls"):
                messages[index] = {**message, "content": None}
            else:  # nothing was heard: as if the reply never happened
                del messages[index]
            break
    return messages


def build_history(turns: Sequence[TurnRecord]) -> list[Message]:
    """Chat messages for the next turn, oldest first."""
    wire: list[dict[str, Any]] = []
    for turn in turns:
        messages = list(json.loads(turn.messages or "[]"))
        if turn.heard_text is not None:
            messages = _cut_to_heard(messages, turn.heard_text)
        wire.extend(messages)
    return from_wire(wire)
