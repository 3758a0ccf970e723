"""Run configuration: dataclass defaults -> task TOML (tasks/NAME.toml) -> CLI flags and ``--set``.

Every section is a frozen dataclass; the resolved configuration is plain JSON-able data (``to_dict``)
written into every checkpoint and result. Unknown keys fail with a "did you mean" hint.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gfseq.nn.spec import ARCHS, UNITS

#: Where ``--task NAME`` looks for NAME.toml: the repository's tasks/ folder.
TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key, what was expected and what came."""


def _hint(word: str, choices) -> str:
    near = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _int(section: str, name: str, value: Any, low: int, high: int | None = None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"
        raise ConfigError(f"{section}.{name}: expected {bound}, got {value!r}")


def _number(section: str, name: str, value: Any, low: float, high: float | None = None) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= low
    )
    if not ok or (high is not None and value > high):
        bound = f"a number in [{low}, {high}]" if high is not None else f"a number >= {low}"
        raise ConfigError(f"{section}.{name}: expected {bound}, got {value!r}")


#: Seeds go to torch.manual_seed, which takes 64-bit values.
MAX_SEED = 2**63 - 1
#: Sizes beyond these are typos, not models (and would fail deep inside an allocation).
MAX_WIDTH = 65_536


@dataclass(frozen=True)
class TaskInfo:
    name: str = "progeval"
    version: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", self.name):
            raise ConfigError(f"task.name: expected letters, digits, '_', '-' or '.', got {self.name!r}")
        if self.name not in DATA_SECTIONS:
            raise ConfigError(
                f"task.name: expected one of {', '.join(DATA_SECTIONS)}, got {self.name!r}"
                + _hint(self.name, DATA_SECTIONS)
            )
        _int("task", "version", self.version, 1)


@dataclass(frozen=True)
class DataConfig:
    length: int = 2
    nesting: int = 3
    curriculum: str = "mix"
    train: int = 50_000
    valid: int = 1_000
    test: int = 2_000
    test_extrapolate: int = 1_000
    seed: int = 0
    level_threshold: float = 0.95  # naive/combined: level up above this validation accuracy (L2E)
    level_patience: int = 5  # ... or after this many evaluations without improvement (a plateau)

    def __post_init__(self) -> None:
        _number("data", "level_threshold", self.level_threshold, 0.0, 1.0)
        _int("data", "level_patience", self.level_patience, 1)
        _int("data", "length", self.length, 1, 30)
        _int("data", "nesting", self.nesting, 1, 25)
        for name in ("train", "valid", "test", "test_extrapolate"):
            _int("data", name, getattr(self, name), 0, 10_000_000)
        _int("data", "seed", self.seed, 0, MAX_SEED)
        if self.train < 1 or self.valid < 1:
            raise ConfigError(f"data.train and data.valid: expected >= 1, got {self.train} and {self.valid}")
        if self.curriculum not in ("baseline", "naive", "mix", "combined"):
            raise ConfigError(
                f"data.curriculum: expected baseline, naive, mix or combined, got {self.curriculum!r}"
                + _hint(str(self.curriculum), ("baseline", "naive", "mix", "combined"))
            )


@dataclass(frozen=True)
class Enwik8DataConfig:
    """The ``data`` section of ``task.name = "enwik8"``: where the file is and how it is cut."""

    dir: str = "data/enwik8"
    download: bool = False
    allow_unverified: bool = False
    window: int = 100  # truncated BPTT: bytes per window, the state carried (detached) between windows
    valid_bytes: int = 500_000  # bytes of the valid split scored at each evaluation during training
    valid_streams: int = 8  # ... as this many contiguous streams

    def __post_init__(self) -> None:
        if not isinstance(self.dir, str) or not self.dir:
            raise ConfigError(f"data.dir: expected a folder path, got {self.dir!r}")
        for name in ("download", "allow_unverified"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"data.{name}: expected true or false, got {getattr(self, name)!r}")
        _int("data", "window", self.window, 1, 100_000)
        _int("data", "valid_bytes", self.valid_bytes, 2, 5_000_000)
        _int("data", "valid_streams", self.valid_streams, 1, 100_000)


#: Each task's ``data`` section.
DATA_SECTIONS: dict[str, type] = {"progeval": DataConfig, "enwik8": Enwik8DataConfig}
#: Each task's scorable splits.
TASK_SPLITS: dict[str, tuple[str, ...]] = {
    "progeval": ("valid", "test", "test_extrapolate"),
    "enwik8": ("valid", "test"),
}
#: How each arch gets its size: one parameter count for all (``matched``), ``model.layers`` x
#: ``model.hidden`` for all (``fixed``), or the paper's Table 1 size for the unit and arch (``paper``).
SIZINGS = ("matched", "fixed", "paper")


@dataclass(frozen=True)
class ModelConfig:
    unit: str = "lstm"
    archs: tuple[str, ...] = ("gf", "stacked")
    layers: int = 2
    hidden: int = 128
    embedding: int = 32
    params: int | None = None
    dropout: float = 0.0
    sizes: str = "matched"

    def __post_init__(self) -> None:
        if self.sizes not in SIZINGS:
            raise ConfigError(
                f"model.sizes: expected one of {', '.join(SIZINGS)}, got {self.sizes!r}"
                + _hint(str(self.sizes), SIZINGS)
            )
        if self.unit not in UNITS:
            raise ConfigError(
                f"model.unit: expected one of {', '.join(UNITS)}, got {self.unit!r}"
                + _hint(str(self.unit), UNITS)
            )
        archs = tuple(self.archs) if isinstance(self.archs, list | tuple) else (self.archs,)
        for arch in archs:
            if arch not in ARCHS:
                raise ConfigError(
                    f"model.archs: expected names from {', '.join(ARCHS)}, got {arch!r}"
                    + _hint(str(arch), ARCHS)
                )
        if not archs or len(set(archs)) != len(archs):
            raise ConfigError(f"model.archs: expected distinct architectures, got {list(archs)}")
        object.__setattr__(self, "archs", archs)
        _int("model", "layers", self.layers, 1, 64)
        _int("model", "hidden", self.hidden, 1, MAX_WIDTH)
        _int("model", "embedding", self.embedding, 0, MAX_WIDTH)  # 0: one-hot input (enwik8)
        if self.params is not None:
            _int("model", "params", self.params, 1, 10**10)
        _number("model", "dropout", self.dropout, 0.0, 0.99)


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adam"
    lr: float = 2e-3
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1
    clip: float = 1.0
    batch: int = 64
    steps: int = 2500
    eval_every: int = 250
    log_every: int = 50
    eval_examples: int = 500
    patience: int = 0
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"
    bf16: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"train.optimizer: expected adam or sgd, got {self.optimizer!r}")
        _number("train", "lr", self.lr, 0.0)
        _number("train", "min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        _number("train", "clip", self.clip, 0.0)
        for name, low in (
            ("warmup_steps", 0),
            ("batch", 1),
            ("steps", 1),
            ("eval_every", 1),
            ("log_every", 1),
            ("eval_examples", 1),
            ("patience", 0),
            ("checkpoint_every", 1),
        ):
            _int("train", name, getattr(self, name), low)
        _int("train", "seed", self.seed, 0, MAX_SEED)
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ConfigError(f"train.device: expected auto, cpu or cuda, got {self.device!r}")
        if not isinstance(self.bf16, bool):
            raise ConfigError(f"train.bf16: expected true or false, got {self.bf16!r}")


@dataclass(frozen=True)
class EvalConfig:
    splits: tuple[str, ...] = ("test", "test_extrapolate")
    batch: int = 256
    streams: int = 1  # enwik8: each split scored as this many contiguous streams (1: the standard)

    def __post_init__(self) -> None:
        splits = tuple(self.splits) if isinstance(self.splits, list | tuple) else (self.splits,)
        known = TASK_SPLITS["progeval"]
        for s in splits:
            if s not in known:
                raise ConfigError(
                    f"eval.splits: expected names from {', '.join(known)}, got {s!r}" + _hint(str(s), known)
                )
        if not splits or len(set(splits)) != len(splits):
            raise ConfigError(f"eval.splits: expected one or more distinct split names, got {list(splits)}")
        object.__setattr__(self, "splits", splits)
        _int("eval", "batch", self.batch, 1)
        _int("eval", "streams", self.streams, 1, 1_000_000)


SECTIONS = {
    "task": TaskInfo,
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}


@dataclass(frozen=True)
class RunConfig:
    task: TaskInfo = field(default_factory=TaskInfo)
    data: DataConfig | Enwik8DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        expected = DATA_SECTIONS[self.task.name]
        if type(self.data) is not expected:
            raise ConfigError(f"data: task {self.task.name!r} takes a {expected.__name__} section")
        known = TASK_SPLITS[self.task.name]
        for s in self.eval.splits:
            if s not in known:
                raise ConfigError(
                    f"eval.splits: task {self.task.name} has splits {', '.join(known)}, got {s!r}"
                    + _hint(str(s), known)
                )
        if self.task.name == "enwik8":
            return
        if not any(getattr(self.data, split) for split in self.eval.splits):
            raise ConfigError(
                f"eval.splits: every split to score ({', '.join(self.eval.splits)}) has 0 programs in data"
            )

    def to_dict(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name in SECTIONS:
            d = asdict(getattr(self, name))
            out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"expected a table of sections, got {type(d).__name__}")
        flat = {f"{s}.{k}": v for s, sec in d.items() for k, v in _section(s, sec).items()}
        return with_overrides(cls(), flat)


def _section(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(name, str):
        raise ConfigError(f"expected a table of sections, got key {name!r}")
    if name not in SECTIONS:
        raise ConfigError(f"unknown section {name!r}" + _hint(name, SECTIONS))
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a table of keys, got {value!r}")
    return value


def with_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """``cfg`` with dotted keys (``train.lr``) replaced; unknown keys fail with a hint."""
    changes: dict[str, dict[str, Any]] = {}
    task_name = overrides.get("task.name", cfg.task.name)
    if task_name != cfg.task.name:  # another task: its own data section, from its defaults
        TaskInfo(name=task_name)  # a clear error for an unknown name
        cfg = RunConfig(
            task=TaskInfo(name=task_name), data=DATA_SECTIONS[task_name](), eval=_eval_for(task_name)
        )
    sections = {**SECTIONS, "data": DATA_SECTIONS[task_name]}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section not in sections or not name:
            all_keys = [f"{s}.{f.name}" for s, c in sections.items() for f in fields(c)]
            raise ConfigError(f"unknown key {key!r}" + _hint(key, all_keys))
        known = [f.name for f in fields(sections[section])]
        if name not in known:
            raise ConfigError(f"unknown key {key!r}" + _hint(name, known).replace("'", f"'{section}.", 1))
        changes.setdefault(section, {})[name] = value
    try:
        return replace(cfg, **{s: replace(getattr(cfg, s), **c) for s, c in changes.items()})
    except TypeError as err:  # a value of the wrong kind reaching a check
        raise ConfigError(str(err)) from None


def _eval_for(task_name: str) -> EvalConfig:
    """The default eval section of a task (its splits)."""
    return EvalConfig(splits=("valid", "test")) if task_name == "enwik8" else EvalConfig()


def task_path(task: str) -> Path:
    """tasks/NAME.toml for a name, or the given path to a .toml file."""
    if task.endswith(".toml"):
        path = Path(task)
        if not path.is_file():
            raise ConfigError(f"--task: {task!r} is not a readable file")
        return path
    path = TASKS_DIR / f"{task}.toml"
    if not path.is_file():
        names = sorted(p.stem for p in TASKS_DIR.glob("*.toml"))
        raise ConfigError(
            f"--task: unknown task {task!r}; known: {', '.join(names) or 'none'}" + _hint(task, names)
        )
    return path


def load_task(task: str) -> RunConfig:
    path = task_path(task)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"--task: cannot read {str(path)!r}: {err}") from None
    return RunConfig.from_dict(raw)


def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML value (3e-4, true, [\"gf\"], \"x\"), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
