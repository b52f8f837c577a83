from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from callkit.call.chunker import SpeechChunker

REPLY = (
    "Sure, let me check that for you. Order 1001 shipped on Monday, and it arrives tomorrow. Anything else?"
)


def pieces_of(text: str, cuts: list[int], chunker: SpeechChunker | None = None) -> list[str]:
    chunker = chunker or SpeechChunker()
    out: list[str] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(text)]:
        out += chunker.feed(text[start:cut])
        start = cut
    rest = chunker.flush()
    return [*out, rest] if rest else out


def test_sentences_become_pieces_with_spacing_kept() -> None:
    tokens = [word + " " for word in REPLY.split(" ")]
    chunker = SpeechChunker()
    pieces = [p for token in tokens for p in chunker.feed(token)]
    pieces += [rest] if (rest := chunker.flush()) else []
    assert pieces == [
        "Sure, let me check that for you. ",
        "Order 1001 shipped on Monday, and it arrives tomorrow. ",
        "Anything else? ",
    ]


def test_first_piece_may_end_at_an_early_clause() -> None:
    pieces = pieces_of("Of course, I can help with your order today, just a moment.", [])
    assert pieces[0] == "Of course, "


def test_long_text_without_punctuation_breaks_at_a_space() -> None:
    text = " ".join(["word"] * 100)
    pieces = pieces_of(text, list(range(0, len(text), 7)))
    assert all(len(p) <= 180 for p in pieces)
    assert all(p.endswith(" ") for p in pieces[:-1])


def test_no_text_no_piece() -> None:
    assert SpeechChunker().flush() == ""


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(min_size=0, max_size=600),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=40),
)
def test_pieces_always_rejoin_to_the_text(text: str, cuts: list[int]) -> None:
    pieces = pieces_of(text, [c for c in cuts if c <= len(text)])
    assert "".join(pieces) == text
    assert all(pieces)
