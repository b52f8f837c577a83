"""What the caller heard of a reply, and a history that keeps only that.

Barge-in follows playback (``callkit.playback``): the pipelines know how much of a reply was
played (characters up to the last played mark, or the share of an audio item played). ``cut_on_word``
turns that into text that ends on a whole word, so the model never sees "Our op" and believes the
caller heard half a word. ``History`` keys the chat messages by turn number, so cutting turn 7 can
only ever change turn 7 (a caller who cuts in before a reply completes must not rewrite the
previous one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from callkit.llm.protocol import AssistantMessage, Message

__all__ = ["History", "cut_on_word", "heard_share"]


def cut_on_word(text: str, chars: int) -> str:
    """The first ``chars`` characters of ``text``, shortened to end on a whole word."""
    if chars >= len(text):
        return text
    if chars <= 0:
        return ""
    head = text[:chars]
    if not text[chars].isspace() and not head[-1].isspace():  # the cut falls inside a word: drop it
        head = head[: max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"), 0)]
    return head.rstrip()


def heard_share(text: str, played: float, sent: float) -> str:
    """The part of ``text`` heard when ``played`` of ``sent`` (ms of its audio) was played, on a word."""
    if sent <= 0 or played >= sent:
        return text
    return cut_on_word(text, int(len(text) * max(0.0, played) / sent))


class History:
    """The conversation as chat messages, grouped by turn number (turn 0: the welcome)."""

    def __init__(self) -> None:
        self._turns: dict[int, list[Message]] = {}

    def messages(self) -> list[Message]:
        """Every turn's messages, oldest turn first."""
        return [m for _, messages in sorted(self._turns.items()) for m in messages]

    def turn(self, number: int) -> list[Message]:
        return list(self._turns.get(number, ()))

    def set(self, number: int, messages: Sequence[Message]) -> None:
        self._turns[number] = list(messages)

    def cut(self, number: int, heard: str) -> None:
        """Keep of turn ``number``'s spoken text only what was heard (``heard``, a prefix of it).

        Tool calls and their results stay: they happened whether or not the caller heard the
        words around them. Other turns are never touched.
        """
        messages = self._turns.get(number)
        if messages is None:
            return
        budget, kept = len(heard), []
        for message in messages:
            if isinstance(message, AssistantMessage) and message.content:
                content = message.content
                if budget >= len(content):
                    budget -= len(content)
                else:
                    content, budget = cut_on_word(content, budget), 0
                    message = replace(message, content=content or None)
                if not message.content and not message.tool_calls:
                    continue
            kept.append(message)
        self._turns[number] = kept
