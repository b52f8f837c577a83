"""Which pipeline holds an admitted stream: cascading (STT → agent → TTS) or realtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

from callkit.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

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


def pipeline_for(
    admitted: Admitted,
    *,
    model_for: Callable[[CallInterface], ChatModel],
    store: AsyncStore,
    telemetry: Telemetry,
    credentials: Credentials,
    http: HTTPClient,
    settings: Settings,
    speech_detector: Callable[[], SpeechDetector] | None,
) -> Pipeline | None:
    """The pipeline that holds the call: ``CascadingCall`` or ``RealtimeCall``.

    ``settings`` give the carriers' API URLs and the webhook's public base URL (Plivo fetches a
    transfer's ``<Dial>`` there). ``speech_detector`` makes a cascading call's caller VAD
    (``callkit.audio.speech_detectors``: one Silero model for the process, made at start).
    """
    if admitted.interface.pipeline == "cascading":
        from callkit.stream.cascading import CascadingCall

        if speech_detector is None:
            raise ConfigurationError(
                "a cascading call needs a speech detector (callkit.audio.speech_detectors)"
            )

        return CascadingCall(
            model=model_for(admitted.interface),
            store=store,
            telemetry=telemetry,
            credentials=credentials,
            http=http,
            settings=settings,
            speech_detector=speech_detector,
        )
    if admitted.interface.pipeline == "realtime":
        from callkit.stream.realtime import RealtimeCall

        return RealtimeCall(
            store=store, telemetry=telemetry, credentials=credentials, http=http, settings=settings
        )
    return None
