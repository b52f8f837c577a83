"""Which pipeline holds an admitted stream: cascading (STT → agent → TTS) or realtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callkit.llm import ChatModel
    from callkit.store._base import CallStore
    from callkit.stream.admission import Admitted
    from callkit.stream.server import Pipeline
    from callkit.telemetry import Telemetry


def pipeline_for(
    admitted: Admitted, *, model: ChatModel, store: CallStore, telemetry: Telemetry
) -> Pipeline | None:
    """The pipeline for the call's interface, or ``None`` when this build has none for it yet.

    Work in progress: the cascading pipeline is being assembled from its parts (callkit.audio,
    callkit.bargein, the Deepgram and Cartesia sessions); until then an admitted stream is closed
    with 1011 and the carrier continues the call's TwiML/XML.
    """
    return None
