"""The resolved configuration of a dataset: every knob that decides its bytes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from progeval.curriculum import CURRICULA, Cell, CurriculumState, grid
from progeval.generator import MAX_LENGTH, MAX_NESTING
from progeval.splits import DEFAULT_WEIGHTS, SPLITS

#: Largest split: the cells of a training split are drawn example by example before any work.
MAX_SPLIT_SIZE = 10_000_000


class ConfigError(ValueError):
    """A configuration value is out of range; the message names it, what was expected and what came."""


@dataclass(frozen=True)
class DatasetConfig:
    """What to generate.

    ``length`` and ``nesting`` are the target cell; ``curriculum`` decides which cells the training
    split covers (``baseline``: the target only; the others: every cell up to it, each example's cell
    drawn as ``mix`` draws it, so a trainer can follow ``naive`` or ``combined`` by filtering on the
    ``length`` and ``nesting`` columns). ``valid`` and ``test`` cover the same cells, spread evenly.
    ``test_extrapolate`` covers the cells up to (length + extrapolate_length, nesting +
    extrapolate_nesting) that lie outside the training box, spread evenly.

    ``unique``: no program (up to renaming) twice in a split. Small cells then hold few programs and
    their operation mix drifts from uniform (at length 1, nesting 1 most unique programs are
    if-expressions); ``unique=False`` keeps the generator's distribution and allows repeats inside a
    split, never across splits.
    """

    length: int = 6
    nesting: int = 3
    curriculum: str = "mix"
    train: int = 10_000
    valid: int = 1_000
    test: int = 1_000
    test_extrapolate: int = 1_000
    seed: int = 0
    extrapolate_length: int = 2
    extrapolate_nesting: int = 1
    split_weights: tuple[float, float, float] = DEFAULT_WEIGHTS
    oracle_rate: float = 0.1
    max_program_chars: int | None = None
    max_target_chars: int | None = None
    unique: bool = True
    family: str = "l2e"

    def __post_init__(self) -> None:
        def need_int(name: str, low: int, high: int | None = None) -> None:
            value = getattr(self, name)
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
            if not ok or (high is not None and value > high):
                bound = f"in {low}..{high}" if high is not None else f">= {low}"
                raise ConfigError(f"{name}: expected an integer {bound}, got {value!r}")

        need_int("length", 1, MAX_LENGTH)
        for name in ("oracle_rate",):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name}: expected a number, got {value!r}")
        if not isinstance(self.unique, bool):
            raise ConfigError(f"unique: expected true or false, got {self.unique!r}")
        need_int("nesting", 1, MAX_NESTING)
        need_int("extrapolate_length", 0, MAX_LENGTH - self.length)
        need_int("extrapolate_nesting", 0, MAX_NESTING - self.nesting)
        for split in SPLITS:
            need_int(split, 0, MAX_SPLIT_SIZE)
        need_int("seed", 0)
        if self.curriculum not in CURRICULA:
            raise ConfigError(f"curriculum: expected one of {', '.join(CURRICULA)}, got {self.curriculum!r}")
        if self.family != "l2e":
            raise ConfigError(f"family: expected 'l2e', got {self.family!r}")
        w = self.split_weights
        numbers = isinstance(w, (tuple, list)) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in w
        )
        if not numbers or len(w) != 3 or any(x <= 0 for x in w) or abs(sum(w) - 1) > 1e-9:
            raise ConfigError(f"split_weights: expected 3 positive numbers summing to 1, got {w!r}")
        object.__setattr__(self, "split_weights", tuple(float(x) for x in w))
        if not 0 <= self.oracle_rate <= 1:
            raise ConfigError(f"oracle_rate: expected a number in [0, 1], got {self.oracle_rate!r}")
        for name in ("max_program_chars", "max_target_chars"):
            if getattr(self, name) is not None:
                need_int(name, 1)
        if self.test_extrapolate and not self.extrapolation_cells():
            raise ConfigError("test_extrapolate: needs extrapolate_length or extrapolate_nesting >= 1")

    def curriculum_state(self) -> CurriculumState:
        return CurriculumState(self.curriculum, self.length, self.nesting)

    def training_cells(self) -> list[Cell]:
        return self.curriculum_state().support()

    def extrapolation_cells(self) -> list[Cell]:
        inside = set(grid(self.length, self.nesting))
        outer = grid(self.length + self.extrapolate_length, self.nesting + self.extrapolate_nesting)
        return sorted(c for c in outer if c not in inside)

    def size(self, split: str) -> int:
        return int(getattr(self, split))

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["split_weights"] = list(self.split_weights)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> DatasetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        d = dict(d)
        if isinstance(d.get("split_weights"), list):
            d["split_weights"] = tuple(d["split_weights"])
        return cls(**d)  # type: ignore[arg-type]
