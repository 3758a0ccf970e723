"""Re-checking a dataset's labels, for data of any origin.

Every program is checked against the allow-list (a hostile one is reported and never runs), its label
is recomputed by the sympy oracle and, unless ``execute=False``, by running it in the limited
subprocess; its stream, canonical hash and split bucket are recomputed too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from progeval.config import ConfigError, DatasetConfig
from progeval.execute import DEFAULT_LIMITS, Limits, run_untrusted
from progeval.oracle import oracle_output
from progeval.program import canonical_hash, to_stream
from progeval.safety import UnsafeProgramError, check_program
from progeval.splits import BUCKET_OF, bucket
from progeval.store import ManifestError, load_dataset, read_manifest

BATCH = 2_000


@dataclass
class Report:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_row(row: dict, split: str, weights: tuple, seen: dict[str, str]) -> list[str]:
    rid, source, target = row["id"], row["program"], row["target"]
    try:
        tree = check_program(source)
    except UnsafeProgramError as err:
        return [f"{split}/{rid}: rejected before execution: {err}"]
    problems = []
    oracle = oracle_output(source, tree)
    if oracle != target:
        problems.append(f"{split}/{rid}: target {target!r} but the oracle computes {oracle!r}")
    if row["stream"] != to_stream(source, target):
        problems.append(f"{split}/{rid}: stream does not match program and target")
    digest = canonical_hash(source)
    if row["canonical_hash"] != digest:
        problems.append(f"{split}/{rid}: canonical_hash does not match the program")
    if bucket(digest, weights) != BUCKET_OF.get(split, split):
        problems.append(f"{split}/{rid}: program belongs to the {bucket(digest, weights)} bucket")
    first = seen.setdefault(digest, f"{split}/{rid}")
    if first != f"{split}/{rid}":
        problems.append(f"{split}/{rid}: the same program (up to renaming) as {first}")
    return problems


def verify_dataset(
    path: Path, execute: bool = True, limits: Limits = DEFAULT_LIMITS, progress: bool = True
) -> Report:
    manifest = read_manifest(Path(path))
    try:
        weights = DatasetConfig.from_dict(manifest["config"]).split_weights
    except ConfigError as err:
        raise ManifestError(f"manifest config: {err}") from None
    dd = load_dataset(Path(path))
    report = Report()
    seen: dict[str, str] = {}
    total = sum(len(ds) for ds in dd.values())
    with tqdm(total=total, desc="verifying", unit="prog", disable=not progress) as bar:
        for split, ds in dd.items():
            for start in range(0, len(ds), BATCH):
                rows = ds[start : start + BATCH]
                batch = [dict(zip(rows, vals, strict=True)) for vals in zip(*rows.values(), strict=True)]
                runnable = []
                for row in batch:
                    found = _check_row(row, split, weights, seen)
                    report.problems += found
                    if not any("rejected before execution" in p for p in found):
                        runnable.append(row)
                if execute and runnable:
                    outcomes = run_untrusted([r["program"] for r in runnable], limits)
                    for row, outcome in zip(runnable, outcomes, strict=True):
                        if outcome.output != row["target"]:
                            why = outcome.error or f"printed {outcome.output!r}"
                            report.problems.append(
                                f"{split}/{row['id']}: target {row['target']!r} but execution {why}"
                            )
                report.checked += len(batch)
                bar.update(len(batch))
    return report
