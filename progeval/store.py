"""Writing and loading datasets: Hugging Face ``save_to_disk`` plus JSONL and Parquet exports, a
manifest that makes the folder regenerable byte for byte, and a dataset card.

A folder is written to a temporary sibling and renamed into place at the end, so a failure or an
interrupt never leaves a partial dataset where the user asked for one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import datasets

from progeval.build import SplitStats, generate_splits
from progeval.config import ConfigError, DatasetConfig
from progeval.splits import BUCKET_OF, SPLITS

FORMAT = "progeval-dataset/1"
FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "program": datasets.Value("string"),
        "stream": datasets.Value("string"),
        "target": datasets.Value("string"),
        "length": datasets.Value("int32"),
        "nesting": datasets.Value("int32"),
        "ops": datasets.Sequence(datasets.Value("string")),
        "canonical_hash": datasets.Value("string"),
    }
)


class ManifestError(ValueError):
    """A folder is not a readable progeval dataset (no manifest, or a malformed one)."""


class IntegrityError(ManifestError):
    """A dataset's files do not match its manifest (missing, altered or foreign files)."""


def dataset_root(path: Path) -> Path:
    """The dataset folder, given the folder or its manifest.json."""
    path = Path(path)
    return path.parent if path.name == "manifest.json" and path.is_file() else path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    from progeval import GENERATOR_VERSION, __version__

    out = {"progeval": __version__, "generator": GENERATOR_VERSION}
    out["python"] = platform.python_version()
    for pkg in ("datasets", "pyarrow", "sympy"):
        out[pkg] = metadata.version(pkg)
    return out


def check_out_dir(out: Path, overwrite: bool) -> Path:
    """Fail early, before any work, if ``out`` cannot receive a dataset; returns it resolved.

    Missing parent folders are allowed (they are made when the dataset is written), as long as the
    nearest existing one is a writable folder.
    """
    out = Path(out).resolve()
    cwd = Path.cwd().resolve()
    if out in (cwd, *cwd.parents):
        raise ConfigError(f"--out: {str(out)!r} is the current folder or holds it; choose another")
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"--out: {str(ancestor)!r} is a file, not a folder")
    try:  # the honest test of writability: make (and remove) a folder there
        os.rmdir(tempfile.mkdtemp(prefix=f".{out.name}.probe-", dir=ancestor))
    except OSError as err:
        raise ConfigError(f"--out: cannot write in {str(ancestor)!r}: {err.strerror}") from None
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {str(out)!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"--out: {str(out)!r} is not empty; pass --overwrite to replace it")
        if not _is_dataset(out):
            raise ConfigError(
                f"--out: {str(out)!r} holds files that are not a progeval dataset; "
                "--overwrite only replaces a dataset folder"
            )
    return out


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``; an old ``out`` is removed only once ``tmp`` is there."""
    if not out.exists():
        tmp.rename(out)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    try:
        out.rename(trash / "old")
        try:
            tmp.rename(out)
        except BaseException:
            (trash / "old").rename(out)  # put the old dataset back where it was
            raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _is_dataset(folder: Path) -> bool:
    try:
        return json.loads((folder / "manifest.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _write_jsonl(rows: Iterable[dict], path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def _card(manifest: dict) -> str:
    cfg = manifest["config"]
    lines = [
        "---",
        "pretty_name: progeval Learning-to-Execute programs",
        "task_categories: [text2text-generation]",
        "---",
        "# progeval dataset",
        "",
        f"Python programs in the style of *Learning to Execute* (Zaremba & Sutskever 2014), family "
        f"`{cfg['family']}`, target length {cfg['length']} and nesting {cfg['nesting']}, "
        f"curriculum `{cfg['curriculum']}`, seed {cfg['seed']}. Every target is the printed output of "
        f"executing the program with Python {manifest['versions']['python']}; an exact sympy oracle "
        f"checked a {cfg['oracle_rate']:.0%} sample of them and agreed on all.",
        "",
        "| split | examples | cells | candidates | other split | duplicates | constraint |",
        "|---|---|---|---|---|---|---|",
    ]
    for split, st in manifest["splits"].items():
        lines.append(
            f"| {split} | {st['examples']} | {len(st['cells'])} | {st['candidates']} | "
            f"{st['rejected_other_split']} | {st['dropped_duplicate']} | {st['rejected_constraint']} |"
        )
    lines += [
        "",
        "Splits are assigned by the SHA-256 of each program's canonical form (variables renamed), so "
        "no program, identical or renamed, is in two splits. `test_extrapolate` holds cells beyond the "
        "training range.",
        "",
        "Columns: `id`, `program` (Python source), `stream` (single-stream form "
        "`stmt#...#print(e)@target.`), `target` (printed output), `length`, `nesting`, `ops`, "
        "`canonical_hash`.",
        "",
        "Load with `progeval.load_dataset(DIR)` (checks the manifest) or "
        "`datasets.load_from_disk(DIR + '/hf')`; regenerate with "
        "`python -m progeval regenerate DIR/manifest.json --out DIR2`.",
        "",
    ]
    return "\n".join(lines)


def write_dataset(
    records: dict[str, list[dict]],
    stats: dict[str, SplitStats],
    cfg: DatasetConfig,
    out: Path,
    overwrite: bool = False,
) -> dict:
    """Write a complete dataset folder atomically; returns its manifest."""
    out = check_out_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a dataset is for reading
        manifest = _write_into(tmp, records, stats, cfg)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _to_dataset(rows: list[dict]) -> datasets.Dataset:
    # from_dict keeps the columns of an empty split, which from_list would drop.
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    return datasets.Dataset.from_dict(columns, features=FEATURES)


def _write_into(
    root: Path, records: dict[str, list[dict]], stats: dict[str, SplitStats], cfg: DatasetConfig
) -> dict:
    was_disabled = datasets.utils.logging.is_progress_bar_enabled() is False
    datasets.disable_progress_bars()
    # A split asked with no examples is left out of the files (datasets cannot store an empty one);
    # the manifest still lists it with 0 examples.
    records = {s: rows for s, rows in records.items() if rows}
    try:
        dd = datasets.DatasetDict({s: _to_dataset(records[s]) for s in records})
        dd.save_to_disk(str(root / "hf"))
        (root / "jsonl").mkdir()
        (root / "parquet").mkdir()
        for split, ds in dd.items():
            _write_jsonl(records[split], root / "jsonl" / f"{split}.jsonl")
            ds.to_parquet(str(root / "parquet" / f"{split}.parquet"))
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
    content = hashlib.sha256()
    for split in records:
        content.update(f"{split}:{sha256_file(root / 'jsonl' / f'{split}.jsonl')}\n".encode())
    manifest = {
        "format": FORMAT,
        "versions": _versions(),
        "config": cfg.to_dict(),
        "seeds": {"data": cfg.seed},
        "fingerprint": content.hexdigest(),
        "split_rule": {
            "hash": "sha256(canonical_form(program))",
            "weights": dict(zip(("train", "valid", "test"), cfg.split_weights, strict=True)),
            "bucket_of": BUCKET_OF,
        },
        "oracle": {"rate": cfg.oracle_rate, "checked": {s: stats[s].oracle_checked for s in stats}},
        "splits": {s: vars(stats[s]) for s in stats},
    }
    (root / "README.md").write_text(_card(manifest), encoding="utf-8")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    manifest["files"] = {p.relative_to(root).as_posix(): sha256_file(p) for p in files}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def generate_dataset(
    cfg: DatasetConfig, out: Path, num_proc: int = 1, overwrite: bool = False, progress: bool = True
) -> dict:
    """Generate every split of ``cfg`` and write the folder; returns the manifest."""
    check_out_dir(Path(out), overwrite)
    records, stats = generate_splits(cfg, num_proc=num_proc, progress=progress)
    return write_dataset(records, stats, cfg, Path(out), overwrite=overwrite)


def read_manifest(path: Path) -> dict:
    path = dataset_root(Path(path)) / "manifest.json"
    if not path.is_file():
        raise ManifestError(f"not a progeval dataset: {str(path)!r} does not exist")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ManifestError(f"{str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ManifestError(f"{str(path)!r}: expected format {FORMAT!r}, got {got!r}")
    for key in ("versions", "config", "files", "splits"):
        if not isinstance(manifest.get(key), dict):
            raise ManifestError(f"{str(path)!r}: expected an object under {key!r}, got {manifest.get(key)!r}")
    files = manifest["files"]
    if any(
        not isinstance(v, str) or ".." in Path(k).parts or Path(k).is_absolute() for k, v in files.items()
    ):
        raise ManifestError(f"{str(path)!r}: 'files' must map relative paths inside the folder to hashes")
    return manifest


def verify_files(root: Path, manifest: dict) -> None:
    """Every file the manifest lists is there with its SHA-256, and no other data file is."""
    root = Path(root)
    listed = manifest.get("files", {})
    for rel, digest in sorted(listed.items()):
        path = root / rel
        if not path.is_file():
            raise IntegrityError(f"{rel}: listed in the manifest but missing")
        if sha256_file(path) != digest:
            raise IntegrityError(f"{rel}: SHA-256 differs from the manifest (file changed)")
    extra = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != "manifest.json" and p.relative_to(root).as_posix() not in listed
    )
    if extra:
        raise IntegrityError(f"{extra[0]}: not listed in the manifest ({len(extra)} such files)")


def load_dataset(path: Path) -> datasets.DatasetDict:
    """Load a progeval folder (or its manifest.json) after checking every file against the manifest."""
    root = dataset_root(Path(path))
    manifest = read_manifest(root)
    verify_files(root, manifest)
    try:
        return datasets.load_from_disk(str(root / "hf"))
    except (OSError, ValueError, IndexError, KeyError) as err:
        raise ManifestError(f"hf/: cannot be loaded: {type(err).__name__}: {err}") from None


def regenerate(
    manifest_path: Path,
    out: Path,
    num_proc: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[dict, list[str]]:
    """Rebuild a dataset from its manifest; returns the new manifest and the files that differ."""
    from progeval import GENERATOR_VERSION

    old = read_manifest(Path(manifest_path))
    made_by = old.get("versions", {}).get("generator")
    if made_by != GENERATOR_VERSION:
        raise ManifestError(
            f"manifest was written by generator {made_by!r}; this is {GENERATOR_VERSION!r}, "
            "so the programs would differ"
        )
    try:
        cfg = DatasetConfig.from_dict(old["config"])
    except ConfigError as err:
        raise ManifestError(f"manifest config: {err}") from None
    new = generate_dataset(cfg, Path(out), num_proc=num_proc, overwrite=overwrite, progress=progress)
    differ = sorted(
        f for f in set(old["files"]) | set(new["files"]) if old["files"].get(f) != new["files"].get(f)
    )
    return new, differ


__all__ = [
    "FEATURES",
    "IntegrityError",
    "ManifestError",
    "SPLITS",
    "check_out_dir",
    "generate_dataset",
    "load_dataset",
    "read_manifest",
    "regenerate",
    "verify_files",
    "write_dataset",
]
