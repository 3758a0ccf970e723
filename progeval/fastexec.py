"""Fast execution of generated programs: one allow-list check and one compile per program *shape*.

A shape is the canonical form (variables renamed) with every integer literal replaced by a name
``_0, _1, ...``. Generated programs share few shapes (about 5,800 at nesting 3), so most programs run a
cached code object with their own numbers bound to those names, which is the same Python computation
on the same integers. The first program of a shape goes through the full `check_program`. A later one
shares everything the allow-list decides from the tree but the numbers and the raw text, so it only
needs those checks: source length, ASCII, no ``_`` (the placeholders' character), literal length, no
leading zero, range bounds and total iterations, and counts of at least 1 (so loop counters are bound
as for the first program). Anything else goes through the full check again.

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
    MAX_SOURCE_CHARS,
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

    @staticmethod
    def _hit_ok(source: str, numbers: list[str], shape: _Shape) -> bool:
        """What the full check decides from the text and the numbers, rather than from the shape."""
        if len(source) > MAX_SOURCE_CHARS or not source.isascii() or "_" in source:
            return False
        for n in numbers:
            if len(n) > MAX_LITERAL_DIGITS or (n[0] == "0" and len(n) > 1):
                return False
        counts = [int(numbers[k]) for k in shape.range_slots]
        # Counts of at least 1, so loop counters are bound as they were for the shape's first program.
        return all(1 <= c <= MAX_RANGE for c in counts) and sum(counts) <= MAX_TOTAL_ITERATIONS

    def run(self, source: str) -> str:
        """The printed output of ``source``; raises UnsafeProgramError as `check_program` does."""
        numbers: list[str] = []

        def slot(match: re.Match[str]) -> str:
            numbers.append(match.group(0))
            return f"_{len(numbers) - 1}"

        template = _NUMBER.sub(slot, canonical_form(source))
        shape = self.shapes.get(template)
        if shape is None or not self._hit_ok(source, numbers, shape):
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
