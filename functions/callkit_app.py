"""Your agent and its phone interfaces, as deployed. Edit this file.

The webhook function imports ``interfaces`` from here (``CALLKIT_APP=callkit_app:interfaces``).
The template's parameters (Provider, Pipeline, PhoneNumber, WebhookPath, StreamPath) arrive as
environment variables so that ``sam deploy --guided`` can set them; anything else is code below.
"""

from __future__ import annotations

import os

from callkit import CallInterface, OpenAIRealtimeProvider
from callkit.examples import support_agent
from callkit.stt.deepgram import DeepgramSTT
from callkit.tts.cartesia import CartesiaTTS

pipeline = os.environ.get("CALLKIT_PIPELINE", "managed")

interfaces = [
    CallInterface(
        agent=support_agent,
        provider=os.environ.get("CALLKIT_PROVIDER", "twilio"),
        phone_number=os.environ.get("CALLKIT_PHONE_NUMBER", "+15551234567"),
        pipeline=pipeline,
        welcome_message="Hello! Thanks for calling Acme Shop. How can I help you today?",
        stt=DeepgramSTT() if pipeline == "cascading" else None,
        tts=CartesiaTTS(voice_id=os.environ.get("CARTESIA_VOICE_ID", ""))
        if pipeline == "cascading"
        else None,
        realtime=OpenAIRealtimeProvider(voice="marin") if pipeline == "realtime" else None,
        webhook_path=os.environ.get("CALLKIT_WEBHOOK_PATH", "/call/incoming"),
        stream_path=os.environ.get("CALLKIT_STREAM_PATH", "/call/stream"),
    )
]
