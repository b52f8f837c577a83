"""Which pipeline holds an admitted stream: cascading (STT → agent → TTS) or realtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callkit.llm import ChatModel
    from callkit.net.http1 import HTTPClient
    from callkit.store._base import CallStore
    from callkit.stream.admission import Admitted
    from callkit.stream.server import Pipeline
    from callkit.switchboard import Credentials
    from callkit.telemetry import Telemetry


def pipeline_for(
    admitted: Admitted,
    *,
    model: ChatModel,
    store: CallStore,
    telemetry: Telemetry,
    credentials: Credentials,
    http: HTTPClient,
    public_url: str = "",
) -> Pipeline | None:
    """The pipeline for the call's interface, or ``None`` when this build has none for it.

    Realtime (OpenAI Realtime speech-to-speech) is not built yet: such a stream is closed with
    1011 and the carrier continues the call's TwiML/XML (which ends it).
    """
    if admitted.interface.pipeline == "cascading":
        from callkit.stream.cascading import CascadingCall

        return CascadingCall(
            model=model, store=store, telemetry=telemetry, credentials=credentials, http=http
        )
    return None
