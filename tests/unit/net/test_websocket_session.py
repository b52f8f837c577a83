"""``WebSocketSession``'s policy against a loopback WebSocket server, through a vendor that is only protocol.

The vendor here ("Echo") sends binary frames and reads JSON lines ``{"n": ...}``; everything else
(connect, retries, reconnect, the hold buffer, the one failure, shutdown) is the base's.
"""

from __future__ import annotations

import asyncio
import http
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from callkit.errors import ProtocolError, ServiceError
from callkit.net.retry import RetryPolicy
from callkit.net.websocket_session import Inbox, SessionState, SocketPolicy, WebSocketSession

FAST_RETRY = RetryPolicy(
    max_attempts=3, deadline=2.0, attempt_allowance=0.05, backoff_base=0.05, backoff_max=0.1
)


class Echo(WebSocketSession):
    """A vendor written as protocol only: URL, headers, what a message and a close mean."""

    name = "Echo"

    def __init__(self, url: str, policy: SocketPolicy) -> None:
        self.states: list[SessionState] = []
        super().__init__(policy, listener=self.states.append, rand=lambda: 1.0)
        self._url = url
        self.inbox: Inbox[int] = Inbox()

    def url(self) -> str:
        return self._url

    def headers(self) -> Mapping[str, str]:
        return {"X-Key": "k"}

    def _on_message(self, message: str | bytes) -> None:
        try:
            self.inbox.put(int(json.loads(message)["n"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError("not an Echo message") from exc

    def _on_failed(self, error: ServiceError) -> None:
        self.inbox.fail(error)

    async def aclose(self) -> None:
        await self._close()
        self.inbox.end()


@dataclass
class Loopback:
    """The server: what each connection received; ``refuse`` answers the upgrade with a status."""

    url: str = ""
    refuse: list[int] = field(default_factory=list)  # statuses for the next upgrades, in order
    refused: list[int] = field(default_factory=list)
    received: list[list[bytes]] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    drop_after: int | None = None  # frames on the first socket before it is cut (no close frame)
    second_open_delay: float = 0.0
    dropped: asyncio.Event = field(default_factory=asyncio.Event)

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.refuse:
            status = self.refuse.pop(0)
            self.refused.append(status)
            return connection.respond(http.HTTPStatus(status), "no\n")
        if self.received and self.second_open_delay:
            await asyncio.sleep(self.second_open_delay)  # a slow reconnect: the client holds audio
        return None

    async def handler(self, ws: ServerConnection) -> None:
        self.headers.append(ws.request.headers.get("X-Key", "") if ws.request else "")
        frames: list[bytes] = []
        self.received.append(frames)
        first = len(self.received) == 1
        async for message in ws:
            assert isinstance(message, bytes)
            frames.append(message)
            await ws.send(json.dumps({"n": message[0]}))
            if first and self.drop_after is not None and len(frames) >= self.drop_after:
                ws.transport.abort()  # type: ignore[attr-defined]  # no close frame: a network drop
                self.dropped.set()
                return


@asynccontextmanager
async def loopback(**options: object) -> AsyncIterator[Loopback]:
    server_state = Loopback(**options)  # type: ignore[arg-type]
    server: Server
    async with serve(
        server_state.handler, "127.0.0.1", 0, process_request=server_state.process_request
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        server_state.url = f"ws://127.0.0.1:{port}/echo"
        yield server_state


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def guarded() -> None:
        async with asyncio.timeout(10):
            await main()

    asyncio.run(guarded())


def echo_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("echo-") and not t.done()]


async def until_state(session: Echo, state: SessionState) -> None:
    while session.state != state:  # noqa: ASYNC110 - the reader changes it; the listener is for metrics
        await asyncio.sleep(0.001)


def test_a_drop_mid_call_reconnects_and_sends_the_held_frames_in_order() -> None:
    async def main() -> None:
        async with loopback(drop_after=3, second_open_delay=0.2) as server:
            policy = SocketPolicy(max_reconnects=1, hold_bytes=100, retry=FAST_RETRY)
            session = Echo(server.url, policy)
            await session._open()
            for n in range(3):
                await session._send(bytes([n]))
            await server.dropped.wait()
            await until_state(session, "reconnecting")
            for n in range(3, 8):  # while the new socket opens: held
                await session._send(bytes([n]))
            await until_state(session, "open")
            await session._send(bytes([8]))
            got = [n async for n in _take(session.inbox, 9)]
            await session.aclose()
            assert [bytes(f) for f in server.received[0]] == [bytes([n]) for n in range(3)]
            assert b"".join(server.received[1]) == bytes(range(3, 9))  # held ones first, in order
            assert got == list(range(9))
            assert session.stats.reconnects == 1
            assert session.stats.held_frames == 5
            assert session.stats.dropped_frames == 0
            assert session.epoch == 2
            assert server.headers == ["k", "k"]
            assert session.states == ["connecting", "open", "reconnecting", "open", "closing", "closed"]
            assert echo_tasks() == []

    run(main)


def test_the_hold_buffer_keeps_the_newest_bytes_and_counts_the_rest() -> None:
    async def main() -> None:
        async with loopback(drop_after=1, second_open_delay=0.2) as server:
            session = Echo(server.url, SocketPolicy(max_reconnects=1, hold_bytes=3, retry=FAST_RETRY))
            await session._open()
            await session._send(b"\x00")
            await until_state(session, "reconnecting")
            for n in range(1, 6):
                await session._send(bytes([n]))
            await until_state(session, "open")
            await session.aclose()
            assert b"".join(server.received[1]) == bytes([3, 4, 5])
            assert (session.stats.dropped_frames, session.stats.dropped_bytes) == (2, 2)

    run(main)


def test_a_server_that_keeps_refusing_gives_one_error_after_bounded_attempts() -> None:
    async def main() -> None:
        async with loopback(drop_after=1) as server:
            session = Echo(server.url, SocketPolicy(max_reconnects=1, hold_bytes=100, retry=FAST_RETRY))
            await session._open()
            server.refuse = [503] * 10
            await session._send(b"\x00")
            started = asyncio.get_running_loop().time()
            with pytest.raises(ServiceError, match="503") as caught:
                async for _ in session.inbox:
                    pass
            elapsed = asyncio.get_running_loop().time() - started
            assert caught.value.retryable
            assert server.refused == [503, 503, 503]  # FAST_RETRY.max_attempts
            assert elapsed < FAST_RETRY.deadline
            assert session.state == "failed" and session.failure is caught.value
            assert session.stats.connect_retries == 2
            assert [n async for n in session.inbox] == []  # delivered once
            with pytest.raises(ServiceError):
                await session._send(b"\x01")
            await session.aclose()
            assert echo_tasks() == []

    run(main)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refusal_is_never_retried(status: int) -> None:
    async def main() -> None:
        async with loopback(refuse=[status, status]) as server:
            session = Echo(server.url, SocketPolicy(retry=FAST_RETRY))
            with pytest.raises(ServiceError, match=str(status)) as caught:
                await session._open()
            assert not caught.value.retryable
            assert server.refused == [status]
            assert session.state == "failed"
            await session.aclose()

    run(main)


def test_a_refusal_during_a_reconnect_is_not_retried_either() -> None:
    async def main() -> None:
        async with loopback(drop_after=1) as server:
            session = Echo(server.url, SocketPolicy(max_reconnects=3, retry=FAST_RETRY))
            await session._open()
            server.refuse = [401, 401]
            await session._send(b"\x00")
            with pytest.raises(ServiceError, match="401") as caught:
                async for _ in session.inbox:
                    pass
            assert not caught.value.retryable
            assert server.refused == [401]
            await session.aclose()

    run(main)


def test_a_start_that_finds_the_server_busy_retries_then_connects() -> None:
    async def main() -> None:
        async with loopback(refuse=[503, 429]) as server:
            session = Echo(server.url, SocketPolicy(retry=FAST_RETRY))
            await session._open()
            assert session.connected and session.stats.connect_retries == 2
            await session.aclose()

    run(main)


def test_close_during_a_reconnect_leaves_no_task_and_no_error() -> None:
    slow = RetryPolicy(max_attempts=5, deadline=60.0, backoff_base=30.0, backoff_max=30.0)

    async def main() -> None:
        async with loopback(drop_after=1) as server:
            session = Echo(server.url, SocketPolicy(max_reconnects=1, hold_bytes=100, retry=slow))
            await session._open()
            server.refuse = [503] * 5
            await session._send(b"\x00")
            await until_state(session, "reconnecting")
            while not server.refused:  # noqa: ASYNC110 - refused in the server task; then a 30-s backoff
                await asyncio.sleep(0.001)
            await session._send(b"\x01")  # held
            await session.aclose()
            assert echo_tasks() == []
            assert session.state == "closed" and session.failure is None
            assert [n async for n in session.inbox] == [0]  # ends quietly
            assert session.stats.dropped_frames == 1  # the held frame, counted
            await session.aclose()  # idempotent

    run(main)


def test_garbage_gives_the_socket_up_with_a_retryable_error() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("<html>502</html>")
        await ws.wait_closed()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            session = Echo(f"ws://127.0.0.1:{port}/", SocketPolicy())
            await session._open()
            with pytest.raises(ServiceError, match="cannot parse") as caught:
                async for _ in session.inbox:
                    pass
            assert caught.value.retryable
            await session.aclose()

    run(main)


async def _take(inbox: Inbox[int], count: int) -> AsyncIterator[int]:
    async for item in inbox:
        yield item
        count -= 1
        if count == 0:
            return
