"""Plivo Signature V3: compute, verify and create request signatures (docs/protocols/plivo.md §4)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse, urlunparse

from callkit.carriers._types import parse_form
from callkit.errors import InvalidSignatureError, MissingSignatureError, ProtocolError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from callkit.carriers._types import Form, SignedRequest

SIGNATURE_HEADER = "x-plivo-signature-v3"
#: Signed with the main account's token even when a subaccount owns the call.
MAIN_ACCOUNT_SIGNATURE_HEADER = "x-plivo-signature-ma-v3"
NONCE_HEADER = "x-plivo-signature-v3-nonce"
SIGNATURE_HEADERS = (SIGNATURE_HEADER, MAIN_ACCOUNT_SIGNATURE_HEADER)

_NONCE_DIGITS = 20


def canonical_string(method: str, url: str, params: Form | None) -> str:
    """The string Plivo signs, before ``"." + nonce`` (docs/protocols/plivo.md §4 steps 1–4).

    Mirrors plivo-python ``utils/signature_v3.py`` exactly, quirks included:

    * ``urlparse`` drops ``;params`` of the last path segment along with query and fragment;
      scheme and host are kept as written (no case folding).
    * GET merges the URL query over ``params``: on a name present in both, the query's values win
      (``dict.update``), they are not combined.
    * POST adds ``"?"`` whenever ``params`` has any name at all, even if the query is empty.
    * Values are used decoded and sorted per name; an empty value list contributes nothing.
    """
    parts = urlparse(url)
    base = urlunparse((parts.scheme, parts.netloc, parts.path, "", "", ""))
    query = parse_qs(parts.query, keep_blank_values=True)
    form = params or {}
    if method.upper() == "GET":
        joined = _query_string({**form, **query})
        return f"{base}?{joined}" if joined else base
    joined = _query_string(query)
    if not form:
        return f"{base}?{joined}" if joined else base
    separator = "." if joined else ""
    return f"{base}?{joined}{separator}{_params_string(form)}"


def compute_signature(auth_token: str, method: str, url: str, params: Form | None, nonce: str) -> str:
    """``base64(HMAC-SHA256(auth_token, canonical_string + "." + nonce))``.

    ``method`` GET uses the GET rule; any other method is signed like POST (Plivo only sends
    these two). ``params`` are the decoded form fields (POST) or extra query fields (GET).
    """
    # plivo-python formats the nonce's UTF-8 bytes one character per byte (Latin-1) before signing.
    # Plivo's nonces are digits, where this changes nothing; mirrored so non-ASCII agrees too.
    nonce = nonce.encode("utf-8", "surrogatepass").decode("latin-1")
    message = f"{canonical_string(method, url, params)}.{nonce}"
    key = auth_token.encode("utf-8", "surrogatepass")
    digest = hmac.digest(key, message.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return base64.b64encode(digest).decode("ascii")


def verify_request(request: SignedRequest, auth_token: str) -> None:
    """Accept a Plivo webhook whose V3 (or main-account V3) signature matches; raise otherwise.

    ``request.url`` must be the public URL Plivo requested. Raises ``MissingSignatureError`` when
    neither signature header or the nonce is present, ``InvalidSignatureError`` when no signature
    matches.
    """
    method = request.method.upper()
    if method not in ("GET", "POST"):
        raise InvalidSignatureError(f"Plivo signs only GET and POST requests, not {method}")
    try:
        params = request.form()
    except ProtocolError:
        # Plivo sends UTF-8 form bodies; one that is not cannot carry a signature we reproduce.
        raise InvalidSignatureError("request body is not UTF-8 form data") from None
    _verify(_lower(request.headers), auth_token, method, (request.url,), params)


def verify_websocket_handshake(url: str, headers: Mapping[str, str], auth_token: str) -> None:
    """Verify the signature on Plivo's WebSocket upgrade request for a ``<Stream>`` URL.

    Plivo signs the upgrade as a GET with no params, but the official SDKs disagree on the URL
    string (docs/protocols/plivo.md §4 "WebSocket upgrade" and Uncertain), so the URL as written in ``<Stream>``
    and its ``https://`` and ``http://`` variants are all tried.
    """
    _verify(_lower(headers), auth_token, "GET", _handshake_urls(url), None)


def signature_headers(
    auth_token: str,
    method: str,
    url: str,
    form: Form | None,
    body: bytes = b"",
    nonce: str | None = None,
) -> dict[str, str]:
    """The signature headers Plivo would attach to this request (for the simulated carrier).

    ``form`` is the decoded form; when it is ``None`` a POST ``body`` is parsed as a form. Both
    V3 headers carry the same signature: the simulator has a single account.
    """
    if nonce is None:
        nonce = f"{secrets.randbelow(10**_NONCE_DIGITS):0{_NONCE_DIGITS}d}"
    if form is None and body and method.upper() == "POST":
        form = parse_form(body)
    signature = compute_signature(auth_token, method, url, form, nonce)
    return {
        "X-Plivo-Signature-V3": signature,
        "X-Plivo-Signature-Ma-V3": signature,
        "X-Plivo-Signature-V3-Nonce": nonce,
    }


def _verify(
    headers: Mapping[str, str], auth_token: str, method: str, urls: Iterable[str], params: Form | None
) -> None:
    values = [headers[name] for name in SIGNATURE_HEADERS if name in headers]
    nonce = headers.get(NONCE_HEADER)
    if not values:
        raise MissingSignatureError("no X-Plivo-Signature-V3 header")
    if nonce is None:
        raise MissingSignatureError("no X-Plivo-Signature-V3-Nonce header")
    # A header may hold several signatures separated by "," (key rotation); plivo-python splits
    # on "," only and strips nothing, so neither do we (docs/protocols/plivo.md §4).
    candidates = [c.encode("utf-8", "replace") for value in values for c in value.split(",")]
    for url in urls:
        expected = compute_signature(auth_token, method, url, params, nonce).encode("ascii")
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return
    raise InvalidSignatureError("Plivo signature does not match")


def _handshake_urls(url: str) -> list[str]:
    _, separator, rest = url.partition("://")
    if not separator:
        return [url]
    return list(dict.fromkeys((url, f"https://{rest}", f"http://{rest}")))


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _query_string(params: Form) -> str:
    # "k=v" per value, values sorted within a name, names sorted, all joined by "&".
    return "&".join("&".join(f"{name}={value}" for value in sorted(params[name])) for name in sorted(params))


def _params_string(params: Form) -> str:
    # POST fields: "kv" per value with no separators at all.
    return "".join("".join(f"{name}{value}" for value in sorted(params[name])) for name in sorted(params))
