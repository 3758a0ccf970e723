"""Random programs from a grammar wider than the allow-list: whatever the check accepts, every
executor agrees on; whatever it rejects, no executor runs, warm shape cache or not."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from progeval import UnsafeProgramError, check_program, oracle_output, run_trusted
from progeval.fastexec import ShapeCache

names = st.sampled_from(["a", "b", "c", "x", "_0"])
literals = st.one_of(st.integers(0, 99).map(str), st.sampled_from(["0", "00", "007", "10000", "9" * 31]))
exprs = st.recursive(
    st.one_of(literals, names),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from("+-*"), inner).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.tuples(inner, inner, st.sampled_from("<>"), inner, inner).map(
            lambda t: f"({t[0]} if {t[1]}{t[2]}{t[3]} else {t[4]})"
        ),
    ),
    max_leaves=6,
)
assigns = st.tuples(names, exprs).map(lambda t: f"{t[0]}={t[1]}")
loops = st.tuples(names, st.sampled_from(["0", "1", "3", "20000"]), names, st.sampled_from("+-"), exprs).map(
    lambda t: f"for {t[0]} in range({t[1]}):{t[2]}{t[3]}={t[4]}"
)
programs = st.tuples(st.lists(st.one_of(assigns, loops), max_size=4), exprs).map(
    lambda t: "\n".join([*t[0], f"print({t[1]})"])
)


def decide(source):
    try:
        check_program(source)
    except UnsafeProgramError:
        return None
    return run_trusted(source)


@settings(max_examples=1000)
@given(source=programs, other_numbers=st.lists(st.integers(1, 99), min_size=30, max_size=30))
def test_executors_agree_and_rejections_hold_on_a_warm_cache(source, other_numbers):
    expected = decide(source)
    if expected is not None:
        assert oracle_output(source) == expected
    # Warm the cache with a program of the same shape but other numbers, then run the real one.
    numbers = iter(other_numbers)
    twin = re.sub(r"\b\d+\b", lambda m: str(next(numbers)), source)
    cache = ShapeCache()
    for program in (twin, source):
        want = decide(program)
        try:
            got = cache.run(program)
        except UnsafeProgramError:
            got = None
        assert got == want, program
