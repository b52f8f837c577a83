"""Running one tool call, the same way in every mode.

The chat agent loop (``callkit.conversation``) and the realtime pipeline both call ``run_tool``:

* an unknown tool, arguments that do not fit and a tool that raises all become an ``Error: ...``
  result the model can tell the caller about; ``asyncio.CancelledError`` (a barge-in, a timeout,
  the call ending) goes through;
* a result is text for the model: strings as they are, ``None`` as ``"Done."``, anything else as
  JSON; at most ``MAX_TOOL_RESULT`` characters;
* a call-control action (``EndCall``, ``Transfer``) is described to the model and handed back as
  ``ToolOutcome.action`` for the call to perform once the model's closing words are spoken.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from callkit.actions import Action, EndCall, Transfer

if TYPE_CHECKING:
    from callkit.agent import Tool

__all__ = ["MAX_TOOL_RESULT", "ToolOutcome", "run_tool"]

log = logging.getLogger(__name__)

#: Longest tool result given to the model (characters); longer ones are cut.
MAX_TOOL_RESULT: Final = 16_000
#: Longest error text given to the model (characters).
MAX_TOOL_ERROR: Final = 1_000


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What one tool call gave: ``text`` for the model, ``error`` when it failed, ``action`` to perform."""

    name: str
    arguments: str
    text: str
    seconds: float
    error: str | None = None
    action: Action | None = None

    def as_record(self) -> dict[str, Any]:
        """The tool call as a turn record keeps it (``TurnRecord.tool_calls``)."""
        return {
            "name": self.name,
            "arguments": self.arguments,
            "result": self.text,
            "seconds": round(self.seconds, 4),
            "error": self.error,
        }


def result_text(value: Any) -> tuple[str, Action | None]:
    """The model's view of a tool's return value, and the action it asks for, if any."""
    if isinstance(value, EndCall | Transfer):
        return value.describe(), value
    if isinstance(value, str):
        text = value
    elif value is None:
        text = "Done."
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text[:MAX_TOOL_RESULT], None


async def run_tool(
    tools: Mapping[str, Tool],
    name: str,
    arguments: str,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> ToolOutcome:
    """Run the tool ``name`` with its JSON ``arguments``; never raises but ``CancelledError``."""
    started = clock()
    tool = tools.get(name)
    if tool is None:
        error = f"Error: there is no tool named {name!r}."
        return ToolOutcome(name, arguments, error, clock() - started, error)
    try:
        value = await tool.invoke(arguments)
        text, action = result_text(value)
    except Exception as exc:  # the model hears about it and can tell the caller
        log.warning("tool failed", extra={"callkit": {"tool": name, "error": type(exc).__name__}})
        error = f"Error: {name} failed: {exc}"[:MAX_TOOL_ERROR]
        return ToolOutcome(name, arguments, error, clock() - started, error)
    return ToolOutcome(name, arguments, text, clock() - started, None, action)
