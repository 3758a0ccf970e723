"""The Learning-to-Execute program generator (family ``l2e``).

Faithful to the original generator: ``nesting`` operations are composed, each chosen uniformly from six;
each takes the previous operation's expression as one operand, in a slot chosen uniformly, and fresh
numbers for its other operands. Numbers are uniform in ``1..10**length - 1`` (at most ``length``
digits); multipliers and loop counts are uniform in ``1..4*length``; variables are fresh letters drawn
from ``a..j`` as the original does (then from the other letters but ``x``, for programs that need more
than ten). The text matches the original's: ``(a*7)`` for a small multiplication, ``v=e;`` (with its
semicolon) for an assignment, ``v=e`` then ``for x in range(n):v+=e`` for a loop.

The original draws numbers from ``1..10**length`` inclusive, which gives a ``length + 1``-digit number
once in ``10**length`` draws; we keep the documented digit bound instead (see README, "Decisions").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from progeval.draws import Draw, RandomDraw, example_rng
from progeval.program import Program

#: Largest nesting a program may have: every operation may introduce a variable, and there are 25.
MAX_NESTING = 25
#: Largest number length; the allow-list bounds literals to this many digits as well.
MAX_LENGTH = 30


def max_number(length: int) -> int:
    return 10**length - 1


def max_small(length: int) -> int:
    """Upper bound of multipliers and loop counts."""
    return 4 * length


@dataclass
class _State:
    draw: Draw
    length: int
    statements: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)

    def number(self) -> str:
        return str(self.draw.integer(1, max_number(self.length)))

    def operands(self, prev: str | None, k: int) -> list[str]:
        """k operands: the previous expression in a uniformly chosen slot, fresh numbers elsewhere."""
        if prev is None:
            return [self.number() for _ in range(k)]
        slot = self.draw.integer(0, k - 1)
        return [prev if i == slot else self.number() for i in range(k)]

    def fresh_variable(self) -> str:
        name = self.draw.variable(self.used)
        self.used.add(name)
        return name


def _pair(s: _State, prev: str | None) -> str:
    a, b = s.operands(prev, 2)
    return f"({a}{s.draw.choice('+-')}{b})"


def _smallmul(s: _State, prev: str | None) -> str:
    (a,) = s.operands(prev, 1)
    b = s.draw.integer(1, max_small(s.length))
    return f"({a}*{b})" if s.draw.choice((True, False)) else f"({b}*{a})"


def _equality(s: _State, prev: str | None) -> str:
    (a,) = s.operands(prev, 1)
    return a


def _vars(s: _State, prev: str | None) -> str:
    v = s.fresh_variable()
    a, b = s.operands(prev, 2)
    s.statements.append(f"{v}={a};")  # the original emits this statement with a semicolon
    return f"({v}{s.draw.choice('+-')}{b})"


def _loop(s: _State, prev: str | None) -> str:
    v = s.fresh_variable()
    n = s.draw.integer(1, max_small(s.length))
    a, b = s.operands(prev, 2)
    op = s.draw.choice(("+=", "-="))
    s.statements.append(f"{v}={a}")
    s.statements.append(f"for x in range({n}):{v}{op}{b}")
    return v


def _ifstat(s: _State, prev: str | None) -> str:
    a, b, c, d = s.operands(prev, 4)
    return f"({c} if {a}{s.draw.choice('<>')}{b} else {d})"


#: The six operations, in the original generator's order; chosen uniformly at every step.
OPERATIONS: dict[str, Callable[[_State, str | None], str]] = {
    "pair": _pair,
    "smallmul": _smallmul,
    "equality": _equality,
    "vars": _vars,
    "loop": _loop,
    "ifstat": _ifstat,
}
OP_NAMES = tuple(OPERATIONS)


def check_cell(length: int, nesting: int) -> None:
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_LENGTH:
        raise ValueError(f"length must be an integer in 1..{MAX_LENGTH}, got {length!r}")
    if isinstance(nesting, bool) or not isinstance(nesting, int) or not 1 <= nesting <= MAX_NESTING:
        raise ValueError(f"nesting must be an integer in 1..{MAX_NESTING}, got {nesting!r}")


def build_program(draw: Draw, length: int, nesting: int) -> Program:
    """Compose ``nesting`` operations with choices from ``draw``."""
    check_cell(length, nesting)
    state = _State(draw, length)
    expr: str | None = None
    ops = []
    for _ in range(nesting):
        name = draw.choice(OP_NAMES)
        ops.append(name)
        expr = OPERATIONS[name](state, expr)
    assert expr is not None
    return Program(tuple(state.statements), expr, tuple(ops), length, nesting)


def generate_program(seed: int, split: str, length: int, nesting: int, index: int) -> Program:
    """Example ``index`` of cell (length, nesting) of ``split``; a pure function of its arguments."""
    return build_program(RandomDraw(example_rng(seed, split, length, nesting, index)), length, nesting)
