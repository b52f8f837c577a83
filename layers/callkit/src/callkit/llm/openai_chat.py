"""An OpenAI-compatible Chat Completions model, streamed over ``callkit.net.HTTPClient``.

This module only moves bytes: ``protocol.encode_request`` builds the body, ``SSEParser`` and
``ChatStreamDecoder`` read the answer (docs/protocols/ai-providers.md §4). Any server that speaks the same
shape works through ``base_url`` / ``OPENAI_BASE_URL`` (a local scripted server in tests and the
demo, other providers' compatible endpoints in production).

Retries (``callkit.net.retry.RetryPolicy``): a 429 (after its ``Retry-After``, capped), a 500, 502,
503 or 504, or a transport failure before the response head (refused, reset, timed out) is tried
again with a jittered backoff, but only while a new attempt can still answer within the policy's
``deadline``, the caller's first-token budget (``conversation.run_turn`` allows 10 s). Nothing is
retried once the body of a successful answer has started. When retrying stops, the failure is a
``ServiceError(retryable=True)`` whose ``__cause__`` is the last attempt's error.

Provider error bodies can quote what the caller said: no error raised or logged here carries their
text, only the HTTP status and the provider's error type and code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Final, Protocol

import msgspec

from callkit._env import masked, resolve
from callkit.agent import JSONSchema, ModelRef
from callkit.errors import ConfigurationError, ServiceError
from callkit.llm.protocol import (
    ChatEvent,
    ChatStreamDecoder,
    Finished,
    Message,
    ModelError,
    SSEParser,
    ToolChoice,
    encode_request,
    error_from_response,
)
from callkit.net.http1 import HTTPClient, Response, TransportError
from callkit.net.retry import RETRYABLE_STATUS, RetryPolicy, retry_after

__all__ = [
    "DEFAULT_OPENAI_BASE_URL",
    "ENV_OPENAI_API_KEY",
    "ENV_OPENAI_BASE_URL",
    "ChatModel",
    "OpenAIChatModel",
]

ENV_OPENAI_API_KEY: Final = "OPENAI_API_KEY"
ENV_OPENAI_BASE_URL: Final = "OPENAI_BASE_URL"
DEFAULT_OPENAI_BASE_URL: Final = "https://api.openai.com/v1"
#: How much of an error body we read to find the provider's error type and code.
_ERROR_BODY_LIMIT: Final = 64 * 1024
#: What a provider's error ``type`` or ``code`` looks like; anything else is not repeated.
_IDENTIFIER: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

log = logging.getLogger(__name__)


class _ErrorFields(msgspec.Struct):
    type: str | None = None
    code: str | int | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorFields | str | None = None


class ChatModel(Protocol):
    """A chat model that streams one answer to a conversation.

    The stream yields ``TextDelta`` as text arrives, ``ToolCallDone`` per whole tool call, and ends
    with one ``Finished``. Failures raise ``CallkitError`` subclasses (``TransportError``,
    ``ModelError``, ``ProtocolError``); cancelling the consumer closes the request.
    """

    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[JSONSchema],
        *,
        max_tokens: int | None = None,
        tool_choice: ToolChoice | None = None,
    ) -> AsyncIterator[ChatEvent]: ...


class OpenAIChatModel:
    """``POST {base_url}/chat/completions`` with ``stream: true``.

    ``model`` is the provider's model name, or the ``ModelRef`` of an ``Agent`` (``agent.model``).
    The key comes from ``api_key``, else ``OPENAI_API_KEY``; it is required only for the OpenAI
    endpoint itself. ``timeout`` bounds each wait for bytes; the TCP+TLS connect gets up to 5 s.
    ``retry`` (default ``RetryPolicy()``: up to 4 attempts, all within 10 s of the request) says
    when a failed request is sent again; ``RetryPolicy(max_attempts=1)`` never retries. The
    client the model creates reads the proxy variables (``callkit.net.proxy``) once, here.
    """

    def __init__(
        self,
        model: str | ModelRef,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        client: HTTPClient | None = None,
        timeout: float = 20.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.model = model.name if isinstance(model, ModelRef) else model
        if not self.model:
            raise ConfigurationError("OpenAIChatModel needs a model name, e.g. 'gpt-4o-mini'")
        self.base_url = resolve(base_url, ENV_OPENAI_BASE_URL, DEFAULT_OPENAI_BASE_URL).rstrip("/")
        if not self.base_url.startswith(("https://", "http://")):
            raise ConfigurationError(
                f"base_url must start with https:// or http://, not {self.base_url[:20]!r}"
            )
        self._api_key = resolve(api_key, ENV_OPENAI_API_KEY)
        if not self._api_key and self.base_url == DEFAULT_OPENAI_BASE_URL:
            raise ConfigurationError(
                f"OpenAIChatModel needs an API key: pass api_key= or set {ENV_OPENAI_API_KEY}"
            )
        self.retry = retry or RetryPolicy()
        self._url = f"{self.base_url}/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            self._headers["Authorization"] = f"Bearer {self._api_key}"
        self._owns_client = client is None
        self._client = client or HTTPClient(connect_timeout=min(timeout, 5.0), read_timeout=timeout)

    def __repr__(self) -> str:
        return f"OpenAIChatModel(model={self.model!r}, base_url={self.base_url!r}, api_key={masked(self._api_key)})"

    async def aclose(self) -> None:
        """Close the HTTP client if this model created it."""
        if self._owns_client:
            await self._client.aclose()

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[JSONSchema],
        *,
        max_tokens: int | None = None,
        tool_choice: ToolChoice | None = None,
    ) -> AsyncIterator[ChatEvent]:
        body = encode_request(self.model, messages, tools, max_tokens=max_tokens, tool_choice=tool_choice)
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            attempt_started = time.monotonic()
            wait_hint: float | None = None
            async with contextlib.AsyncExitStack() as stack:
                try:
                    # A completion changes nothing on the server, so a request lost on a dead
                    # kept-alive connection may be sent again.
                    response = await stack.enter_async_context(
                        self._client.stream("POST", self._url, self._headers, body, idempotent=True)
                    )
                except TransportError as exc:
                    failure: ModelError | TransportError = exc
                    retryable = exc.retryable
                else:
                    if response.is_success:
                        async for event in _events(response):
                            yield event
                        return
                    failure = _http_error(response.status, await _read_some(response))
                    retryable = failure.retryable and response.status in RETRYABLE_STATUS
                    wait_hint = retry_after(response.headers)
            if not retryable:
                raise failure
            now = time.monotonic()
            wait = self.retry.delay(
                attempts, elapsed=now - started, last_attempt=now - attempt_started, retry_after=wait_hint
            )
            if wait is None:
                raise ServiceError(
                    f"model API failed {attempts} time(s) in {now - started:.1f} s; "
                    f"last: {_describe(failure)}",
                    retryable=True,
                ) from failure
            log.warning(
                "model API attempt %d failed (%s); retrying in %.2f s", attempts, _describe(failure), wait
            )
            await asyncio.sleep(wait)


async def _events(response: Response) -> AsyncIterator[ChatEvent]:
    parser = SSEParser()
    decoder = ChatStreamDecoder()
    finished = False
    try:
        async for data in response.aiter_bytes():
            if finished:
                continue  # read to the end of the body so the connection can be kept
            for payload in parser.feed(data):
                for event in decoder.feed(payload):
                    finished = finished or isinstance(event, Finished)
                    yield event
                if finished:
                    break
        for event in decoder.close():
            yield event
    except ModelError as exc:
        # An error object inside the stream: its message is the provider's text, not repeated.
        raise ModelError(
            f"model stream error ({exc.code or 'no code'})", retryable=exc.retryable, code=exc.code
        ) from None


def _http_error(status: int, body: bytes) -> ModelError:
    """The ``ModelError`` for a non-2xx answer: status, error type and code; never the message."""
    retryable = error_from_response(status, body).retryable  # the protocol's rules (quota: final)
    kind = code = None
    try:
        envelope = msgspec.json.decode(body, type=_ErrorEnvelope)
    except msgspec.MsgspecError:
        pass
    else:
        if isinstance(envelope.error, _ErrorFields):
            kind = envelope.error.type
            code = None if envelope.error.code is None else str(envelope.error.code)
    kind = kind if kind and _IDENTIFIER.match(kind) else None
    code = code if code and _IDENTIFIER.match(code) else None
    detail = ", ".join(part for part in (kind, code) if part)
    message = f"model API answered {status}" + (f" ({detail})" if detail else "")
    return ModelError(message, retryable=retryable, status=status, code=code)


def _describe(failure: ModelError | TransportError) -> str:
    if isinstance(failure, ModelError):
        return f"{failure.status} {failure.code}" if failure.code else str(failure.status)
    return type(failure).__name__


async def _read_some(response: Response) -> bytes:
    body = b""
    try:
        async for data in response.aiter_bytes():
            body += data
            if len(body) >= _ERROR_BODY_LIMIT:
                break
    except TransportError:
        pass  # the status says enough
    return body
