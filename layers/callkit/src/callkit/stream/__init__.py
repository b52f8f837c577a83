"""Stream pipelines: the carrier's raw-audio WebSocket (Twilio Media Streams, Plivo audio streams).

``admission`` decides whether a stream may attach to a call (handshake signature, stream token,
atomic claim); the pipelines (cascading, realtime) hold the call once it is admitted. The media
server container and ``AgentRuntime`` both serve streams through ``serve_stream``.
"""
