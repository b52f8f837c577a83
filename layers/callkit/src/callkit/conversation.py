"""One agent turn: the caller said something, the agent answers, calling tools on the way.

``run_turn`` is shared by the relay function (one turn per Lambda invocation, history kept as JSON
between them) and the media server (turns cancelled on barge-in). It yields what the caller
should hear as the model streams it, and ends with ``TurnCompleted`` carrying the messages to
append to the history.

Rules, in the order they come up:

* the agent's instructions lead the conversation as a system message (unless the history already
  starts with one);
* tools run through ``callkit.call.tools.run_tool`` (the same runner as the realtime pipeline's):
  a tool that raises, an unknown tool and arguments that do not fit all become an ``Error: ...``
  tool result, and the turn goes on;
* a tool may return a call-control action (``callkit.actions``): the model receives
  ``action.describe()``, the turn yields ``ActionRequested`` and gives the model one more round,
  without tools, for its closing words;
* after ``max_tool_rounds`` rounds of tool calls the model is asked once more with
  ``tool_choice="none"``;
* a caller waiting on a slow model hears ``filler`` (when given: "One moment, please.") once
  ``filler_after`` seconds pass with nothing said yet this turn; the model's words follow it;
* tool calls of an answer cut off by the length limit (``finish_reason: "length"``) are not run:
  their arguments may be cut too;
* no model event (text, or a whole tool call) within ``first_token_timeout`` of a request, none
  for ``stall_timeout`` once it has started answering, a turn longer than ``turn_timeout``
  (tools included), a model, transport or protocol error, or an answer with nothing to say: the
  caller hears ``APOLOGY`` and the turn completes with it. Never silence, never an exception out
  of the generator, except ``asyncio.CancelledError``, which goes through at once (barge-in)
  after closing the model's HTTP response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from callkit.actions import Action
from callkit.agent import Agent
from callkit.call.phrases import Phrases
from callkit.call.tools import MAX_TOOL_RESULT, ToolOutcome, run_tool
from callkit.errors import CallkitError, EmptyAnswerError
from callkit.llm.openai_chat import ChatModel
from callkit.llm.protocol import (
    AssistantMessage,
    ChatEvent,
    Finished,
    Message,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolCallDone,
    ToolMessage,
    Usage,
    UserMessage,
)

__all__ = [
    "APOLOGY",
    "MAX_TOOL_RESULT",
    "ActionRequested",
    "EmptyAnswerError",
    "Speech",
    "ToolFinished",
    "ToolStarted",
    "TurnCompleted",
    "TurnEvent",
    "run_turn",
]

log = logging.getLogger(__name__)

#: What the caller hears when the turn cannot produce an answer (``Phrases.turn_apology``).
APOLOGY: Final = Phrases().turn_apology


@dataclass(frozen=True, slots=True)
class Speech:
    """Text for the caller to hear, in the order it streams; together they are the turn's answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolStarted:
    call: ToolCall


@dataclass(frozen=True, slots=True)
class ToolFinished:
    """A tool call ended; ``error`` is set (and is also ``result_text``) when it failed."""

    call: ToolCall
    result_text: str
    seconds: float
    error: str | None = None

    def as_record(self) -> dict[str, Any]:
        """The tool call as a turn record keeps it (``TurnRecord.tool_calls``), in every mode."""
        return ToolOutcome(
            self.call.name, self.call.arguments, self.result_text, self.seconds, self.error
        ).as_record()


@dataclass(frozen=True, slots=True)
class ActionRequested:
    """A tool asked to end or transfer the call; act on it once the turn has completed."""

    action: Action


@dataclass(frozen=True, slots=True)
class TurnCompleted:
    """The turn is over.

    ``new_messages`` (the user's message first) are what to append to the history;
    ``assistant_text`` is everything the caller heard this turn (the ``Speech`` texts joined);
    ``first_token_seconds`` is the time to the first ``Speech`` (``None`` if nothing was said);
    ``usage`` sums the model's token counts where it reported them; ``error`` names the failure
    that made the turn apologise.
    """

    new_messages: list[Message]
    assistant_text: str
    first_token_seconds: float | None
    total_seconds: float
    tool_rounds: int
    usage: Usage | None
    actions: tuple[Action, ...] = ()
    error: str | None = None


TurnEvent = Speech | ToolStarted | ToolFinished | ActionRequested | TurnCompleted


def _joined(spoken: list[str], text: str) -> str:
    """``text`` with a space in front if it would otherwise run into what was already said."""
    if spoken and spoken[-1] and not spoken[-1][-1].isspace() and text and not text[0].isspace():
        return " " + text
    return text


class _Reader:
    """Reads a model stream under deadlines; a read still waiting when the filler is due goes on."""

    def __init__(self, stream: AsyncIterator[ChatEvent]) -> None:
        self.stream = stream
        self._read: asyncio.Future[ChatEvent] | None = None

    async def next(
        self, limit: float, filler_at: float | None, clock: Callable[[], float]
    ) -> ChatEvent | None:
        """The next event by ``limit`` (else ``TimeoutError``), or ``None`` at ``filler_at`` if sooner."""
        # Eager: a model whose next event is ready (a buffered SSE chunk) hands it over at once,
        # without a trip through the event loop's queue (bench/media.py at 100 calls).
        read = self._read = self._read or asyncio.Task(
            self._next(), loop=asyncio.get_running_loop(), eager_start=True
        )
        if read.done():
            self._read = None
            return read.result()
        until = limit if filler_at is None or filler_at >= limit else filler_at
        done, _ = await asyncio.wait({read}, timeout=max(0.0, until - clock()))
        if read in done:
            self._read = None
            return read.result()
        if until < limit:
            return None  # the read goes on; aclose() stops it if nobody comes back for it
        raise TimeoutError("the model did not answer in time")

    async def _next(self) -> ChatEvent:
        return await anext(self.stream)

    async def aclose(self) -> None:
        """Stop a read in flight, then close the stream (its HTTP response with it)."""
        read, self._read = self._read, None
        if read is not None:
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, CallkitError):
                await read
        await _close(self.stream)


async def _close(stream: AsyncIterator[ChatEvent]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def run_turn(
    agent: Agent,
    model: ChatModel,
    history: Sequence[Message],
    user_text: str,
    *,
    max_tool_rounds: int = 4,
    turn_timeout: float = 30.0,
    first_token_timeout: float = 10.0,
    stall_timeout: float = 5.0,
    apology: str = APOLOGY,
    filler: str | None = None,
    filler_after: float = 2.5,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[TurnEvent, None]:
    """Answer ``user_text`` after ``history``; see the module docstring for the rules.

    ``apology`` and ``filler`` are what the caller hears when the turn fails and while a slow model
    is awaited (the interface's ``Phrases``).
    """
    started = clock()
    deadline = started + turn_timeout
    user = UserMessage(user_text)
    new: list[Message] = [user]
    context: list[Message] = list(history)
    if agent.instructions and not (context and isinstance(context[0], SystemMessage)):
        context.insert(0, SystemMessage(agent.instructions))
    context.append(user)
    schemas = [tool.openai_schema() for tool in agent.tools.values()]

    spoken: list[str] = []
    first_token: float | None = None
    usage: Usage | None = None
    actions: list[Action] = []
    rounds = 0
    round_text: list[str] = []
    unanswered: list[ToolCall] = []
    error: str | None = None

    def record(message: Message) -> None:
        new.append(message)
        context.append(message)

    try:
        while True:
            closing = bool(actions) or rounds >= max_tool_rounds
            calls: list[ToolCall] = []
            round_text = []
            round_started = clock()
            reader = _Reader(
                model.stream(context, schemas, tool_choice="none" if closing and schemas else None)
            )
            truncated = False
            try:
                last_event: float | None = None
                while True:
                    if last_event is None:
                        limit = min(deadline, round_started + first_token_timeout)
                    else:
                        limit = min(deadline, last_event + stall_timeout)
                    filler_at = round_started + filler_after if filler and not spoken else None
                    try:
                        event = await reader.next(limit, filler_at, clock)
                    except StopAsyncIteration:
                        break
                    if event is None:  # still waiting on the model: the caller hears the filler
                        assert filler is not None
                        spoken.append(filler)
                        if first_token is None:
                            first_token = clock() - started
                        yield Speech(filler)
                        continue
                    last_event = clock()
                    if isinstance(event, TextDelta):
                        text = _joined(spoken, event.text) if not round_text else event.text
                        round_text.append(text)
                        spoken.append(text)
                        if first_token is None:
                            first_token = clock() - started
                        yield Speech(text)
                    elif isinstance(event, ToolCallDone):
                        calls.append(event.call)
                    elif isinstance(event, Finished):
                        truncated = event.reason == "length"
                        if event.usage is not None:
                            usage = event.usage if usage is None else usage + event.usage
            finally:
                await reader.aclose()
            if truncated and calls:
                log.warning(
                    "tool calls cut off by the length limit not run", extra={"callkit": {"calls": len(calls)}}
                )
                calls = []

            if not calls or closing:
                # Tool calls in a closing round are dropped: nothing would answer them.
                if round_text:
                    record(AssistantMessage("".join(round_text)))
                if not spoken and not actions:
                    raise EmptyAnswerError("the model answered with nothing to say")
                break

            record(AssistantMessage("".join(round_text) or None, tuple(calls)))
            round_text = []
            rounds += 1
            unanswered = list(calls)
            for call in calls:
                yield ToolStarted(call)
                async with asyncio.timeout(max(0.0, deadline - clock())):
                    outcome = await run_tool(agent.tools, call.name, call.arguments, clock=clock)
                yield ToolFinished(call, outcome.text, outcome.seconds, outcome.error)
                record(ToolMessage(call.id, outcome.text))
                unanswered.remove(call)
                if outcome.action is not None:
                    actions.append(outcome.action)
                    yield ActionRequested(outcome.action)
    except Exception as exc:  # the caller must hear something; CancelledError is not caught
        error = type(exc).__name__
        if isinstance(exc, CallkitError | TimeoutError):
            # The error's text can quote the provider's body (and so the caller's words): type only.
            log.warning("agent turn failed", extra={"callkit": {"error": error}})
        else:
            log.error("agent turn failed unexpectedly", exc_info=True, extra={"callkit": {"error": error}})
        for call in unanswered:  # every tool call in the history needs its result
            record(ToolMessage(call.id, "Error: not run, the turn was interrupted."))
        said = _joined(spoken, apology)
        spoken.append(said)
        if first_token is None:
            first_token = clock() - started
        record(AssistantMessage("".join([*round_text, said])))
        yield Speech(said)

    yield TurnCompleted(
        new_messages=new,
        assistant_text="".join(spoken),
        first_token_seconds=first_token,
        total_seconds=clock() - started,
        tool_rounds=rounds,
        usage=usage,
        actions=tuple(actions),
        error=error,
    )
