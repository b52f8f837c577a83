"""A small async HTTP/1.1 client over asyncio streams, light enough for a Lambda cold path.

Provider APIs (OpenAI-compatible chat, later others) need one thing: send a request, read a
streamed answer, keep the TLS connection for the next request. ``httpx`` costs ~145 ms to import
and ``openai`` ~750 ms; this module costs what ``asyncio`` and ``ssl`` already cost.

* One keep-alive pool per ``(scheme, host, port)``, bound to the running event loop. By default
  the number of connections is not limited (a phone deployment has one model stream per live call,
  and a request must never queue behind another call's stream); at most ``max_idle_per_host`` are
  kept idle. With ``max_connections_per_host`` a request waits up to ``connect_timeout`` for one.
* Proxies from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (``callkit.net.proxy``), read when the
  client is built: https goes through a ``CONNECT`` tunnel, then TLS with the origin (its name and
  certificate checked as without a proxy); http sends the absolute-form request to the proxy.
* Idle connections the server has closed are dropped before use. A kept-alive connection that turns
  out dead when used is replaced and the request sent once more, but only when the request cannot
  have been acted on: the send itself failed, or nothing came back and the request is idempotent
  (RFC 9112 §9.3.1.1). ``idempotent=True`` marks a POST that is safe to repeat.
* ``read_timeout`` bounds every wait for bytes (and for the send to drain), ``connect_timeout``
  the TCP connect plus the TLS handshake. Both raise a ``TransportTimeoutError``.
* A response whose body was not read to the end is closed with its connection (cancelling a task
  mid-stream closes the socket at once); only fully read bodies give their connection back.
* Idle connections are closed by a small janitor task when they expire and when the loop's tasks
  are cancelled at shutdown (``asyncio.run``), or by ``aclose()``. To keep a connection across Lambda
  invocations, keep one event loop across them.

Use one client from one event loop at a time. Nothing is logged: requests carry credentials.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping, Sequence
from typing import Final, Literal, SupportsIndex
from urllib.parse import urlsplit

from callkit.errors import (
    ConnectError,
    ConnectionLostError,
    ConnectTimeoutError,
    PoolTimeoutError,
    ProxyError,
    ReadTimeoutError,
    RemoteProtocolError,
    TransportError,
    TransportTimeoutError,
)
from callkit.net.proxy import Proxy, ProxyConfig, connect_request

__all__ = [
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionLostError",
    "HTTPClient",
    "Headers",
    "PoolTimeoutError",
    "ProxyError",
    "ReadTimeoutError",
    "RemoteProtocolError",
    "Response",
    "TransportError",
    "TransportTimeoutError",
]


# --- wire details ----------------------------------------------------------------------------------

#: Longest status or header line, and the reader's buffer limit.
_LINE_LIMIT: Final = 64 * 1024
_MAX_HEADERS: Final = 100
_READ_SIZE: Final = 64 * 1024
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_TOKEN: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_STATUS_LINE: Final = re.compile(rb"^HTTP/1\.([01]) (\d{3})(?: (.*))?$")
_CHUNK_SIZE: Final = re.compile(rb"^[0-9A-Fa-f]{1,16}$")
_USER_AGENT: Final = "callkit-http1"
#: A proxy's answers to CONNECT that may well be different next time.
_PROXY_RETRYABLE: Final = frozenset({429, 502, 503, 504})

_Key = tuple[str, str, int]
_Framing = Literal["length", "chunked", "close", "none"]


class Headers(Mapping[str, str]):
    """Response header fields, looked up case-insensitively.

    A repeated field reads as its values joined with ``", "`` (RFC 9110 §5.3); ``get_all`` gives
    them one by one.
    """

    __slots__ = ("_fields", "_index")

    def __init__(self, fields: Sequence[tuple[str, str]] = ()) -> None:
        self._fields = list(fields)
        index: dict[str, str] = {}
        for name, value in self._fields:
            key = name.lower()
            index[key] = f"{index[key]}, {value}" if key in index else value
        self._index = index

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [value for field, value in self._fields if field.lower() == key]

    def __repr__(self) -> str:
        # Names only: values may be cookies or tokens.
        return f"Headers({sorted(self._index)})"


class _Reader(asyncio.StreamReader):
    """A ``StreamReader`` that notices bytes arriving while its connection sits idle in the pool.

    A server may say something (``408 Request Timeout``) before closing an idle connection; those
    bytes must not be read as the answer to the next request.
    """

    idle = False
    unsolicited = False

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        if self.idle:
            self.unsolicited = True
        super().feed_data(data)


class _Connection:
    __slots__ = ("idle_since", "reader", "requests", "transport", "writer")

    def __init__(self, reader: _Reader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.idle_since = 0.0
        self.requests = 0

    def usable(self, now: float, expiry: float) -> bool:
        return not (
            self.transport.is_closing()
            or self.reader.at_eof()
            or self.reader.exception() is not None
            or self.reader.unsolicited
            or now - self.idle_since > expiry
        )

    def abort(self) -> None:
        # abort(), not close(): nothing is left to flush, and a TLS close_notify exchange could wait.
        self.transport.abort()


class _HostPool:
    __slots__ = ("idle", "slots")

    def __init__(self, limit: int | None) -> None:
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(limit) if limit is not None else None

    def release(self) -> None:
        if self.slots is not None:
            self.slots.release()


class _LoopState:
    """The pools of one event loop, and the task that closes their idle connections."""

    __slots__ = ("janitor", "loop", "pools")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pools: dict[_Key, _HostPool] = {}
        self.janitor: asyncio.Task[None] | None = None

    def close_idle(self, older_than: float | None = None) -> None:
        for pool in self.pools.values():
            keep: list[_Connection] = []
            for conn in pool.idle:
                if older_than is None or conn.idle_since < older_than:
                    conn.abort()
                else:
                    keep.append(conn)
            pool.idle = keep


async def _janitor(state: _LoopState, expiry: float) -> None:
    try:
        while True:
            await asyncio.sleep(expiry)
            state.close_idle(older_than=time.monotonic() - expiry)
    finally:
        # Cancelled: the loop is shutting down (asyncio.run cancels every task) or aclose() was called.
        # A loop closed with this task still pending cannot close sockets any more: the transports
        # then warn when collected, which is right, since the client's owner never closed it.
        if not state.loop.is_closed():
            state.close_idle()
        state.janitor = None


class _Stale(Exception):
    """A reused connection failed before any byte of the answer; ``sent``: the request went out."""

    def __init__(self, error: TransportError, *, sent: bool) -> None:
        self.error = error
        self.sent = sent


class Response:
    """The status line and headers of a response, and its body to read once.

    Read the body with ``aiter_bytes()`` or ``aread()``; leaving the ``async with`` block closes it.
    """

    __slots__ = (
        "_client",
        "_conn",
        "_crlf_pending",
        "_done",
        "_framing",
        "_keep_alive",
        "_pool",
        "_read_started",
        "_remaining",
        "headers",
        "http_version",
        "reason",
        "status",
    )

    def __init__(
        self,
        *,
        client: HTTPClient,
        pool: _HostPool,
        conn: _Connection,
        status: int,
        reason: str,
        http_version: str,
        headers: Headers,
        framing: _Framing,
        length: int,
        keep_alive: bool,
    ) -> None:
        self.status = status
        self.reason = reason
        self.http_version = http_version
        self.headers = headers
        self._client = client
        self._pool = pool
        self._conn: _Connection | None = conn
        self._framing = framing
        self._remaining = length
        self._keep_alive = keep_alive
        self._crlf_pending = False
        self._read_started = False
        self._done = False
        if framing == "none" or (framing == "length" and length == 0):
            self._finish()

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives (chunks as the network delivers them, never empty)."""
        if self._read_started:
            raise RuntimeError("the response body can be read only once")
        self._read_started = True
        return _BodyIterator(self)

    async def aread(self) -> bytes:
        """The whole body."""
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        """Close the response; an unfinished body closes its connection."""
        self._release(reusable=False)

    # --- body framing (RFC 9112 §6, §7.1) -------------------------------------------------------

    async def _next_chunk(self) -> bytes:
        conn = self._conn
        if self._done or conn is None:
            return b""
        reader = conn.reader
        if self._framing == "close":
            data = await self._client._read(reader.read(_READ_SIZE))
            if not data:
                self._finish()
            return data
        if self._framing == "length":
            data = await self._client._read(reader.read(min(self._remaining, _READ_SIZE)))
            if not data:
                self._release(reusable=False)
                raise ConnectionLostError(
                    f"connection closed with {self._remaining} body bytes still to come", retryable=True
                )
            self._remaining -= len(data)
            if self._remaining == 0:
                self._finish()
            return data
        return await self._next_chunked(reader)

    async def _next_chunked(self, reader: _Reader) -> bytes:
        client = self._client
        while True:
            if self._remaining > 0:
                data = await client._read(reader.read(min(self._remaining, _READ_SIZE)))
                if not data:
                    self._release(reusable=False)
                    raise ConnectionLostError("connection closed in the middle of a chunk", retryable=True)
                self._remaining -= len(data)
                if self._remaining == 0:
                    self._crlf_pending = True  # the line end after the chunk data
                return data
            if self._crlf_pending:
                if await self._line(reader) != b"":
                    raise self._malformed("chunk data longer than its declared size")
                self._crlf_pending = False
            size_line = (await self._line(reader)).split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.match(size_line):
                raise self._malformed(f"bad chunk size line {size_line[:40]!r}")
            size = int(size_line, 16)
            if size == 0:
                for _ in range(_MAX_HEADERS + 1):  # trailer fields, then the empty line
                    if await self._line(reader) == b"":
                        self._finish()
                        return b""
                raise self._malformed("too many trailer fields")
            self._remaining = size

    async def _line(self, reader: _Reader) -> bytes:
        try:
            line = await self._client._read(reader.readuntil(b"\n"))
        except asyncio.IncompleteReadError:
            self._release(reusable=False)
            raise ConnectionLostError(
                "connection closed before the end of a chunked body", retryable=True
            ) from None
        except asyncio.LimitOverrunError:
            raise self._malformed("chunk line too long") from None
        return line.rstrip(b"\r\n")

    def _malformed(self, message: str) -> RemoteProtocolError:
        self._release(reusable=False)
        return RemoteProtocolError(message, retryable=False)

    def _finish(self) -> None:
        self._done = True
        self._release(reusable=self._keep_alive)

    def _release(self, *, reusable: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if reusable and self._done:
            self._client._put_idle(self._pool, conn)
        else:
            conn.abort()
        self._pool.release()


class _BodyIterator:
    """A class, not an async generator: nothing for the loop to finalize if the reader walks away."""

    __slots__ = ("_response",)

    def __init__(self, response: Response) -> None:
        self._response = response

    def __aiter__(self) -> _BodyIterator:
        return self

    async def __anext__(self) -> bytes:
        data = await self._response._next_chunk()
        if not data:
            raise StopAsyncIteration
        return data


class _StreamContext:
    __slots__ = ("_args", "_client", "_response")

    def __init__(self, client: HTTPClient, args: tuple[str, _Key, bytes, bool, Proxy | None]) -> None:
        self._client = client
        self._args = args
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        self._response = await self._client._send(*self._args)
        return self._response

    async def __aexit__(self, *exc_info: object) -> None:
        if self._response is not None:
            await self._response.aclose()


def _split_url(url: str) -> tuple[_Key, str, str]:
    """``(scheme, host, port)``, the request target and the ``Host`` header value."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("URL must be http:// or https:// with a host")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"bad port in URL: {exc}") from None
    host = parts.hostname
    host_header = f"[{host}]" if ":" in host else host
    if port != _DEFAULT_PORTS[scheme]:
        host_header = f"{host_header}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(c.isspace() for c in target):
        raise ValueError("URL path and query must be percent-encoded (no spaces)")
    return (scheme, host, port), target, host_header


def _encode_request(
    method: str,
    target: str,
    host_header: str,
    headers: Mapping[str, str] | Sequence[tuple[str, str]],
    body: bytes | None,
) -> bytes:
    if not _TOKEN.match(method):
        raise ValueError(f"bad HTTP method {method!r}")
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    names = {name.lower() for name, _ in items}
    if names & {"content-length", "transfer-encoding"}:
        raise ValueError("Content-Length and Transfer-Encoding are set by the client from the body")
    lines = [f"{method} {target} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {host_header}")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {_USER_AGENT}")
    for name, value in items:
        if not _TOKEN.match(name) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"bad header field {name!r}")
        lines.append(f"{name}: {value}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("header fields must be Latin-1 text") from None
    return head + body if body else head


def _framing(method: str, status: int, headers: Headers) -> tuple[_Framing, int]:
    """How the body ends (RFC 9112 §6.3) and its length when known."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return "none", 0
    if "transfer-encoding" in headers:
        codings = [c.strip().lower() for c in headers["transfer-encoding"].split(",")]
        return ("chunked", 0) if codings[-1] == "chunked" else ("close", 0)
    if "content-length" in headers:
        values = {v.strip() for v in headers["content-length"].split(",")}
        value = values.pop()
        if values or not value.isdigit() or not value.isascii():
            raise RemoteProtocolError("bad Content-Length", retryable=False)
        return "length", int(value)
    return "close", 0


class HTTPClient:
    """An async HTTP/1.1 client with a keep-alive pool per host.

    ``async with client.stream("POST", url, headers, body) as response:`` then
    ``async for chunk in response.aiter_bytes()`` or ``await response.aread()``.

    ``max_connections_per_host``: ``None`` (the default) opens a connection whenever none is idle,
    so no request ever waits for another; a number makes requests wait for a free connection.
    ``max_idle_per_host`` bounds the idle connections kept for reuse (the oldest go first).
    ``proxies``: ``None`` reads ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` now, once;
    ``ProxyConfig()`` connects directly whatever the environment says.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        max_connections_per_host: int | None = None,
        max_idle_per_host: int = 256,
        keepalive_expiry: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        proxies: ProxyConfig | None = None,
    ) -> None:
        if connect_timeout <= 0 or read_timeout <= 0 or keepalive_expiry <= 0:
            raise ValueError("timeouts and keepalive_expiry must be positive")
        if max_connections_per_host is not None and max_connections_per_host < 1:
            raise ValueError("max_connections_per_host must be at least 1 (or None: no limit)")
        if max_idle_per_host < 0:
            raise ValueError("max_idle_per_host must not be negative")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections_per_host = max_connections_per_host
        self.max_idle_per_host = max_idle_per_host
        self.keepalive_expiry = keepalive_expiry
        self.proxies = ProxyConfig.from_env() if proxies is None else proxies
        self._ssl_context = ssl_context
        self._state: _LoopState | None = None

    async def __aenter__(self) -> HTTPClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the idle connections; responses still open close when they are closed.

        Call it before closing an event loop that is not ended by ``asyncio.run`` (a loop kept
        across Lambda invocations, a test's own loop): the janitor task and the idle sockets live
        on that loop. The client may be used again afterwards.
        """
        state = self._state
        if state is None or state.loop is not asyncio.get_running_loop():
            return  # nothing open, or only connections of a loop that is gone
        state.close_idle()
        janitor = state.janitor
        if janitor is not None:
            janitor.cancel()
            # Waits without raising, so a cancellation of our own caller still goes through; the
            # loop pass also lets the aborted transports finish closing before the loop may close.
            await asyncio.wait([janitor])

    def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        *,
        idempotent: bool | None = None,
    ) -> _StreamContext:
        """Send a request; the context gives the ``Response`` once its headers have arrived.

        ``idempotent`` (default: by method) allows one resend when a kept-alive connection turns
        out dead after the request went out and nothing came back.
        """
        key, target, host_header = _split_url(url)
        proxy = self.proxies.proxy_for(*key)
        if proxy is not None and key[0] == "http":
            # Through the proxy, not a tunnel: the absolute-form target (RFC 9112 §3.2.2).
            target = f"http://{host_header}{target}"
            if proxy.authorization:
                headers = [*(headers.items() if isinstance(headers, Mapping) else headers)]
                headers.append(("Proxy-Authorization", proxy.authorization))
        encoded = _encode_request(method.upper(), target, host_header, headers, body)
        safe = method.upper() in _IDEMPOTENT if idempotent is None else idempotent
        return _StreamContext(self, (method.upper(), key, encoded, safe, proxy))

    # --- internals ----------------------------------------------------------------------------

    def _pool(self, key: _Key) -> _HostPool:
        loop = asyncio.get_running_loop()
        state = self._state
        if state is None or state.loop is not loop:
            # A new loop (a new asyncio.run): connections of the old one cannot be used here.
            state = self._state = _LoopState(loop)
        pool = state.pools.get(key)
        if pool is None:
            pool = state.pools[key] = _HostPool(self.max_connections_per_host)
        return pool

    def _put_idle(self, pool: _HostPool, conn: _Connection) -> None:
        state = self._state
        task = asyncio.current_task()
        if state is None or (task is not None and task.cancelling()):
            conn.abort()
            return
        if len(pool.idle) >= self.max_idle_per_host:
            if not pool.idle:
                conn.abort()
                return
            pool.idle.pop(0).abort()  # the longest idle: the first the server would close
        conn.idle_since = time.monotonic()
        conn.reader.idle = True
        pool.idle.append(conn)
        if state.janitor is None:
            state.janitor = state.loop.create_task(_janitor(state, self.keepalive_expiry))

    async def _take_idle(self, pool: _HostPool) -> _Connection | None:
        if not pool.idle:
            return None
        # One loop pass first, so that a close the kernel already has is seen before we write.
        await asyncio.sleep(0)
        now = time.monotonic()
        while pool.idle:
            conn = pool.idle.pop()  # the most recently used: the least likely to be closed
            if conn.usable(now, self.keepalive_expiry):
                conn.reader.idle = False
                return conn
            conn.abort()
        return None

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            # Created on first use: loading the CA bundle costs a few milliseconds.
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    async def _connect(self, key: _Key, proxy: Proxy | None) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        reader = _Reader(limit=_LINE_LIMIT, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        tls = self._tls() if scheme == "https" else None
        where = f"{scheme}://{host}:{port}"
        try:
            async with asyncio.timeout(self.connect_timeout):
                if proxy is None:
                    transport, _ = await loop.create_connection(
                        lambda: protocol,
                        host,
                        port,
                        ssl=tls,
                        server_hostname=host if tls else None,
                        happy_eyeballs_delay=0.25,
                    )
                    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
                else:
                    writer = await self._through(proxy, key, loop, reader, protocol, tls)
        except TimeoutError:
            via = f" through the proxy {proxy.host}:{proxy.port}" if proxy else ""
            raise ConnectTimeoutError(f"connecting to {where}{via} timed out", retryable=True) from None
        except ssl.SSLCertVerificationError as exc:
            raise ConnectError(
                f"TLS certificate of {where} rejected: {exc.verify_message}", retryable=False
            ) from None
        except ssl.SSLError as exc:
            raise ConnectError(f"TLS handshake with {where} failed: {exc.reason}", retryable=True) from None
        except OSError as exc:
            via = f"the proxy {proxy.host}:{proxy.port} for " if proxy else ""
            raise ConnectError(
                f"cannot connect to {via}{where}: {exc.strerror or exc}", retryable=True
            ) from None
        return _Connection(reader, writer)

    async def _through(
        self,
        proxy: Proxy,
        key: _Key,
        loop: asyncio.AbstractEventLoop,
        reader: _Reader,
        protocol: asyncio.StreamReaderProtocol,
        tls: ssl.SSLContext | None,
    ) -> asyncio.StreamWriter:
        """Connect to the proxy; for https, open a ``CONNECT`` tunnel and start TLS inside it."""
        _, host, port = key
        transport, _ = await loop.create_connection(
            lambda: protocol, proxy.host, proxy.port, happy_eyeballs_delay=0.25
        )
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        if tls is None:
            return writer  # plain http: requests go to the proxy in absolute form
        try:
            writer.write(connect_request(host, port, proxy))
            await writer.drain()
            status = await self._tunnel_status(reader)
            if not 200 <= status < 300:
                raise ProxyError(
                    f"the proxy {proxy.host}:{proxy.port} refused a tunnel to {host}:{port}: {status}",
                    status=status,
                    retryable=status in _PROXY_RETRYABLE,
                )
            # TLS with the origin inside the tunnel: its name and certificate, as without a proxy.
            await writer.start_tls(tls, server_hostname=host)
        except BaseException:
            transport.abort()
            raise
        return writer

    @staticmethod
    async def _tunnel_status(reader: _Reader) -> int:
        """Read the proxy's answer to ``CONNECT`` up to its blank line; its status code."""
        try:
            line = await reader.readuntil(b"\n")
            match = _STATUS_LINE.match(line.rstrip(b"\r\n"))
            if not match:
                raise ProxyError(
                    "the proxy answered CONNECT with something not HTTP", status=0, retryable=False
                )
            for _ in range(_MAX_HEADERS + 1):
                if not (await reader.readuntil(b"\n")).rstrip(b"\r\n"):
                    return int(match.group(2))
        except asyncio.IncompleteReadError:
            raise ProxyError(
                "the proxy closed the connection instead of a tunnel", status=0, retryable=True
            ) from None
        except asyncio.LimitOverrunError:
            pass
        raise ProxyError("the proxy's answer to CONNECT is too long", status=0, retryable=False)

    async def _read[T](self, operation: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.read_timeout):
                return await operation
        except TimeoutError:
            raise ReadTimeoutError(f"no data for {self.read_timeout:g} s", retryable=True) from None
        except (ConnectionError, ssl.SSLError) as exc:
            raise ConnectionLostError(f"connection lost: {exc.__class__.__name__}", retryable=True) from None

    async def _send(
        self, method: str, key: _Key, request: bytes, idempotent: bool, proxy: Proxy | None
    ) -> Response:
        pool = self._pool(key)
        if pool.slots is not None:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await pool.slots.acquire()
            except TimeoutError:
                raise PoolTimeoutError(
                    f"all {self.max_connections_per_host} connections to {key[1]} stayed busy",
                    retryable=True,
                ) from None
        try:
            conn = await self._take_idle(pool) or await self._connect(key, proxy)
            try:
                return await self._exchange(pool, conn, method, request)
            except _Stale as stale:
                # Resend once on a new connection, only if the request cannot have been acted on.
                if stale.sent and not idempotent:
                    raise stale.error from None
            conn = await self._connect(key, proxy)
            try:
                return await self._exchange(pool, conn, method, request)
            except _Stale as stale:  # a new connection is never stale; _exchange raises directly
                raise stale.error from None
        except BaseException:
            pool.release()
            raise

    async def _exchange(self, pool: _HostPool, conn: _Connection, method: str, request: bytes) -> Response:
        """Send the request and read the response head; the connection is aborted on any failure."""
        reused = conn.requests > 0
        conn.requests += 1
        try:
            try:
                conn.writer.write(request)
                await self._read(conn.writer.drain())
            except ConnectionLostError as exc:
                if reused:
                    raise _Stale(exc, sent=False) from None
                raise
            try:
                line = await self._read(conn.reader.readuntil(b"\n"))
            except (asyncio.IncompleteReadError, ConnectionLostError) as exc:
                partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
                error = ConnectionLostError("connection closed before a response", retryable=True)
                if reused and not partial:
                    raise _Stale(error, sent=True) from None
                raise error from None
            return await self._read_head(pool, conn, method, line)
        except BaseException:
            conn.abort()
            raise

    async def _read_head(self, pool: _HostPool, conn: _Connection, method: str, line: bytes) -> Response:
        reader = conn.reader
        while True:
            match = _STATUS_LINE.match(line.rstrip(b"\r\n"))
            if not match:
                raise RemoteProtocolError(f"bad status line {line[:40]!r}", retryable=False)
            minor, status = match.group(1), int(match.group(2))
            reason = (match.group(3) or b"").decode("latin-1")
            fields: list[tuple[str, str]] = []
            while True:
                raw = (await self._head_line(reader)).rstrip(b"\r\n")
                if not raw:
                    break
                name, sep, value = raw.partition(b":")
                if not sep or not _TOKEN.match(name.decode("latin-1")):
                    raise RemoteProtocolError(f"bad header line {raw[:40]!r}", retryable=False)
                fields.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
                if len(fields) > _MAX_HEADERS:
                    raise RemoteProtocolError("too many header fields", retryable=False)
            if 100 <= status < 200 and status != 101:
                line = await self._head_line(reader)  # an interim response; the real one follows
                continue
            break
        headers = Headers(fields)
        framing, length = _framing(method, status, headers)
        connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep_alive = (minor == b"1" and "close" not in connection) or (
            minor == b"0" and "keep-alive" in connection
        )
        return Response(
            client=self,
            pool=pool,
            conn=conn,
            status=status,
            reason=reason,
            http_version=f"HTTP/1.{minor.decode()}",
            headers=headers,
            framing=framing,
            length=length,
            keep_alive=keep_alive and framing != "close",
        )

    async def _head_line(self, reader: _Reader) -> bytes:
        try:
            return await self._read(reader.readuntil(b"\n"))
        except asyncio.IncompleteReadError:
            raise ConnectionLostError("connection closed in the response head", retryable=True) from None
        except asyncio.LimitOverrunError:
            raise RemoteProtocolError("response head line too long", retryable=False) from None
