"""What the caller heard: cut on a word, and only ever in the turn that was cut."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callkit.call.heard import History, cut_on_word, heard_share
from callkit.llm.protocol import AssistantMessage, ToolCall, ToolMessage, UserMessage


def test_a_cut_inside_a_word_drops_the_word() -> None:
    assert cut_on_word("Our opening hours are", 6) == "Our"
    assert cut_on_word("Our opening hours are", 3) == "Our"
    assert cut_on_word("Our opening hours are", 4) == "Our"
    assert cut_on_word("Hello, world", 6) == "Hello,"
    assert cut_on_word("Hello", 2) == ""
    assert cut_on_word("Hello", 99) == "Hello"


@given(st.text(alphabet="ab ,.", max_size=40), st.integers(min_value=-5, max_value=50))
def test_a_cut_is_a_prefix_ending_on_a_word(text: str, chars: int) -> None:
    cut = cut_on_word(text, chars)
    assert text.startswith(cut) and len(cut) <= max(chars, 0)
    if cut and len(cut) < len(text):
        assert not (cut[-1].isalnum() and text[len(cut)].isalnum()), "never half a word"


def test_heard_share_follows_the_played_milliseconds() -> None:
    assert heard_share("one two three four", 0, 1000) == ""
    assert heard_share("one two three four", 1000, 1000) == "one two three four"
    assert heard_share("one two three four", 500, 1000) == "one two"


def test_cutting_a_turn_never_touches_another() -> None:
    history = History()
    history.set(1, [UserMessage("order?"), AssistantMessage("It shipped on Monday.")])
    call = ToolCall("c1", "check_order", "{}")
    history.set(
        2,
        [
            UserMessage("hours?"),
            AssistantMessage("Let me check.", (call,)),
            ToolMessage("c1", "9-6"),
            AssistantMessage("We open at nine and close at six."),
        ],
    )
    history.cut(2, "Let me check.We open at ni")
    messages = history.messages()
    assert messages[1] == AssistantMessage("It shipped on Monday.")
    assert messages[3] == AssistantMessage("Let me check.", (call,))
    assert messages[4] == ToolMessage("c1", "9-6"), "the tool ran: its result stays"
    assert messages[5] == AssistantMessage("We open at")
    history.cut(7, "nothing")  # a turn that is not there: nothing happens
    assert len(history.messages()) == 6
