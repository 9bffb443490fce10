import pytest

from annotator.overlap import OverlapRule, pair_settled, slots_open

FIXED_3 = OverlapRule(max_votes=3)
ADAPTIVE_2_3 = OverlapRule(max_votes=3, min_votes=2)


@pytest.mark.parametrize(
    ("counts", "settled"),
    [((0, 0, 0, 0), False), ((2, 0, 0, 0), False), ((2, 1, 0, 0), True), ((1, 1, 1, 0), True)],
)
def test_fixed_overlap_settles_only_at_its_number_of_votes(counts, settled):
    assert pair_settled(FIXED_3, counts) is settled


@pytest.mark.parametrize(
    ("counts", "settled"),
    [
        ((1, 0, 0, 0), False),  # under min_votes
        ((2, 0, 0, 0), True),  # two agreeing votes
        ((0, 2, 0, 0), True),
        ((0, 0, 2, 0), True),  # two ties agree too
        ((1, 1, 0, 0), False),  # a split asks for a third
        ((1, 0, 1, 0), False),
        ((2, 1, 0, 0), True),  # the maximum
        ((1, 1, 1, 0), True),
    ],
)
def test_adaptive_two_to_three_stops_at_two_agreeing_votes(counts, settled):
    assert pair_settled(ADAPTIVE_2_3, counts) is settled


def test_a_wider_range_asks_until_one_verdict_leads_by_the_margin():
    rule = OverlapRule(max_votes=5, min_votes=2, settle_margin=2)
    assert not pair_settled(rule, (2, 1, 0, 0))
    assert pair_settled(rule, (3, 1, 0, 0))
    assert not pair_settled(rule, (2, 2, 0, 0))
    assert pair_settled(rule, (3, 2, 0, 0))  # five votes: the maximum


def test_slots_open_fixed_is_what_is_left_of_the_overlap():
    assert [slots_open(FIXED_3, votes=v, settled=False) for v in range(4)] == [3, 2, 1, 0]


def test_slots_open_adaptive_is_min_votes_first_then_one_at_a_time():
    assert slots_open(ADAPTIVE_2_3, votes=0, settled=False) == 2
    assert slots_open(ADAPTIVE_2_3, votes=1, settled=False) == 1
    assert slots_open(ADAPTIVE_2_3, votes=2, settled=False) == 1
    assert slots_open(ADAPTIVE_2_3, votes=2, settled=True) == 0
    assert slots_open(ADAPTIVE_2_3, votes=3, settled=False) == 0
    assert slots_open(OverlapRule(max_votes=5, min_votes=2), votes=3, settled=False) == 1


def test_min_votes_equal_to_the_maximum_is_a_fixed_overlap():
    rule = OverlapRule(max_votes=3, min_votes=3)
    assert not rule.adaptive
    assert not pair_settled(rule, (2, 0, 0, 0))


def test_check_names_each_bad_setting_and_how_to_fix_it():
    assert OverlapRule(max_votes=3, min_votes=2).check() == []
    assert "min_votes is 4: it must be 1 to overlap (3)" in OverlapRule(max_votes=3, min_votes=4).check()[0]
    assert "min_votes is 0" in OverlapRule(max_votes=3, min_votes=0).check()[0]
    assert "settle_margin is 0" in OverlapRule(max_votes=3, min_votes=2, settle_margin=0).check()[0]
    assert "overlap is 0" in OverlapRule(max_votes=0).check()[0]
