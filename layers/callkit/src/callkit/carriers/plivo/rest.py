"""Plivo's Call API for a live call (docs/protocols/plivo.md §6), sans-I/O: requests in, nothing sent.

Same shape as ``callkit.carriers.twilio.rest``. ``DELETE .../Call/{CallUUID}/`` ends the call.
Plivo's transfer takes no XML inline: the caller's leg fetches new XML from ``aleg_url``, our
webhook's signed transfer route (``transfer_url``), which answers ``<Dial>`` for ``?to=`` and, with
no number, the apology as ``<Speak>`` + ``<Hangup/>``.
"""

from __future__ import annotations

import json
from typing import Final
from urllib.parse import quote, urlencode

from callkit.carriers.rest import RestRequest, basic_authorization

__all__ = ["API_URL", "hangup_request", "say_and_hangup_request", "transfer_request"]

API_URL: Final = "https://api.plivo.com"


def _call_url(account_id: str, call_id: str, base_url: str) -> str:
    return f"{base_url or API_URL}/v1/Account/{quote(account_id, safe='')}/Call/{quote(call_id, safe='')}/"


def hangup_request(*, account_id: str, auth_token: str, call_id: str, base_url: str = "") -> RestRequest:
    headers = {"Authorization": basic_authorization(account_id, auth_token)}
    return RestRequest("DELETE", _call_url(account_id, call_id, base_url), headers)


def _fetch_from(account_id: str, auth_token: str, call_id: str, aleg_url: str, base_url: str) -> RestRequest:
    body = json.dumps({"legs": "aleg", "aleg_url": aleg_url, "aleg_method": "POST"}).encode()
    headers = {
        "Authorization": basic_authorization(account_id, auth_token),
        "Content-Type": "application/json",
    }
    return RestRequest("POST", _call_url(account_id, call_id, base_url), headers, body)


def transfer_request(
    *, account_id: str, auth_token: str, call_id: str, to: str, transfer_url: str, base_url: str = ""
) -> RestRequest:
    """The caller's leg fetches ``<Dial>`` of ``to`` from our transfer route."""
    return _fetch_from(account_id, auth_token, call_id, f"{transfer_url}?{urlencode({'to': to})}", base_url)


def say_and_hangup_request(
    *,
    account_id: str,
    auth_token: str,
    call_id: str,
    text: str,
    language: str,
    transfer_url: str,
    base_url: str = "",
) -> RestRequest:
    """Plivo speaks the apology and hangs up: the transfer route answers it for a request with no
    number (the words are the interface's ``Phrases.apology``, rendered there)."""
    return _fetch_from(account_id, auth_token, call_id, transfer_url, base_url)
