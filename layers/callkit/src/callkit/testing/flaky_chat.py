"""A bare-bones streaming chat server on loopback that fails on purpose, for retry and load tests.

``ScriptedChatServer`` (uvicorn) plays conversations; this one plays the network around them,
written on raw asyncio streams so that it can say what uvicorn would not and stays cheap with
hundreds of connections. Each request gets the next planned ``Failure`` (``failures`` in order,
then ``always`` for good); when there is none, a streamed completion of ``text``, after
``first_delay`` seconds with nothing sent::

    async with FlakyChatServer([Refusal(429, retry_after="0.1")]) as server:
        model = OpenAIChatModel("m", base_url=server.base_url)
        ...
    server.requests, server.connections

``Refusal``: an HTTP error in OpenAI's shape, with ``Retry-After`` if given. ``Reset``: the
connection is closed as soon as the request has arrived, with no answer.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from callkit.testing._listener import Listener

__all__ = ["Failure", "FlakyChatServer", "Refusal", "Reset"]

CREATED: Final = 1767225600


@dataclass(frozen=True, slots=True)
class Refusal:
    """Answer ``status`` with an OpenAI-shaped error body (``message`` may quote the caller)."""

    status: int
    retry_after: str | None = None
    message: str = "The server is overloaded."
    code: str | None = None
    type: str = "server_error"


@dataclass(frozen=True, slots=True)
class Reset:
    """Close the connection without answering."""


Failure = Refusal | Reset


def _chunk(delta: dict[str, object], finish_reason: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-flaky",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "flaky",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _framed(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class FlakyChatServer:
    """Serves ``POST .../chat/completions`` on 127.0.0.1 (TLS with ``ssl_context``)."""

    def __init__(
        self,
        failures: Sequence[Failure] = (),
        *,
        always: Failure | None = None,
        text: str = "Hello there.",
        first_delay: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.failures = list(failures)
        self.always = always
        self.text = text
        self.first_delay = first_delay
        self.ssl_context = ssl_context
        self.requests = 0
        self.connections = 0
        #: ``time.monotonic()`` of each request's arrival.
        self.arrivals: list[float] = []
        self._listener = Listener(self._serve, name="FlakyChatServer", ssl_context=ssl_context)

    @property
    def port(self) -> int:
        return self._listener.port

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> FlakyChatServer:
        await self._listener.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._listener.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await self._answer(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        self.requests += 1
        self.arrivals.append(time.monotonic())
        failure = self.failures.pop(0) if self.failures else self.always
        if isinstance(failure, Reset):
            return False
        if isinstance(failure, Refusal):
            error = {"message": failure.message, "type": failure.type, "param": None, "code": failure.code}
            body = json.dumps({"error": error}).encode()
            extra = f"Retry-After: {failure.retry_after}\r\n" if failure.retry_after is not None else ""
            writer.write(
                f"HTTP/1.1 {failure.status} Error\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            return True
        if self.first_delay:
            await asyncio.sleep(self.first_delay)
        events = [_chunk({"role": "assistant", "content": ""})]
        events += [_chunk({"content": word}) for word in _words(self.text)]
        events += [_chunk({}, "stop"), b"data: [DONE]\n\n"]
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(_framed(event) for event in events)
            + b"0\r\n\r\n"
        )
        await writer.drain()
        return True


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [words[0], *(f" {word}" for word in words[1:])]
