"""The one error tree of callkit.

::

    CallkitError
    ├── ConfigurationError          a CallInterface/Settings value that cannot work (raised at construction)
    │   └── PreflightError          what a process's calls would need and it lacks, all of it (at startup)
    ├── ProtocolError               a carrier or provider sent something we cannot parse
    │   ├── MessageTooLargeError    a frame or body over the size we accept
    │   └── UnknownEventError       a well-formed message of a type we do not know
    ├── SignatureError              a request we cannot prove came from the carrier
    │   ├── MissingSignatureError   no signature header at all
    │   └── InvalidSignatureError   a signature that does not match
    ├── TokenError                  a stream token that does not admit this stream
    │   ├── MalformedTokenError     not a token we could have minted (also: forged)
    │   ├── ForgedTokenError        well-formed, wrong MAC
    │   ├── ExpiredTokenError       valid MAC, past its expiry
    │   └── WrongCallTokenError     valid MAC, minted for another call or pipeline
    ├── StoreError                  the call store failed
    │   └── CallNotFoundError       no item for that call id
    ├── TransitionError             a state machine was asked for a move it does not allow (the call
    │                               lifecycle, a refused claim or attach, the barge-in machine)
    ├── ServiceError                an AWS service or AI provider failed (HTTP error, timeout); ``retryable``
    ├── ConnectionGoneError         the caller's WebSocket is gone (API Gateway 410): the call ended
    └── UnsupportedError            a feature a carrier does not have (Plivo has no relay)

Code branches on the class, never on the message text. ``http.errors`` maps these to HTTP status
codes at the edge; the media server maps them to WebSocket close codes.
"""

from __future__ import annotations

from collections.abc import Sequence


class CallkitError(Exception):
    """Base of every error callkit raises on purpose."""


class ConfigurationError(CallkitError, ValueError):
    """A configuration value that cannot work; the message says what to do instead."""


class PreflightError(ConfigurationError):
    """The startup checks found problems; ``problems`` lists each one with its fix (``callkit.preflight``)."""

    def __init__(self, problems: Sequence[object]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"callkit cannot take calls yet ({count} problem{'s' * (count != 1)}):\n{lines}")


class ProtocolError(CallkitError, ValueError):
    """A message from a carrier or provider that does not follow its wire protocol."""


class MessageTooLargeError(ProtocolError):
    """A message over the size limit we accept for its channel."""


class UnknownEventError(ProtocolError):
    """A well-formed message whose event type we do not know.

    Carriers add events over time; callers usually log and ignore these rather than fail the call.
    """

    def __init__(self, event: str) -> None:
        super().__init__(f"unknown event type {event!r}")
        self.event = event


class SignatureError(CallkitError):
    """A request whose carrier signature is missing or wrong."""


class MissingSignatureError(SignatureError):
    """The request carries no signature header."""


class InvalidSignatureError(SignatureError):
    """The request's signature does not match the body, the URL and our auth token."""


class TokenError(CallkitError):
    """A stream token that does not admit this stream."""


class MalformedTokenError(TokenError):
    """Not something we could have minted."""


class ForgedTokenError(TokenError):
    """Well-formed, but its MAC is not ours."""


class ExpiredTokenError(TokenError):
    """Genuine, but past its expiry."""


class WrongCallTokenError(TokenError):
    """Genuine and fresh, but minted for another call or another pipeline."""


class StoreError(CallkitError):
    """The call store could not do what was asked."""


class CallNotFoundError(StoreError):
    """No call item exists for that call id."""


class TransitionError(CallkitError):
    """A move a state machine does not allow from where it is (call lifecycle, claims, barge-in)."""


class ServiceError(CallkitError):
    """An AWS service or AI provider failed. ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ConnectionGoneError(CallkitError):
    """The peer's WebSocket no longer exists (``@connections`` answered 410 Gone)."""


class UnsupportedError(CallkitError):
    """A feature this carrier does not have."""
