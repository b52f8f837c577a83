"""The ending machine: one goodbye or apology and one hang-up per call, whatever arrives after."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callkit.call.ending import (
    AgentEnded,
    CallEnding,
    CallerHungUp,
    CarrierDone,
    CarrierFailed,
    Drain,
    EndingState,
    Failed,
    Finish,
    HangUp,
    MaxDuration,
    Phase,
    PromptAgent,
    SpeakThroughCarrier,
    SpeakThroughVoice,
    StopAgent,
    TransferRequested,
    TransferTo,
    VoiceDone,
    VoiceFailed,
    step,
)
from callkit.call.phrases import Phrases
from callkit.call.tasks import CallTasks
from callkit.errors import ServiceError, TransitionError
from callkit.telemetry import StdlibTelemetry

P = Phrases()


def run(state: EndingState, *events: object) -> tuple[EndingState, list[object]]:
    actions: list[object] = []
    for event in events:
        state, more = step(state, event, P)  # type: ignore[arg-type]
        actions += more
    return state, actions


def test_max_duration_says_goodbye_in_our_voice_then_hangs_up() -> None:
    state, actions = run(EndingState(), MaxDuration(), VoiceDone(), CarrierDone())
    assert actions == [StopAgent(), SpeakThroughVoice(P.goodbye), HangUp(), Finish("max-duration")]
    assert state.phase is Phase.ENDED


def test_a_voice_that_fails_mid_goodbye_hands_the_words_to_the_carrier() -> None:
    _, actions = run(EndingState(), Failed("stt", voice_works=True), VoiceFailed(), CarrierFailed())
    assert actions == [
        StopAgent(),
        SpeakThroughVoice(P.apology),
        SpeakThroughCarrier(P.apology),
        Finish("stt"),
    ]


def test_a_dead_voice_goes_straight_to_the_carrier() -> None:
    _, actions = run(EndingState(), Failed("tts", voice_works=False), CarrierDone())
    assert actions == [StopAgent(), SpeakThroughCarrier(P.apology), Finish("tts")]


def test_a_refused_transfer_returns_the_call_to_the_agent() -> None:
    state, actions = run(EndingState(), TransferRequested("+15557654321"), CarrierFailed())
    assert actions == [TransferTo("+15557654321"), PromptAgent(P.transfer_failed)]
    assert state.phase is Phase.LIVE


def test_a_caller_who_hangs_up_ends_it_at_once_from_anywhere() -> None:
    for before in ([], [MaxDuration()], [Failed("x", voice_works=False)]):
        state, actions = run(EndingState(), *before, CallerHungUp())
        assert state.phase is Phase.ENDED and isinstance(actions[-1], Finish)


def test_a_result_for_an_action_not_in_flight_is_illegal() -> None:
    with pytest.raises(TransitionError):
        run(EndingState(), MaxDuration(), CarrierDone())
    with pytest.raises(TransitionError):
        run(EndingState(), VoiceDone())


triggers = st.sampled_from(
    [MaxDuration(), Drain(), Failed("a", voice_works=True), Failed("b", voice_works=False), AgentEnded()]
)


@given(st.lists(triggers, min_size=1, max_size=30), st.lists(st.booleans(), max_size=5))
def test_any_storm_of_reasons_gives_one_closing_speech_and_one_hang_up(
    reasons: list[object], fails: list[bool]
) -> None:
    """Whatever keeps failing, and however often: at most one of our voice, one carrier speech or
    hang-up, and the call ends."""
    state, actions = EndingState(), []
    state, more = step(state, reasons[0], P)  # type: ignore[arg-type]
    actions += more
    pending = list(more)
    outcomes = iter(fails)
    while state.phase is not Phase.ENDED:
        for reason in reasons[1:]:  # every later reason arrives while the ending runs
            state, more = step(state, reason, P)  # type: ignore[arg-type]
            assert more == []
        action = pending.pop(0)
        if isinstance(action, SpeakThroughVoice):
            result: object = VoiceDone() if next(outcomes, True) else VoiceFailed()
        elif isinstance(action, SpeakThroughCarrier | HangUp):
            result = CarrierDone() if next(outcomes, True) else CarrierFailed()
        else:
            continue
        state, more = step(state, result, P)  # type: ignore[arg-type]
        actions += more
        pending += more
    speeches = [a for a in actions if isinstance(a, SpeakThroughVoice)]
    carrier = [a for a in actions if isinstance(a, SpeakThroughCarrier | HangUp)]
    assert len(speeches) <= 1 and len(carrier) == 1
    assert sum(isinstance(a, Finish) for a in actions) == 1


class DeadVoice:
    def __init__(self) -> None:
        self.speeches = 0
        self.stops = 0

    async def stop_agent(self) -> None:
        self.stops += 1

    async def speak(self, text: str) -> None:
        self.speeches += 1
        raise ServiceError("TTS down")

    async def prompt_agent(self, text: str) -> None:
        raise AssertionError("not expected")


class Carrier:
    def __init__(self) -> None:
        self.requests: list[str] = []

    async def hang_up(self) -> None:
        self.requests.append("hang-up")

    async def transfer(self, to: str) -> None:
        self.requests.append(f"transfer {to}")

    async def say_and_hang_up(self, text: str) -> None:
        self.requests.append(f"say {text}")


def test_the_driver_performs_one_ending_under_a_storm_of_failures_and_leaves_no_task() -> None:
    async def scenario() -> None:
        tasks = CallTasks(lambda name, error: None)
        voice, carrier = DeadVoice(), Carrier()
        ending = CallEnding(voice=voice, carrier=carrier, tasks=tasks, phrases=P, telemetry=StdlibTelemetry())
        for _ in range(1000):  # every failing piece of the call reports, again and again
            ending.trigger(Failed("tts", voice_works=True))
            await asyncio.sleep(0)
        await asyncio.wait_for(ending.ended.wait(), 2)
        assert voice.speeches == 1 and carrier.requests == [f"say {P.apology}"]
        await tasks.aclose()
        assert len(tasks) == 0

    asyncio.run(scenario())
