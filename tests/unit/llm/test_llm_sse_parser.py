"""``SSEParser``: event-stream bytes in any chunking → the same data payloads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callkit.errors import MessageTooLargeError
from callkit.llm import SSEParser


def feed_all(chunks: list[bytes]) -> list[str]:
    parser = SSEParser()
    return [payload for chunk in chunks for payload in parser.feed(chunk)]


def test_openai_style_stream() -> None:
    stream = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'
    assert feed_all([stream]) == ['{"a":1}', '{"b":2}', "[DONE]"]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_line_endings(newline: bytes) -> None:
    stream = newline.join([b"data: one", b"", b"data: two", b"", b""])
    assert feed_all([stream]) == ["one", "two"]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    assert feed_all([b"data: one\r", b"\n\r", b"\ndata: two\r\n\r\n"]) == ["one", "two"]


def test_comments_fields_and_multi_line_data() -> None:
    stream = (
        b": keep-alive comment\n"
        b"event: message\n"
        b"id: 7\n"
        b"retry: 100\n"
        b"data: first line\n"
        b"data:second line\n"
        b"data\n"
        b"\n"
        b": only a comment\n"
        b"\n"
        b"event: no data here\n"
        b"\n"
    )
    assert feed_all([stream]) == ["first line\nsecond line\n"]


def test_only_one_leading_space_is_removed() -> None:
    assert feed_all([b"data:  two spaces\n\n"]) == [" two spaces"]


def test_incomplete_event_is_held_until_its_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: par") == []
    assert parser.feed(b"tial\n") == []
    assert parser.feed(b"\n") == ["partial"]


def test_utf8_split_inside_a_character() -> None:
    data = "data: café ☎\n\n".encode()
    split = data.index("☎".encode()) + 1
    assert feed_all([data[:split], data[split:]]) == ["café ☎"]


def test_byte_order_mark_is_dropped_even_when_split() -> None:
    assert feed_all([b"\xef", b"\xbb\xbfdata: x\n\n"]) == ["x"]


def test_overlong_line_is_refused() -> None:
    parser = SSEParser(max_line=100)
    with pytest.raises(MessageTooLargeError):
        parser.feed(b"data: " + b"x" * 200)


# --- property: chunking never changes the events --------------------------------------------------

payload_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30
)
event = st.tuples(
    st.lists(payload_line, min_size=1, max_size=3),
    st.lists(payload_line.map(lambda s: ": " + s), max_size=2),  # comments
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    events = draw(st.lists(event, max_size=6))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines: list[str] = []
    expected: list[str] = []
    for data_lines, comments in events:
        lines.extend(comments)
        lines.extend(f"data: {line}" for line in data_lines)
        lines.append("")
        expected.append("\n".join(data_lines))
    text = newline.join(lines) + (newline if lines else "")
    return text.encode(), expected


@given(streams(), st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_chunking_gives_the_same_events(stream: tuple[bytes, list[str]], cuts: list[int]) -> None:
    data, expected = stream
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert feed_all([data]) == expected
    assert feed_all(chunks) == expected


@given(streams())
def test_byte_by_byte_gives_the_same_events(stream: tuple[bytes, list[str]]) -> None:
    data, expected = stream
    assert feed_all([data[i : i + 1] for i in range(len(data))]) == expected
