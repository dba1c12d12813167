"""Incremental detokenization: UTF-8 split across tokens, stop strings never leak."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from lumbung.engines.llamacpp.detok import StopMatcher, Utf8Stream


def test_multibyte_character_split_across_pieces_waits_for_its_end() -> None:
    data = "beras 🌾 padi".encode()
    stream = Utf8Stream()
    out = [stream.feed(data[i : i + 1]) for i in range(len(data))]
    assert "".join(out) + stream.flush() == "beras 🌾 padi"
    assert "\ufffd" not in "".join(out)


def test_invalid_bytes_become_replacement_characters() -> None:
    stream = Utf8Stream()
    assert stream.feed(b"ok\xff") + stream.flush() == "ok\ufffd"


def reference(text: str, stops: list[str]) -> tuple[str, bool]:
    """Generation halts when a stop string completes: the match that ends first wins."""
    hits = [(text.find(s) + len(s), text.find(s)) for s in stops if s and s in text]
    return (text[: min(hits)[1]], True) if hits else (text, False)


def test_a_shorter_stop_completing_first_wins_however_the_text_is_cut() -> None:
    whole = StopMatcher(["x", "axa"])
    assert whole.feed("aaxa") == ("aa", True) and whole.matched == "x"
    cut = StopMatcher(["x", "axa"])
    assert cut.feed("aax") == ("aa", True)


@given(
    text=st.text(alphabet="ab\nxy", max_size=40),
    stops=st.lists(st.text(alphabet="ab\nx", min_size=1, max_size=4), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=10),
)
def test_streamed_stop_matching_equals_whole_text_matching(
    text: str, stops: list[str], cuts: list[int]
) -> None:
    matcher = StopMatcher(stops)
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    emitted, stopped = "", False
    for start, end in itertools.pairwise(bounds):
        part, stopped = matcher.feed(text[start:end])
        emitted += part
        if stopped:
            break
    if not stopped:
        emitted += matcher.flush()
    assert (emitted, stopped) == reference(text, stops)


def test_held_text_is_released_when_it_is_not_a_stop() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("the E") == ("the ", False)
    assert matcher.feed("N") == ("", False)
    assert matcher.feed("d") == ("ENd", False)


def test_no_stops_passes_text_through() -> None:
    assert StopMatcher([]).feed("anything") == ("anything", False)


@given(
    data=st.binary(max_size=64) | st.text(max_size=20).map(str.encode),
    cuts=st.lists(st.integers(min_value=0, max_value=64), max_size=16),
)
def test_any_bytes_cut_anywhere_decode_as_the_whole_does(data: bytes, cuts: list[int]) -> None:
    """Token pieces split UTF-8 anywhere (and a model may emit invalid bytes): the streamed text is the
    whole decode, invalid bytes as U+FFFD, never an exception."""
    stream = Utf8Stream()
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    text = "".join(stream.feed(data[a:b]) for a, b in itertools.pairwise(bounds)) + stream.flush()
    assert text == data.decode("utf-8", errors="replace")
