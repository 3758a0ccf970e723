"""Curricula of Learning to Execute, and a state object a trainer drives and checkpoints.

* ``baseline``: always the target cell (length, nesting).
* ``naive``: levels (1,1), (2,1) .. (L,1), (1,2) .. (L,N): length grows fastest; one level at a time.
* ``mix``: length uniform in 1..L and nesting uniform in 1..N, independently for every example.
* ``combined``: with probability 1/5 a mix sample, otherwise the current naive level.

The level goes up when validation accuracy exceeds ``threshold`` or when it has not improved by
``min_delta`` for ``patience`` evaluations in a row (a plateau).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields

CURRICULA = ("baseline", "naive", "mix", "combined")
Cell = tuple[int, int]


def grid(length: int, nesting: int) -> list[Cell]:
    """Every cell up to (length, nesting), in naive order (length fastest)."""
    return [(ln, n) for n in range(1, nesting + 1) for ln in range(1, length + 1)]


@dataclass
class CurriculumState:
    name: str
    length: int
    nesting: int
    level: int = 0
    threshold: float = 0.95
    patience: int = 5
    min_delta: float = 1e-3
    mix_probability: float = 0.2
    best: float | None = None
    stale: int = 0

    def __post_init__(self) -> None:
        if self.name not in CURRICULA:
            raise ValueError(f"curriculum must be one of {', '.join(CURRICULA)}, got {self.name!r}")
        for knob in ("length", "nesting"):
            value = getattr(self, knob)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{knob} must be an integer >= 1, got {value!r}")

    def levels(self) -> list[Cell]:
        """The sequence of levels; a single level for curricula that do not move."""
        if self.name in ("naive", "combined"):
            return grid(self.length, self.nesting)
        return [(self.length, self.nesting)]

    @property
    def current(self) -> Cell:
        return self.levels()[self.level]

    @property
    def at_last_level(self) -> bool:
        return self.level == len(self.levels()) - 1

    def support(self) -> list[Cell]:
        """Every cell this curriculum can ever sample, sorted."""
        if self.name == "baseline":
            return [(self.length, self.nesting)]
        return sorted(grid(self.length, self.nesting))

    def sample_mix(self, rng: random.Random) -> Cell:
        """A cell as ``mix`` draws it: length and nesting uniform and independent."""
        return rng.randint(1, self.length), rng.randint(1, self.nesting)

    def sample_cell(self, rng: random.Random) -> Cell:
        """The difficulty cell of the next training example."""
        if self.name == "baseline":
            return self.length, self.nesting
        if self.name == "mix":
            return self.sample_mix(rng)
        if self.name == "combined" and rng.random() < self.mix_probability:
            return self.sample_mix(rng)
        return self.current

    def update(self, val_accuracy: float) -> bool:
        """Record one validation accuracy; True when this moved the curriculum up a level."""
        if self.at_last_level:
            return False
        improved = self.best is None or val_accuracy > self.best + self.min_delta
        self.best, self.stale = (val_accuracy, 0) if improved else (self.best, self.stale + 1)
        if val_accuracy > self.threshold or self.stale >= self.patience:
            self.level += 1
            self.best, self.stale = None, 0
            return True
        return False

    def state_dict(self) -> dict[str, object]:
        """Plain JSON-able data, for checkpoints."""
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict[str, object]) -> CurriculumState:
        known = {f.name for f in fields(cls)}
        unknown = set(state) - known
        if unknown:
            raise ValueError(f"unknown curriculum state keys: {sorted(unknown)}")
        restored = cls(**state)  # type: ignore[arg-type]
        if not 0 <= restored.level < len(restored.levels()):
            raise ValueError(f"curriculum level {restored.level} is out of range")
        return restored
