"""How many unique programs a cell can hold.

`upper_bound` counts choice paths in closed form (it over-counts programs that two paths spell the
same way). Cells whose bound is small, in practice only length 1 at nesting 1, are enumerated exactly
with the generator itself (`progeval.draws.enumerate_all`), up to renaming of variables.
"""

from __future__ import annotations

from functools import lru_cache

from progeval.draws import enumerate_all
from progeval.generator import build_program, max_number, max_small
from progeval.program import canonical_hash

ENUMERATION_LIMIT = 200_000


def upper_bound(length: int, nesting: int) -> int:
    """Number of choice paths of the generator (variable names fixed) for this cell."""
    n, m = max_number(length), max_small(length)
    # Per operation, first with fresh operands only, then with the previous expression in a slot.
    first = 2 * n**2 + 2 * n * m + n + 2 * n**2 + 2 * n**2 * m + 2 * n**4
    later = 2 * 2 * n + 2 * m + 1 + 2 * 2 * n + 2 * 2 * n * m + 2 * 4 * n**3
    return first * later ** (nesting - 1)


@lru_cache(maxsize=64)
def unique_hashes(length: int, nesting: int) -> frozenset[str] | None:
    """Canonical hashes of every program of the cell, or None when the cell is too large to list."""
    if upper_bound(length, nesting) > ENUMERATION_LIMIT:
        return None
    programs = enumerate_all(lambda d: build_program(d, length, nesting), ENUMERATION_LIMIT)
    return frozenset(canonical_hash(p.source) for p in programs)
