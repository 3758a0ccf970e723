"""Generating the examples of a dataset, in parallel, with results that do not depend on the process count.

Every split is a fixed number of examples per cell (drawn per example for the training split, spread
evenly for the others). A cell's candidates are a stream indexed 0, 1, 2, ...; candidate ``j`` is a pure
function of (seed, split, cell, j). Workers turn ranges of candidates into checked examples; the parent
walks them in index order, dropping programs of another split's bucket, duplicates and programs that
break a constraint, until the cell is full. So ``num_proc`` changes speed, never bytes.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import random
import signal
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from tqdm import tqdm

from progeval.capacity import unique_hashes
from progeval.config import ConfigError, DatasetConfig
from progeval.curriculum import Cell
from progeval.draws import derive_seed
from progeval.fastexec import ShapeCache
from progeval.generator import generate_program
from progeval.oracle import OracleMismatch, oracle_output
from progeval.program import canonical_form, to_stream
from progeval.splits import BUCKET_OF, BUCKETS, SPLITS, bucket, oracle_sampled

#: Candidates a cell may use per example asked before generation gives up on it.
MAX_CANDIDATES_PER_EXAMPLE = 1_000
#: A cell that has accepted nothing after this many candidates is given up at once.
MAX_CANDIDATES_WITHOUT_ANY = 200_000


class CapacityError(ConfigError):
    """More unique programs were asked of a cell than it holds."""


@dataclass
class SplitStats:
    requested: int = 0
    examples: int = 0
    candidates: int = 0
    rejected_other_split: int = 0
    rejected_constraint: int = 0
    dropped_duplicate: int = 0
    oracle_checked: int = 0
    cells: dict[str, int] = field(default_factory=dict)


def cell_key(cell: Cell) -> str:
    return f"{cell[0]}x{cell[1]}"


def cell_counts(cfg: DatasetConfig, split: str) -> dict[Cell, int]:
    """How many examples each cell of ``split`` gets."""
    n = cfg.size(split)
    if split == "train" and cfg.curriculum != "baseline":
        # Each training example draws its own cell, as the mix curriculum does.
        rng = random.Random(derive_seed("progeval-cells", cfg.seed, split))
        state = cfg.curriculum_state()
        drawn = Counter(state.sample_mix(rng) for _ in range(n))
        return {c: drawn[c] for c in sorted(drawn)}
    cells = cfg.extrapolation_cells() if split == "test_extrapolate" else cfg.training_cells()
    if n == 0 or not cells:
        return {}
    base, extra = divmod(n, len(cells))
    counts = {c: base + (1 if i < extra else 0) for i, c in enumerate(cells)}
    return {c: k for c, k in counts.items() if k}


def check_capacity(cfg: DatasetConfig) -> None:
    """Fail before any work if a small cell cannot hold the unique programs asked of it."""
    if not cfg.unique:
        return
    for split in SPLITS:
        for cell, asked in cell_counts(cfg, split).items():
            hashes = unique_hashes(*cell)
            if hashes is None:
                continue
            own = BUCKET_OF[split]
            holds = sum(1 for h in hashes if bucket(h, cfg.split_weights) == own)
            if asked > holds:
                raise CapacityError(
                    f"cell (length={cell[0]}, nesting={cell[1]}) holds {holds} unique programs for "
                    f"split {split!r} ({len(hashes)} in all); asked for {asked}"
                )


# Compiled program shapes of this process (each worker process has its own).
_SHAPES = ShapeCache()

# A candidate as a worker returns it: (index, status, canonical hash, record, oracle checked).
Candidate = tuple[int, str, str, dict | None, bool]


def make_candidates(cfg: DatasetConfig, split: str, cell: Cell, start: int, stop: int) -> list:
    """Candidates ``start..stop-1`` of a cell: generated, bucketed, executed and (sampled) checked."""
    own = BUCKET_OF[split]
    out: list[Candidate] = []
    for j in range(start, stop):
        program = generate_program(cfg.seed, split, cell[0], cell[1], j)
        source = program.source
        canonical = canonical_form(source)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        if bucket(digest, cfg.split_weights) != own:
            out.append((j, "other_split", "", None, False))
            continue
        target = _SHAPES.run(source)
        checked = oracle_sampled(digest, cfg.oracle_rate)
        if checked and oracle_output(source) != target:
            raise OracleMismatch(f"execution printed {target} but the oracle says otherwise:\n{source}")
        too_long = (cfg.max_program_chars is not None and len(source) > cfg.max_program_chars) or (
            cfg.max_target_chars is not None and len(target) > cfg.max_target_chars
        )
        if too_long:
            out.append((j, "constraint", digest, None, checked))
            continue
        record = {
            "id": f"{split}-{cell_key(cell)}-{j}",
            "program": source,
            "stream": to_stream(source, target),
            "target": target,
            "length": cell[0],
            "nesting": cell[1],
            "ops": list(program.ops),
            "canonical_hash": digest,
        }
        out.append((j, "ok", digest, record, checked))
    return out


def _worker(args: tuple) -> list:
    return make_candidates(*args)


def _ignore_sigint() -> None:
    # Ctrl-C is the parent's to handle: it stops the pool and removes what it started.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Runner:
    """Runs candidate ranges in worker processes (or here when num_proc is 1), results in order."""

    def __init__(self, num_proc: int) -> None:
        self.num_proc = num_proc
        context = multiprocessing.get_context("fork")
        self.pool = context.Pool(num_proc, initializer=_ignore_sigint) if num_proc > 1 else None

    def stream(self, jobs: Iterator[tuple]) -> Iterator[list]:
        """Results of ``jobs`` in order, keeping 2 * num_proc of them in flight."""
        if self.pool is None:
            yield from map(_worker, jobs)
            return
        pending = deque(
            self.pool.apply_async(_worker, (job,)) for job in itertools.islice(jobs, 2 * self.num_proc)
        )
        while pending:
            result = pending.popleft().get()
            job = next(jobs, None)
            if job is not None:
                pending.append(self.pool.apply_async(_worker, (job,)))
            yield result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def _fill_cell(
    cfg: DatasetConfig,
    split: str,
    cell: Cell,
    quota: int,
    seen: set[str],
    banned: frozenset[str],
    stats: SplitStats,
    runner: _Runner,
    bar: tqdm,
) -> list[dict]:
    """The first ``quota`` acceptable candidates of a cell, in index order.

    ``seen``: canonical hashes already in this split (updated); ``banned``: those of another split
    sharing this one's bucket (test, for test_extrapolate), never accepted.
    """
    accepted: list[dict] = []
    rate = cfg.split_weights[BUCKETS.index(BUCKET_OF[split])]
    limit = MAX_CANDIDATES_PER_EXAMPLE * quota + 10_000
    stats_before = stats.candidates

    def jobs() -> Iterator[tuple]:
        # Chunk sizes follow what is still missing; they change speed, never which are accepted.
        j = 0
        while j < limit:
            need = (quota - len(accepted)) / rate * 1.1
            size = int(min(max(need / runner.num_proc, 64), 4096))
            yield cfg, split, cell, j, min(j + size, limit)
            j += size

    for chunk in runner.stream(jobs()):
        if not accepted and stats_before + MAX_CANDIDATES_WITHOUT_ANY <= stats.candidates:
            limit = stats.candidates - stats_before
            break
        for _j, status, digest, record, checked in chunk:
            stats.candidates += 1
            stats.oracle_checked += checked
            if status == "other_split":
                stats.rejected_other_split += 1
            elif status == "constraint":
                stats.rejected_constraint += 1
            elif digest in banned or (cfg.unique and digest in seen):
                stats.dropped_duplicate += 1
            else:
                seen.add(digest)
                accepted.append(record)  # type: ignore[arg-type]
                bar.update(1)
                if len(accepted) == quota:
                    return accepted
    constraint = (
        f"; {stats.rejected_constraint} broke the max_program_chars or max_target_chars limit"
        if stats.rejected_constraint
        else ""
    )
    raise CapacityError(
        f"cell (length={cell[0]}, nesting={cell[1]}) of split {split!r}: found only "
        f"{len(accepted)} unique programs in {limit} candidates{constraint}; asked for {quota}"
    )


def generate_splits(
    cfg: DatasetConfig, num_proc: int = 1, progress: bool = True
) -> tuple[dict[str, list[dict]], dict[str, SplitStats]]:
    """All examples of every split (shuffled with a seeded order) and their statistics."""
    if isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1:
        raise ConfigError(f"num_proc: expected an integer >= 1, got {num_proc!r}")
    check_capacity(cfg)
    total = sum(cfg.size(s) for s in SPLITS)
    runner = _Runner(num_proc)
    records: dict[str, list[dict]] = {}
    stats: dict[str, SplitStats] = {}
    in_test: frozenset[str] = frozenset()
    try:
        with tqdm(total=total, desc="generating", unit="prog", disable=not progress) as bar:
            for split in SPLITS:
                st = SplitStats(requested=cfg.size(split))
                seen: set[str] = set()
                banned = in_test if split == "test_extrapolate" else frozenset()
                rows: list[dict] = []
                for cell, quota in cell_counts(cfg, split).items():
                    bar.set_postfix_str(f"{split} {cell_key(cell)}")
                    rows += _fill_cell(cfg, split, cell, quota, seen, banned, st, runner, bar)
                    st.cells[cell_key(cell)] = quota
                if split == "test":
                    in_test = frozenset(seen)
                random.Random(derive_seed("progeval-order", cfg.seed, split)).shuffle(rows)
                st.examples = len(rows)
                records[split], stats[split] = rows, st
    finally:
        runner.close()
    return records, stats
