"""Signed HTTP to one AWS endpoint: the policy every small AWS client shares (STYLE 5).

A service module (``dynamodb.py``, later ``execute-api``) owns its protocol: what to send and
which responses are worth another attempt. This module owns the rest, once:

* one kept-alive ``http.client`` connection per thread, closed when the thread ends or on
  ``close()``; a request on a kept-alive connection that the server had already closed is
  resent once at once on a new connection (servers close idle connections, and a frozen Lambda
  environment is idle between invocations);
* up to ``max_attempts`` attempts, with full-jitter exponential backoff (50 ms, 100 ms, ... as
  botocore uses for DynamoDB), for responses the service calls retryable and for connection
  failures; every attempt is signed afresh (new timestamp, possibly refreshed credentials);
* socket failures surface as botocore's own exceptions, all ``BotoCoreError``:
  ``EndpointConnectionError``, ``ConnectTimeoutError``, ``ReadTimeoutError``,
  ``ConnectionClosedError``, ``SSLError``.

Nothing is logged: requests carry credentials and callers' data.
"""

from __future__ import annotations

import http.client
import random
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)

from callkit.aws import sigv4
from callkit.aws.credentials import CredentialsProvider
from callkit.errors import ConfigurationError

__all__ = ["Response", "Transport"]

#: First backoff ceiling (seconds); doubled per attempt, capped at ``_BACKOFF_CAP``.
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 2.0
#: A kept-alive connection the server closed fails with one of these on send or on the status line.
_STALE_CONNECTION_ERRORS = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)
#: Worth another attempt: the request did not get an answer, through no fault of its own.
_RETRYABLE_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP response, read whole. ``headers`` has lower-case names; ``retries`` = attempts - 1."""

    status: int
    headers: dict[str, str]
    body: bytes
    retries: int


class Transport:
    """Sends SigV4-signed requests for one service to one endpoint URL.

    ``endpoint_url`` may carry a base path (``https://host/stage``); request paths are appended.
    ``http://`` endpoints are for local fakes (moto, DynamoDB Local). Thread-safe.
    """

    def __init__(
        self,
        endpoint_url: str,
        *,
        service: str,
        region: str,
        credentials: CredentialsProvider,
        timeout: float,
        max_attempts: int,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"endpoint URL {endpoint_url!r} must look like https://host[:port]")
        if timeout <= 0 or max_attempts < 1:
            raise ConfigurationError("timeout must be positive and max_attempts at least 1")
        self.endpoint_url = endpoint_url
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._host = parts.hostname
        self._port = parts.port
        self._base_path = parts.path.rstrip("/")
        self._service = service
        self._region = region
        self._credentials = credentials
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock
        self._ssl_context: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._finalizers: list[weakref.finalize[[], _Slot]] = []

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        retryable: Callable[[Response], bool],
    ) -> Response:
        """Send until a response is not ``retryable`` or attempts run out; return the last response.

        Raises ``BotoCoreError`` when no response came back (after retrying the retryable cases)
        or when credentials cannot be found.
        """
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = self._send(method, path, headers, body, retries=attempt - 1)
            except _RETRYABLE_ERRORS:
                if attempt == self._max_attempts:
                    raise
            else:
                if attempt == self._max_attempts or not retryable(response):
                    return response
            self._sleep(self._jitter() * min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1)))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        """Close every thread's connection. Not while requests are in flight; later use reconnects."""
        with self._lock:
            finalizers, self._finalizers = self._finalizers, []
            self._local = threading.local()
        for finalize in finalizers:
            finalize()

    # --- one attempt ------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, *, retries: int
    ) -> Response:
        connection = self._connection()
        reused = connection.sock is not None
        if not reused:
            self._connect(connection)
        full_path = self._base_path + path
        signed = dict(headers)
        signed.update(
            sigv4.sign(
                method=method,
                url=f"{self._scheme}://{self._netloc}{full_path}",
                headers=headers,
                body=body,
                service=self._service,
                region=self._region,
                credentials=self._credentials(),
                now=self._clock(),
            )
        )
        try:
            return self._exchange(connection, method, full_path, signed, body, retries)
        except _STALE_CONNECTION_ERRORS:
            if not reused:
                raise ConnectionClosedError(endpoint_url=self.endpoint_url) from None
        # The server closed the kept-alive connection while it was idle: once more, on a new one.
        self._connect(connection)
        try:
            return self._exchange(connection, method, full_path, signed, body, retries)
        except _STALE_CONNECTION_ERRORS:
            raise ConnectionClosedError(endpoint_url=self.endpoint_url) from None

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        retries: int,
    ) -> Response:
        """Send on an open connection and read the whole response; stale-connection errors pass."""
        try:
            connection.request(method, path, body=body, headers=headers)
            reply = connection.getresponse()
            data = reply.read()
        except _STALE_CONNECTION_ERRORS:
            connection.close()
            raise
        except TimeoutError:
            connection.close()
            raise ReadTimeoutError(endpoint_url=self.endpoint_url) from None
        except (OSError, http.client.HTTPException):
            connection.close()
            raise ConnectionClosedError(endpoint_url=self.endpoint_url) from None
        # http.client closes the connection itself when the server said it would.
        response_headers = {name.lower(): value for name, value in reply.getheaders()}
        return Response(reply.status, response_headers, data, retries)

    def _connect(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        try:
            connection.connect()
        except TimeoutError:
            connection.close()
            raise ConnectTimeoutError(endpoint_url=self.endpoint_url) from None
        except ssl.SSLError as exc:
            connection.close()
            raise SSLError(endpoint_url=self.endpoint_url, error=exc) from None
        except OSError:
            connection.close()
            raise EndpointConnectionError(endpoint_url=self.endpoint_url) from None

    # --- connections ------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            connection = self._new_connection()
            slot = _Slot(connection)
            # The thread's connection is closed when its thread-local slot goes (thread end).
            finalize = weakref.finalize(slot, connection.close)
            with self._lock:
                self._finalizers = [f for f in self._finalizers if f.alive]
                self._finalizers.append(finalize)
            self._local.slot = slot
        return slot.connection

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._scheme == "http":
            return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        with self._lock:
            if self._ssl_context is None:
                # Made on first use: loading the CA bundle is cold-start time a 403 need not pay.
                self._ssl_context = ssl.create_default_context()
            context = self._ssl_context
        return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=context)


class _Slot:
    """Holds one thread's connection; its finalizer closes the connection."""

    __slots__ = ("__weakref__", "connection")

    def __init__(self, connection: http.client.HTTPConnection) -> None:
        self.connection = connection
