"""The relay: Twilio ConversationRelay sessions driven by API Gateway WebSocket events.

Every WebSocket event is its own invocation (possibly concurrent, possibly on another Lambda
instance), so the session lives in the call store and races are settled there (docs/architecture.md §2.5):

- ``$connect``: the handshake's ``X-Twilio-Signature`` over the relay URL written in the TwiML
  (``relay_url?call=<CallSid>``), then an atomic attach of this connection to a managed call that
  is still ringing. Anything else is refused (403) before anything is written.
- ``setup``: the welcome greeting (spoken by ConversationRelay itself) becomes turn 0 of the
  history; the max-duration timer is armed.
- ``prompt`` / ``dtmf``: a turn. ``next_turn`` takes a fence number; the agent's reply streams back
  in speakable pieces, and before each piece the fence is read again: once an ``interrupt`` (or a
  newer prompt) has moved it, this turn stops posting. The turn is saved with what was sent.
- ``interrupt``: moves the fence and records ``utteranceUntilInterrupt`` as what the caller heard;
  the history keeps only that.
- ``$disconnect``: the call item ends.

Tools may end the call or transfer it: the relay sends ``end`` with ``handoffData`` and Twilio's
``<Connect action>`` callback (answered by the webhook function) turns a transfer into ``<Dial>``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from callkit.actions import Action, Transfer
from callkit.call.chunker import SpeechChunker
from callkit.call.phrases import phrases_for
from callkit.call.turns import TurnLog
from callkit.carriers import twilio
from callkit.carriers.twilio import RelayDtmf, RelayError, RelayInterrupt, RelayPrompt, RelaySetup
from callkit.conversation import Speech, run_turn
from callkit.errors import (
    CallkitError,
    CallNotFoundError,
    ConfigurationError,
    ConnectionGoneError,
    ProtocolError,
    SignatureError,
    TransitionError,
    UnknownEventError,
)
from callkit.lifecycle import CallStatus
from callkit.relay.events import RelayInvocation, SocketEvent, TimerEvent, parse_event, relay_url_for
from callkit.relay.history import build_history
from callkit.store._base import TurnRecord

if TYPE_CHECKING:
    from callkit.interface import CallInterface
    from callkit.llm import ChatModel
    from callkit.relay.connections import Connections
    from callkit.relay.timer import CallTimer
    from callkit.settings import Settings
    from callkit.store._base import CallRecord, CallStore
    from callkit.switchboard import Credentials
    from callkit.telemetry import Telemetry

OK: dict[str, Any] = {"statusCode": 200}
REFUSED: dict[str, Any] = {"statusCode": 403}


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What one turn did (returned for tests and the local runtime)."""

    turn: int
    sent: str
    stale: bool
    first_piece_ms: float | None
    action: Action | None


class RelayHandler:
    """Handles relay invocations for the managed ``CallInterface``s."""

    def __init__(
        self,
        interfaces: Sequence[CallInterface],
        *,
        settings: Settings,
        store: CallStore,
        connections: Connections,
        model_for: Callable[[CallInterface], ChatModel],
        credentials: Credentials,
        telemetry: Telemetry,
        timer: CallTimer | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.interfaces = tuple(i for i in interfaces if i.provider == "twilio" and i.pipeline == "managed")
        if not self.interfaces:
            raise ConfigurationError("the relay serves managed Twilio interfaces; none were given")
        if not settings.relay_url:
            raise ConfigurationError("the relay needs its own URL (CALLKIT_RELAY_URL): Twilio signs it")
        self.settings = settings
        self.store = store
        self.connections = connections
        self.model_for = model_for
        self.credentials = credentials
        self.telemetry = telemetry
        self.timer = timer
        self._clock = clock
        self._monotonic = monotonic

    async def aclose(self) -> None:
        """Release the model clients' connections (a no-op for models without ``aclose``)."""
        close = getattr(self.model_for, "aclose", None)
        if close is not None:
            await close()

    # --- entry point ---------------------------------------------------------------------------

    async def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Handle one invocation; never raises (API Gateway would drop the connection)."""
        try:
            invocation: RelayInvocation = parse_event(event)
        except ProtocolError as error:
            self.telemetry.warning("relay event malformed", reason=type(error).__name__)
            return OK
        try:
            if isinstance(invocation, TimerEvent):
                await self._max_duration(invocation.call_id)
                return OK
            if invocation.route == "$connect":
                return await self._connect(invocation)
            if invocation.route == "$disconnect":
                self._disconnect(invocation)
                return OK
            await self._message(invocation)
        except CallkitError as error:  # logged, never raised: a 500 would only drop the caller
            self.telemetry.error("relay event failed", exc_info=True, reason=type(error).__name__)
            self.telemetry.count("RelayErrors")
            if isinstance(invocation, SocketEvent) and invocation.route == "$default":
                await self._apologise(invocation)
        return OK

    async def _apologise(self, event: SocketEvent) -> None:
        """A prompt failed before it was answered (the store is down, say): the caller hears the
        turn apology rather than silence, and can try again."""
        try:
            message = twilio.decode_relay_message(event.body)
        except ProtocolError:
            return
        if not isinstance(message, RelayPrompt | RelayDtmf) or (
            isinstance(message, RelayPrompt) and not message.last
        ):
            return
        words = phrases_for(self.interfaces[0]).turn_apology  # the call, and so its interface, is unknown
        with contextlib.suppress(CallkitError):
            await self.connections.post(event.connection_id, twilio.encode_text(words, last=True).encode())
            self.telemetry.count("RelayApologies")

    # --- $connect / $disconnect ----------------------------------------------------------------

    async def _connect(self, event: SocketEvent) -> dict[str, Any]:
        call_id = event.query.get("call", "")
        url = relay_url_for(self.settings.relay_url, call_id)
        if not self._verified(url, event.headers):
            self.telemetry.warning("relay handshake refused", reason="signature")
            self.telemetry.count("RelayRefused")
            return REFUSED
        self.telemetry.bind_call(call_id)
        try:
            record = self.store.attach_connection(call_id, event.connection_id, now=self._clock())
        except (CallNotFoundError, TransitionError) as error:
            self.telemetry.warning("relay handshake refused", reason=type(error).__name__)
            self.telemetry.count("RelayRefused")
            return REFUSED
        interface = self._interface_for(record)
        if self.timer is not None:
            try:
                await self.timer.schedule_end(
                    call_id, record.created_at + interface.max_call_duration_seconds
                )
            except CallkitError:
                self.telemetry.error("max-duration timer not armed", exc_info=True)
        self.telemetry.info("relay connected")
        self.telemetry.count("RelayConnected")
        return OK

    def _verified(self, url: str, headers: Mapping[str, str]) -> bool:
        for interface in self.interfaces:
            try:
                twilio.verify_websocket_handshake(url, headers, self.credentials.auth_token(interface))
            except SignatureError:
                continue
            except ConfigurationError as error:
                self.telemetry.error("auth token unavailable", reason=str(error))
                continue
            return True
        return False

    def _disconnect(self, event: SocketEvent) -> None:
        record = self.store.call_for_connection(event.connection_id)
        if record is None:
            return
        self.telemetry.bind_call(record.call_id)
        result = self.store.transition(record.call_id, CallStatus.COMPLETED, now=self._clock())
        self.telemetry.info("relay disconnected", applied=result.applied, code=event.disconnect_code)

    # --- $default ------------------------------------------------------------------------------

    async def _message(self, event: SocketEvent) -> None:
        record = self.store.call_for_connection(event.connection_id)
        if record is None:
            self.telemetry.warning("relay message for an unknown connection")
            return
        self.telemetry.bind_call(record.call_id)
        try:
            message = twilio.decode_relay_message(event.body)
        except UnknownEventError:
            self.telemetry.info("relay message of an unknown type ignored")
            return
        except ProtocolError as error:
            self.telemetry.warning("relay message malformed", reason=type(error).__name__)
            return
        interface = self._interface_for(record)
        match message:
            case RelaySetup():
                self._setup(record, interface)
            case RelayPrompt(last=True):
                await self.run_prompt(record, interface, message.text, kind="prompt")
            case RelayPrompt():
                pass  # partial prompts are not requested (partialPrompts is off)
            case RelayDtmf():
                # The digit reaches the model as words; it never reaches a log line.
                text = phrases_for(interface).keypad_text(message.digit)
                await self.run_prompt(record, interface, text, kind="dtmf")
            case RelayInterrupt():
                turn = self.store.interrupt_turn(
                    record.call_id, message.utterance_until_interrupt, now=self._clock()
                )
                self.telemetry.info(
                    "caller interrupted", turn=turn, heard_chars=len(message.utterance_until_interrupt)
                )
                self.telemetry.count("Interruptions")
            case RelayError():
                self.telemetry.warning("ConversationRelay reported an error", chars=len(message.description))
                self.telemetry.count("RelayReportedErrors")
            case _:
                pass  # info messages: nothing to do

    def _setup(self, record: CallRecord, interface: CallInterface) -> None:
        if not interface.welcome_message:
            return
        now = self._clock()
        messages = [{"role": "assistant", "content": interface.welcome_message}]
        self.store.record_turn(
            TurnRecord(
                call_id=record.call_id,
                turn=0,
                kind="welcome",
                caller_text="",
                assistant_text=interface.welcome_message,
                heard_text=None,
                interrupted=False,
                messages=json.dumps(messages),
                tool_calls="[]",
                started_at=now,
                first_token_ms=None,
                total_ms=None,
                expires_at=record.expires_at,
            )
        )

    # --- a turn --------------------------------------------------------------------------------

    async def run_prompt(
        self, record: CallRecord, interface: CallInterface, text: str, *, kind: str
    ) -> TurnResult:
        call_id, connection_id = record.call_id, record.connection_id or ""
        turn = self.store.next_turn(call_id, now=self._clock())
        log = TurnLog(
            record,
            turn,
            "dtmf" if kind == "dtmf" else "prompt",
            text,
            clock=self._monotonic,
            wall=self._clock,
        )
        history = build_history(self.store.list_turns(call_id))
        agent = interface.agent
        if agent is None:
            raise ConfigurationError("the managed interface has no agent")
        chunker = SpeechChunker()
        sent: list[str] = []
        stale = gone = False

        async def post(piece: str, *, last: bool) -> bool:
            nonlocal stale, gone
            if self.store.current_turn(call_id) != turn:
                stale = True
                return False
            try:
                await self.connections.post(connection_id, twilio.encode_text(piece, last=last).encode())
            except ConnectionGoneError:
                gone = True
                return False
            log.output_started()
            sent.append(piece)
            return True

        phrases = phrases_for(interface)
        turns = run_turn(
            agent,
            self.model_for(interface),
            history,
            text,
            apology=phrases.turn_apology,
            filler=phrases.filler,
        )
        try:
            async for item in turns:
                log.observe(item)
                if isinstance(item, Speech) and not await self._post_all(post, chunker.feed(item.text)):
                    break
        finally:
            await turns.aclose()  # stops the model's stream if we broke out early
        if not (stale or gone):
            await post(chunker.flush(), last=True)  # an empty token with last:true ends the talk cycle
        spoken = "".join(sent)
        saved = log.record(spoken=spoken)
        self.store.record_turn(saved)
        first_piece_ms, action = saved.first_token_ms, log.actions[-1] if log.actions else None
        self.telemetry.info(
            "turn done",
            turn=turn,
            stale=stale,
            tools=len(log.tools),
            first_piece_ms=round(first_piece_ms, 1) if first_piece_ms is not None else None,
            total_ms=round(saved.total_ms or 0.0, 1),
        )
        self.telemetry.count("Turns")
        if first_piece_ms is not None:
            self.telemetry.measure("TurnLatency", first_piece_ms)
        if action is not None and not (stale or gone):
            await self._end_session(connection_id, action)
        return TurnResult(turn, spoken, stale, first_piece_ms, action)

    @staticmethod
    async def _post_all(post: Callable[..., Awaitable[bool]], pieces: list[str]) -> bool:
        for piece in pieces:
            if not await post(piece, last=False):
                return False
        return True

    async def _end_session(self, connection_id: str, action: Action) -> None:
        if isinstance(action, Transfer):
            handoff = {"reasonCode": "transfer", "reason": action.reason, "to": action.to}
        else:
            handoff = {"reasonCode": "end-call", "reason": action.reason}
        try:
            await self.connections.post(connection_id, twilio.encode_end(json.dumps(handoff)).encode())
        except ConnectionGoneError:
            return
        self.telemetry.info("session ended by the agent", reason=handoff["reasonCode"])

    async def _max_duration(self, call_id: str) -> None:
        self.telemetry.bind_call(call_id)
        record = self.store.get_call(call_id)
        if record is None or record.status.terminal or not record.connection_id:
            return
        self.store.next_turn(call_id, now=self._clock())  # fences off a turn still speaking
        try:
            goodbye = phrases_for(self._interface_for(record)).goodbye
            await self.connections.post(record.connection_id, twilio.encode_text(goodbye, last=True).encode())
            handoff = json.dumps({"reasonCode": "max-duration"})
            await self.connections.post(record.connection_id, twilio.encode_end(handoff).encode())
        except ConnectionGoneError:
            return
        self.telemetry.info("call reached its maximum duration")
        self.telemetry.count("MaxDurationReached")

    def _interface_for(self, record: CallRecord) -> CallInterface:
        for interface in self.interfaces:
            if interface.phone_number == record.to_number:
                return interface
        return self.interfaces[0]
