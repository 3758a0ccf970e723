"""Sources of choices for the generator.

The generator never touches a random number generator directly: it asks a *draw* for an integer in a
range, an item of a list or a fresh variable name. `RandomDraw` answers from a `random.Random`;
`Enumerator` answers every possible way in turn, so the same generator code can list a cell's whole
program space (used to say how many unique programs a small cell holds).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")

#: Letters for variables, in the order they are offered: the original generator draws from a..j only;
#: programs that need more than ten variables continue with the rest. ``x`` is the for-loop counter.
FIRST_LETTERS = "abcdefghij"
VARIABLE_LETTERS = FIRST_LETTERS + "klmnopqrstuvwyz"


class Draw(Protocol):
    def integer(self, low: int, high: int) -> int:
        """An integer in ``low..high``, both ends included."""

    def choice(self, options: Sequence[T]) -> T:
        """One of ``options``."""

    def variable(self, used: set[str]) -> str:
        """A single letter from VARIABLE_LETTERS not in ``used``."""


class RandomDraw:
    """Uniform choices from a `random.Random` that the caller owns."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._bits = rng.getrandbits

    def _below(self, n: int) -> int:
        # The rejection sampling of CPython's Random.randrange(n), without its layers of calls:
        # it gives the same numbers and costs a third of the time.
        k = n.bit_length()
        r = self._bits(k)
        while r >= n:
            r = self._bits(k)
        return r

    def integer(self, low: int, high: int) -> int:
        return low + self._below(high - low + 1)

    def choice(self, options: Sequence[T]) -> T:
        return options[self._below(len(options))]

    def variable(self, used: set[str]) -> str:
        free = [c for c in FIRST_LETTERS if c not in used] or [c for c in VARIABLE_LETTERS if c not in used]
        if not free:
            raise ValueError(f"program needs more than {len(VARIABLE_LETTERS)} variables")
        return free[self._below(len(free))]


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from its parts, the same in every process and under any PYTHONHASHSEED."""
    key = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def example_rng(seed: int, split: str, length: int, nesting: int, index: int) -> random.Random:
    """The generator of example ``index`` of cell (length, nesting) of ``split``; nothing else feeds it."""
    return random.Random(derive_seed("progeval-example", seed, split, length, nesting, index))


class _Replay:
    """Answers a fixed prefix of choices, then the first option of each new choice, recording sizes."""

    def __init__(self, prefix: list[int]) -> None:
        self.prefix = prefix
        self.sizes: list[int] = []
        self.taken: list[int] = []

    def _pick(self, size: int) -> int:
        pos = len(self.taken)
        k = self.prefix[pos] if pos < len(self.prefix) else 0
        self.sizes.append(size)
        self.taken.append(k)
        return k

    def integer(self, low: int, high: int) -> int:
        return low + self._pick(high - low + 1)

    def choice(self, options: Sequence[T]) -> T:
        return options[self._pick(len(options))]

    def variable(self, used: set[str]) -> str:
        # Names do not matter up to renaming, so the enumeration takes the first free letter only.
        return next(c for c in VARIABLE_LETTERS if c not in used)


def enumerate_all(build: Callable[[Draw], T], limit: int) -> Iterator[T]:
    """Every result of ``build`` over all choice sequences (an odometer over the choices it asks).

    Stops with ValueError after ``limit`` results, so a caller cannot start an endless walk by mistake.
    """
    prefix: list[int] = []
    count = 0
    while True:
        replay = _Replay(prefix)
        yield build(replay)
        count += 1
        taken, sizes = replay.taken, replay.sizes
        pos = len(taken) - 1
        while pos >= 0 and taken[pos] + 1 >= sizes[pos]:
            pos -= 1
        if pos < 0:
            return
        if count == limit:
            raise ValueError(f"more than {limit} choice sequences")
        prefix = taken[:pos] + [taken[pos] + 1]
