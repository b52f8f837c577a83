"""The call lifecycle as an explicit state machine.

::

    ringing ──▶ in-progress ──▶ completed
       │             │
       └─────────────┴────────▶ busy | failed | no-answer | canceled

``ringing`` is where the webhook leaves a call it answered; ``in-progress`` is set when a stream or
relay session attaches (later pipelines) or the carrier reports it; the five terminal statuses end
the call. A terminal status is final: a late non-terminal callback (carriers retry and reorder)
never revives a call, and a second terminal callback changes nothing. ``step`` is pure; the store
turns the same rule into a conditional write (``allowed_sources``).
"""

from __future__ import annotations

from enum import StrEnum

from callkit.errors import TransitionError


class CallStatus(StrEnum):
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: frozenset[CallStatus] = frozenset(
    {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.FAILED, CallStatus.NO_ANSWER, CallStatus.CANCELED}
)

_ORDER = {CallStatus.RINGING: 0, CallStatus.IN_PROGRESS: 1}


def allowed_sources(target: CallStatus) -> frozenset[CallStatus]:
    """The statuses from which ``target`` may be entered (a same-status write is a no-op, not listed)."""
    if target.terminal:
        return frozenset(_ORDER)
    return frozenset(s for s, rank in _ORDER.items() if rank < _ORDER[target])


def step(current: CallStatus, target: CallStatus) -> CallStatus:
    """Return the status after moving ``current`` to ``target``.

    Raises ``TransitionError`` for a move the lifecycle forbids (out of a terminal status, or
    backwards). Re-entering the current status is allowed and returns it unchanged, so retried
    callbacks are harmless.
    """
    if target == current:
        return current
    if current not in allowed_sources(target):
        raise TransitionError(f"call status cannot go from {current.value} to {target.value}")
    return target
