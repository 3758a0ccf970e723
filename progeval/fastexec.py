"""Fast execution of generated programs: one allow-list check and one compile per program *shape*.

A shape is the canonical form (variables renamed) with every integer literal replaced by a name
``_0, _1, ...``. Generated programs share few shapes (about 5,800 at nesting 3), so most programs run a
cached code object with their own numbers bound to those names, which is the same Python computation
on the same integers. The first program of a shape goes through the full `check_program`; later ones
only need the checks that depend on the numbers (literal length, no leading zero, range bounds), since
everything else the allow-list decides is the same for every program of the shape.

`run_trusted` in progeval.execute is the slow, readable twin; tests compare the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from progeval.execute import ExecutionError, run_trusted
from progeval.program import canonical_form
from progeval.safety import (
    MAX_LITERAL_DIGITS,
    MAX_RANGE,
    MAX_TOTAL_ITERATIONS,
    check_program,
)

_NUMBER = re.compile(r"\b\d+\b")
_RANGE_SLOT = re.compile(r"range\(_(\d+)\)")


@dataclass(frozen=True)
class _Shape:
    code: object
    range_slots: tuple[int, ...]


class ShapeCache:
    """Compiled shapes; at most ``max_shapes`` kept (cleared when full)."""

    def __init__(self, max_shapes: int = 200_000) -> None:
        self.max_shapes = max_shapes
        self.shapes: dict[str, _Shape] = {}
        self.misses = 0

    def _numbers_ok(self, numbers: list[str], shape: _Shape) -> bool:
        for n in numbers:
            if len(n) > MAX_LITERAL_DIGITS or (n[0] == "0" and len(n) > 1):
                return False
        counts = [int(numbers[k]) for k in shape.range_slots]
        return all(c <= MAX_RANGE for c in counts) and sum(counts) <= MAX_TOTAL_ITERATIONS

    def run(self, source: str, canonical: str | None = None) -> str:
        """The printed output of ``source`` (``canonical``: its canonical form, if already known)."""
        numbers: list[str] = []

        def slot(match: re.Match[str]) -> str:
            numbers.append(match.group(0))
            return f"_{len(numbers) - 1}"

        template = _NUMBER.sub(slot, canonical_form(source) if canonical is None else canonical)
        shape = self.shapes.get(template)
        if shape is None or not self._numbers_ok(numbers, shape):
            tree = check_program(source)  # the full allow-list on the real program; raises if not
            if shape is not None:  # allowed numbers the quick test does not know (such as 00)
                return run_trusted(source, tree)
            self.misses += 1
            if len(self.shapes) >= self.max_shapes:
                self.shapes.clear()
            slots = tuple(int(k) for k in _RANGE_SLOT.findall(template))
            shape = _Shape(compile(template, "<progeval-shape>", "exec"), slots)
            self.shapes[template] = shape
        out: list[str] = []
        namespace: dict[str, object] = {f"_{i}": int(n) for i, n in enumerate(numbers)}
        namespace.update({"__builtins__": {}, "print": out.append, "range": range})
        exec(shape.code, namespace)
        if len(out) != 1:
            raise ExecutionError(f"program printed {len(out)} lines; expected 1")
        return str(out[0])
