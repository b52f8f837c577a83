"""Twilio's side of ConversationRelay, for tests, benchmarks and the demo (docs/protocols/twilio.md §5).

``ConversationRelayCaller`` does what Twilio does once the webhook answered with
``<Connect><ConversationRelay url=...>``: opens the WebSocket with ``X-Twilio-Signature`` over that
exact URL, sends ``setup``, then the caller's transcribed words as ``prompt``, key presses as
``dtmf`` and barge-ins as ``interrupt`` carrying what was heard, and collects our ``text`` and ``end``
messages. Speech itself is Twilio's business: here "heard" is the text received so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callkit.carriers import twilio
from callkit.carriers.twilio import RelayCommand, RelayEnd, RelayText

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from callkit.testing.answers import ParsedAnswer


@dataclass(slots=True)
class RelayReply:
    """What came back for one prompt: the text as received, and when."""

    text: str = ""
    frames: list[RelayCommand] = field(default_factory=list)
    first_frame_ms: float | None = None
    total_ms: float = 0.0
    complete: bool = False
    interrupted_at: int | None = None

    @property
    def pieces(self) -> list[str]:
        return [f.token for f in self.frames if isinstance(f, RelayText)]


class RelayRefusedError(Exception):
    """The relay refused the WebSocket upgrade (HTTP status in ``status``)."""

    def __init__(self, status: int | None) -> None:
        super().__init__(f"relay refused the connection (HTTP {status})")
        self.status = status


class ConversationRelayCaller:
    """One ConversationRelay session against the relay URL in ``answer``."""

    def __init__(
        self,
        answer: ParsedAnswer,
        *,
        call_id: str,
        account_id: str,
        from_number: str,
        to_number: str,
        auth_token: str,
        sign: bool = True,
        connect_to: tuple[str, int] | None = None,
    ) -> None:
        if answer.kind != "relay":
            raise ValueError(f"not a ConversationRelay answer: {answer.kind}")
        self.url = answer.url
        self.welcome = answer.attributes.get("welcomeGreeting")
        self.action_url = answer.attributes.get("Connect.action")
        self.call_id = call_id
        self.session_id = "VX" + secrets.token_hex(16)
        self._setup = twilio.RelaySetup(
            session_id=self.session_id,
            call_id=call_id,
            account_id=account_id,
            from_number=from_number,
            to_number=to_number,
            direction="inbound",
            call_status="RINGING",
            custom_parameters=answer.parameters,
        )
        self._headers = twilio.signature_headers(auth_token, "GET", self.url, None) if sign else {}
        self._socket: ClientConnection | None = None
        # Where the TCP connection goes when the URL's host is a name only the test knows (a
        # reverse proxy playing a tunnel): the Host header and the signature keep the URL's name.
        self._destination: dict[str, Any] = (
            {"host": connect_to[0], "port": connect_to[1]} if connect_to else {}
        )
        self._inbox: asyncio.Queue[RelayCommand | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.ended: RelayEnd | None = None
        self._end_seen = asyncio.Event()

    async def __aenter__(self) -> ConversationRelayCaller:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hang_up()

    async def connect(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        try:
            self._socket = await connect(
                self.url, additional_headers=self._headers, open_timeout=5, **self._destination
            )
        except InvalidStatus as exc:
            raise RelayRefusedError(exc.response.status_code) from exc
        self._reader = asyncio.create_task(self._read())
        await self._send(twilio.encode_relay_event(self._setup))

    async def _send(self, text: str) -> None:
        if self._socket is None:
            raise RuntimeError("not connected")
        await self._socket.send(text)

    async def _read(self) -> None:
        assert self._socket is not None
        try:
            async for message in self._socket:
                command = twilio.decode_relay_command(message)
                if isinstance(command, RelayEnd):
                    self.ended = command
                    self._end_seen.set()
                await self._inbox.put(command)
        except Exception:  # noqa: S110 - a closed socket ends the session; the inbox says so
            pass
        finally:
            await self._inbox.put(None)

    async def _collect(
        self, reply: RelayReply, started: float, *, stop_after_chars: int | None, limit: float
    ) -> None:
        deadline = time.perf_counter() + limit
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            try:
                command = await asyncio.wait_for(self._inbox.get(), remaining)
            except TimeoutError:
                return
            if command is None:
                return
            reply.frames.append(command)
            if reply.first_frame_ms is None:
                reply.first_frame_ms = (time.perf_counter() - started) * 1000
            if isinstance(command, RelayText):
                reply.text += command.token
                if command.last:
                    reply.complete = True
                    return
                if stop_after_chars is not None and len(reply.text) >= stop_after_chars:
                    return
            if isinstance(command, RelayEnd):
                reply.complete = True
                return

    async def prompt(
        self, text: str, *, interrupt_after_chars: int | None = None, limit: float = 15.0
    ) -> RelayReply:
        """Say ``text``; collect the reply. With ``interrupt_after_chars``, barge in once that much arrived."""
        started = time.perf_counter()
        await self.send_prompt(text)
        return await self._reply(started, interrupt_after_chars, limit)

    async def press(self, digit: str, *, limit: float = 15.0) -> RelayReply:
        started = time.perf_counter()
        await self.send_dtmf(digit)
        return await self._reply(started, None, limit)

    # --- one message at a time (``callkit call`` reads and types at once) -------------------------

    async def send_prompt(self, text: str) -> None:
        """Send what the caller said, without waiting for the reply (``receive`` collects it)."""
        await self._send(twilio.encode_relay_event(twilio.RelayPrompt(text=text, lang="en-US", last=True)))

    async def send_dtmf(self, digit: str) -> None:
        await self._send(twilio.encode_relay_event(twilio.RelayDtmf(digit=digit)))

    async def interrupt(self, heard: str) -> None:
        """Barge in as ConversationRelay reports it: what the caller heard, and roughly how long it took."""
        duration = int(len(heard) * 60)  # ~60 ms a character of speech
        await self._send(
            twilio.encode_relay_event(
                twilio.RelayInterrupt(utterance_until_interrupt=heard, duration_until_interrupt_ms=duration)
            )
        )

    async def receive(self) -> RelayCommand | None:
        """The next command from the relay; ``None`` once the session is over (and from then on)."""
        command = await self._inbox.get()
        if command is None:
            self._inbox.put_nowait(None)
        return command

    async def _reply(self, started: float, interrupt_after_chars: int | None, limit: float) -> RelayReply:
        reply = RelayReply()
        await self._collect(reply, started, stop_after_chars=interrupt_after_chars, limit=limit)
        if interrupt_after_chars is not None and not reply.complete:
            reply.interrupted_at = len(reply.text)
            await self.interrupt(reply.text)
        reply.total_ms = (time.perf_counter() - started) * 1000
        return reply

    async def drain(self, quiet: float = 0.3) -> list[RelayCommand]:
        """Frames that still arrive within ``quiet`` seconds (after an interrupt: should be none)."""
        late: list[RelayCommand] = []
        while True:
            try:
                command = await asyncio.wait_for(self._inbox.get(), quiet)
            except TimeoutError:
                return late
            if command is None:
                return late
            late.append(command)

    async def wait_for_end(self, limit: float = 5.0) -> RelayEnd | None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._end_seen.wait(), limit)
        return self.ended

    def handoff(self) -> dict[str, object]:
        if self.ended is None or not self.ended.handoff_data:
            return {}
        data = json.loads(self.ended.handoff_data)
        return data if isinstance(data, dict) else {}

    async def hang_up(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._socket = None
