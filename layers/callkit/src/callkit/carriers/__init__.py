"""Sans-I/O carrier wire formats.

``twilio`` and ``plivo`` are modules of the same shape (``CarrierFormat``): parse webhooks, verify
and create signatures, render answers, encode and decode stream messages, build the REST requests that act on a live
call, over the
carrier-neutral types in ``_types``. No sockets, no HTTP clients, no asyncio here. A third carrier
is a copy of that shape plus one line in ``carrier_format``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from callkit.carriers._types import (
        Answer,
        Form,
        IncomingCall,
        SignedRequest,
        StatusUpdate,
        StreamCommand,
        StreamEvent,
    )
    from callkit.carriers.rest import RestRequest


class CarrierFormat(Protocol):
    """What every carrier module provides (mypy checks the modules against it)."""

    @property
    def NAME(self) -> str: ...
    @property
    def SIGNATURE_HEADERS(self) -> tuple[str, ...]: ...
    @property
    def ANSWER_CONTENT_TYPE(self) -> str: ...

    def parse_incoming_call(self, form: Form) -> IncomingCall: ...
    def parse_status_update(self, form: Form) -> StatusUpdate: ...
    def verify_request(self, request: SignedRequest, auth_token: str) -> None: ...
    def verify_websocket_handshake(self, url: str, headers: Mapping[str, str], auth_token: str) -> None: ...
    def signature_headers(
        self, auth_token: str, method: str, url: str, form: Form | None, body: bytes = b""
    ) -> dict[str, str]: ...
    def render_answer(self, answer: Answer) -> str: ...
    def decode_stream_message(self, text: str | bytes) -> StreamEvent: ...
    def encode_stream_event(self, event: StreamEvent) -> str: ...
    def decode_stream_command(self, text: str | bytes) -> StreamCommand: ...
    def encode_play_audio(self, stream_id: str, audio: bytes) -> str: ...
    def encode_mark(self, stream_id: str, name: str) -> str: ...
    def encode_clear(self, stream_id: str) -> str: ...

    # REST actions on a live call (each carrier's ``rest`` module): requests built, never sent.
    @property
    def API_URL(self) -> str: ...
    def hangup_request(
        self, *, account_id: str, auth_token: str, call_id: str, base_url: str = ""
    ) -> RestRequest: ...
    def transfer_request(
        self,
        *,
        account_id: str,
        auth_token: str,
        call_id: str,
        to: str,
        transfer_url: str,
        base_url: str = "",
    ) -> RestRequest: ...
    def say_and_hangup_request(
        self,
        *,
        account_id: str,
        auth_token: str,
        call_id: str,
        text: str,
        language: str,
        transfer_url: str,
        base_url: str = "",
    ) -> RestRequest: ...


def carrier_format(name: str) -> CarrierFormat:
    """The wire-format module of carrier ``name`` (imported on first use)."""
    if name == "twilio":
        from callkit.carriers import twilio

        return twilio
    if name == "plivo":
        from callkit.carriers import plivo

        return plivo
    raise ValueError(f"unknown carrier {name!r}")
