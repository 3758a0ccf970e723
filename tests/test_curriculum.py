import random
from collections import Counter

import pytest

from progeval import CurriculumState


def test_naive_visits_levels_in_the_stated_order():
    s = CurriculumState("naive", length=3, nesting=2)
    seen = []
    while True:
        seen.append(s.current)
        assert s.sample_cell(random.Random(0)) == s.current
        if not s.update(0.99):
            break
    assert seen == [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)]
    assert s.at_last_level and s.update(1.0) is False


def test_baseline_always_gives_the_target():
    s = CurriculumState("baseline", 6, 3)
    rng = random.Random(1)
    assert {s.sample_cell(rng) for _ in range(200)} == {(6, 3)}


def test_mix_is_uniform_and_independent_over_both_ranges():
    s = CurriculumState("mix", 4, 3)
    rng = random.Random(2)
    n = 24_000
    cells = Counter(s.sample_cell(rng) for _ in range(n))
    assert set(cells) == {(a, b) for a in range(1, 5) for b in range(1, 4)}
    # 2000 expected per cell, sd about 43: a joint check of uniformity and independence.
    assert all(1800 < k < 2200 for k in cells.values()), cells


def test_combined_draws_a_mix_sample_one_time_in_five():
    s = CurriculumState("combined", 5, 4)
    s.level = 7  # current level (3, 2)
    rng = random.Random(3)
    n = 50_000
    cells = Counter(s.sample_cell(rng) for _ in range(n))
    # From the current level: 4/5 always plus 1/5 * 1/20 through the mix draw.
    p_current = 0.8 + 0.2 / 20
    assert abs(cells[(3, 2)] / n - p_current) < 0.01
    others = n - cells[(3, 2)]
    assert abs(others / n - 0.2 * 19 / 20) < 0.01
    assert len(cells) == 20


def test_plateau_moves_the_level_up():
    s = CurriculumState("naive", 2, 2, patience=3)
    assert [s.update(a) for a in (0.5, 0.6, 0.6, 0.6)] == [False, False, False, False]
    assert s.update(0.6) is True and s.level == 1


def test_state_round_trips_through_plain_data():
    import json

    s = CurriculumState("combined", 4, 3)
    s.update(0.97)
    s.update(0.3)
    restored = CurriculumState.from_state_dict(json.loads(json.dumps(s.state_dict())))
    assert restored == s and restored.current == (2, 1)
    rng_a, rng_b = random.Random(5), random.Random(5)
    assert [s.sample_cell(rng_a) for _ in range(50)] == [restored.sample_cell(rng_b) for _ in range(50)]


def test_bad_curricula_are_refused():
    with pytest.raises(ValueError, match="curriculum must be one of"):
        CurriculumState("greedy", 2, 2)
    with pytest.raises(ValueError, match="out of range"):
        CurriculumState.from_state_dict({"name": "naive", "length": 2, "nesting": 1, "level": 9})
