"""The call core: per-call policy shared by the three modes (docs/architecture.md §2.8).

Each mode supplies only its voice and its transport; what a call does around them lives here once:

- ``ending``: how a call ends, as a pure state machine plus the driver that performs its actions
  (exactly one goodbye or apology and one hang-up, whatever fails and however often);
- ``tasks``: the task group that owns every task a call starts (none outlives its call);
- ``tools``: running one tool call (result text, caps, errors, call-control actions);
- ``turns``: the record of a turn, built from the agent loop's own events;
- ``heard``: what the caller heard of a reply, cut on a word, and the history keyed by turn;
- ``phrases``: the words the system itself says, per language, overridable per ``CallInterface``;
- ``bookkeeping``: store writes off the media server's event loop, in order, retried, bounded.
"""
