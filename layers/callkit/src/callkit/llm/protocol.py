"""OpenAI Chat Completions as pure data: messages, request bodies, SSE bytes in → chat events out.

No sockets and no asyncio here (STYLE 1); ``openai_chat.py`` moves the bytes. Wire shapes are in
docs/protocols/ai-providers.md §4: the request (§4.1), the SSE stream of ``chat.completion.chunk``
objects and how tool-call fragments assemble by ``index`` (§4.2).

Messages mirror the wire one to one, so a history persisted as JSON between Lambda invocations
round-trips exactly: ``from_wire(to_wire(history)) == history``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from callkit.errors import MessageTooLargeError, ModelError, ProtocolError

__all__ = [
    "AssistantMessage",
    "ChatEvent",
    "ChatStreamDecoder",
    "Finished",
    "Message",
    "ModelError",
    "SSEParser",
    "SystemMessage",
    "TextDelta",
    "ToolCall",
    "ToolCallDone",
    "ToolChoice",
    "ToolMessage",
    "Usage",
    "UserMessage",
    "decode_history",
    "encode_history",
    "encode_request",
    "error_from_response",
    "from_wire",
    "to_wire",
]

JSONSchema = dict[str, Any]
ToolChoice = Literal["auto", "none", "required"]


# --- messages (docs/protocols/ai-providers.md §4.1, §4.2 "Next request") -------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the model asked for; ``arguments`` is its JSON text, unparsed."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class SystemMessage:
    content: str


@dataclass(frozen=True, slots=True)
class UserMessage:
    content: str


@dataclass(frozen=True, slots=True)
class AssistantMessage:
    """What the model said (``content``, ``None`` when it only called tools) and the calls it made."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolMessage:
    """A tool's result, answering the call with ``tool_call_id``."""

    tool_call_id: str
    content: str


Message = SystemMessage | UserMessage | AssistantMessage | ToolMessage


def to_wire(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """Chat Completions ``messages[]``."""
    wire: list[dict[str, Any]] = []
    for message in messages:
        match message:
            case SystemMessage(content):
                wire.append({"role": "system", "content": content})
            case UserMessage(content):
                wire.append({"role": "user", "content": content})
            case AssistantMessage(content, tool_calls):
                item: dict[str, Any] = {"role": "assistant", "content": content}
                if tool_calls:  # the API rejects an empty tool_calls array
                    item["tool_calls"] = [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        }
                        for c in tool_calls
                    ]
                wire.append(item)
            case ToolMessage(tool_call_id, content):
                wire.append({"role": "tool", "tool_call_id": tool_call_id, "content": content})
    return wire


def _text(item: Mapping[str, Any], key: str, *, nullable: bool = False) -> Any:
    value = item.get(key)
    if isinstance(value, str) or (nullable and value is None):
        return value
    raise ProtocolError(f"{item.get('role')} message field {key!r} must be a string")


def from_wire(wire: Iterable[Mapping[str, Any]]) -> list[Message]:
    """Messages from Chat Completions ``messages[]`` (text content only). Raises ``ProtocolError``."""
    messages: list[Message] = []
    for item in wire:
        if not isinstance(item, Mapping):
            raise ProtocolError("a message must be a JSON object")
        role = item.get("role")
        if role == "system":
            messages.append(SystemMessage(_text(item, "content")))
        elif role == "user":
            messages.append(UserMessage(_text(item, "content")))
        elif role == "tool":
            messages.append(ToolMessage(_text(item, "tool_call_id"), _text(item, "content")))
        elif role == "assistant":
            calls: list[ToolCall] = []
            for raw in item.get("tool_calls") or ():
                function = raw.get("function") if isinstance(raw, Mapping) else None
                if not isinstance(function, Mapping):
                    raise ProtocolError("an assistant tool call needs a 'function' object")
                calls.append(
                    ToolCall(_text(raw, "id"), _text(function, "name"), _text(function, "arguments"))
                )
            messages.append(AssistantMessage(_text(item, "content", nullable=True), tuple(calls)))
        else:
            raise ProtocolError(f"unknown message role {role!r}")
    return messages


_json_encoder: Final = msgspec.json.Encoder()


def encode_history(messages: Iterable[Message]) -> bytes:
    """A history as JSON (the wire shape), for storing between turns."""
    return _json_encoder.encode(to_wire(messages))


def decode_history(data: bytes | str) -> list[Message]:
    """The inverse of ``encode_history``. Raises ``ProtocolError``."""
    try:
        wire = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"history is not JSON: {exc}") from None
    if not isinstance(wire, list):
        raise ProtocolError("history must be a JSON array of messages")
    return from_wire(wire)


def encode_request(
    model: str,
    messages: Sequence[Message],
    tools: Sequence[JSONSchema] = (),
    *,
    max_tokens: int | None = None,
    tool_choice: ToolChoice | None = None,
) -> bytes:
    """The JSON body of a streaming ``POST /chat/completions`` (docs/protocols/ai-providers.md §4.1)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": to_wire(messages),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if tools:
        body["tools"] = list(tools)
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
    if max_tokens is not None:
        body["max_completion_tokens"] = max_tokens  # `max_tokens` is deprecated (§4.1)
    return _json_encoder.encode(body)


class _ErrorDetail(msgspec.Struct):
    message: str | None = None
    type: str | None = None
    code: str | int | None = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail | str | None = None


#: Anything that looks like an API key, even a provider's half-masked echo of one.
_KEY_LIKE: Final = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-*]{6,}")
_RETRYABLE_STATUS: Final = frozenset({408, 409, 429})


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _KEY_LIKE.sub("***", text)


def error_from_response(status: int, body: bytes, *, secrets: Iterable[str] = ()) -> ModelError:
    """The ``ModelError`` for a non-2xx answer; its message never holds ``secrets`` or key-like text."""
    message, code = "", None
    try:
        parsed = msgspec.json.decode(body, type=_ErrorBody)
    except msgspec.MsgspecError:
        message = body[:200].decode("utf-8", "replace").strip()
    else:
        if isinstance(parsed.error, _ErrorDetail):
            message = parsed.error.message or parsed.error.type or ""
            code = None if parsed.error.code is None else str(parsed.error.code)
        elif isinstance(parsed.error, str):
            message = parsed.error
    retryable = (status in _RETRYABLE_STATUS or status >= 500) and code != "insufficient_quota"
    text = _redact(message, secrets)[:300] or "no error message"
    return ModelError(f"model API answered {status}: {text}", retryable=retryable, status=status, code=code)


# --- server-sent events (HTML Living Standard §9.2.6, "Interpreting an event stream") --------------


class SSEParser:
    """Bytes of an event stream in any chunking → the ``data`` payload of each complete event.

    Lines end in CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the next
    are one line end). ``:`` lines are comments; several ``data:`` lines join with ``\\n``; other
    fields (``event``, ``id``, ``retry``) are ignored; an event without data is not dispatched.
    """

    def __init__(self, *, max_line: int = 1 << 20) -> None:
        self._pending = b""
        self._after_cr = False
        self._started = False
        self._data: list[bytes] = []
        self._max_line = max_line

    def feed(self, data: bytes) -> list[str]:
        if self._after_cr and data.startswith(b"\n"):
            data = data[1:]
        self._after_cr = False
        if not data:
            return []
        buffer = self._pending + data if self._pending else data
        if not self._started:
            if len(buffer) < 3 and b"\xef\xbb\xbf".startswith(buffer):
                self._pending = buffer
                return []
            self._started = True
            buffer = buffer.removeprefix(b"\xef\xbb\xbf")
        lines = buffer.splitlines(keepends=True)
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            self._pending = lines.pop()
            if len(self._pending) > self._max_line:
                raise MessageTooLargeError(f"event stream line over {self._max_line} bytes")
        else:
            self._pending = b""
        if lines and lines[-1].endswith(b"\r"):
            self._after_cr = True  # an LF opening the next chunk belongs to this line end
        events: list[str] = []
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data).decode("utf-8", "replace"))
                    self._data = []
                continue
            if line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            if name == b"data":
                self._data.append(value.removeprefix(b" "))
        return events


# --- chat.completion.chunk (docs/protocols/ai-providers.md §4.2) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text to speak, as it streams."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDone:
    """A tool call, whole (emitted when the choice's ``finish_reason`` arrives)."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of the answer: ``reason`` is ``stop``, ``tool_calls``, ``length``, ``content_filter``...

    ``usage`` is ``None`` when the stream ended before the usage chunk.
    """

    reason: str
    usage: Usage | None = None


ChatEvent = TextDelta | ToolCallDone | Finished


class _FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCallDelta(msgspec.Struct):
    index: int
    id: str | None = None
    function: _FunctionDelta | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    delta: _Delta | None = None
    finish_reason: str | None = None


class _WireUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []
    usage: _WireUsage | None = None
    error: _ErrorDetail | None = None


_chunk_decoder: Final = msgspec.json.Decoder(_Chunk)


class _PendingCall:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class ChatStreamDecoder:
    """SSE payloads of one streamed completion → ``TextDelta``, ``ToolCallDone``, ``Finished``.

    Feed every ``data`` payload, ``[DONE]`` included; call ``close()`` when the bytes end, to
    finish a stream that stopped after its ``finish_reason`` but before ``[DONE]``. Only choice 0
    is read. A malformed chunk raises ``ProtocolError``; an error object inside the stream raises
    ``ModelError``.
    """

    def __init__(self) -> None:
        self._calls: dict[int, _PendingCall] = {}
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self.done = False

    def feed(self, payload: str) -> list[ChatEvent]:
        if self.done:
            raise ProtocolError("data after the end of the chat stream")
        if payload.strip() == "[DONE]":
            return self.close()
        try:
            chunk = _chunk_decoder.decode(payload)
        except msgspec.MsgspecError as exc:
            raise ProtocolError(f"malformed chat.completion.chunk: {exc}") from None
        if chunk.error is not None:
            raise ModelError(
                f"model stream error: {_redact(chunk.error.message or chunk.error.type or 'unknown', ())}",
                retryable=False,
                code=None if chunk.error.code is None else str(chunk.error.code),
            )
        events: list[ChatEvent] = []
        if chunk.usage is not None:
            u = chunk.usage
            self._usage = Usage(u.prompt_tokens, u.completion_tokens, u.total_tokens)
        for choice in chunk.choices:
            if choice.index != 0 or self._finish_reason is not None:
                continue
            delta = choice.delta
            if delta is not None:
                text = delta.content or delta.refusal
                if text:
                    events.append(TextDelta(text))
                for fragment in delta.tool_calls or ():
                    pending = self._calls.setdefault(fragment.index, _PendingCall())
                    if fragment.id:
                        pending.id = fragment.id
                    if fragment.function is not None:
                        if fragment.function.name and not pending.name:
                            pending.name = fragment.function.name
                        if fragment.function.arguments:
                            pending.arguments.append(fragment.function.arguments)
            if choice.finish_reason is not None:
                self._finish_reason = choice.finish_reason
                events.extend(self._completed_calls())
        return events

    def close(self) -> list[ChatEvent]:
        """The stream ended (``[DONE]`` or end of body): the final ``Finished``, once."""
        if self.done:
            return []
        self.done = True
        if self._finish_reason is None:
            raise ProtocolError("the chat stream ended without a finish_reason")
        return [Finished(self._finish_reason, self._usage)]

    def _completed_calls(self) -> list[ChatEvent]:
        events: list[ChatEvent] = []
        for index in sorted(self._calls):
            pending = self._calls[index]
            if not pending.name:
                raise ProtocolError(f"tool call at index {index} has no function name")
            call_id = pending.id or f"call_{index}"  # some compatible servers leave ids out
            events.append(ToolCallDone(ToolCall(call_id, pending.name, "".join(pending.arguments))))
        self._calls.clear()
        return events
