import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from progeval import UnsafeProgramError, check_program, generate_program, run_trusted
from progeval.draws import RandomDraw
from progeval.fastexec import ShapeCache


@given(
    seed=st.integers(0, 2**32),
    length=st.integers(1, 10),
    nesting=st.integers(1, 6),
    index=st.integers(0, 10**6),
)
def test_shape_cache_equals_the_slow_twin(seed, length, nesting, index):
    cache = ShapeCache()
    for k in range(3):  # the first run fills the cache, later ones hit it
        p = generate_program(seed, "train", length, nesting, index + k)
        assert cache.run(p.source) == run_trusted(p.source)
        assert cache.run(p.source) == run_trusted(p.source)


def test_shapes_are_shared_and_renamed_variables_hit_the_cache():
    cache = ShapeCache()
    assert cache.run("a=5\nfor x in range(3):a+=7\nprint((a-2))") == "24"
    assert cache.run("q=9\nfor x in range(4):q+=1\nprint((q-8))") == "5"
    assert cache.misses == 1 and len(cache.shapes) == 1
    programs = [generate_program(0, "train", 6, 3, i).source for i in range(5000)]
    for src in programs:
        cache.run(src)
    assert cache.misses < 0.8 * len(programs)


@pytest.mark.parametrize(
    "bad,message",
    [
        ("a=5\nfor x in range(30000):a+=7\nprint((a-2))", "exceeds the bound"),
        ("a=5\nfor x in range(9000):a+=7\nfor x in range(9000):a+=7\nprint((a-2))", None),
        ("a=05\nfor x in range(3):a+=7\nprint((a-2))", "syntax error"),
        ("a=" + "9" * 31 + "\nfor x in range(3):a+=7\nprint((a-2))", "longer than 30 digits"),
    ],
)
def test_numbers_are_checked_on_a_cache_hit(bad, message):
    cache = ShapeCache()
    good = bad.replace("30000", "3").replace("05", "5").replace("9" * 31, "9")
    cache.run(good.replace("9000", "3"))
    if message is None:  # allowed as it stands: 18,000 iterations
        assert cache.run(bad) == run_trusted(bad)
        return
    with pytest.raises(UnsafeProgramError, match=message):
        cache.run(bad)


def test_zero_padded_zero_is_run_by_the_slow_path():
    cache = ShapeCache()
    cache.run("print((1+2))")
    assert cache.run("print((00+2))") == run_trusted("print((00+2))") == "2"


def test_random_draw_gives_the_same_numbers_as_random_randrange():
    for n in (1, 2, 3, 7, 10**6, 10**30, 120):
        a, b = random.Random(5), RandomDraw(random.Random(5))
        assert [a.randrange(n) for _ in range(500)] == [b.integer(0, n - 1) for _ in range(500)]
        a, b = random.Random(6), RandomDraw(random.Random(6))
        assert [a.randint(3, n + 3) for _ in range(500)] == [b.integer(3, n + 3) for _ in range(500)]


@pytest.mark.parametrize(
    "warm,hostile,message",
    [
        ("a=1\n" * 700 + "print(a)", ("a=" + "9" * 30 + "\n") * 700 + "print(a)", "at most 20000"),
        ("print(5)", "print(_0)", "name '_0' is not allowed"),
        (
            "a=1\nfor x in range(2):a+=1\nprint((a+x))",
            "a=1\nfor x in range(0):a+=1\nprint((a+x))",
            "name 'x' is read before it is assigned",
        ),
        ("b=1\na=2\nc=3\nprint((a-b))", "b=1\na=2\n\uff42=3\nprint((a-b))", "non-ASCII"),
    ],
)
def test_a_warm_cache_never_runs_what_the_full_check_rejects(warm, hostile, message):
    cache = ShapeCache()
    assert cache.run(warm) == run_trusted(warm)
    with pytest.raises(UnsafeProgramError, match=message):
        check_program(hostile)
    with pytest.raises(UnsafeProgramError, match=message):
        cache.run(hostile)
