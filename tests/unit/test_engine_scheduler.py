"""How a step's batch is shared between generating sequences and prompts being read."""

from __future__ import annotations

from lumbung.engines.llamacpp.scheduler import adapter_turn, prefill_shares


def test_alone_a_prompt_gets_the_whole_batch() -> None:
    assert prefill_shares(0, [1500], 512, 256) == [512]


def test_running_streams_cap_prompt_reading_per_step() -> None:
    assert prefill_shares(3, [1500], 512, 256) == [256]


def test_oldest_prompt_first_and_nothing_beyond_the_batch() -> None:
    assert prefill_shares(0, [300, 300, 300], 512, 256) == [300, 212, 0]
    assert prefill_shares(500, [10], 512, 256) == [10]
    assert prefill_shares(512, [10], 512, 256) == [0]


def test_short_prompts_share_one_step() -> None:
    assert prefill_shares(2, [5, 7, 9], 512, 256) == [5, 7, 9]


def test_adapter_sets_take_steps_in_turn_oldest_first() -> None:
    base, a, b = (), (("a", 1.0),), (("b", 0.5),)
    running = [a, base, a, b]
    assert [adapter_turn(running, t) for t in range(4)] == [a, base, b, a]


def test_one_adapter_set_takes_every_step() -> None:
    assert {adapter_turn([(), ()], t) for t in range(3)} == {()}
