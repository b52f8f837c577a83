"""How a call ends, once: a pure state machine and the driver that performs its actions.

::

             CallerHungUp (from anywhere but ENDED) ──────────────────────────────▶ ENDED
    LIVE ──── MaxDuration / Drain / Failed(voice works) ─▶ ENDING: speak (our voice) ─┐
      │  ──── Failed(voice down) ───────────────────────▶ ENDING: speak (carrier)  ──┤
      │  ──── AgentEnded ───────────────────────────────▶ ENDING: hang up ───────────┤
      │  ──── TransferRequested ────────────────────────▶ ENDING: transfer ──────────┤
      ▲                                                                               ▼
      └── transfer refused by the carrier (the agent is told)                       ENDED

* The first reason to end wins; every later one is ignored while the ending runs. So a voice that
  keeps failing, a deadline that fires during an apology or a second failed task cannot start a
  second goodbye or a second hang-up: exactly one of each per call.
* Our closing words go through the pipeline's voice (``SpeakThroughVoice``); when that voice is
  down, or fails while speaking, the carrier speaks them instead (``SpeakThroughCarrier``: Twilio
  ``<Say>``, Plivo ``<Speak>``, both followed by a hang-up), as a caller must never be left in
  silence. A carrier that cannot be reached leaves ``Finish``: closing the media stream ends a
  ``<Connect><Stream>`` call too.
* A refused transfer goes back to ``LIVE`` and tells the agent (``PromptAgent``), which can say so.

``step(state, event) -> (state, actions)`` is pure; ``CallEnding`` runs the actions in one task of
the call (so stopping the agent's turn never cancels the ending itself) and feeds their results
back as events.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol, assert_never

from callkit.errors import CallkitError, TransitionError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from callkit.call.phrases import Phrases
    from callkit.call.tasks import CallTasks
    from callkit.telemetry import Telemetry

__all__ = [
    "AgentEnded",
    "CallEnding",
    "CallerHungUp",
    "CarrierActions",
    "Drain",
    "EndingState",
    "Failed",
    "MaxDuration",
    "Phase",
    "TransferRequested",
    "Voice",
    "step",
]


class Phase(StrEnum):
    LIVE = "live"
    ENDING = "ending"
    ENDED = "ended"


Doing = Literal["", "voice", "carrier", "hangup", "transfer"]


@dataclass(frozen=True, slots=True)
class EndingState:
    phase: Phase = Phase.LIVE
    reason: str = ""
    doing: Doing = ""  # the action whose result the machine waits for (``ENDING`` only)
    words: str = ""  # the closing words, kept for the carrier when our voice fails


# --- events: why the call ends ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    pass


@dataclass(frozen=True, slots=True)
class MaxDuration:
    pass


@dataclass(frozen=True, slots=True)
class Drain:
    """The server is going away under a live call (its drain deadline is near)."""


@dataclass(frozen=True, slots=True)
class Failed:
    """The call cannot go on (a provider or the call state failed). ``voice_works``: our voice can
    still speak the apology (the speech recogniser or the model failed, not the TTS)."""

    cause: str
    voice_works: bool


@dataclass(frozen=True, slots=True)
class AgentEnded:
    """A tool returned ``EndCall``; its closing words have been spoken."""


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """A tool returned ``Transfer``; its closing words have been spoken."""

    to: str


# --- events: how an action went ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VoiceDone:
    pass


@dataclass(frozen=True, slots=True)
class VoiceFailed:
    pass


@dataclass(frozen=True, slots=True)
class CarrierDone:
    pass


@dataclass(frozen=True, slots=True)
class CarrierFailed:
    pass


Event = (
    CallerHungUp
    | MaxDuration
    | Drain
    | Failed
    | AgentEnded
    | TransferRequested
    | VoiceDone
    | VoiceFailed
    | CarrierDone
    | CarrierFailed
)

# --- actions ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StopAgent:
    """Clear what is playing and cancel the agent's turn: our own words come next."""


@dataclass(frozen=True, slots=True)
class SpeakThroughVoice:
    text: str


@dataclass(frozen=True, slots=True)
class SpeakThroughCarrier:
    """The carrier speaks ``text`` and hangs up (REST)."""

    text: str


@dataclass(frozen=True, slots=True)
class HangUp:
    pass


@dataclass(frozen=True, slots=True)
class TransferTo:
    to: str


@dataclass(frozen=True, slots=True)
class PromptAgent:
    """Give the agent a turn with ``text`` (a note the caller does not hear)."""

    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str


Action = StopAgent | SpeakThroughVoice | SpeakThroughCarrier | HangUp | TransferTo | PromptAgent | Finish
Step = tuple[EndingState, list[Action]]


def step(state: EndingState, event: Event, phrases: Phrases) -> Step:
    """The ending's next state and what to do; see the module docstring."""
    if state.phase is Phase.ENDED:
        return state, []
    if isinstance(event, CallerHungUp):
        return EndingState(Phase.ENDED, state.reason or "caller hung up"), [
            Finish(state.reason or "caller hung up")
        ]
    if state.phase is Phase.LIVE:
        return _live(state, event, phrases)
    return _ending(state, event, phrases)


def _live(state: EndingState, event: Event, phrases: Phrases) -> Step:
    if isinstance(event, MaxDuration | Drain):
        words = phrases.goodbye if isinstance(event, MaxDuration) else phrases.shutdown
        reason = "max-duration" if isinstance(event, MaxDuration) else "drain"
        return EndingState(Phase.ENDING, reason, "voice", words), [StopAgent(), SpeakThroughVoice(words)]
    if isinstance(event, Failed):
        if event.voice_works:
            return (
                EndingState(Phase.ENDING, event.cause, "voice", phrases.apology),
                [StopAgent(), SpeakThroughVoice(phrases.apology)],
            )
        return (
            EndingState(Phase.ENDING, event.cause, "carrier", phrases.apology),
            [StopAgent(), SpeakThroughCarrier(phrases.apology)],
        )
    if isinstance(event, AgentEnded):
        return EndingState(Phase.ENDING, "the agent ended the call", "hangup"), [HangUp()]
    if isinstance(event, TransferRequested):
        return EndingState(Phase.ENDING, "transferred", "transfer"), [TransferTo(event.to)]
    raise TransitionError(f"{type(event).__name__} while the call is live")


def _ending(state: EndingState, event: Event, phrases: Phrases) -> Step:
    if isinstance(event, MaxDuration | Drain | Failed | AgentEnded | TransferRequested):
        return state, []  # the first reason to end wins
    match state.doing, event:
        case "voice", VoiceDone():
            return replace(state, doing="hangup"), [HangUp()]
        case "voice", VoiceFailed():
            return replace(state, doing="carrier"), [SpeakThroughCarrier(state.words)]
        case "carrier" | "hangup", CarrierDone() | CarrierFailed():
            return EndingState(Phase.ENDED, state.reason), [Finish(state.reason)]
        case "transfer", CarrierDone():
            return EndingState(Phase.ENDED, state.reason), [Finish(state.reason)]
        case "transfer", CarrierFailed():
            return EndingState(), [PromptAgent(phrases.transfer_failed)]
    raise TransitionError(f"{type(event).__name__} while {state.doing or 'ending'}")


# --- the driver ------------------------------------------------------------------------------------


class Voice(Protocol):
    """What a pipeline offers the ending: its own voice and its agent."""

    async def stop_agent(self) -> None:
        """Clear playback and cancel the agent's turn (never the caller of this method's task)."""
        ...

    async def speak(self, text: str) -> None:
        """Say ``text`` in the pipeline's voice and return once it has played (bounded in time).

        Raises ``CallkitError`` (or ``TimeoutError``) when the voice cannot say it.
        """
        ...

    async def prompt_agent(self, text: str) -> None:
        """Start an agent turn on ``text``."""
        ...


class CarrierActions(Protocol):
    """The carrier's REST actions on this call (``callkit.call.carrier``)."""

    async def hang_up(self) -> None: ...
    async def transfer(self, to: str) -> None: ...
    async def say_and_hang_up(self, text: str) -> None: ...


class CallEnding:
    """Drives one call's ending: ``trigger`` from anywhere, ``ended`` once it is over."""

    def __init__(
        self,
        *,
        voice: Voice,
        carrier: CarrierActions,
        tasks: CallTasks,
        phrases: Phrases,
        telemetry: Telemetry,
    ) -> None:
        self.voice, self.carrier, self.tasks = voice, carrier, tasks
        self.phrases, self.telemetry = phrases, telemetry
        self.state = EndingState()
        self.ended = asyncio.Event()
        self._queue: list[Action] = []
        self._driver: asyncio.Task[None] | None = None

    @property
    def live(self) -> bool:
        return self.state.phase is Phase.LIVE

    @property
    def reason(self) -> str:
        return self.state.reason

    def trigger(self, event: Event) -> None:
        """Feed ``event``; its actions run in the ending's own task, in order."""
        self.state, actions = step(self.state, event, self.phrases)
        for action in actions:
            if isinstance(action, Finish):
                self._queue.clear()
                self.telemetry.info("call ending finished", reason=action.reason)
                self.ended.set()
                return
            self._queue.append(action)
        if self._queue and (self._driver is None or self._driver.done()):
            self._driver = self.tasks.spawn(self._drive(), name="ending")

    async def _drive(self) -> None:
        while self._queue and not self.ended.is_set():
            result = await self._perform(self._queue.pop(0))
            if result is not None:
                self.trigger(result)

    async def _perform(self, action: Action) -> Event | None:
        match action:
            case StopAgent():
                with contextlib.suppress(CallkitError):
                    await self.voice.stop_agent()
                return None
            case SpeakThroughVoice(text):
                try:
                    await self.voice.speak(text)
                except (CallkitError, TimeoutError) as error:
                    self.telemetry.warning("closing words failed in our voice", reason=type(error).__name__)
                    return VoiceFailed()
                return VoiceDone()
            case SpeakThroughCarrier(text):
                self.telemetry.count("CarrierApologies")
                return await self._rest(self.carrier.say_and_hang_up(text), "carrier apology")
            case HangUp():
                return await self._rest(self.carrier.hang_up(), "hang-up")
            case TransferTo(to):
                result = await self._rest(self.carrier.transfer(to), "transfer")
                if isinstance(result, CarrierDone):
                    self.telemetry.count("Transfers")
                return result
            case PromptAgent(text):
                await self.voice.prompt_agent(text)
                return None
            case Finish():  # handled in trigger
                return None
            case _:
                assert_never(action)

    async def _rest(self, request: Awaitable[None], what: str) -> Event:
        try:
            await request
        except (CallkitError, TimeoutError) as error:
            self.telemetry.error("carrier request failed", action=what, reason=type(error).__name__)
            return CarrierFailed()
        return CarrierDone()
