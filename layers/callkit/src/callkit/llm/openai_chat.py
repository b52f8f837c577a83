"""An OpenAI-compatible Chat Completions model, streamed over ``callkit.net.HTTPClient``.

This module only moves bytes: ``protocol.encode_request`` builds the body, ``SSEParser`` and
``ChatStreamDecoder`` read the answer (docs/protocols/ai-providers.md §4). Any server that speaks the same
shape works through ``base_url`` / ``OPENAI_BASE_URL`` (a local scripted server in tests and the
demo, other providers' compatible endpoints in production).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Final, Protocol

from callkit._env import masked, resolve
from callkit.agent import JSONSchema, ModelRef
from callkit.errors import ConfigurationError
from callkit.llm.protocol import (
    ChatEvent,
    ChatStreamDecoder,
    Finished,
    Message,
    SSEParser,
    ToolChoice,
    encode_request,
    error_from_response,
)
from callkit.net.http1 import HTTPClient, Response

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
#: How much of an error body we read to find the provider's message.
_ERROR_BODY_LIMIT: Final = 64 * 1024


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
    """

    def __init__(
        self,
        model: str | ModelRef,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        client: HTTPClient | None = None,
        timeout: float = 20.0,
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
        # A completion changes nothing on the server, so a request lost on a dead kept-alive
        # connection may be sent again.
        async with self._client.stream("POST", self._url, self._headers, body, idempotent=True) as response:
            if not response.is_success:
                raise error_from_response(
                    response.status, await _read_some(response), secrets=(self._api_key,)
                )
            parser = SSEParser()
            decoder = ChatStreamDecoder()
            finished = False
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


async def _read_some(response: Response) -> bytes:
    body = b""
    async for data in response.aiter_bytes():
        body += data
        if len(body) >= _ERROR_BODY_LIMIT:
            break
    return body
