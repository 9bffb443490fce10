from collections import Counter

from exports.formats import openai_row, split_of


def test_split_is_deterministic_and_follows_the_seed():
    hashes = [f"{i:064x}" for i in range(2000)]
    first = [split_of(h, seed=1, val_fraction=0.2) for h in hashes]
    assert first == [split_of(h, seed=1, val_fraction=0.2) for h in hashes]
    assert first != [split_of(h, seed=2, val_fraction=0.2) for h in hashes]
    share = Counter(first)["validation"] / len(hashes)
    assert 0.17 < share < 0.23


def test_zero_val_fraction_puts_everything_in_train():
    assert {split_of(f"{i:064x}", seed=0, val_fraction=0.0) for i in range(500)} == {"train"}


def test_openai_line_has_the_three_fields():
    row = {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Question?"}],
        "chosen": [{"role": "assistant", "content": "Answer A"}],
        "rejected": [{"role": "assistant", "content": "Answer B"}],
        "comparison_id": 1,
    }
    assert openai_row(row) == {
        "input": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Question?"}]},
        "preferred_output": [{"role": "assistant", "content": "Answer A"}],
        "non_preferred_output": [{"role": "assistant", "content": "Answer B"}],
    }
