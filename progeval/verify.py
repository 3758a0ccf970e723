"""Re-checking a dataset, for data of any origin.

Files are checked against the manifest, the exports (JSONL, Parquet) against the Hugging Face copy,
and every row: the program against the allow-list (a hostile one is reported and never runs), its
label by the sympy oracle and, unless ``execute=False``, by running it in the limited subprocess; its
stream, canonical hash and split bucket are recomputed, and no program may appear twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow.parquet as pq
from tqdm import tqdm

from progeval.config import ConfigError, DatasetConfig
from progeval.execute import DEFAULT_LIMITS, Limits, run_untrusted
from progeval.oracle import oracle_output
from progeval.program import canonical_hash, to_stream
from progeval.safety import UnsafeProgramError, check_program
from progeval.splits import BUCKET_OF, bucket
from progeval.store import (
    FEATURES,
    IntegrityError,
    ManifestError,
    dataset_root,
    read_manifest,
    sha256_file,
    verify_files,
)

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


def _check_exports(root: Path, manifest: dict, dd: datasets.DatasetDict) -> list[str]:
    """The JSONL and Parquet exports hold the same rows as hf/, and the manifest's counts agree."""
    problems = []
    content = hashlib.sha256()
    for split, st in manifest["splits"].items():
        have = len(dd[split]) if split in dd else 0
        if not isinstance(st, dict) or st.get("examples") != have:
            problems.append(f"manifest says {split} has {st.get('examples')} examples; hf/ has {have}")
    for split, ds in dd.items():
        rows = ds.to_list()
        jsonl = root / "jsonl" / f"{split}.jsonl"
        parquet = root / "parquet" / f"{split}.parquet"
        if not jsonl.is_file() or not parquet.is_file():
            problems.append(f"{split}: the jsonl or parquet export is missing")
            continue
        content.update(f"{split}:{sha256_file(jsonl)}\n".encode())
        lines = jsonl.read_text(encoding="utf-8").splitlines()
        if [json.loads(x) for x in lines] != rows:
            problems.append(f"jsonl/{split}.jsonl: rows differ from hf/{split}")
        if pq.read_table(parquet).select(list(FEATURES)).to_pylist() != rows:
            problems.append(f"parquet/{split}.parquet: rows differ from hf/{split}")
    if manifest.get("fingerprint") != content.hexdigest():
        problems.append("manifest fingerprint does not match the data")
    return problems


def verify_dataset(
    path: Path, execute: bool = True, limits: Limits = DEFAULT_LIMITS, progress: bool = True
) -> Report:
    """Check a dataset folder; ManifestError if it is not one, problems in the report otherwise."""
    root = dataset_root(Path(path))
    manifest = read_manifest(root)
    try:
        weights = DatasetConfig.from_dict(manifest["config"]).split_weights
    except ConfigError as err:
        raise ManifestError(f"manifest config: {err}") from None
    report = Report()
    try:
        verify_files(root, manifest)
    except IntegrityError as err:
        report.problems.append(str(err))
        return report
    dd = datasets.load_from_disk(str(root / "hf"))
    report.problems += _check_exports(root, manifest, dd)
    seen: dict[str, str] = {}
    total = sum(len(ds) for ds in dd.values())
    with tqdm(total=total, desc="verifying", unit="prog", disable=not progress) as bar:
        for split, ds in dd.items():
            for start in range(0, len(ds), BATCH):
                batch = ds.select(range(start, min(start + BATCH, len(ds)))).to_list()
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
