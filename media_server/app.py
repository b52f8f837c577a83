"""The media server app: stream WebSockets, health and readiness, drain and scaling glue.

Built by a factory from settings and dependencies (tests build the same app with fakes). Streams
go through ``callkit.stream.server.serve_stream`` (admission, then the call's pipeline), exactly as
in ``AgentRuntime``; what this module adds is the container's life: ``/healthz`` (the process is
up), ``/readyz`` (taking calls; 503 while draining), counting calls for the drain, scale-in
protection and the ActiveCalls metric (``media_server.scaling``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.routing import WebSocketRoute

from callkit.stream.pipelines import pipeline_for
from callkit.stream.server import serve_stream

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

    from callkit.audio.vad import SpeechDetector
    from callkit.interface import CallInterface
    from callkit.llm import ChatModel
    from callkit.net.http1 import HTTPClient
    from callkit.settings import Settings
    from callkit.store.aio import AsyncStore
    from callkit.stream.admission import Admitted
    from callkit.stream.server import Pipeline
    from callkit.switchboard import Credentials
    from callkit.telemetry import Telemetry
    from media_server.scaling import DrainCoordinator

#: Close code for "try again later" (RFC 6455 §7.4.1 registry: 1013).
TRY_AGAIN_LATER = 1013


def create_media_app(
    interfaces: Sequence[CallInterface],
    *,
    settings: Settings,
    store: AsyncStore,
    telemetry: Telemetry,
    credentials: Credentials,
    http: HTTPClient,
    model_for: Callable[[CallInterface], ChatModel],
    coordinator: DrainCoordinator,
    speech_detector: Callable[[], SpeechDetector] | None = None,
) -> FastAPI:
    """The app; ``speech_detector`` makes each cascading call's caller VAD (default: the winner
    of bench/README.md's "Voice activity", its model loaded here, once for every call)."""
    if speech_detector is None and any(i.pipeline == "cascading" for i in interfaces):
        from callkit.audio import speech_detectors

        speech_detector = speech_detectors(settings.voice_activity)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="callkit media server")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, object]:
        return {"status": "ok", "active_calls": coordinator.active_calls}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        ready = coordinator.ready
        return JSONResponse(
            {"ready": ready, "active_calls": coordinator.active_calls}, status_code=200 if ready else 503
        )

    def pipeline(admitted: Admitted) -> Pipeline | None:
        return pipeline_for(
            admitted,
            model_for=model_for,
            store=store,
            telemetry=telemetry,
            credentials=credentials,
            http=http,
            settings=settings,
            speech_detector=speech_detector,
        )

    def route(path: str) -> WebSocketRoute:
        async def stream(socket: WebSocket) -> None:
            if not coordinator.admit():  # draining: this task takes no new calls
                await socket.accept()
                await socket.close(TRY_AGAIN_LATER)
                return
            try:
                await serve_stream(
                    socket,
                    path=path,
                    interfaces=interfaces,
                    settings=settings,
                    store=store,
                    credentials=credentials,
                    telemetry=telemetry,
                    pipeline_for=pipeline,
                )
            finally:
                coordinator.release()

        return WebSocketRoute(path, stream)

    for path in sorted({i.stream_path for i in interfaces if i.pipeline != "managed"}):
        app.router.routes.append(route(path))
    return app
