"""Stream tokens: the webhook's short-lived permission for one call's media stream (docs/architecture.md §2.3).

A token binds a call id, a pipeline and an expiry with HMAC-SHA256 under a key from configuration.
It is plain lower-case hex so it survives every carrier channel, including Plivo ``extraHeaders``
which allow only ``[A-Za-z0-9]`` (docs/protocols/plivo.md §3)::

    token = hex("v1|" + call_id + "|" + pipeline + "|" + expiry) + hex(HMAC-SHA256(key, that payload))

The last 64 characters are the MAC. Verification checks the MAC first (constant time), then the
expiry, then that the token names the call and pipeline the stream claims. A token is not single
use by itself: the media server also claims the call item atomically, so a replay cannot attach a
second stream.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from callkit.errors import (
    ConfigurationError,
    ExpiredTokenError,
    ForgedTokenError,
    MalformedTokenError,
    WrongCallTokenError,
)

_VERSION = "v1"
_MAC_HEX = 64
#: Far larger than any real token (~200 chars); refuse before decoding anything bigger.
_MAX_TOKEN_CHARS = 1024
#: Keys shorter than this are guessable; 32 bytes matches the HMAC-SHA256 block strength we want.
MIN_KEY_BYTES = 32
DEFAULT_TTL_SECONDS = 300


@dataclass(frozen=True, slots=True)
class StreamGrant:
    """What a verified token allows."""

    call_id: str
    pipeline: str
    expires_at: int


class StreamTokens:
    """Mints and verifies stream tokens with one key."""

    __slots__ = ("_clock", "_key", "ttl_seconds")

    def __init__(
        self,
        key: bytes | str,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        raw = key.encode() if isinstance(key, str) else key
        if len(raw) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"the stream token key must be at least {MIN_KEY_BYTES} bytes; generate one with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        if ttl_seconds <= 0:
            raise ConfigurationError("stream token ttl_seconds must be positive")
        self._key = raw
        self._clock = clock
        self.ttl_seconds = ttl_seconds

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def mint(self, call_id: str, pipeline: str) -> str:
        """A token for ``call_id`` on ``pipeline``.

        Raises ``MalformedTokenError`` (a ``CallkitError``, so an edge that maps errors never
        turns it into a 500) for a call id or pipeline no token can carry: empty, holding the
        ``|`` separator, not UTF-8 encodable, or so long the token would be over the verifier's
        limit. Webhooks validate call ids at parse time, so this is the last line, not the first.
        """
        if not call_id or not pipeline or "|" in call_id or "|" in pipeline:
            raise MalformedTokenError("call_id and pipeline must be non-empty and contain no '|'")
        expires_at = int(self._clock()) + self.ttl_seconds
        try:
            payload = f"{_VERSION}|{call_id}|{pipeline}|{expires_at}".encode()
        except UnicodeEncodeError:
            raise MalformedTokenError("call_id and pipeline must be encodable as UTF-8") from None
        token = payload.hex() + self._mac(payload)
        if len(token) > _MAX_TOKEN_CHARS:
            raise MalformedTokenError("call_id is too long for a stream token")
        return token

    def verify(self, token: str, *, call_id: str, pipeline: str) -> StreamGrant:
        """The grant for ``token`` if it admits ``call_id`` on ``pipeline``; raises a ``TokenError`` otherwise."""
        if not token or len(token) > _MAX_TOKEN_CHARS or len(token) <= _MAC_HEX or len(token) % 2:
            raise MalformedTokenError("stream token has the wrong length")
        payload_hex, mac = token[:-_MAC_HEX], token[-_MAC_HEX:]
        try:
            payload = bytes.fromhex(payload_hex)
        except ValueError as exc:
            raise MalformedTokenError("stream token is not hex") from exc
        if not hmac.compare_digest(self._mac(payload), mac):
            raise ForgedTokenError("stream token MAC does not match")
        try:
            version, token_call, token_pipeline, expiry = payload.decode().split("|")
            expires_at = int(expiry)
        except ValueError as exc:  # a genuine MAC over a payload we never mint means a key reuse bug
            raise MalformedTokenError("stream token payload is not one we mint") from exc
        if version != _VERSION:
            raise MalformedTokenError(f"stream token version {version!r} is not supported")
        if self._clock() >= expires_at:
            raise ExpiredTokenError("stream token has expired")
        if not hmac.compare_digest(token_call.encode(), call_id.encode()) or token_pipeline != pipeline:
            raise WrongCallTokenError("stream token was minted for another call or pipeline")
        return StreamGrant(call_id=token_call, pipeline=token_pipeline, expires_at=expires_at)
