"""Invariants of the barge-in machine under random event sequences (hypothesis), on virtual time.

A model plays the media server (replies in pieces, cancelled on ``CancelSpeech``), the carrier
(marks reported in order; on ``clear`` Twilio echoes every pending mark, Plivo acknowledges with
``clearedAudio`` and drops them) and a caller doing anything at any time.
"""

from __future__ import annotations

from typing import get_args

from bargein_sim import REPLY, Sim
from hypothesis import event as note
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

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
    CancelSpeech,
    ClearPlayback,
    Event,
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
from callkit.interface import Interruptible, Sensitivity

CALLER_WORDS = [
    "wait",
    "stop",
    "no",
    "hold",
    "on",
    "mhm",
    "okay",
    "yeah",
    "right",
    "sure",
    "got it",
    "uh-huh",
]
AGENT_WORDS = ["your", "order", "shipped", "on", "monday", "wait", "sure", "thanks", " ", "."]
caller_text = st.lists(st.sampled_from(CALLER_WORDS), max_size=4).map(" ".join)
agent_text = st.lists(st.sampled_from(AGENT_WORDS), max_size=6).map(" ".join)


class BargeInCall(RuleBasedStateMachine):
    @initialize(
        interruptible=st.sampled_from(get_args(Interruptible)),
        sensitivity=st.sampled_from(get_args(Sensitivity)),
        carrier=st.sampled_from(["twilio", "plivo"]),
    )
    def setup(self, interruptible: Interruptible, sensitivity: Sensitivity, carrier: str) -> None:
        self.policy = BargeInPolicy.from_interface(interruptible, sensitivity)
        self.carrier = carrier
        self.state = BargeInState(self.policy)
        self.now = 0.0
        self.turn = 0
        self.seq = 0
        self.reply: dict[int, str] = {}
        self.sent_end: dict[int, int] = {}
        self.played_end: dict[int, int] = {}
        self.complete: set[int] = set()
        self.finished: set[int] = set()
        self.queue: list[tuple[int, str, int]] = []  # the carrier's playback queue: (turn, mark, text_end)
        self.echoes: list[str] = []  # Twilio: discarded marks still to be echoed
        self.acks = 0  # Plivo: clearedAudio still to come
        self.old_marks: list[str] = []
        self.cleared_turns: set[int] = set()
        self.cut_at: float | None = None  # a cut not yet followed by an answer, a resume or a reprompt

    # --- feeding and checking --------------------------------------------------------------------

    def feed(self, event: Event, dt: float = 0.0) -> list[Action]:
        return self.feed_at(event, max(self.now, round(self.now + dt, 6)))

    def feed_at(self, event: Event, now: float) -> list[Action]:
        self.now = now
        before = self.state
        self.state, actions = step(self.state, event, self.now)
        for action in actions:
            self.check_action(before, event, action)
            note(f"{type(action).__name__} after {type(event).__name__} in {before.phase.value}")
        if isinstance(event, AgentStarted):
            self.cut_at = None
        assert (self.state.phase is Phase.INTERRUPTED) == (self.cut_at is not None)
        return actions

    def check_action(self, before: BargeInState, event: Event, action: Action) -> None:
        match action:
            case ClearPlayback(turn=turn):
                assert turn not in self.cleared_turns, "two clears for one turn"
                self.cleared_turns.add(turn)
                assert self.queue, "a clear with nothing queued"
                if self.carrier == "twilio":
                    self.echoes += [mark for _, mark, _ in self.queue]
                else:
                    self.acks += 1
                self.queue.clear()
            case CancelSpeech(turn=turn):
                assert before.playback is not None
                assert turn == before.playback.turn == self.turn
                if isinstance(event, CallerDtmf):
                    assert self.policy.dtmf
                else:
                    assert isinstance(event, CallerVad | CallerWords | CallerUtterance)
                    assert self.policy.speech
                self.cut_at = self.now
                self.queue = [q for q in self.queue if q[0] != turn]  # the server sends no more
            case TruncateReply(turn=turn, heard_text=heard):
                assert len(heard) <= self.sent_end.get(turn, 0), "truncated to text never sent"
                assert heard == self.reply[turn][: self.played_end.get(turn, 0)]
            case ResumeSpeaking(turn=turn, remaining_text=rest):
                assert turn in self.complete
                assert rest
                assert rest == self.reply[turn][self.played_end.get(turn, 0) :].strip()
                self.cut_at = None
            case Reprompt():
                self.cut_at = None
            case StartTurn(text=text):
                assert text.strip()
                self.cut_at = None

    @invariant()
    def phase_and_data_agree(self) -> None:
        if not hasattr(self, "state"):
            return
        s = self.state
        assert (s.playback is not None) == (s.phase in (Phase.SPEAKING, Phase.CANDIDATE))
        assert (s.candidate is not None) == (s.phase is Phase.CANDIDATE)
        assert (s.cut is not None) == (s.phase is Phase.INTERRUPTED)
        if s.phase is Phase.IDLE:
            assert s.held == ()

    # --- the agent and the media server ----------------------------------------------------------

    @precondition(lambda self: self.state.playback is None)
    @rule(text=agent_text, upfront=st.booleans())
    def agent_starts(self, text: str, upfront: bool) -> None:
        self.turn += 1
        self.reply[self.turn] = text if upfront else ""
        self.feed(AgentStarted(self.turn, self.reply[self.turn]), 0.01)

    @precondition(lambda self: self.state.playback is None)
    @rule(
        text=st.lists(st.sampled_from(AGENT_WORDS), min_size=3, max_size=12).map(" ".join),
        pieces=st.lists(st.integers(1, 8), min_size=1, max_size=10),
        finish=st.booleans(),
    )
    def agent_replies(self, text: str, pieces: list[int], finish: bool) -> None:
        """A whole reply at once: its text, several pieces sent ahead of playback, maybe its end."""
        self.agent_starts(text, upfront=True)
        self.agent_text("", final=True)
        for chars in pieces:
            self.agent_sends_a_piece(chars, 300)
        if finish:
            self.agent_finishes()

    @precondition(lambda self: self.state.playback is not None and self.turn not in self.complete)
    @rule(text=agent_text, final=st.booleans())
    def agent_text(self, text: str, final: bool) -> None:
        self.reply[self.turn] += text
        if final:
            self.complete.add(self.turn)
        self.feed(AgentText(text, final=final))

    @precondition(lambda self: self.state.playback is not None and self.turn not in self.finished)
    @rule(chars=st.integers(0, 12), ms=st.integers(20, 50))
    def agent_sends_a_piece(self, chars: int, ms: int) -> None:
        end = min(self.sent_end.get(self.turn, 0) + chars, len(self.reply[self.turn]))
        self.seq += 1
        mark = f"m{self.turn}-{self.seq}"
        ledger = self.state.playback
        assert ledger is not None
        self.feed(AgentPieceSent(mark, end, ledger.sent_audio_ms + ms))
        self.sent_end[self.turn] = end
        self.queue.append((self.turn, mark, end))

    @precondition(lambda self: self.state.playback is not None and self.turn not in self.finished)
    @rule()
    def agent_finishes(self) -> None:
        self.complete.add(self.turn)
        self.finished.add(self.turn)
        self.feed(AgentFinished())

    # --- the carrier -----------------------------------------------------------------------------

    @precondition(lambda self: bool(self.queue))
    @rule(dt=st.sampled_from([0.0, 0.02, 0.05]))
    def carrier_plays_a_piece(self, dt: float) -> None:
        turn, mark, end = self.queue.pop(0)
        playback = self.state.playback
        if playback is not None and playback.turn == turn:
            self.played_end[turn] = end
        self.old_marks.append(mark)
        self.feed(MarkPlayed(mark), dt)

    @precondition(lambda self: bool(self.echoes))
    @rule()
    def twilio_echoes_a_cleared_mark(self) -> None:
        mark = self.echoes.pop(0)
        self.old_marks.append(mark)
        self.feed(MarkPlayed(mark))

    @precondition(lambda self: self.acks > 0)
    @rule()
    def plivo_acknowledges_the_clear(self) -> None:
        self.acks -= 1
        self.feed(PlaybackCleared(), 0.03)

    @precondition(lambda self: bool(self.old_marks))
    @rule(data=st.data())
    def a_stale_mark_comes_back(self, data: st.DataObject) -> None:
        self.feed(MarkPlayed(data.draw(st.sampled_from(self.old_marks))))

    # --- the caller ------------------------------------------------------------------------------

    @rule(speech=st.booleans(), frames=st.integers(1, 20))
    def caller_vad(self, speech: bool, frames: int) -> None:
        for _ in range(frames):
            self.feed(CallerVad(speech), 0.02)

    @rule(text=caller_text, final=st.booleans())
    def caller_words(self, text: str, final: bool) -> None:
        self.feed(CallerWords(text, is_final=final))

    @rule(text=caller_text)
    def caller_utterance(self, text: str) -> None:
        self.feed(CallerUtterance(text), 0.01)

    @rule(
        frames=st.integers(1, 40),
        text=caller_text,
        words_at=st.integers(0, 40),
        pause=st.integers(0, 150),
        ends=st.booleans(),
    )
    def caller_speaks(self, frames: int, text: str, words_at: int, pause: int, ends: bool) -> None:
        """A burst of speech, its interim words on the way, a pause, maybe the utterance's end."""
        for i in range(frames):
            self.feed(CallerVad(True), 0.02)
            if i == words_at and text:
                self.feed(CallerWords(text))
        for _ in range(pause):
            self.feed(CallerVad(False), 0.02)
        if ends:
            self.feed(CallerUtterance(text))

    @rule(digit=st.sampled_from("0123456789*#"), rarely=st.integers(0, 3))
    def caller_presses_a_key(self, digit: str, rarely: int) -> None:
        if rarely == 0:  # key presses would otherwise end most replies before anything else happens
            self.feed(CallerDtmf(digit), 0.01)

    @rule(dt=st.floats(0.0, 3.0))
    def time_passes(self, dt: float) -> None:
        self.feed(Tick(), dt)

    @precondition(lambda self: deadline(self.state) is not None)
    @rule()
    def a_timer_fires_at_the_deadline(self) -> None:
        """A pipeline that ticks only at ``deadline`` sees every timeout fire then, not earlier."""
        due = deadline(self.state)
        assert due is not None
        before = self.state
        if due > self.now + 0.001:
            self.feed_at(Tick(), due - 0.001)
            assert (self.state.phase, self.state.candidate, self.state.cut) == (
                before.phase,
                before.candidate,
                before.cut,
            )
        self.feed_at(Tick(), max(self.now, due))
        assert (self.state.phase, self.state.candidate, self.state.cut) != (
            before.phase,
            before.candidate,
            before.cut,
        )

    @rule()
    def caller_goes_quiet(self) -> None:
        """Nobody talks and the carrier reports nothing: the machine must not stay stuck silent."""
        start = self.now
        limit = max(self.policy.resume_after_s, self.policy.answer_after_s)
        recovered_at: float | None = None
        for _ in range(round((limit + self.policy.word_wait_s + 0.2) / 0.02)):
            self.feed(CallerVad(False), 0.02)
            if recovered_at is None and self.cut_at is None:
                recovered_at = self.now
        assert recovered_at is not None and recovered_at - start <= limit + 0.021
        assert self.state.phase in (Phase.IDLE, Phase.SPEAKING)

    def teardown(self) -> None:
        if hasattr(self, "state"):
            self.caller_goes_quiet()


TestBargeInCall = BargeInCall.TestCase
TestBargeInCall.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)


# --- the caller never really interrupts ----------------------------------------------------------

BACKCHANNEL_TEXT = st.lists(
    st.sampled_from(["mhm", "Mm-hmm.", "uh-huh", "Okay.", "ok", "yeah", "Yes!", "right", "sure", "Got it."]),
    min_size=1,
    max_size=3,
).map(" ".join)


@given(
    sensitivity=st.sampled_from(["low", "medium"]),
    moves=st.lists(
        st.one_of(
            st.tuples(st.just("speech"), st.integers(1, 60)),
            st.tuples(st.just("silence"), st.integers(1, 60)),
            st.tuples(st.just("words"), BACKCHANNEL_TEXT),
            st.tuples(st.just("final"), BACKCHANNEL_TEXT),
            st.tuples(st.just("utterance"), BACKCHANNEL_TEXT),
        ),
        max_size=30,
    ),
)
@settings(max_examples=200, deadline=None)
def test_backchannels_never_cut_off_at_low_or_medium(
    sensitivity: Sensitivity, moves: list[tuple[str, object]]
) -> None:
    sim = Sim.of("any", sensitivity)
    sim.reply(REPLY * 4)
    sim.play(2)
    for kind, arg in moves:
        match kind:
            case "speech" | "silence":
                assert isinstance(arg, int)
                sim.speech(arg * 20) if kind == "speech" else sim.silence(arg * 20)
            case "words" | "final":
                sim.words(str(arg), final=kind == "final")
            case _:
                sim.utterance(str(arg))
    assert sim.of_type(ClearPlayback) == []
    assert sim.of_type(CancelSpeech) == []
    assert sim.of_type(StartTurn) == []


@given(
    sensitivity=st.sampled_from(get_args(Sensitivity)),
    blips=st.lists(st.tuples(st.integers(1, 5), st.integers(6, 40)), max_size=20),
)
@settings(max_examples=200, deadline=None)
def test_blips_shorter_than_the_threshold_never_cut_off(
    sensitivity: Sensitivity, blips: list[tuple[int, int]]
) -> None:
    """Bursts of VAD speech under the threshold (coughs, clicks, echo), each after a real pause."""
    sim = Sim.of("any", sensitivity)
    sim.reply(REPLY * 4)
    threshold_frames = round(sim.policy.min_speech_ms / 20)
    for speech, pause in blips:
        sim.speech(min(speech, threshold_frames - 1) * 20)
        sim.silence(pause * 20)
    assert sim.of_type(ClearPlayback) == []


@given(
    interruptible=st.sampled_from(get_args(Interruptible)),
    played=st.integers(0, 13),
    lead_ms=st.integers(0, 400),
)
@settings(max_examples=200, deadline=None)
def test_reaction_at_high_is_within_150_ms(interruptible: Interruptible, played: int, lead_ms: int) -> None:
    sim = Sim.of(interruptible, "high")
    sim.reply()
    sim.play(played)
    sim.silence(lead_ms // 20 * 20 + 200)
    sim.feed(CallerVad(True), 0.02)
    onset = sim.now
    sim.speech(400)
    clear = sim.first(ClearPlayback)
    if interruptible in ("speech", "any"):
        assert clear is not None and clear - onset <= 0.150
    else:
        assert clear is None
