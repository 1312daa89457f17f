"""The stop-string hold-back of the CPU engine's token loop (pure: no model)."""

from __future__ import annotations

from inference_node.cpu_engine import _StopText  # pyright: ignore[reportPrivateUsage]


def feed_all(stops: tuple[str, ...], pieces: list[str]) -> tuple[str, bool]:
    text = _StopText(stops)
    out = ""
    for piece in pieces:
        sent, stopped = text.feed(piece)
        out += sent
        if stopped:
            return out, True
    return out + text.flush(""), False


def test_text_before_a_stop_string_split_across_tokens_is_sent_and_the_stop_is_not() -> None:
    assert feed_all(("END",), ["one ", "two E", "N", "D three"]) == ("one two ", True)


def test_a_partial_stop_string_that_does_not_complete_is_sent_in_the_end() -> None:
    assert feed_all(("END",), ["one E", "N", "x"]) == ("one ENx", False)


def test_without_stop_strings_text_passes_through() -> None:
    assert feed_all((), ["a", "b"]) == ("ab", False)


def test_the_earliest_of_several_stop_strings_wins() -> None:
    assert feed_all(("cd", "b"), ["abcd"]) == ("a", True)
