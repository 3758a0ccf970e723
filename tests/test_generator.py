import ast
import os
import re
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from progeval import (
    check_program,
    generate_program,
    oracle_output,
    parse_stream,
    run_trusted,
    to_stream,
)
from progeval.generator import OP_NAMES
from tests.helpers import python_prints

cells = st.tuples(st.integers(1, 10), st.integers(1, 6))
seeds = st.integers(0, 2**32)
indices = st.integers(0, 10**6)


def op_signature(tree: ast.Module) -> Counter:
    """Counts of the constructs each operation leaves in the tree."""
    c: Counter = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            c["addsub"] += 1
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            c["mult"] += 1
        elif isinstance(node, ast.IfExp):
            c["if"] += 1
        elif isinstance(node, ast.For):
            c["for"] += 1
        elif isinstance(node, ast.Assign):
            c["assign"] += 1
    return c


@given(seed=seeds, cell=cells, index=indices, split=st.sampled_from(["train", "valid", "test"]))
def test_program_properties(seed, cell, index, split):
    length, nesting = cell
    p = generate_program(seed, split, length, nesting, index)
    tree = check_program(p.source)  # parses and passes the allow-list
    target = run_trusted(p.source)
    assert re.fullmatch(r"-?\d+", target)
    assert oracle_output(p.source) == target
    # Every number respects the length bound; multipliers and loop counts respect 4 * length.
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            assert 1 <= node.value < 10**length
        if isinstance(node, ast.Call) and node.func.id == "range":
            assert 1 <= node.args[0].value <= 4 * length
    # The nesting matches: one operation per level, each leaving its own constructs in the tree.
    assert len(p.ops) == nesting == p.nesting
    ops = Counter(p.ops)
    sig = op_signature(tree)
    assert sig["addsub"] == ops["pair"] + ops["vars"]
    assert sig["mult"] == ops["smallmul"]
    assert sig["if"] == ops["ifstat"]
    assert sig["for"] == ops["loop"]
    assert sig["assign"] == ops["vars"] + ops["loop"]
    # One statement a line, print last; the single-stream form round-trips.
    lines = p.source.split("\n")
    assert len(lines) == len(tree.body) and lines[-1].startswith("print(")
    stream = to_stream(p.source, target)
    assert stream.endswith("@" + target + ".") and "\n" not in stream
    assert parse_stream(stream) == (p.source, target)


@given(seed=seeds, cell=cells, index=indices)
def test_same_arguments_same_program(seed, cell, index):
    a = generate_program(seed, "train", *cell, index)
    b = generate_program(seed, "train", *cell, index)
    assert a == b
    assert generate_program(seed, "valid", *cell, index) != a or cell == (1, 1)


def test_targets_equal_real_python_output():
    for i in range(40):
        p = generate_program(3, "train", 4, 4, i)
        assert python_prints(p.source) == run_trusted(p.source)


def test_program_does_not_depend_on_pythonhashseed():
    code = (
        "from progeval import generate_program as g;print([g(7, 'train', 5, 4, i).source for i in range(20)])"
    )
    outs = set()
    for hashseed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        outs.add(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
    assert len(outs) == 1


def test_operations_are_uniform_and_numbers_span_their_range():
    n = 6000
    ops: Counter = Counter()
    numbers = []
    for i in range(n):
        p = generate_program(11, "train", 1, 1, i)
        ops.update(p.ops)
        numbers += [int(t) for t in re.findall(r"\d+", p.source)]
    # Each of six operations has probability 1/6: 1000 expected, sd about 29.
    assert set(ops) == set(OP_NAMES)
    assert all(850 < ops[o] < 1150 for o in OP_NAMES), ops
    assert min(numbers) == 1 and max(numbers) == 9


def test_previous_expression_lands_in_every_operand_slot():
    slots: Counter = Counter()
    for i in range(4000):
        p = generate_program(5, "train", 3, 2, i)
        if p.ops == ("pair", "ifstat"):
            ifexp = ast.parse(p.source).body[-1].value.args[0]
            operands = [ifexp.test.left, ifexp.test.comparators[0], ifexp.body, ifexp.orelse]
            slots.update(k for k, node in enumerate(operands) if isinstance(node, ast.BinOp))
    # About 110 programs, the pair expression in each of the four slots about equally often.
    assert sum(slots.values()) > 60 and all(slots[k] > 0.12 * sum(slots.values()) for k in range(4))


def test_multipliers_and_loop_counts_cover_one_to_four_times_length():
    mults, counts = Counter(), Counter()
    for i in range(6000):
        p = generate_program(9, "train", 2, 2, i)
        if p.ops == ("pair", "smallmul"):  # the multiplier is the side that is a literal
            mul = ast.parse(p.source).body[-1].value.args[0]
            side = mul.right if isinstance(mul.left, ast.BinOp) else mul.left
            mults[side.value] += 1
        if p.ops[1] == "loop":
            counts[int(re.search(r"range\((\d+)\)", p.source).group(1))] += 1
    assert set(mults) == set(range(1, 9)) and set(counts) == set(range(1, 9))


@pytest.mark.parametrize("length,nesting", [(0, 1), (1, 0), (1, 26), (31, 1), (True, 1)])
def test_bad_cells_are_refused(length, nesting):
    with pytest.raises(ValueError, match="length|nesting"):
        generate_program(0, "train", length, nesting, 0)


def test_known_program_is_stable():
    # Guards the generator's bytes: if this changes, bump progeval.GENERATOR_VERSION.
    p = generate_program(0, "train", 2, 3, 0)
    assert p.source == "i=4;\nd=(64+(i-68))\nfor x in range(6):d+=20\nprint(d)"
    assert p.ops == ("vars", "pair", "loop")
    assert python_prints(p.source) == "120"
