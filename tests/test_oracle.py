import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

from progeval import oracle_output
from progeval.build import generate_splits
from progeval.config import DatasetConfig
from progeval.oracle import OracleMismatch


@pytest.mark.parametrize(
    "source,expected",
    [
        ("print((12-40))", "-28"),
        ("a=7\nfor x in range(4):a-=3\nprint(a)", "-5"),
        ("a=5\nfor x in range(0):a+=3\nprint(a)", "5"),
        ("print((3 if 2<1 else 4*9))", "36"),
        ("print((3 if 2>1 else 4))", "3"),
        (
            "b=99999999999999999999\nprint(b*99999999999999999999*9)",
            str(9 * 99999999999999999999**2),
        ),
    ],
)
def test_oracle_on_hand_computed_programs(source, expected):
    assert oracle_output(source) == expected


@given(a=st.integers(0, 10**30 - 1), b=st.integers(0, 10**30 - 1), n=st.integers(0, 10_000))
def test_loop_closed_form_is_exact(a, b, n):
    src = f"v={a}\nfor x in range({n}):v-={b}\nprint(v)"
    assert oracle_output(src) == str(sympy.Integer(a) - n * sympy.Integer(b)) == str(a - n * b)


def test_disagreement_is_an_error_not_a_drop(monkeypatch):
    import progeval.build as build

    monkeypatch.setattr(build._SHAPES, "run", lambda source: "7")
    cfg = DatasetConfig(length=2, nesting=2, train=20, valid=0, test=0, test_extrapolate=0, oracle_rate=1.0)
    with pytest.raises(OracleMismatch, match="execution printed 7"):
        generate_splits(cfg, progress=False)
