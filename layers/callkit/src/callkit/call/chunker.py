"""Speakable pieces: how streamed LLM tokens become ConversationRelay ``text`` frames.

One frame per token floods API Gateway (every ``@connections`` POST is a billed, ~10-30 ms round
trip) and gives Twilio's TTS fragments it cannot phrase; one frame per reply makes the caller wait
for the whole answer. We send a piece when the text reaches a natural pause: a sentence end, or a
clause end once the piece is long enough, or a word boundary when it grows too long. The first
piece of a reply is allowed to be short so speech starts early. Spacing is kept exactly: the
concatenation of the pieces is the reply (docs/protocols/twilio.md §5: "keep spacing").
"""

from __future__ import annotations

from dataclasses import dataclass, field

_SENTENCE_END = frozenset(".!?;:\n")
_CLAUSE_END = frozenset(",—–")


@dataclass(slots=True)
class SpeechChunker:
    """Feed text deltas, get speakable pieces; ``flush`` returns what is left.

    ``first_min_chars``: a clause end may close the first piece once it has this many characters.
    ``clause_min_chars``: the same for later pieces. ``max_chars``: past this, break at a space.
    """

    first_min_chars: int = 8
    clause_min_chars: int = 40
    max_chars: int = 180
    _buffer: str = field(default="", init=False)
    _pieces: int = field(default=0, init=False)

    def feed(self, delta: str) -> list[str]:
        self._buffer += delta
        pieces: list[str] = []
        while (cut := self._cut()) is not None:
            pieces.append(self._buffer[:cut])
            self._buffer = self._buffer[cut:]
            self._pieces += 1
        return pieces

    def flush(self) -> str:
        rest, self._buffer = self._buffer, ""
        if rest:
            self._pieces += 1
        return rest

    def _cut(self) -> int | None:
        """Index after which to cut the buffer (keeping the following whitespace), or None."""
        text = self._buffer
        clause_min = self.first_min_chars if self._pieces == 0 else self.clause_min_chars
        best: int | None = None
        for i, char in enumerate(text[:-1]):  # a boundary counts once the next character is seen
            if not text[i + 1].isspace():
                continue
            if char in _SENTENCE_END or (char in _CLAUSE_END and i + 1 >= clause_min):
                best = i + 2  # include the space: the next piece starts with a word
                break
        if best is None and len(text) > self.max_chars:
            space = text.rfind(" ", 0, self.max_chars)
            best = space + 1 if space > 0 else self.max_chars
        return best
