"""A TCP listener on loopback for the fakes: a free port, one task per connection, all ended on close."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]


class Listener:
    def __init__(self, serve: Serve, *, name: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self._serve, self._name, self._ssl = serve, name, ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._port = 0

    @property
    def port(self) -> int:
        """The port (still known once closed)."""
        if self._server is None and not self._port:
            raise RuntimeError(f"{self._name} is not running; use 'async with'")
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self._ssl, backlog=1024)
        self._port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own task, not the one start_server makes of a coroutine callback: Python 3.12.1
        # reports cancelling that one (at shutdown) as an unhandled exception.
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
