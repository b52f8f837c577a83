"""The relay Lambda handler on API Gateway WebSocket events: DynamoDB and @connections on a moto
server, the model on a scripted OpenAI-compatible server on loopback (events/relay-*.json)."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import boto3
import pytest
from conftest import RelayFactory, ThreadedChatServer, WebhookFactory, load_event, posted_frames

from callkit.carriers import twilio
from callkit.llm.protocol import AssistantMessage, Message, UserMessage
from callkit.store import DynamoDBCallStore
from callkit.testing import LambdaContext, SimulatedCarrier, http_api_event
from callkit.testing.events import (
    EVENTS_CONNECTION_ID,
    EVENTS_PHONE_NUMBER,
    EVENTS_PUBLIC_URL,
    EVENTS_RELAY_URL,
    TWILIO_MANAGED_CALL,
)
from callkit.testing.openai_chat import Reply, TextReply, support_script

LONG = "We are open from nine until six on weekdays, from ten until four on Saturdays, and closed on Sundays."


def script(messages: Sequence[Message]) -> Reply:
    last = messages[-1]
    if isinstance(last, UserMessage) and "hours" in last.content:
        return TextReply(LONG, delay=0.05)
    if isinstance(last, UserMessage) and "keypad" in last.content:
        return "You pressed one, the order line. What's your order number?"
    return support_script(messages)


def store() -> DynamoDBCallStore:
    return DynamoDBCallStore("callkit-calls", boto3.client("dynamodb"))


def invoke(module: Any, event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = module.handler(event, LambdaContext())
    return response


def message(
    text_event: dict[str, Any], body: str, connection_id: str = EVENTS_CONNECTION_ID
) -> dict[str, Any]:
    event = copy.deepcopy(text_event)
    event["body"] = body
    event["requestContext"]["connectionId"] = connection_id
    return event


def prompt(text: str, connection_id: str = EVENTS_CONNECTION_ID) -> dict[str, Any]:
    return message(
        load_event("relay-prompt.json"),
        twilio.encode_relay_event(twilio.RelayPrompt(text, "en-US", True)),
        connection_id,
    )


def texts(frames: list[dict[str, Any]]) -> str:
    return "".join(f["token"] for f in frames if f["type"] == "text")


@pytest.fixture
def answered(webhook: WebhookFactory) -> Any:
    module = webhook(
        CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="managed", CALLKIT_RELAY_URL=EVENTS_RELAY_URL
    )
    response = module.handler(load_event("twilio-incoming-managed.json"), LambdaContext())
    assert response["statusCode"] == 200
    assert f'url="{EVENTS_RELAY_URL}?call={TWILIO_MANAGED_CALL}"' in response["body"]
    return module


def test_full_managed_call_through_the_relay(
    answered: Any, relay_function: RelayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLKIT_TRANSFER_NUMBER", "+15557654321")
    with ThreadedChatServer(script) as llm:
        first = relay_function(CALLKIT_PIPELINE="managed", OPENAI_BASE_URL=llm.server.base_url)
        second = relay_function(
            CALLKIT_PIPELINE="managed", OPENAI_BASE_URL=llm.server.base_url
        )  # another instance

        assert invoke(first, load_event("relay-connect.json"))["statusCode"] == 200
        record = store().get_call(TWILIO_MANAGED_CALL)
        assert (
            record is not None
            and record.connection_id == EVENTS_CONNECTION_ID
            and record.status == "in-progress"
        )
        assert invoke(first, load_event("relay-setup.json"))["statusCode"] == 200

        # A question answered by a tool, streamed back in speakable pieces, the last with last:true.
        assert invoke(first, load_event("relay-prompt.json"))["statusCode"] == 200
        frames = posted_frames(EVENTS_CONNECTION_ID)
        assert [f["type"] for f in frames] == ["text"] * len(frames)
        assert frames[-1]["last"] is True and all(f["last"] is False for f in frames[:-1])
        assert len(frames) >= 2, "speakable pieces, not one frame per reply"
        assert "Order 1001 is shipped on Monday" in texts(frames)
        assert llm.server.requests[-2].tool_names == ["check_order", "transfer_call"]

        # An interrupt while a slow answer streams, handled by another instance: the stale turn stops.
        before = len(posted_frames(EVENTS_CONNECTION_ID))
        worker = threading.Thread(target=invoke, args=(first, prompt("What are your opening hours?")))
        worker.start()
        deadline = time.time() + 5
        while len(posted_frames(EVENTS_CONNECTION_ID)) < before + 1 and time.time() < deadline:
            time.sleep(0.01)
        heard = texts(posted_frames(EVENTS_CONNECTION_ID)[before:])
        interrupt = twilio.encode_relay_event(twilio.RelayInterrupt(heard, 900))
        assert invoke(second, message(load_event("relay-interrupt.json"), interrupt))["statusCode"] == 200
        after_interrupt = len(posted_frames(EVENTS_CONNECTION_ID))
        worker.join(10)
        assert len(posted_frames(EVENTS_CONNECTION_ID)) == after_interrupt, "a stale turn posts nothing"
        assert heard and heard != LONG

        # DTMF reaches the model; the history it sees has the interrupted answer cut to what was heard.
        assert invoke(second, load_event("relay-dtmf.json"))["statusCode"] == 200
        sent = llm.server.requests[-1].messages
        assert isinstance(sent[-1], UserMessage) and "pressed 1" in sent[-1].content
        spoken = [m.content for m in sent if isinstance(m, AssistantMessage) and m.content]
        assert spoken[0] == "Hello! Thanks for calling Acme Shop. How can I help you today?"
        assert heard in spoken and LONG not in spoken

        turns = store().list_turns(TWILIO_MANAGED_CALL)
        assert [t.kind for t in turns] == ["welcome", "prompt", "prompt", "dtmf"]
        assert turns[2].interrupted and turns[2].heard_text == heard
        assert json.loads(turns[1].tool_calls)[0]["name"] == "check_order"
        assert all(t.first_token_ms is not None and t.total_ms is not None for t in turns[1:])

        # A transfer: closing words, then `end` with the handoff; Twilio's <Connect action> → <Dial>.
        before = len(posted_frames(EVENTS_CONNECTION_ID))
        invoke(first, prompt("Can I speak to a person?"))
        tail = posted_frames(EVENTS_CONNECTION_ID)[before:]
        assert tail[-1]["type"] == "end"
        handoff = json.loads(tail[-1]["handoffData"])
        assert handoff == {
            "reasonCode": "transfer",
            "reason": "caller asked for a person",
            "to": "+15557654321",
        }
        carrier = SimulatedCarrier("twilio", base_url=EVENTS_PUBLIC_URL)
        action = carrier.relay_ended(
            f"{EVENTS_PUBLIC_URL}/call/incoming/relay-ended",
            TWILIO_MANAGED_CALL,
            session_id="VX1",
            handoff_data=tail[-1]["handoffData"],
        )
        dial = answered.handler(http_api_event(action), LambdaContext())
        assert "<Dial" in dial["body"] and "+15557654321" in dial["body"]

        # The socket closes: the call item ends; Twilio's status callback still adds the duration.
        assert invoke(first, load_event("relay-disconnect.json"))["statusCode"] == 200
        ended = store().get_call(TWILIO_MANAGED_CALL)
        assert ended is not None and ended.status == "completed"
        answered.handler(load_event("twilio-status-completed.json"), LambdaContext())
        final = store().get_call(TWILIO_MANAGED_CALL)
        assert final is not None and final.duration_seconds == 37


def test_two_calls_never_share_history(webhook: WebhookFactory, relay_function: RelayFactory) -> None:
    module = webhook(
        CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="managed", CALLKIT_RELAY_URL=EVENTS_RELAY_URL
    )
    carrier = SimulatedCarrier("twilio", base_url=EVENTS_PUBLIC_URL)
    calls = {}
    for name in ("alice", "bob"):
        request = carrier.incoming_call(to=EVENTS_PHONE_NUMBER)
        assert module.handler(http_api_event(request), LambdaContext())["statusCode"] == 200
        calls[name] = request.form["CallSid"][0]
    with ThreadedChatServer(script) as llm:
        relay = relay_function(CALLKIT_PIPELINE="managed", OPENAI_BASE_URL=llm.server.base_url)
        for name, call_id in calls.items():
            connect = copy.deepcopy(load_event("relay-connect.json"))
            url = f"{EVENTS_RELAY_URL}?call={call_id}"
            connect["headers"]["X-Twilio-Signature"] = twilio.compute_signature(carrier.auth_token, url, None)
            connect["queryStringParameters"] = {"call": call_id}
            connect["requestContext"]["connectionId"] = f"conn-{name}"
            assert invoke(relay, connect)["statusCode"] == 200
        invoke(relay, prompt("Hi, this is alice, order 1002 please", "conn-alice"))
        invoke(relay, prompt("Hello from bob", "conn-bob"))
        bob_saw = llm.server.requests[-1].messages
        assert not any("alice" in str(getattr(m, "content", "")) for m in bob_saw)
        assert "being packed" in texts(posted_frames("conn-alice"))
        assert "being packed" not in texts(posted_frames("conn-bob"))
        assert {t.caller_text for t in store().list_turns(calls["bob"])} == {"Hello from bob"}


@pytest.mark.parametrize("case", ["forged", "unknown-call", "not-managed"])
def test_refused_handshakes_write_nothing(
    case: str, answered: Any, relay_function: RelayFactory, webhook: WebhookFactory
) -> None:
    relay = relay_function(CALLKIT_PIPELINE="managed")
    event = copy.deepcopy(load_event("relay-connect.json"))
    call_id = TWILIO_MANAGED_CALL
    if case == "forged":
        event["headers"]["X-Twilio-Signature"] = twilio.compute_signature(
            "not-the-token", f"{EVENTS_RELAY_URL}?call={call_id}", None
        )
    else:
        carrier = SimulatedCarrier("twilio", base_url=EVENTS_PUBLIC_URL)
        if case == "unknown-call":
            call_id = "CA" + "9" * 32
        else:  # a real call, answered for a stream pipeline
            stream = webhook(CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="realtime")
            request = carrier.incoming_call(to=EVENTS_PHONE_NUMBER)
            stream.handler(http_api_event(request), LambdaContext())
            call_id = request.form["CallSid"][0]
        event["queryStringParameters"] = {"call": call_id}
        event["headers"]["X-Twilio-Signature"] = twilio.compute_signature(
            carrier.auth_token, f"{EVENTS_RELAY_URL}?call={call_id}", None
        )
    assert invoke(relay, event)["statusCode"] == 403
    record = store().get_call(call_id)
    assert record is None or (record.connection_id is None and record.status == "ringing")
    assert store().call_for_connection(EVENTS_CONNECTION_ID) is None


def test_malformed_and_unknown_messages_are_answered_not_raised(
    answered: Any, relay_function: RelayFactory
) -> None:
    relay = relay_function(CALLKIT_PIPELINE="managed")
    assert invoke(relay, load_event("relay-connect.json"))["statusCode"] == 200
    for body in ("not json", '{"type": "bogus"}', '{"type": "prompt"}', "x" * 200_000):
        assert invoke(relay, message(load_event("relay-prompt.json"), body))["statusCode"] == 200
    assert invoke(relay, {"unexpected": True})["statusCode"] == 200
    assert posted_frames(EVENTS_CONNECTION_ID) == []


def test_max_call_duration_is_scheduled_and_ends_a_silent_call(
    answered: Any, relay_function: RelayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = boto3.client("scheduler")
    scheduler.create_schedule_group(Name="callkit")
    relay = relay_function(
        CALLKIT_PIPELINE="managed",
        CALLKIT_SCHEDULER_GROUP="callkit",
        CALLKIT_SCHEDULER_ROLE_ARN="arn:aws:iam::123456789012:role/callkit-scheduler",
        CALLKIT_RELAY_FUNCTION_ARN="arn:aws:lambda:us-east-1:123456789012:function:callkit-relay",
    )
    assert invoke(relay, load_event("relay-connect.json"))["statusCode"] == 200
    schedule = scheduler.get_schedule(Name=f"callkit-{TWILIO_MANAGED_CALL}", GroupName="callkit")
    record = store().get_call(TWILIO_MANAGED_CALL)
    assert record is not None
    due = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created_at + 3600))
    assert schedule["ScheduleExpression"] == f"at({due})"
    assert schedule["ActionAfterCompletion"] == "DELETE"
    target = schedule["Target"]
    assert target["Arn"].endswith(":function:callkit-relay")
    assert json.loads(target["Input"]) == {"callkit": "max-duration", "call_id": TWILIO_MANAGED_CALL}

    # EventBridge Scheduler invokes the relay with that input when the time comes.
    assert invoke(relay, json.loads(target["Input"]))["statusCode"] == 200
    frames = posted_frames(EVENTS_CONNECTION_ID)
    assert frames[0]["type"] == "text" and frames[0]["last"] is True and "time limit" in frames[0]["token"]
    assert frames[1] == {"type": "end", "handoffData": json.dumps({"reasonCode": "max-duration"})}
    carrier = SimulatedCarrier("twilio", base_url=EVENTS_PUBLIC_URL)
    action = carrier.relay_ended(
        f"{EVENTS_PUBLIC_URL}/call/incoming/relay-ended",
        TWILIO_MANAGED_CALL,
        session_id="VX1",
        handoff_data=frames[1]["handoffData"],
    )
    assert answered.handler(http_api_event(action), LambdaContext())["body"].endswith(
        "<Response><Hangup/></Response>"
    )
