"""A cascading interface whose providers are the loopback fakes the test started, for the media
server process in tests/e2e/test_media_server.py (``CALLKIT_APP=fake_providers_app:interfaces``).

The fakes' URLs come from the test's environment: ``FAKE_DEEPGRAM_URL``, ``FAKE_CARTESIA_URL``;
the keys from the usual variables (``DEEPGRAM_API_KEY``, ``CARTESIA_API_KEY``; ``OPENAI_BASE_URL``
points the model at the scripted chat server).
"""

from __future__ import annotations

import os

from callkit import CallInterface
from callkit.examples import support_agent
from callkit.stt.deepgram import DeepgramSTT
from callkit.tts.cartesia import CartesiaTTS

interfaces = [
    CallInterface(
        agent=support_agent,
        provider="twilio",
        phone_number=os.environ["CALLKIT_PHONE_NUMBER"],
        pipeline="cascading",
        welcome_message="Hello!",
        stt=DeepgramSTT(base_url=os.environ["FAKE_DEEPGRAM_URL"]),
        tts=CartesiaTTS(voice_id="voice-1", base_url=os.environ["FAKE_CARTESIA_URL"]),
    )
]
