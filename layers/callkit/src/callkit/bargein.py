"""Barge-in for the stream pipelines: when the caller really interrupts the agent (docs/architecture.md §2.6, §6).

A pure state machine on virtual time: ``step(state, event, now) -> (state, actions)``. The media
server feeds it what happens (the agent's pieces and their marks, the caller's VAD frames, words,
utterances and key presses, ticks) and does what it returns. No clock, no I/O, no asyncio inside.

::

             AgentStarted                 caller speech (a VAD frame)
    IDLE ─────────────────▶ SPEAKING ────────────────────────────▶ CANDIDATE
     ▲ ▲                    │   ▲   ◀── a blip, or no words in time ───┘ │
     │ └── reply played ────┘   │       (reply played: to IDLE as well)  │ enough speech and words:
     │                          │ AgentStarted                           │ cut (clear, cancel, truncate)
     │                          │                                        ▼
     └──── StartTurn / ResumeSpeaking / Reprompt ──────────────────── INTERRUPTED

A cut by a key press, or by a whole utterance, answers it at once and goes straight to IDLE.

Decisions, and why:

* **High** sensitivity cuts on VAD alone after 120 ms of speech (six 20 ms frames): onset to
  ``ClearPlayback`` is 100–120 ms of virtual time, inside a 150 ms target, and a 60 ms cough or
  click never gets there. It accepts false starts (a backchannel, a cough over 120 ms, echo) and
  recovers from them: when no real word comes within ``resume_after_s`` (2 s) of the cut, or the
  utterance turns out to be only a backchannel, it emits ``ResumeSpeaking`` with the text not yet
  heard (or ``Reprompt``). **Medium** waits for 250 ms of speech and one word that is not a
  backchannel; **low** for 400 ms and two such words (speakerphones, noisy rooms). Medium and low
  therefore cut at the speed of the STT's interim results (a few hundred ms), which is the price of
  never stopping for "mhm". Backchannels (``BACKCHANNELS``, matched on words, case and punctuation
  ignored) never count as words, so they never cut the agent off at medium or low.
* Speech is counted in VAD frames. Pauses shorter than ``gap_ms`` (100 ms: stops and plosives
  inside a word) are bridged; below the threshold a pause of ``gap_ms`` ends the candidate (a blip).
  Once enough speech was heard, words may arrive up to ``word_wait_s`` (1 s) after the caller's
  last speech frame (the STT lags the audio). ``deadline(state)`` says when the next timeout is due.
* After a false start the machine suspects echo (``echo_guard``): until the caller's next real
  turn, a cut needs at least one word, and words that occur in the agent's own reply do not count.
  So speakerphone echo cannot make the agent stop and resume forever.
* Caller speech that starts as the agent finishes needs no barge-in: once the last mark is played
  the machine is ``IDLE`` (no clear) and the utterance is answered as usual. Marks lost by the
  carrier do not hold the agent in ``SPEAKING``: a finished reply is taken as played
  ``mark_grace_s`` after its audio should have ended.
* What the caller heard is the reply text up to the last played mark (``callkit.playback``); it is
  fixed when we decide to clear, so Twilio's echoes of cleared marks never count.
* Turn-taking (when the caller's utterance ends) stays with the pipeline: it feeds
  ``CallerUtterance``. Whether and when the agent answers is decided here and said with
  ``StartTurn``, the pipeline's only cue to start an agent turn for caller input: at once when the
  agent is silent or was cut off; for input that did not cut the agent off (``interruptible``
  forbids it, or too little speech), once its reply has played; never for backchannels said over
  the agent. After a cut the agent never stays silent: within ``resume_after_s`` (no words) or
  ``answer_after_s`` after the caller's last sound (words, but the STT never closed the utterance)
  the machine emits ``StartTurn``, ``ResumeSpeaking`` or ``Reprompt``.

Illegal transitions raise ``TransitionError``: agent playback events with no reply playing (after
a cut the pipeline must drop its cancelled turn's late pieces), a new reply while one is playing, a
turn number that does not increase, time going backwards. Carrier reports that may legitimately be
late (a stale mark, ``clearedAudio``) are accepted everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Final, Literal, assert_never

from callkit.errors import TransitionError
from callkit.interface import Interruptible, Sensitivity
from callkit.playback import PlaybackLedger

__all__ = [
    "BACKCHANNELS",
    "THRESHOLDS",
    "Action",
    "AgentFinished",
    "AgentPieceSent",
    "AgentStarted",
    "AgentText",
    "BargeIn",
    "BargeInPolicy",
    "BargeInState",
    "CallerDtmf",
    "CallerUtterance",
    "CallerVad",
    "CallerWords",
    "CancelSpeech",
    "ClearPlayback",
    "Event",
    "MarkPlayed",
    "Phase",
    "PlaybackCleared",
    "Reprompt",
    "ResumeSpeaking",
    "StartTurn",
    "Tick",
    "TruncateReply",
    "content_words",
    "deadline",
    "is_backchannel",
    "step",
]

# --- words -------------------------------------------------------------------------------------

#: Listener feedback that is not a bid for the turn, with the spellings STT engines use for the
#: same sounds ("Mm-hmm.", "mhmm", "uh huh").
BACKCHANNELS: Final = frozenset(
    {"mhm", "mm-hmm", "uh-huh", "okay", "ok", "yeah", "yes", "right", "sure", "got it"}
    | {"mhmm", "mmhmm", "uhhuh"}
)

_WORD: Final = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    """Lower-case words; punctuation and hyphens separate words ("Mm-hmm." -> ["mm", "hmm"])."""
    found = (w.strip("'") for w in _WORD.findall(text.lower().replace("\u2019", "'")))
    return [w for w in found if w]


@lru_cache(maxsize=8)
def _phrases(backchannels: frozenset[str]) -> tuple[tuple[str, ...], ...]:
    """Backchannel phrases as word tuples, longest first (so "got it" wins over a one-word match)."""
    return tuple(sorted({tuple(_words(p)) for p in backchannels if _words(p)}, key=len, reverse=True))


def _split(text: str, backchannels: frozenset[str]) -> tuple[int, list[str]]:
    """(number of backchannel phrases, the other words) in ``text``."""
    words, phrases = _words(text), _phrases(backchannels)
    count, others, i = 0, [], 0
    while i < len(words):
        match = next((p for p in phrases if tuple(words[i : i + len(p)]) == p), None)
        if match is None:
            others.append(words[i])
            i += 1
        else:
            count += 1
            i += len(match)
    return count, others


def content_words(text: str, backchannels: frozenset[str] = BACKCHANNELS) -> list[str]:
    """The words of ``text`` that are not backchannels."""
    return _split(text, backchannels)[1]


def is_backchannel(text: str, backchannels: frozenset[str] = BACKCHANNELS) -> bool:
    """``text`` has words and all of them are backchannels ("Mm-hmm.", "okay, got it")."""
    count, others = _split(text, backchannels)
    return count > 0 and not others


# --- policy ------------------------------------------------------------------------------------

#: sensitivity -> (speech needed, in ms of VAD speech; words needed that are not backchannels)
THRESHOLDS: Final[dict[Sensitivity, tuple[float, int]]] = {
    "high": (120.0, 0),
    "medium": (250.0, 1),
    "low": (400.0, 2),
}


@dataclass(frozen=True, slots=True)
class BargeInPolicy:
    """When the caller may cut the agent off, and how sure the machine must be first."""

    speech: bool
    """Caller speech may interrupt (``interruptible`` is ``speech`` or ``any``)."""
    dtmf: bool
    """A key press may interrupt (``interruptible`` is ``dtmf`` or ``any``)."""
    min_speech_ms: float
    min_words: int
    gap_ms: float = 100.0
    word_wait_s: float = 1.0
    resume_after_s: float = 2.0
    answer_after_s: float = 3.0
    mark_grace_s: float = 1.5
    backchannels: frozenset[str] = BACKCHANNELS

    @classmethod
    def from_interface(cls, interruptible: Interruptible, sensitivity: Sensitivity) -> BargeInPolicy:
        """The policy for ``CallInterface(interruptible=..., interrupt_sensitivity=...)``."""
        min_speech_ms, min_words = THRESHOLDS[sensitivity]
        return cls(
            speech=interruptible in ("speech", "any"),
            dtmf=interruptible in ("dtmf", "any"),
            min_speech_ms=min_speech_ms,
            min_words=min_words,
        )


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentStarted:
    """The agent begins a reply (best at the start of its LLM turn, before any audio), numbered
    ``turn`` (increasing per call); ``text`` is its text when already known (a welcome message)."""

    turn: int
    text: str = ""


@dataclass(frozen=True, slots=True)
class AgentText:
    """More reply text, as sent to the TTS; ``final`` when the model's reply is complete."""

    text: str
    final: bool = False


@dataclass(frozen=True, slots=True)
class AgentPieceSent:
    """A piece of audio went to the carrier, followed by ``mark`` (unique per call); offsets are
    from the reply's start (``text_end`` best on a word boundary)."""

    mark: str
    text_end: int
    audio_end_ms: float


@dataclass(frozen=True, slots=True)
class AgentFinished:
    """The reply's last piece is queued."""


@dataclass(frozen=True, slots=True)
class MarkPlayed:
    """Twilio ``mark`` echo / Plivo ``playedStream``."""

    mark: str


@dataclass(frozen=True, slots=True)
class PlaybackCleared:
    """Plivo ``clearedAudio``. Informational: what was heard was fixed when we cleared."""


@dataclass(frozen=True, slots=True)
class CallerVad:
    """One VAD frame of the caller's audio."""

    is_speech: bool
    frame_ms: float = 20.0


@dataclass(frozen=True, slots=True)
class CallerWords:
    """STT words: an interim result replaces the previous one; a final one is kept."""

    text: str
    is_final: bool = False


@dataclass(frozen=True, slots=True)
class CallerUtterance:
    """The caller's turn ended (``speech_final`` / ``UtteranceEnd``) with this text."""

    text: str


@dataclass(frozen=True, slots=True)
class CallerDtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passes. VAD frames move time too; when they may stop, tick at ``deadline(state)``."""


Event = (
    AgentStarted
    | AgentText
    | AgentPieceSent
    | AgentFinished
    | MarkPlayed
    | PlaybackCleared
    | CallerVad
    | CallerWords
    | CallerUtterance
    | CallerDtmf
    | Tick
)

# --- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClearPlayback:
    """Send Twilio ``clear`` / Plivo ``clearAudio`` (only emitted when audio is still queued)."""

    turn: int


@dataclass(frozen=True, slots=True)
class CancelSpeech:
    """Cancel the turn's TTS context and LLM turn; send no more of its audio."""

    turn: int


@dataclass(frozen=True, slots=True)
class TruncateReply:
    """Keep only what the caller heard of the turn's reply in the history."""

    turn: int
    heard_text: str
    heard_ms: float


@dataclass(frozen=True, slots=True)
class ResumeSpeaking:
    """A false start: say the rest of the (complete) reply, as a new turn."""

    turn: int
    remaining_text: str


@dataclass(frozen=True, slots=True)
class Reprompt:
    """A false start with nothing ready to say (the reply was cut while still being generated, or
    all of it was heard): run an agent turn on the truncated history so the agent speaks again."""

    turn: int


@dataclass(frozen=True, slots=True)
class StartTurn:
    """Answer the caller: run an agent turn for this input."""

    text: str
    kind: Literal["speech", "dtmf"] = "speech"


Action = ClearPlayback | CancelSpeech | TruncateReply | ResumeSpeaking | Reprompt | StartTurn

# --- state -------------------------------------------------------------------------------------


class Phase(StrEnum):
    IDLE = "idle"
    """The agent is silent (or thinking, if the pipeline starts replies late)."""
    SPEAKING = "speaking"
    """A reply is playing or queued."""
    CANDIDATE = "candidate"
    """The caller makes sound over the reply; not yet an interruption."""
    INTERRUPTED = "interrupted"
    """We cut the agent off and wait for the caller's utterance."""


@dataclass(frozen=True, slots=True)
class Candidate:
    started_at: float
    """Speech onset (reaction-time metrics start here)."""
    last_speech_at: float
    speech_ms: float
    final_text: str = ""
    interim_text: str = ""

    @property
    def text(self) -> str:
        return f"{self.final_text} {self.interim_text}".strip()


@dataclass(frozen=True, slots=True)
class Cut:
    turn: int
    at: float
    words: bool
    """A real (non-backchannel) word of the caller's has been seen since or before the cut."""
    last_activity: float
    resume: ResumeSpeaking | Reprompt
    final_text: str = ""
    interim_text: str = ""

    @property
    def text(self) -> str:
        return f"{self.final_text} {self.interim_text}".strip()


@dataclass(frozen=True, slots=True)
class BargeInState:
    policy: BargeInPolicy
    phase: Phase = Phase.IDLE
    now: float = float("-inf")
    last_turn: int | None = None
    playback: PlaybackLedger | None = None
    """The reply playing: set in SPEAKING and CANDIDATE only."""
    candidate: Candidate | None = None
    """Set in CANDIDATE only."""
    cut: Cut | None = None
    """Set in INTERRUPTED only."""
    held: tuple[StartTurn, ...] = ()
    """Caller input that did not cut the agent off, answered once its reply has played."""
    echo_guard: bool = False
    """Set by a false start, until the caller's next real turn."""


Step = tuple[BargeInState, list[Action]]

# --- the machine -------------------------------------------------------------------------------


def step(state: BargeInState, event: Event, now: float) -> Step:
    """The state after ``event`` at virtual time ``now`` (seconds), and what to do."""
    if now < state.now:
        raise TransitionError(f"barge-in time went backwards: {now} after {state.now}")
    state, actions = _expire(replace(state, now=now), now)
    state, more = _handle(state, event, now)
    return state, actions + more


def deadline(state: BargeInState) -> float | None:
    """When the next timeout is due (step a ``Tick`` then), or ``None`` while nothing is pending.

    VAD frames move time every 20 ms anyway; this is for a pipeline that wants one timer instead.
    """
    due = [t for t in (_overdue_at(state), _candidate_ends_at(state), _cut_ends_at(state)) if t is not None]
    return min(due, default=None)


def _overdue_at(s: BargeInState) -> float | None:
    return s.playback.overdue_at(s.policy.mark_grace_s) if s.playback is not None else None


def _candidate_ends_at(s: BargeInState) -> float | None:
    """A blip ends after a ``gap_ms`` pause; enough speech waits ``word_wait_s`` for its words."""
    c, policy = s.candidate, s.policy
    if c is None:
        return None
    if c.speech_ms < policy.min_speech_ms:
        return c.last_speech_at + policy.gap_ms / 1000
    return c.last_speech_at + policy.word_wait_s


def _cut_ends_at(s: BargeInState) -> float | None:
    """No real word since the cut: a false start after ``resume_after_s``. Words but no utterance:
    answer them ``answer_after_s`` after the caller's last sound."""
    cut, policy = s.cut, s.policy
    if cut is None:
        return None
    return cut.last_activity + policy.answer_after_s if cut.words else cut.at + policy.resume_after_s


def _expire(s: BargeInState, now: float) -> Step:
    """Timeouts due at ``now``, before the event is handled."""
    if (at := _overdue_at(s)) is not None and now >= at:
        return _playback_done(s)
    if (at := _candidate_ends_at(s)) is not None and now >= at:
        return replace(s, phase=Phase.SPEAKING, candidate=None), []
    if s.cut is not None and (at := _cut_ends_at(s)) is not None and now >= at:
        if content_words(s.cut.text, s.policy.backchannels):
            return _answer(s, StartTurn(s.cut.text))
        return _recover(s, s.cut)
    return s, []


def _handle(s: BargeInState, event: Event, now: float) -> Step:
    match event:
        case AgentStarted(turn=turn, text=text):
            if s.phase not in (Phase.IDLE, Phase.INTERRUPTED):
                raise TransitionError(f"turn {turn} started while turn {s.last_turn} is {s.phase.value}")
            if s.last_turn is not None and turn <= s.last_turn:
                raise TransitionError(f"turn {turn} does not follow turn {s.last_turn}")
            ledger = PlaybackLedger(turn, text=text)
            return replace(s, phase=Phase.SPEAKING, last_turn=turn, playback=ledger, cut=None), []
        case AgentText() | AgentPieceSent() | AgentFinished():
            if s.playback is None:
                raise TransitionError(f"{type(event).__name__} with no reply playing ({s.phase.value})")
            return _playback(replace(s, playback=_ledger_step(s.playback, event, now)))
        case MarkPlayed(mark=mark):
            if s.playback is None:  # a stale echo: an older turn's, or one cleared by us
                return s, []
            return _playback(replace(s, playback=s.playback.played(mark)))
        case PlaybackCleared() | Tick():
            return s, []
        case CallerVad(is_speech=speech, frame_ms=frame_ms):
            return _vad(s, frame_ms, now) if speech else (s, [])
        case CallerWords(text=text, is_final=final):
            return _words_heard(s, text, final, now)
        case CallerUtterance(text=text):
            return _utterance(s, text, now)
        case CallerDtmf(digit=digit):
            press = StartTurn(digit, "dtmf")
            if s.playback is None:
                return _answer(s, press)
            if s.policy.dtmf:
                return _cut(s, now, answer=press)
            return _hold(s, press), []
        case _:
            assert_never(event)


def _ledger_step(
    ledger: PlaybackLedger, event: AgentText | AgentPieceSent | AgentFinished, now: float
) -> PlaybackLedger:
    match event:
        case AgentText(text=text, final=final):
            return ledger.append(text, final=final)
        case AgentPieceSent(mark=mark, text_end=text_end, audio_end_ms=audio_end_ms):
            return ledger.sent(mark, text_end, audio_end_ms, now)
        case AgentFinished():
            return ledger.finish()
        case _:
            assert_never(event)


def _playback(s: BargeInState) -> Step:
    """After a playback change: the reply may have played out."""
    assert s.playback is not None
    return _playback_done(s) if s.playback.drained else (s, [])


def _playback_done(s: BargeInState) -> Step:
    """The reply has played: the agent is silent. Input held during it is answered now."""
    actions: list[Action] = list(_merge(s.held))
    return replace(s, phase=Phase.IDLE, playback=None, candidate=None, held=()), actions


def _vad(s: BargeInState, frame_ms: float, now: float) -> Step:
    if s.cut is not None:
        return replace(s, cut=replace(s.cut, last_activity=now)), []
    if s.playback is None or not s.policy.speech:
        return s, []
    c = s.candidate
    if c is None:
        c = Candidate(started_at=now, last_speech_at=now, speech_ms=frame_ms)
    else:
        c = replace(c, last_speech_at=now, speech_ms=c.speech_ms + frame_ms)
    return _maybe_cut(replace(s, phase=Phase.CANDIDATE, candidate=c), now)


def _words_heard(s: BargeInState, text: str, final: bool, now: float) -> Step:
    if s.candidate is not None:
        c = s.candidate
        c = (
            replace(c, final_text=f"{c.final_text} {text}", interim_text="")
            if final
            else replace(c, interim_text=text)
        )
        return _maybe_cut(replace(s, candidate=c), now)
    if s.cut is not None:
        cut = s.cut
        cut = (
            replace(cut, final_text=f"{cut.final_text} {text}", interim_text="")
            if final
            else replace(cut, interim_text=text)
        )
        if content_words(text, s.policy.backchannels):
            cut = replace(cut, words=True, last_activity=now)
        return replace(s, cut=cut), []
    return s, []  # no candidate: words of a blip already dismissed, or the agent is silent


def _utterance(s: BargeInState, text: str, now: float) -> Step:
    real = bool(content_words(text, s.policy.backchannels))
    if s.phase is Phase.IDLE:
        return _answer(s, StartTurn(text)) if _words(text) else (s, [])
    if s.cut is not None:
        return _answer(s, StartTurn(text)) if real else _recover(s, s.cut)
    if s.candidate is not None:
        c = replace(s.candidate, final_text=text, interim_text="")
        if _cut_due(s, c):
            return _cut(s, now, answer=StartTurn(text))
        s = replace(s, phase=Phase.SPEAKING, candidate=None)
    return (_hold(s, StartTurn(text)) if real else s), []


def _counted_words(s: BargeInState, text: str) -> int:
    words = content_words(text, s.policy.backchannels)
    if s.echo_guard and s.playback is not None:
        own = set(_words(s.playback.text))
        words = [w for w in words if w not in own]
    return len(words)


def _cut_due(s: BargeInState, c: Candidate) -> bool:
    policy = s.policy
    min_words = max(policy.min_words, 1) if s.echo_guard else policy.min_words
    return c.speech_ms >= policy.min_speech_ms and _counted_words(s, c.text) >= min_words


def _maybe_cut(s: BargeInState, now: float) -> Step:
    assert s.candidate is not None
    return _cut(s, now) if _cut_due(s, s.candidate) else (s, [])


def _cut(s: BargeInState, now: float, answer: StartTurn | None = None) -> Step:
    """Cut the agent off: clear what is queued, cancel the turn, keep what was heard."""
    ledger = s.playback
    assert ledger is not None
    turn = ledger.turn
    actions: list[Action] = [ClearPlayback(turn)] if ledger.pending else []
    actions += [CancelSpeech(turn), TruncateReply(turn, ledger.heard_text(), ledger.heard_ms())]
    if answer is not None:
        s, more = _answer(s, answer)
        return s, actions + more
    rest = ledger.unheard_text().strip()
    resume: ResumeSpeaking | Reprompt = (
        ResumeSpeaking(turn, rest) if ledger.text_complete and rest else Reprompt(turn)
    )
    c = s.candidate or Candidate(now, now, 0.0)
    cut = Cut(
        turn,
        at=now,
        words=_counted_words(s, c.text) > 0,
        last_activity=now,
        resume=resume,
        final_text=c.final_text,
        interim_text=c.interim_text,
    )
    state = replace(s, phase=Phase.INTERRUPTED, playback=None, candidate=None, cut=cut)
    return state, actions


def _recover(s: BargeInState, cut: Cut) -> Step:
    """A false start: the agent speaks again. Held caller input comes first: answer it instead."""
    if s.held:
        return _answer(s, None)
    state = replace(s, phase=Phase.IDLE, cut=None, echo_guard=True)
    return state, [cut.resume]


def _answer(s: BargeInState, turn: StartTurn | None) -> Step:
    """Answer the caller now: held input first, merged with ``turn``."""
    held = (*s.held, turn) if turn is not None else s.held
    state = replace(s, phase=Phase.IDLE, playback=None, candidate=None, cut=None, held=(), echo_guard=False)
    return state, list(_merge(held))


def _hold(s: BargeInState, turn: StartTurn) -> BargeInState:
    return replace(s, held=(*s.held, turn))


def _merge(turns: tuple[StartTurn, ...]) -> tuple[StartTurn, ...]:
    """Adjacent inputs of one kind become one turn: words joined by spaces, digits concatenated."""
    merged: list[StartTurn] = []
    for turn in turns:
        if merged and merged[-1].kind == turn.kind:
            joiner = " " if turn.kind == "speech" else ""
            merged[-1] = StartTurn(f"{merged[-1].text}{joiner}{turn.text}".strip(), turn.kind)
        else:
            merged.append(turn)
    return tuple(merged)


@dataclass
class BargeIn:
    """``step`` with its state kept, for a pipeline that owns one call."""

    policy: BargeInPolicy
    state: BargeInState = field(init=False)

    def __post_init__(self) -> None:
        self.state = BargeInState(self.policy)

    def handle(self, event: Event, now: float) -> list[Action]:
        self.state, actions = step(self.state, event, now)
        return actions

    @property
    def deadline(self) -> float | None:
        return deadline(self.state)
