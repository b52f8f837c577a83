"""A TCP relay that can fail on purpose: the network between callkit and a service, on loopback.

``FaultyLink`` forwards connections to ``target`` until told otherwise; ``hang()`` makes it accept
and then never answer (a service that stopped responding: every request runs into its timeout),
``refuse()`` closes connections at once (a service that is down), ``heal()`` forwards again. It
runs on threads of its own, so an event loop under test that stalls cannot hide its own stall.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from types import TracebackType
from typing import Literal

__all__ = ["FaultyLink"]

Mode = Literal["forward", "hang", "refuse"]


class FaultyLink:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode: Mode = "forward"
        self._changed = threading.Condition()
        link = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                link._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def _set(self, mode: Mode) -> None:
        with self._changed:
            self.mode = mode
            self._changed.notify_all()

    def hang(self) -> None:
        self._set("hang")

    def refuse(self) -> None:
        self._set("refuse")

    def heal(self) -> None:
        self._set("forward")

    def _serve(self, client: socket.socket) -> None:
        with self._changed:
            hung = self.mode == "hang"
            while self.mode == "hang":  # accepted, never answered, until healed (then dropped)
                self._changed.wait()
        if hung or self.mode == "refuse":
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with upstream:
            pump = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
            pump.start()
            self._pump(client, upstream)
            pump.join(5)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                with self._changed:  # a kept-alive connection hangs too: the bytes wait
                    while self.mode == "hang":
                        self._changed.wait()
                if self.mode == "refuse":
                    break
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FaultyLink:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.heal()
        self._server.shutdown()
        self._server.server_close()
