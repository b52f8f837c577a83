"""The agent's language model: Chat Completions messages and events, and a streaming client.

``protocol`` is the sans-I/O half (messages, request body, SSE and chunk decoding);
``openai_chat`` sends it over ``callkit.net``.
"""

from callkit.llm.openai_chat import ChatModel, OpenAIChatModel
from callkit.llm.protocol import (
    AssistantMessage,
    ChatEvent,
    ChatStreamDecoder,
    Finished,
    Message,
    ModelError,
    SSEParser,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolCallDone,
    ToolChoice,
    ToolMessage,
    Usage,
    UserMessage,
    decode_history,
    encode_history,
    from_wire,
    to_wire,
)

__all__ = [
    "AssistantMessage",
    "ChatEvent",
    "ChatModel",
    "ChatStreamDecoder",
    "Finished",
    "Message",
    "ModelError",
    "OpenAIChatModel",
    "SSEParser",
    "SystemMessage",
    "TextDelta",
    "ToolCall",
    "ToolCallDone",
    "ToolChoice",
    "ToolMessage",
    "Usage",
    "UserMessage",
    "decode_history",
    "encode_history",
    "from_wire",
    "to_wire",
]
