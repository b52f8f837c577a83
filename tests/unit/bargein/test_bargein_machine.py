"""The barge-in machine, scenario by scenario, on virtual time (nothing sleeps)."""

from __future__ import annotations

import itertools
from typing import get_args

import pytest
from bargein_sim import REPLY, Sim

from callkit.bargein import (
    AgentFinished,
    AgentPieceSent,
    AgentStarted,
    AgentText,
    BargeIn,
    BargeInPolicy,
    BargeInState,
    CallerDtmf,
    CallerVad,
    CancelSpeech,
    ClearPlayback,
    MarkPlayed,
    Phase,
    PlaybackCleared,
    Reprompt,
    ResumeSpeaking,
    StartTurn,
    Tick,
    TruncateReply,
    deadline,
    step,
)
from callkit.errors import TransitionError
from callkit.interface import Interruptible, Sensitivity

INTERRUPTIBLE: tuple[Interruptible, ...] = get_args(Interruptible)
SENSITIVITY: tuple[Sensitivity, ...] = get_args(Sensitivity)
COMBOS = list(itertools.product(INTERRUPTIBLE, SENSITIVITY))


def _speaking(
    interruptible: Interruptible = "any", sensitivity: Sensitivity = "medium", played: int = 3
) -> Sim:
    """The agent is mid-reply: ``played`` pieces of 5 characters have been heard."""
    sim = Sim.of(interruptible, sensitivity)
    sim.reply()
    sim.play(played)
    assert sim.phase is Phase.SPEAKING
    return sim


# --- the table: every interruptible × sensitivity × what the caller does ----------------------


def _interruption(sim: Sim) -> None:
    sim.speech(600, words="wait stop that")


def _one_word(sim: Sim) -> None:
    sim.speech(500, words="wait")


def _short_no(sim: Sim) -> None:
    sim.speech(200, words="no", words_after_ms=160)


def _mhm(sim: Sim) -> None:
    sim.speech(500, words="mhm")


def _okay(sim: Sim) -> None:
    sim.speech(300, words="Okay.")


def _cough(sim: Sim) -> None:
    sim.speech(60)


def _key(sim: Sim) -> None:
    sim.dtmf("5", dt=0.02)


#: scenario -> the sensitivities at which it cuts the agent off (when that kind of input may).
SCENARIOS = {
    _interruption: {"high", "medium", "low"},
    _one_word: {"high", "medium"},
    _short_no: {"high"},
    _mhm: {"high"},
    _okay: {"high"},
    _cough: set(),
    _key: {"high", "medium", "low"},
}


@pytest.mark.parametrize("scenario", list(SCENARIOS), ids=[f.__name__.strip("_") for f in SCENARIOS])
@pytest.mark.parametrize(("interruptible", "sensitivity"), COMBOS, ids=[f"{i}-{s}" for i, s in COMBOS])
def test_table(scenario: object, interruptible: Interruptible, sensitivity: Sensitivity) -> None:
    assert callable(scenario)
    sim = _speaking(interruptible, sensitivity)
    scenario(sim)
    sim.silence(1200)
    allowed = policy_allows(interruptible, dtmf=scenario is _key)
    expected = allowed and sensitivity in SCENARIOS[scenario]
    assert bool(sim.of_type(ClearPlayback)) == expected
    assert bool(sim.of_type(CancelSpeech)) == expected
    assert len(sim.of_type(ClearPlayback)) <= 1


def policy_allows(interruptible: Interruptible, *, dtmf: bool) -> bool:
    return interruptible == "any" or interruptible == ("dtmf" if dtmf else "speech")


# --- reaction time ------------------------------------------------------------------------------


@pytest.mark.parametrize("interruptible", ["speech", "any"])
@pytest.mark.parametrize("played", [0, 3, 10])
def test_high_clears_within_150_ms_of_speech_onset(interruptible: Interruptible, played: int) -> None:
    sim = _speaking(interruptible, "high", played=played)
    sim.silence(200)
    sim.feed(CallerVad(True), 0.02)
    onset = sim.now
    sim.speech(300)
    clear = sim.first(ClearPlayback)
    assert clear is not None
    assert clear - onset <= 0.150
    # the clear comes with the cancel and the truncation in the same step, clear first
    at_clear = [a for t, a in sim.log if t == clear]
    assert [type(a) for a in at_clear] == [ClearPlayback, CancelSpeech, TruncateReply]


def test_reaction_at_medium_is_bounded_by_the_words() -> None:
    sim = _speaking("speech", "medium")
    onset = sim.now + 0.02
    sim.speech(400, words="hold on", words_after_ms=300)
    clear = sim.first(ClearPlayback)
    assert clear is not None
    assert clear - onset == pytest.approx(0.28)


# --- backchannels, coughs, echo -----------------------------------------------------------------


@pytest.mark.parametrize(
    "word", ["mhm", "Mm-hmm.", "uh-huh", "okay", "OK", "yeah", "yes", "right", "sure", "Got it."]
)
@pytest.mark.parametrize("sensitivity", ["low", "medium"])
def test_a_backchannel_never_cuts_off_at_low_or_medium(word: str, sensitivity: Sensitivity) -> None:
    sim = _speaking("any", sensitivity)
    sim.speech(1500, words=word)
    sim.words(f"{word} {word}", final=True)
    sim.silence(400)
    assert sim.utterance(f"{word} {word}") == []
    sim.silence(1200)
    sim.play_all()
    assert sim.of_type(ClearPlayback) == []
    assert sim.of_type(CancelSpeech) == []
    assert sim.of_type(StartTurn) == []  # said over the agent: not a turn either
    assert sim.phase is Phase.IDLE


def test_mixed_backchannels_count_only_the_other_words_at_low() -> None:
    sim = _speaking("any", "low")
    sim.speech(800, words="okay yeah so")  # one real word: low needs two
    assert sim.of_type(ClearPlayback) == []
    sim.speech(200, words="okay yeah so wait")
    assert len(sim.of_type(ClearPlayback)) == 1


@pytest.mark.parametrize("sensitivity", SENSITIVITY)
def test_coughs_never_cut_off(sensitivity: Sensitivity) -> None:
    sim = _speaking("any", sensitivity)
    for _ in range(5):
        sim.speech(60)
        sim.silence(300)
    assert sim.of_type(ClearPlayback) == []
    assert sim.phase is Phase.SPEAKING


def test_vad_flicker_inside_speech_is_bridged() -> None:
    sim = _speaking("any", "high")
    sim.speech(60)
    sim.silence(40)
    sim.speech(60)
    assert len(sim.of_type(ClearPlayback)) == 1


# --- false starts: the agent never stays silent -------------------------------------------------


def test_false_start_at_high_resumes_with_the_text_not_heard() -> None:
    sim = _speaking("any", "high", played=3)
    sim.speech(200)  # a cough long enough to cut at high, no words ever come
    (clear_at,) = [t for t, a in sim.log if isinstance(a, ClearPlayback)]
    assert sim.of_type(TruncateReply) == [TruncateReply(1, REPLY[:15], 900.0)]
    assert sim.phase is Phase.INTERRUPTED
    sim.silence(1900)
    assert sim.of_type(ResumeSpeaking) == []
    sim.silence(200)
    (resume,) = sim.of_type(ResumeSpeaking)
    assert resume == ResumeSpeaking(1, REPLY[15:].strip())
    resumed_at = sim.first(ResumeSpeaking)
    assert resumed_at is not None
    assert 2.0 <= resumed_at - clear_at <= 2.02
    assert sim.phase is Phase.IDLE


def test_false_start_while_the_reply_is_still_generated_reprompts() -> None:
    sim = Sim.of("any", "high")
    sim.reply(finish=False)  # the text is complete but audio is still being made
    sim.play(2)
    sim.speech(200)
    sim.wait(2.1)
    assert sim.of_type(ResumeSpeaking) == [ResumeSpeaking(1, REPLY[10:].strip())]

    sim = Sim.of("any", "high")
    sim.feed(AgentStarted(1))
    sim.feed(AgentText("Let me check"))  # the model is still writing
    sim.feed(AgentPieceSent("a", 6, 300.0))
    sim.speech(200)
    sim.wait(2.1)
    assert sim.of_type(Reprompt) == [Reprompt(1)]


def test_a_backchannel_after_a_cut_resumes_at_once() -> None:
    sim = _speaking("any", "high")
    sim.speech(300, words="mhm")
    assert sim.phase is Phase.INTERRUPTED
    sim.silence(100)
    sim.utterance("Mhm.")
    assert sim.of_type(ResumeSpeaking) == [ResumeSpeaking(1, REPLY[15:].strip())]
    assert sim.of_type(StartTurn) == []
    assert sim.phase is Phase.IDLE


def test_an_empty_utterance_after_a_cut_resumes() -> None:
    sim = _speaking("any", "high")
    sim.speech(200)
    sim.utterance("")
    assert len(sim.of_type(ResumeSpeaking)) == 1


def test_real_words_after_a_cut_are_answered_not_resumed() -> None:
    sim = _speaking("any", "high")
    sim.speech(600, words="wait", words_after_ms=400)
    sim.silence(300)
    sim.words("wait a second", final=True)
    sim.utterance("Wait a second.")
    sim.wait(5)
    assert sim.of_type(StartTurn) == [StartTurn("Wait a second.")]
    assert sim.of_type(ResumeSpeaking) == []
    assert sim.of_type(Reprompt) == []
    assert sim.phase is Phase.IDLE


def test_words_without_an_utterance_are_answered_after_the_caller_goes_quiet() -> None:
    sim = _speaking("any", "medium")
    sim.speech(400, words="hold on")
    sim.words("hold on I need", final=True)
    assert sim.phase is Phase.INTERRUPTED
    last_sound = sim.now
    sim.wait(5)
    assert sim.of_type(StartTurn) == [StartTurn("hold on I need")]
    assert sim.first(StartTurn) == pytest.approx(last_sound + 3.0, abs=0.021)


def test_input_held_over_the_agent_is_answered_instead_of_resuming() -> None:
    sim = _speaking("any", "low")
    sim.speech(300, words="no")  # one word at low: held, not a cut
    sim.silence(300)
    sim.utterance("No.")
    sim.speech(500)  # then noise, long enough with... no words: no cut at low
    assert sim.of_type(ClearPlayback) == []
    sim.play_all()
    assert sim.of_type(StartTurn) == [StartTurn("No.")]

    sim = _speaking("any", "high")
    sim.utterance("I have a question")  # endpointed words with too little VAD speech: held
    sim.speech(200)  # a false start
    sim.wait(2.1)
    assert sim.of_type(StartTurn) == [StartTurn("I have a question")]
    assert sim.of_type(ResumeSpeaking) == []


def test_echo_guard_after_a_false_start() -> None:
    sim = _speaking("any", "high")
    sim.speech(200)
    sim.wait(2.1)
    (resume,) = sim.of_type(ResumeSpeaking)
    assert sim.state.echo_guard
    sim.reply(resume.remaining_text)
    sim.play(2)
    sim.speech(600)  # speech with no words: not enough any more
    sim.speech(400, words="should arrive Thursday")  # the agent's own words, echoed
    assert len(sim.of_type(ClearPlayback)) == 1
    sim.speech(200, words="should arrive Thursday stop")
    assert len(sim.of_type(ClearPlayback)) == 2
    sim.utterance("Stop.")
    assert not sim.state.echo_guard


# --- DTMF ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("interruptible", "sensitivity"), COMBOS, ids=[f"{i}-{s}" for i, s in COMBOS])
def test_dtmf_interrupts_under_dtmf_and_any_only(
    interruptible: Interruptible, sensitivity: Sensitivity
) -> None:
    sim = _speaking(interruptible, sensitivity)
    sim.dtmf("7", dt=0.02)
    if interruptible in ("dtmf", "any"):
        assert [type(a) for _, a in sim.log] == [ClearPlayback, CancelSpeech, TruncateReply, StartTurn]
        assert sim.of_type(StartTurn) == [StartTurn("7", "dtmf")]
        assert sim.phase is Phase.IDLE
    else:
        assert sim.log == []
        sim.dtmf("8", dt=0.3)
        sim.play_all()
        assert sim.of_type(StartTurn) == [StartTurn("78", "dtmf")]  # held until the reply played
        assert sim.of_type(ClearPlayback) == []


def test_dtmf_when_the_agent_is_silent_is_a_turn() -> None:
    sim = Sim.of("none", "low")
    assert sim.dtmf("#") == [StartTurn("#", "dtmf")]


# --- playback and marks -------------------------------------------------------------------------


def test_heard_text_is_the_text_up_to_the_last_played_mark() -> None:
    sim = _speaking("any", "medium", played=4)
    sim.speech(300, words="stop", words_after_ms=100)
    assert sim.of_type(TruncateReply) == [TruncateReply(1, REPLY[:20], 1200.0)]


def test_twilio_marks_echoed_after_a_clear_do_not_count() -> None:
    sim = _speaking("any", "high", played=2)
    sim.speech(200)
    assert sim.pending
    sim.echo_cleared()  # Twilio echoes every discarded mark
    sim.wait(2.1)
    assert sim.of_type(TruncateReply) == [TruncateReply(1, REPLY[:10], 600.0)]
    assert sim.of_type(ResumeSpeaking) == [ResumeSpeaking(1, REPLY[10:].strip())]


def test_marks_echoed_late_into_the_next_turn_are_ignored() -> None:
    sim = _speaking("any", "high", played=2)
    sim.speech(200)
    old = list(sim.pending)
    sim.pending.clear()
    sim.utterance("wait")
    sim.reply("Sure, go ahead.")
    for mark in old:
        sim.feed(MarkPlayed(mark))
    assert sim.state.playback is not None
    assert sim.state.playback.heard_text() == ""


def test_plivo_clears_without_acknowledging_checkpoints() -> None:
    sim = _speaking("any", "high", played=2)
    sim.speech(200)
    sim.pending.clear()  # Plivo drops cleared checkpoints silently (docs/protocols/plivo.md §5)
    assert sim.feed(PlaybackCleared(), 0.05) == []
    sim.wait(2.1)
    assert sim.of_type(ResumeSpeaking) == [ResumeSpeaking(1, REPLY[10:].strip())]


def test_idle_once_finished_and_every_mark_played() -> None:
    sim = Sim.of()
    sim.reply(finish=False)
    sim.play_all()
    assert sim.phase is Phase.SPEAKING  # more may come
    sim.feed(AgentFinished())
    assert sim.phase is Phase.IDLE
    assert sim.state.playback is None


def test_an_empty_reply_is_idle_at_once() -> None:
    sim = Sim.of()
    sim.feed(AgentStarted(1))
    sim.feed(AgentFinished())
    assert sim.phase is Phase.IDLE


def test_lost_marks_do_not_hold_the_agent_speaking() -> None:
    sim = Sim.of(mark_grace_s=1.5)
    sim.reply(piece_ms=40)  # 14 pieces of 40 ms: 0.56 s of audio, all sent now
    sim.play(3)
    sim.wait(1.9)
    assert sim.phase is Phase.SPEAKING
    sim.wait(0.2)
    assert sim.phase is Phase.IDLE
    sim.play_all()  # the late echoes change nothing
    assert sim.phase is Phase.IDLE


def test_caller_starting_as_the_agent_finishes_needs_no_barge_in() -> None:
    sim = Sim.of("any", "high")
    sim.reply()
    sim.play(len(sim.pending) - 1)
    sim.speech(60)  # the caller starts...
    assert sim.phase is Phase.CANDIDATE
    sim.play(1, dt=0.0)  # ...as the last piece plays
    assert sim.phase is Phase.IDLE
    sim.speech(600, words="thanks so much")
    assert sim.utterance("Thanks so much.") == [StartTurn("Thanks so much.")]
    assert sim.of_type(ClearPlayback) == []
    assert sim.of_type(CancelSpeech) == []


def test_barge_in_before_any_audio_cancels_without_a_clear() -> None:
    sim = Sim.of("any", "medium")
    sim.feed(AgentStarted(1))  # the model is thinking; nothing queued at the carrier
    sim.speech(400, words="and also")
    assert [type(a) for _, a in sim.log] == [CancelSpeech, TruncateReply]
    assert sim.of_type(TruncateReply) == [TruncateReply(1, "", 0.0)]


def test_one_clear_per_turn() -> None:
    sim = _speaking("any", "high")
    for _ in range(4):
        sim.speech(300)
        sim.silence(100)
    assert len(sim.of_type(ClearPlayback)) == 1


def test_none_never_cuts_off_and_answers_afterwards() -> None:
    sim = _speaking("none", "high")
    sim.speech(2000, words="what about my refund")
    sim.utterance("What about my refund?")
    sim.speech(300, words="mhm")
    sim.utterance("mhm")
    assert sim.of_type(ClearPlayback) == []
    assert sim.of_type(StartTurn) == []
    sim.play_all()
    assert sim.of_type(StartTurn) == [StartTurn("What about my refund?")]


def test_words_may_arrive_after_the_speech_within_the_word_wait() -> None:
    sim = _speaking("any", "medium")
    sim.speech(300)
    sim.silence(600)
    sim.words("stop")
    assert len(sim.of_type(ClearPlayback)) == 1

    sim = _speaking("any", "medium")
    sim.speech(300)
    sim.silence(1100)
    sim.words("stop")
    assert sim.of_type(ClearPlayback) == []
    assert sim.phase is Phase.SPEAKING


# --- illegal transitions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event", [AgentText("hi"), AgentPieceSent("m", 0, 20.0), AgentFinished()], ids=lambda e: type(e).__name__
)
def test_playback_events_with_no_reply_raise(event: AgentText | AgentPieceSent | AgentFinished) -> None:
    state = BargeInState(BargeInPolicy.from_interface("any", "medium"))
    with pytest.raises(TransitionError):
        step(state, event, 1.0)


def test_playback_events_of_a_cancelled_turn_raise() -> None:
    sim = _speaking("any", "high")
    sim.speech(200)
    assert sim.phase is Phase.INTERRUPTED
    with pytest.raises(TransitionError):
        sim.feed(AgentPieceSent("late", 70, 9000.0))


def test_a_second_reply_over_a_playing_one_raises() -> None:
    sim = _speaking()
    with pytest.raises(TransitionError):
        sim.feed(AgentStarted(2))


def test_turn_numbers_increase() -> None:
    sim = Sim.of()
    sim.reply()
    sim.play_all()
    with pytest.raises(TransitionError):
        sim.feed(AgentStarted(1))


def test_time_does_not_go_backwards() -> None:
    sim = Sim.of()
    sim.feed(Tick(), 1.0)
    with pytest.raises(TransitionError):
        sim.feed(Tick(), -0.5)


def test_finishing_twice_raises() -> None:
    sim = Sim.of()
    sim.reply(finish=True)
    with pytest.raises(TransitionError):
        sim.feed(AgentFinished())


def test_stale_carrier_reports_are_accepted_anywhere() -> None:
    sim = Sim.of()
    assert sim.feed(MarkPlayed("t0-9")) == []
    assert sim.feed(PlaybackCleared()) == []
    assert sim.phase is Phase.IDLE


# --- the stateful wrapper -----------------------------------------------------------------------


def test_bargein_wrapper_keeps_the_state() -> None:
    machine = BargeIn(BargeInPolicy.from_interface("dtmf", "low"))
    assert machine.handle(AgentStarted(1, "Hi there."), 0.0) == []
    assert machine.handle(AgentPieceSent("a", 9, 400.0), 0.0) == []
    assert machine.state.phase is Phase.SPEAKING
    actions = machine.handle(CallerVad(True), 0.02)
    assert actions == []
    assert machine.handle(CallerDtmf("1"), 0.1) == [
        ClearPlayback(1),
        CancelSpeech(1),
        TruncateReply(1, "", 0.0),
        StartTurn("1", "dtmf"),
    ]
    assert machine.state.phase is Phase.IDLE


# --- timers -------------------------------------------------------------------------------------


def test_deadline_tells_when_to_tick() -> None:
    sim = Sim.of("any", "high")
    assert deadline(sim.state) is None  # idle: nothing pending
    sim.reply()  # 14 pieces of 300 ms, all sent at once
    assert deadline(sim.state) == pytest.approx(sim.now + 4.2 + 1.5)  # if the marks never come back
    sim.play(2)
    sim.speech(60)
    assert deadline(sim.state) == pytest.approx(sim.now + 0.1)  # a blip ends after a 100 ms pause
    sim.speech(60)
    assert sim.phase is Phase.INTERRUPTED
    cut_at = sim.first(ClearPlayback)
    assert cut_at == sim.now
    assert deadline(sim.state) == pytest.approx(cut_at + 2.0)
    assert sim.feed(Tick(), 1.99) == []
    assert sim.feed(Tick(), 0.01) == [ResumeSpeaking(1, REPLY[10:].strip())]
    assert deadline(sim.state) is None


def test_the_wrapper_exposes_the_deadline() -> None:
    machine = BargeIn(BargeInPolicy.from_interface("any", "medium"))
    machine.handle(AgentStarted(1, "Hi."), 0.0)
    machine.handle(AgentPieceSent("a", 3, 500.0), 0.0)
    machine.handle(AgentFinished(), 0.0)
    assert machine.deadline == pytest.approx(0.5 + machine.policy.mark_grace_s)


def test_withdrawn_interim_words_after_a_cut_are_a_false_start() -> None:
    sim = _speaking("any", "high")
    sim.speech(200)
    sim.words("wait")
    sim.words("", dt=0.3)  # the STT took it back
    sim.wait(3.5)
    assert sim.of_type(StartTurn) == []
    assert sim.of_type(ResumeSpeaking) == [ResumeSpeaking(1, REPLY[15:].strip())]


def test_the_pipeline_may_start_speaking_after_a_cut() -> None:
    sim = _speaking("any", "high")
    sim.speech(200)
    assert sim.phase is Phase.INTERRUPTED
    sim.reply("Sorry, go on.")
    assert sim.phase is Phase.SPEAKING
    sim.wait(3)
    assert sim.of_type(ResumeSpeaking) == []
