"""The one error tree of callkit.

::

    CallkitError                    ``retryable``: trying again may succeed (False unless said)
    ├── ConfigurationError          a CallInterface/Settings value that cannot work (raised at construction)
    │   └── PreflightError          what a process's calls would need and it lacks, all of it (at startup)
    ├── ProtocolError               a carrier or provider sent something we cannot parse
    │   ├── MessageTooLargeError    a frame or body over the size we accept
    │   └── UnknownEventError       a well-formed message of a type we do not know
    ├── ToolArgumentsError          the model called a tool with arguments that do not fit it
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
    ├── AdmissionRefusedError       a media stream we do not take (``reason``; ``close_code`` for the socket)
    ├── ServiceError                an AWS service or AI provider failed; ``retryable``
    │   ├── TransportError          a request got no complete answer (no connection, lost, timed out)
    │   │   ├── ConnectError        refused, unreachable, failed TLS
    │   │   │   └── ProxyError      the proxy would not open a tunnel (``status``)
    │   │   ├── ConnectionLostError
    │   │   ├── RemoteProtocolError
    │   │   └── TransportTimeoutError
    │   │       ├── ConnectTimeoutError
    │   │       ├── ReadTimeoutError
    │   │       └── PoolTimeoutError
    │   ├── ModelError              the model provider refused or failed (``status``, ``code``)
    │   └── EmptyAnswerError        the model finished with nothing to say and no action
    ├── ConnectionGoneError         the caller's WebSocket is gone (API Gateway 410): the call ended
    └── UnsupportedError            a feature a carrier does not have (Plivo has no relay)

Code branches on the class, never on the message text. At the edges one table each decides what
follows: ``http`` maps errors to HTTP status codes; the media server closes a refused stream with
``AdmissionRefusedError.close_code``; and on a call, ``callkit.call.ending`` decides what the
caller hears (a failed turn: the turn apology from ``conversation.run_turn``; a call that cannot
go on: the apology in our voice, or the carrier's when our voice is the part that failed).
"""

from __future__ import annotations

from collections.abc import Sequence


class CallkitError(Exception):
    """Base of every error callkit raises on purpose."""

    #: Trying the same thing again may succeed (a timeout, a throttled or overloaded service).
    retryable: bool = False


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


class ToolArgumentsError(CallkitError, ValueError):
    """The model called a tool with arguments that do not fit its signature."""


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


class AdmissionRefusedError(CallkitError):
    """A media stream we do not take; nothing was written for it.

    ``reason`` is a fixed phrase for the log; ``close_code`` is the WebSocket close code: 1008
    (policy violation) for a stream that is not what it should be, 1011 (server error) when the call
    store could not be asked.
    """

    POLICY_VIOLATION = 1008
    SERVER_ERROR = 1011

    def __init__(self, reason: str, *, close_code: int = POLICY_VIOLATION) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code


class ServiceError(CallkitError):
    """An AWS service or AI provider failed. ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class TransportError(ServiceError):
    """A request got no complete answer. ``retryable``: sending it again may well succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message, retryable=retryable)


class ConnectError(TransportError):
    """No connection: refused, unreachable, unknown host, or a failed TLS handshake."""


class ProxyError(ConnectError):
    """The proxy refused to open a tunnel; ``status`` is its answer to ``CONNECT`` (0: not HTTP).

    Retryable when the proxy could not reach the origin or is overloaded (429, 502, 503, 504);
    not for a refusal (403) or wrong or missing credentials (407).
    """

    def __init__(self, message: str, *, status: int, retryable: bool) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status


class ConnectionLostError(TransportError):
    """The connection broke while sending the request or reading the response."""


class RemoteProtocolError(TransportError):
    """The server's bytes are not HTTP/1.1 we can read (bad status line, broken chunking)."""


class TransportTimeoutError(TransportError):
    """A step of the request took longer than its timeout."""


class ConnectTimeoutError(TransportTimeoutError):
    """TCP connect plus TLS handshake took longer than ``connect_timeout``."""


class ReadTimeoutError(TransportTimeoutError):
    """No byte arrived (or the send did not drain) within ``read_timeout``."""


class PoolTimeoutError(TransportTimeoutError):
    """Every connection to the host stayed busy for ``connect_timeout``."""


class ModelError(ServiceError):
    """The model provider refused the request or failed.

    ``status`` is the HTTP status (``None`` for an error sent inside the stream), ``code`` the
    provider's error code when it gave one; ``retryable`` is true for 408/409/429/5xx, except
    an exhausted quota.
    """

    def __init__(self, message: str, *, retryable: bool, status: int | None = None, code: str | None = None):
        super().__init__(message, retryable=retryable)
        self.status = status
        self.code = code


class EmptyAnswerError(ServiceError):
    """The model finished without a word to say and without an action."""


class ConnectionGoneError(CallkitError):
    """The peer's WebSocket no longer exists (``@connections`` answered 410 Gone)."""


class UnsupportedError(CallkitError):
    """A feature this carrier does not have."""
