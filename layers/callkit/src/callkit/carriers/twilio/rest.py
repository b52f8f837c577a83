"""Twilio's Calls API for a live call (docs/protocols/twilio.md §6), sans-I/O: requests in, nothing sent.

Same shape as ``callkit.carriers.plivo.rest``: ``hangup_request``, ``transfer_request`` and
``say_and_hangup_request``. Each updates the call resource (``POST .../Calls/{CallSid}.json``):
``Status=completed`` ends it; ``Twiml=`` replaces its instructions at once, which also ends the
media stream, so a ``<Dial>`` transfers and a ``<Say>`` + ``<Hangup/>`` speaks for us.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote, urlencode

from callkit.carriers._types import DialAnswer, ErrorAnswer
from callkit.carriers.rest import RestRequest, basic_authorization
from callkit.carriers.twilio.twiml import render_answer

__all__ = ["API_URL", "hangup_request", "say_and_hangup_request", "transfer_request"]

API_URL: Final = "https://api.twilio.com"


def _update(
    account_id: str, auth_token: str, call_id: str, form: dict[str, str], base_url: str
) -> RestRequest:
    url = f"{base_url or API_URL}/2010-04-01/Accounts/{quote(account_id, safe='')}/Calls/{quote(call_id, safe='')}.json"
    headers = {
        "Authorization": basic_authorization(account_id, auth_token),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return RestRequest("POST", url, headers, urlencode(form).encode())


def hangup_request(*, account_id: str, auth_token: str, call_id: str, base_url: str = "") -> RestRequest:
    return _update(account_id, auth_token, call_id, {"Status": "completed"}, base_url)


def transfer_request(
    *, account_id: str, auth_token: str, call_id: str, to: str, transfer_url: str = "", base_url: str = ""
) -> RestRequest:
    """Move the call to a ``<Dial>`` of ``to`` (TwiML inline; ``transfer_url`` is Plivo's need only)."""
    return _update(account_id, auth_token, call_id, {"Twiml": render_answer(DialAnswer(to))}, base_url)


def say_and_hangup_request(
    *,
    account_id: str,
    auth_token: str,
    call_id: str,
    text: str,
    language: str,
    transfer_url: str = "",
    base_url: str = "",
) -> RestRequest:
    """Twilio speaks ``text`` (``<Say>``) and hangs up: our words when our own voice is gone."""
    twiml = render_answer(ErrorAnswer(text, language))
    return _update(account_id, auth_token, call_id, {"Twiml": twiml}, base_url)
