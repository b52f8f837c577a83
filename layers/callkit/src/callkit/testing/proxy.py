"""A forward HTTP proxy on loopback that records what goes through it, for tests.

``CONNECT host:port`` opens a tunnel (answered ``200``, then bytes are relayed both ways); any
other request, in absolute form (``GET http://host:port/path``), is relayed as it is to the origin
it names, together with the rest of the connection. ``refuse=407`` answers every ``CONNECT`` with
that status instead. Only loopback origins are served::

    async with ForwardProxy() as proxy:
        client = HTTPClient(proxies=ProxyConfig(https=Proxy("127.0.0.1", proxy.port)))
        ...
    proxy.connects            # ["127.0.0.1:8443", ...]
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

from callkit.testing._listener import Listener

__all__ = ["ForwardProxy", "ProxiedRequest"]


@dataclass(frozen=True, slots=True)
class ProxiedRequest:
    """The head of a request the proxy got: its method, target and ``Proxy-Authorization``."""

    method: str
    target: str
    proxy_authorization: str = ""


@dataclass
class ForwardProxy:
    """Serve on 127.0.0.1; ``port`` once entered; ``requests`` in arrival order."""

    refuse: int | None = None
    requests: list[ProxiedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = Listener(self._serve, name="ForwardProxy")

    @property
    def port(self) -> int:
        return self._listener.port

    @property
    def connects(self) -> list[str]:
        """The ``host:port`` of every ``CONNECT``."""
        return [r.target for r in self.requests if r.method == "CONNECT"]

    async def __aenter__(self) -> ForwardProxy:
        await self._listener.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._listener.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        authorization = ""
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "proxy-authorization":
                authorization = value.strip()
        self.requests.append(ProxiedRequest(method, target, authorization))
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            if self.refuse is not None:
                writer.write(b"HTTP/1.1 %d Refused\r\nContent-Length: 0\r\n\r\n" % self.refuse)
                await writer.drain()
                return
            upstream = await self._open(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await self._relay(reader, writer, *upstream)
        else:
            origin = urlsplit(target)
            upstream = await self._open(origin.hostname or "", origin.port or 80)
            upstream[1].write(head)  # the absolute form as it came: servers must accept it
            await self._relay(reader, writer, *upstream)

    @staticmethod
    async def _open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConnectionRefusedError(f"ForwardProxy serves loopback origins only, not {host}")
        return await asyncio.open_connection(host, port)

    @staticmethod
    async def _relay(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(OSError):
                sink.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()
