"""A reverse proxy on loopback that plays a tunnel (ngrok, a load balancer) under another host name.

Clients reach it at ``http://public.test:PORT`` (a name only tests use: ``resolve`` points the
connection at 127.0.0.1 and leaves the ``Host`` header as the URL says). It forwards every
request to ``upstream`` the way ``ngrok http --host-header=rewrite`` does: ``Host`` rewritten to
the upstream's address and ``X-Forwarded-Host`` / ``X-Forwarded-Proto`` added, so a server that
trusted any of them instead of its configured public URL would check signatures against the wrong
URL. WebSocket upgrades are relayed both ways as bytes once the head has gone through::

    async with ReverseProxy() as proxy:
        runtime = AgentRuntime(..., public_url=f"http://public.test:{proxy.port}")
        proxy.upstream = ("127.0.0.1", runtime.port)
        client = httpx.AsyncClient(transport=resolving_transport({"public.test": proxy.port}))
    proxy.requests     # [ProxiedRequest(method="POST", target="/call/incoming", host="public.test:…"), …]
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from callkit.testing._listener import Listener

if TYPE_CHECKING:
    import httpx

__all__ = ["ProxiedRequest", "ReverseProxy", "resolving_transport"]


@dataclass(frozen=True, slots=True)
class ProxiedRequest:
    """The head of a request as the client sent it: method, target, ``Host`` and whether it upgraded."""

    method: str
    target: str
    host: str
    upgrade: bool = False


@dataclass
class ReverseProxy:
    """Serve on 127.0.0.1 (``port`` once entered) and forward to ``upstream`` (settable later)."""

    upstream: tuple[str, int] | None = None
    requests: list[ProxiedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = Listener(self._serve, name="ReverseProxy")

    @property
    def port(self) -> int:
        return self._listener.port

    async def __aenter__(self) -> ReverseProxy:
        await self._listener.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._listener.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.upstream is None:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        back = asyncio.get_running_loop().create_task(_pipe(up_reader, writer))
        try:
            await self._forward(reader, up_writer)
            if up_writer.can_write_eof():
                up_writer.write_eof()  # the client is done: let the upstream close its side
            await back
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            back.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await back
            up_writer.close()
            writer.close()

    async def _forward(self, reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        """Request heads one by one (keep-alive), rewritten; after an upgrade, raw bytes."""
        assert self.upstream is not None
        upstream_host = f"{self.upstream[0]}:{self.upstream[1]}"
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client closed between requests
            request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = [
                (name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines)
            ]
            named = {name.lower(): value for name, value in headers}
            if "chunked" in named.get("transfer-encoding", "").lower():
                raise ValueError("chunked request bodies are not relayed")
            upgrade = named.get("upgrade", "").lower() == "websocket"
            self.requests.append(ProxiedRequest(method, target, named.get("host", ""), upgrade))
            rewritten = [(n, v) for n, v in headers if n.lower() not in ("host", "x-forwarded-host")]
            rewritten = [
                ("Host", upstream_host),
                *rewritten,
                ("X-Forwarded-Host", named.get("host", "")),
                ("X-Forwarded-Proto", "https"),
            ]
            out = "\r\n".join([request_line, *(f"{n}: {v}" for n, v in rewritten)]) + "\r\n\r\n"
            up_writer.write(out.encode("latin-1"))
            if upgrade:
                await _pipe(reader, up_writer)
                return
            length = int(named.get("content-length", "0") or "0")
            if length:
                up_writer.write(await reader.readexactly(length))
            await up_writer.drain()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    with contextlib.suppress(OSError):
        if sink.can_write_eof():
            sink.write_eof()


def resolving_transport(hosts: dict[str, int]) -> httpx.AsyncBaseTransport:
    """An httpx transport that connects to ``127.0.0.1:hosts[name]`` for URLs on ``name``.

    The request keeps its URL, so its ``Host`` header (and what a carrier signs) names ``name``:
    what pointing a name at the proxy in DNS would do, without DNS.
    """
    import httpx

    class Resolving(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self._inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            port = hosts.get(request.url.host)
            if port is not None:
                request.url = request.url.copy_with(host="127.0.0.1", port=port)
            return await self._inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self._inner.aclose()

    return Resolving()
