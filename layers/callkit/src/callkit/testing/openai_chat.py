"""A scripted OpenAI-compatible Chat Completions server on loopback, for tests and the demo.

``ScriptedChatServer`` speaks ``POST /v1/chat/completions`` with ``stream: true`` exactly as
docs/protocols/ai-providers.md §4.2 shows: a role chunk, content chunks, tool-call fragments (``index``, ``id``
and ``name`` first, then ``arguments`` in pieces), a ``finish_reason`` chunk, the usage chunk
(``choices: []``) and ``data: [DONE]``. A script picks each reply from the messages it was sent::

    async with ScriptedChatServer(support_script) as server:
        model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="test")
        ...
    server.requests[0].tools   # what the client sent, parsed

``GET /v1/models`` lists ``model`` and ``models`` (what ``callkit doctor --online`` asks). With
``api_key`` set, a request without ``Authorization: Bearer <api_key>`` gets OpenAI's 401.

Replies: a ``str`` or ``TextReply`` (streamed in word-sized pieces, optional delays),
``ToolCallsReply``, ``ErrorReply`` (an HTTP error in OpenAI's error shape) and ``CutReply``
(a stream that stops mid-way, connection closed without the end of the body).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from callkit.llm.protocol import AssistantMessage, Message, ToolCall, ToolMessage, UserMessage, from_wire

if TYPE_CHECKING:
    import uvicorn

__all__ = [
    "CutReply",
    "ErrorReply",
    "RecordedRequest",
    "Reply",
    "Script",
    "ScriptedChatServer",
    "TextReply",
    "ToolCallsReply",
    "call",
    "keypad_reply",
    "support_script",
]

_Scope = dict[str, Any]
_Receive = Callable[[], Awaitable[dict[str, Any]]]
_Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Size of the pieces tool-call arguments are split into on the wire.
ARGUMENT_PIECE: Final = 7
CREATED: Final = 1767225600


@dataclass(frozen=True, slots=True)
class TextReply:
    """Say ``text``, one word-sized piece per chunk, ``delay`` seconds apart, after ``first_delay``."""

    text: str
    delay: float = 0.0
    first_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class ToolCallsReply:
    """Call tools, optionally saying ``text`` first. Ids left empty become ``call_1``, ``call_2``..."""

    calls: Sequence[ToolCall]
    text: str = ""
    first_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """Answer with an HTTP error in OpenAI's shape (``{"error": {...}}``)."""

    status: int = 500
    message: str = "The server had an error while processing your request."
    code: str | None = None


@dataclass(frozen=True, slots=True)
class CutReply:
    """Stream ``text`` but close the connection after ``after_pieces`` pieces, with no end."""

    text: str
    after_pieces: int = 1


Reply = str | TextReply | ToolCallsReply | ErrorReply | CutReply
Script = Callable[[Sequence[Message]], Reply]


def call(name: str, call_id: str = "", **arguments: Any) -> ToolCall:
    """A ``ToolCall`` for a ``ToolCallsReply``: ``call("check_order", order_id="1001")``."""
    return ToolCall(call_id, name, json.dumps(arguments))


@dataclass
class RecordedRequest:
    """One request the server received, parsed.

    ``client_port`` tells connections apart (keep-alive); ``disconnected`` is set if the client
    hung up before the answer was complete.
    """

    body: dict[str, Any]
    headers: dict[str, str]
    messages: list[Message]
    client_port: int = 0
    reply: Reply | None = None
    completed: bool = False
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = self.body.get("tools", [])
        return tools

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools]


async def _hung_up(request: RecordedRequest, seconds: float) -> bool:
    """Wait ``seconds``, or less if the client hangs up; whether it did."""
    try:
        await asyncio.wait_for(request.disconnected.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _pieces(text: str) -> list[str]:
    """Word-sized pieces that join back to ``text`` exactly (each word keeps its leading space)."""
    return re.findall(r"\s*\S+|\s+$", text) or [text]


class ScriptedChatServer:
    """An OpenAI-compatible streaming chat server that answers from ``script``, on 127.0.0.1."""

    def __init__(
        self,
        script: Script | None = None,
        *,
        model: str = "gpt-4o-mini",
        models: Sequence[str] = (),
        api_key: str | None = None,
    ) -> None:
        self.script: Script = script or support_script
        self.model = model
        self.models = [model, *(m for m in models if m != model)]
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        """What to give as ``base_url`` / ``OPENAI_BASE_URL`` (ends in ``/v1``)."""
        if self._socket is None:
            raise RuntimeError("ScriptedChatServer is not running; use 'async with'")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}/v1"

    async def __aenter__(self) -> ScriptedChatServer:
        import uvicorn  # test-only dependency, kept off import paths that production uses

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            log_config=None,  # leave the process's logging set-up alone
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(server.serve(sockets=[self._socket]))
        while not server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.005)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._socket is not None:
            self._socket.close()

    # --- the ASGI app ---------------------------------------------------------------------------

    async def _app(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            refusal = {"message": "Incorrect API key provided.", "type": "invalid_request_error"}
            await self._json(send, 401, {"error": {**refusal, "param": None, "code": "invalid_api_key"}})
            return
        if scope["method"] == "GET" and scope["path"] == "/v1/models":
            listed = [
                {"id": m, "object": "model", "created": CREATED, "owned_by": "system"} for m in self.models
            ]
            await self._json(send, 200, {"object": "list", "data": listed})
            return
        if scope["method"] != "POST" or not scope["path"].endswith("/chat/completions"):
            await self._json(send, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        try:
            body = json.loads(raw)
            messages = from_wire(body["messages"])
        except (ValueError, KeyError, TypeError) as exc:
            await self._json(
                send, 400, {"error": {"message": f"bad request: {exc}", "type": "invalid_request_error"}}
            )
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client") or ("", 0)
        request = RecordedRequest(body=body, headers=headers, messages=messages, client_port=int(client[1]))
        self.requests.append(request)
        reply = self.script(messages)
        request.reply = reply
        if isinstance(reply, ErrorReply):
            error: dict[str, Any] = {
                "message": reply.message,
                "type": "server_error",
                "param": None,
                "code": reply.code,
            }
            await self._json(send, reply.status, {"error": error})
            request.completed = True
            return

        watcher = asyncio.create_task(self._watch_disconnect(receive, request))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
                }
            )
            await self._stream(send, body, messages, reply, request)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_disconnect(self, receive: _Receive, request: RecordedRequest) -> None:
        message = await receive()
        if message["type"] == "http.disconnect" and not request.completed:
            request.disconnected.set()

    async def _stream(
        self,
        send: _Send,
        body: dict[str, Any],
        messages: Sequence[Message],
        reply: str | TextReply | ToolCallsReply | CutReply,
        request: RecordedRequest,
    ) -> None:
        completion_id = f"chatcmpl-{next(self._ids)}"
        model = str(body.get("model", self.model))

        async def event(payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
            await send(
                {"type": "http.response.body", "body": f"data: {data}\n\n".encode(), "more_body": True}
            )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
                "usage": None,
            }

        if isinstance(reply, str):
            reply = TextReply(reply)
        first_delay = reply.first_delay if isinstance(reply, TextReply | ToolCallsReply) else 0.0
        if first_delay and await _hung_up(request, first_delay):
            return
        pieces_sent = 0
        if isinstance(reply, TextReply | CutReply):
            await event(chunk({"role": "assistant", "content": "", "refusal": None}))
            for index, piece in enumerate(_pieces(reply.text)):
                if request.disconnected.is_set():
                    return
                if isinstance(reply, CutReply) and index >= reply.after_pieces:
                    return  # ends the app without finishing the body: uvicorn closes the connection
                if (
                    isinstance(reply, TextReply)
                    and reply.delay
                    and index
                    and await _hung_up(request, reply.delay)
                ):
                    return
                await event(chunk({"content": piece}))
                pieces_sent += 1
            finish = "stop"
        else:
            first: dict[str, Any] = {"role": "assistant", "content": None}
            if reply.text:
                first["content"] = ""
                await event(chunk(first))
                for piece in _pieces(reply.text):
                    await event(chunk({"content": piece}))
                    pieces_sent += 1
                first = {}
            for index, tool_call in enumerate(reply.calls):
                call_id = tool_call.id or f"call_{next(self._ids)}"
                opening = {
                    "index": index,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": tool_call.name, "arguments": ""},
                }
                await event(chunk({**first, "tool_calls": [opening]}))
                first = {}
                arguments = tool_call.arguments
                for start in range(0, len(arguments), ARGUMENT_PIECE):
                    fragment = {
                        "index": index,
                        "function": {"arguments": arguments[start : start + ARGUMENT_PIECE]},
                    }
                    await event(chunk({"tool_calls": [fragment]}))
                    pieces_sent += 1
            finish = "tool_calls"
        await event(chunk({}, finish))
        prompt_tokens = sum(len(getattr(m, "content", None) or "") for m in messages) // 4
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": pieces_sent, "total_tokens": 0}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        await event({**chunk({}), "choices": [], "usage": usage})
        await event("[DONE]")
        request.completed = True
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    async def _json(send: _Send, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


# --- a plausible support agent for callkit.examples.support_agent ----------------------------------

_ORDER_NUMBER: Final = re.compile(r"\b(\d{3,10})\b")
_PERSON: Final = re.compile(r"\b(person|human|agent|representative|operator|someone real)\b", re.IGNORECASE)
_GREETING: Final = re.compile(r"^\W*(hi|hello|hey|good (morning|afternoon|evening))\b", re.IGNORECASE)
_GOODBYE: Final = re.compile(r"\b(bye|goodbye|thanks|thank you|that's all|that is all)\b", re.IGNORECASE)


#: How a key press reaches the model: ``Phrases.keypad`` (English) in ``callkit.call.phrases``.
_KEYPAD: Final = re.compile(r"pressed ([0-9*#]) on the keypad")
_KEY_NAMES: Final = {
    "0": "zero",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
    "*": "star",
    "#": "pound",
}
#: The menu the scripted agent pretends to have.
_KEY_MENU: Final = {
    "1": "our order line. What's your order number?",
    "0": "the operator. Just ask for a person and I'll connect you.",
}


def keypad_reply(digit: str) -> str:
    """What the scripted agent says to a key press: the key actually pressed, then the menu."""
    name = _KEY_NAMES.get(digit, digit)
    where = _KEY_MENU.get(digit)
    if where:
        return f"You pressed {name}, {where}"
    return f"You pressed {name}. Press one for orders, or zero for a person."


def support_script(messages: Sequence[Message]) -> Reply:
    """Acts like the ``support_agent`` of ``callkit.examples``: order numbers → ``check_order``,
    asking for a person → ``transfer_call``, a key press → what that key does, a tool result →
    that result in a sentence."""
    last = messages[-1] if messages else None
    if isinstance(last, ToolMessage):
        names = {c.id: c.name for m in messages if isinstance(m, AssistantMessage) for c in m.tool_calls}
        results: list[tuple[str, str]] = []
        for message in reversed(messages):
            if not isinstance(message, ToolMessage):
                break
            results.insert(0, (names.get(message.tool_call_id, ""), message.content))
        if any(text.startswith("Error") for _, text in results):
            return "Sorry, I couldn't do that just now. Could you tell me again what you need?"
        if any(name == "transfer_call" for name, _ in results):
            if any("being transferred" in text for _, text in results):  # Transfer.describe()
                return "Sure, I'm connecting you with a person now. Please hold."
            return "I'm sorry, no one is available right now. I can check on an order for you instead."
        return " ".join(text for _, text in results) + " Is there anything else I can help with?"
    user = last.content if isinstance(last, UserMessage) else ""
    key = _KEYPAD.search(user)
    if key:
        return keypad_reply(key.group(1))
    if _PERSON.search(user):
        return ToolCallsReply([call("transfer_call", reason="caller asked for a person")])
    order = _ORDER_NUMBER.search(user)
    if order:
        return ToolCallsReply([call("check_order", order_id=order.group(1))])
    if _GOODBYE.search(user):
        return "You're welcome. Thanks for calling Acme Shop, goodbye!"
    if _GREETING.search(user):
        return "Hi! I can check on an order or connect you with a person. What can I do for you?"
    return "I can help with order status or connect you with a person. What's your order number?"
