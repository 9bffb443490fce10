from generation.sampling import (
    SEED_BITS,
    Slot,
    derive_seed,
    pairs_choose,
    slot_seed,
    slots_plan,
    slots_to_resample,
    text_key,
)
from llm.base import Sampling


def test_each_slot_gets_its_own_temperature_or_the_only_one_given():
    slots = slots_plan(n=2, temperatures=[0.7, 1.1], top_ps=[0.95], max_tokens=64, two_models=False)
    assert [s.sampling for s in slots] == [
        Sampling(temperature=0.7, top_p=0.95, max_tokens=64),
        Sampling(temperature=1.1, top_p=0.95, max_tokens=64),
    ]
    assert {s.side for s in slots} == {"a"}


def test_with_a_second_model_odd_slots_go_to_model_b():
    slots = slots_plan(n=4, temperatures=[1.0], top_ps=[1.0], max_tokens=8, two_models=True)
    assert [s.side for s in slots] == ["a", "b", "a", "b"]


def test_seeds_are_reproducible_distinct_per_prompt_slot_and_attempt_and_fit_31_bits():
    seeds = {
        slot_seed(base_seed=13, content_hash=h, slot=s, attempt=a) for h in ("h1", "h2") for s in (0, 1) for a in (0, 1)
    }
    assert len(seeds) == 8
    assert all(0 <= seed < 1 << SEED_BITS for seed in seeds)
    assert slot_seed(base_seed=13, content_hash="h1", slot=1) == slot_seed(base_seed=13, content_hash="h1", slot=1)
    assert slot_seed(base_seed=13, content_hash="h1", slot=1) != slot_seed(base_seed=14, content_hash="h1", slot=1)
    assert derive_seed(1, "x") == derive_seed(1, "x")


def test_responses_that_differ_only_in_whitespace_are_duplicates():
    assert text_key("  The cat\n sat.\t") == "The cat sat."
    assert slots_to_resample(["The cat sat.", "The  cat\nsat. ", "A dog.", "", "A dog."]) == [1, 3, 4]
    assert slots_to_resample(["one", "two"]) == []


def make_slots(sides: str) -> list[Slot]:
    return [Slot(index=i, side=side, sampling=Sampling()) for i, side in enumerate(sides)]


def test_all_pairs_of_one_model_or_only_cross_pairs_with_two():
    assert pairs_choose(slots=make_slots("aaa")) == [(0, 1), (0, 2), (1, 2)]
    assert pairs_choose(slots=make_slots("abab"), two_models=True) == [(0, 1), (0, 3), (1, 2), (2, 3)]


def test_random_pairing_keeps_the_asked_number_reproducibly():
    slots = make_slots("aaaa")
    chosen = pairs_choose(slots=slots, mode="random", per_prompt=2, seed=5)
    assert len(chosen) == 2
    assert set(chosen) <= set(pairs_choose(slots=slots))
    assert chosen == pairs_choose(slots=slots, mode="random", per_prompt=2, seed=5)
    assert {tuple(pairs_choose(slots=slots, mode="random", per_prompt=2, seed=s)) for s in range(20)} != {tuple(chosen)}


def test_pairs_only_among_the_usable_slots():
    slots = make_slots("aaa")
    assert pairs_choose(slots=[slots[0], slots[2]]) == [(0, 2)]
    assert pairs_choose(slots=[slots[1]]) == []
