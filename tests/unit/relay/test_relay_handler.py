"""RelayHandler on the in-memory store with in-process fakes: the paths a moto server cannot show."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from callkit import Agent, CallInterface, tool
from callkit.actions import EndCall
from callkit.carriers import twilio
from callkit.errors import ConnectionGoneError
from callkit.lifecycle import CallStatus
from callkit.llm.protocol import Finished, Message, TextDelta, ToolCall, ToolCallDone
from callkit.relay.handler import RelayHandler
from callkit.relay.timer import LoopCallTimer
from callkit.settings import Settings
from callkit.store._base import CallRecord
from callkit.store.memory import MemoryCallStore
from callkit.switchboard import Credentials
from callkit.telemetry import StdlibTelemetry

RELAY = "wss://relay.example.com/prod"
TOKEN = "relay-test-token"


@tool
def hang_up() -> EndCall:
    """End the call."""
    return EndCall("caller-done")


class Model:
    """Replies with ``text`` word by word; calls ``hang_up`` when the caller says goodbye."""

    def __init__(
        self, text: str = "Sure thing. Your order shipped on Monday, it arrives tomorrow. Anything else?"
    ):
        self.text = text

    async def stream(self, messages: Sequence[Message], tools: Sequence[Any], **_: Any) -> AsyncIterator[Any]:
        last = messages[-1]
        if getattr(last, "content", "") == "bye" and tools:
            yield ToolCallDone(ToolCall("call_1", "hang_up", "{}"))
            yield Finished("tool_calls", None)
            return
        for word in self.text.split(" "):
            yield TextDelta(word + " ")
        yield Finished("stop", None)


class Connections:
    def __init__(self, gone_after: int | None = None) -> None:
        self.frames: list[dict[str, Any]] = []
        self.gone_after = gone_after

    async def post(self, connection_id: str, data: bytes) -> None:
        if self.gone_after is not None and len(self.frames) >= self.gone_after:
            raise ConnectionGoneError("gone")
        self.frames.append(json.loads(data))

    async def close(self, connection_id: str) -> None:
        return None


def setup(
    connections: Connections, *, model: Model | None = None, timer: Any = None
) -> tuple[RelayHandler, MemoryCallStore]:
    interface = CallInterface(
        agent=Agent(instructions="Be brief.", tools=[hang_up]),
        provider="twilio",
        phone_number="+15551234567",
        auth_token=TOKEN,
        welcome_message="Hello!",
        max_call_duration_seconds=1,
    )
    store = MemoryCallStore()
    now = time.time()
    store.create_call(
        CallRecord(
            "CA1",
            "twilio",
            "managed",
            CallStatus.RINGING,
            "+14155550100",
            "+15551234567",
            "AC1",
            "<Response/>",
            now,
            now,
            int(now) + 600,
        )
    )
    settings = Settings(relay_url=RELAY)
    handler = RelayHandler(
        [interface],
        settings=settings,
        store=store,
        connections=connections,
        model_for=lambda _i: model or Model(),
        credentials=Credentials(settings),
        telemetry=StdlibTelemetry(),
        timer=timer,
    )
    return handler, store


def connect_event() -> dict[str, Any]:
    url = f"{RELAY}?call=CA1"
    return {
        "requestContext": {
            "routeKey": "$connect",
            "connectionId": "c1=",
            "domainName": "relay.example.com",
            "stage": "prod",
        },
        "headers": {"X-Twilio-Signature": twilio.compute_signature(TOKEN, url, None)},
        "queryStringParameters": {"call": "CA1"},
    }


def message(body: str) -> dict[str, Any]:
    return {
        "requestContext": {
            "routeKey": "$default",
            "connectionId": "c1=",
            "domainName": "relay.example.com",
            "stage": "prod",
        },
        "body": body,
    }


def prompt(text: str) -> dict[str, Any]:
    return message(twilio.encode_relay_event(twilio.RelayPrompt(text, "en-US", True)))


def test_a_connection_gone_mid_reply_stops_the_turn_quietly() -> None:
    connections = Connections(gone_after=1)
    handler, store = setup(connections)

    async def run() -> None:
        assert (await handler.handle(connect_event()))["statusCode"] == 200
        assert (await handler.handle(prompt("where is my order?")))["statusCode"] == 200

    asyncio.run(run())
    assert len(connections.frames) == 1
    turn = store.list_turns("CA1")[-1]
    assert turn.assistant_text == connections.frames[0]["token"]  # saved with what was actually sent


def test_a_tool_can_end_the_call_after_the_closing_words() -> None:
    connections = Connections()
    handler, _ = setup(connections, model=Model("Thanks for calling, goodbye!"))

    async def run() -> None:
        await handler.handle(connect_event())
        await handler.handle(prompt("bye"))

    asyncio.run(run())
    assert connections.frames[-1] == {
        "type": "end",
        "handoffData": json.dumps({"reasonCode": "end-call", "reason": "caller-done"}),
    }
    assert any(f["type"] == "text" and "goodbye" in f["token"] for f in connections.frames)


def test_max_duration_on_the_local_timer_ends_a_silent_call() -> None:
    connections = Connections()
    holder: dict[str, RelayHandler] = {}

    async def due(call_id: str) -> None:
        await holder["handler"].handle({"callkit": "max-duration", "call_id": call_id})

    handler, _ = setup(connections, timer=None)

    async def run() -> None:
        timer = LoopCallTimer(due)
        handler.timer = timer
        holder["handler"] = handler
        await handler.handle(connect_event())  # arms the timer: created_at + 1 s
        await asyncio.sleep(1.3)
        timer.cancel_all()

    asyncio.run(run())
    assert [f["type"] for f in connections.frames] == ["text", "end"]
    assert json.loads(connections.frames[1]["handoffData"]) == {"reasonCode": "max-duration"}


def test_max_duration_for_an_ended_call_does_nothing() -> None:
    connections = Connections()
    handler, store = setup(connections)

    async def run() -> None:
        await handler.handle(connect_event())
        store.transition("CA1", CallStatus.COMPLETED, now=time.time())
        await handler.handle({"callkit": "max-duration", "call_id": "CA1"})

    asyncio.run(run())
    assert connections.frames == []


def test_an_interrupted_welcome_is_cut_in_the_history() -> None:
    connections = Connections()
    handler, store = setup(connections)

    async def run() -> None:
        await handler.handle(connect_event())
        setup_message = twilio.RelaySetup("VX1", "CA1", "AC1", "+14155550100", "+15551234567")
        await handler.handle(message(twilio.encode_relay_event(setup_message)))
        await handler.handle(message(twilio.encode_relay_event(twilio.RelayInterrupt("Hel", 200))))

    asyncio.run(run())
    welcome = store.list_turns("CA1")[0]
    assert (welcome.kind, welcome.interrupted, welcome.heard_text) == ("welcome", True, "Hel")


class StoreDown(MemoryCallStore):
    """The call store fails every turn write (DynamoDB throttled or unreachable)."""

    def next_turn(self, call_id: str, *, now: float) -> int:
        from callkit.errors import StoreError

        raise StoreError("the table did not answer")


def test_a_store_failure_during_a_prompt_is_an_apology_not_silence() -> None:
    connections = Connections()
    handler, store = setup(connections)
    down = StoreDown()
    down.__dict__.update(store.__dict__)  # the same calls, turns and connections
    handler.store = down

    async def run() -> None:
        assert (await handler.handle(connect_event()))["statusCode"] == 200
        assert (await handler.handle(prompt("where is my order?")))["statusCode"] == 200
        assert (await handler.handle(prompt("hello?")))["statusCode"] == 200

    asyncio.run(run())
    texts = [f for f in connections.frames if f["type"] == "text"]
    assert len(texts) == 2, "one apology per failed prompt"
    assert all("trouble" in f["token"] and f["last"] for f in texts)
