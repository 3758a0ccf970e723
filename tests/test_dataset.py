import hashlib
import itertools
import json
from collections import Counter
from pathlib import Path

import pytest

import progeval
from progeval.build import CapacityError, generate_splits
from progeval.capacity import unique_hashes
from progeval.config import DatasetConfig
from progeval.program import canonical_hash
from progeval.store import ManifestError, generate_dataset, load_dataset, regenerate
from tests.helpers import canonical_by_ast


def small(**kw) -> DatasetConfig:
    base = dict(length=3, nesting=2, train=600, valid=150, test=150, test_extrapolate=150, seed=4)
    return DatasetConfig(**{**base, **kw})


def tree_bytes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_splits_of_100k_examples_share_no_id_and_no_canonical_form():
    cfg = DatasetConfig(
        length=4,
        nesting=3,
        curriculum="mix",
        train=80_000,
        valid=8_000,
        test=8_000,
        test_extrapolate=4_000,
        seed=12,
        oracle_rate=0.02,
    )
    records, stats = generate_splits(cfg, num_proc=2, progress=False)
    assert sum(len(r) for r in records.values()) == 100_000
    owner_id: dict[str, str] = {}
    owner_form: dict[str, str] = {}
    for split, rows in records.items():
        for row in rows:
            assert owner_id.setdefault(row["id"], split) == split
            # Canonical form recomputed through the syntax tree, not with progeval's own function.
            form = canonical_by_ast(row["program"])
            assert owner_form.setdefault(form, split) == split, (row, owner_form[form])
    assert len(owner_id) == len(owner_form) == 100_000  # no duplicate inside a split either
    # Small cells really collide, so the dedup has work to do and counts it.
    assert stats["train"].dropped_duplicate > 0
    assert all(st.rejected_other_split > 0 for st in stats.values())


def test_num_proc_gives_byte_identical_folders(tmp_path):
    cfg = small(curriculum="combined")
    generate_dataset(cfg, tmp_path / "p1", num_proc=1, progress=False)
    generate_dataset(cfg, tmp_path / "p2", num_proc=2, progress=False)
    a, b = tree_bytes(tmp_path / "p1"), tree_bytes(tmp_path / "p2")
    assert a == b and "hf/train/data-00000-of-00001.arrow" in a and "parquet/test.parquet" in a


def test_dataset_columns_cells_and_manifest(tmp_path):
    cfg = small()
    m = generate_dataset(cfg, tmp_path / "d", progress=False)
    dd = load_dataset(tmp_path / "d")
    assert list(dd) == ["train", "valid", "test", "test_extrapolate"]
    assert {k: len(v) for k, v in dd.items()} == {
        "train": 600,
        "valid": 150,
        "test": 150,
        "test_extrapolate": 150,
    }
    row = dd["train"][0]
    assert set(row) == {
        "id",
        "program",
        "stream",
        "target",
        "length",
        "nesting",
        "ops",
        "canonical_hash",
    }
    assert dd["train"].features["ops"].feature.dtype == "string"
    assert progeval.parse_stream(row["stream"]) == (row["program"], row["target"])
    train_cells = Counter(zip(dd["train"]["length"], dd["train"]["nesting"], strict=True))
    assert set(train_cells) == {(a, b) for a in (1, 2, 3) for b in (1, 2)}
    test_cells = Counter(zip(dd["test"]["length"], dd["test"]["nesting"], strict=True))
    assert sorted(test_cells.values()) == [25] * 6  # spread evenly
    ext = set(zip(dd["test_extrapolate"]["length"], dd["test_extrapolate"]["nesting"], strict=True))
    assert ext == {(a, b) for a in range(1, 6) for b in range(1, 4)} - set(train_cells)
    for split, ds in dd.items():
        assert all(1 <= ln <= 10 for ln in ds["length"]), split
    saved = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert saved == m
    assert saved["versions"]["generator"] == progeval.GENERATOR_VERSION
    assert saved["config"]["seed"] == 4 and saved["oracle"]["rate"] == 0.1
    assert saved["splits"]["train"]["examples"] == 600
    jsonl = (tmp_path / "d" / "jsonl" / "valid.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in jsonl] == dd["valid"]["id"]
    assert "progeval dataset" in (tmp_path / "d" / "README.md").read_text()


def test_loading_checks_the_manifest(tmp_path):
    generate_dataset(small(train=50, valid=10, test=10, test_extrapolate=10), tmp_path / "d", progress=False)
    jsonl = tmp_path / "d" / "jsonl" / "train.jsonl"
    jsonl.write_text(jsonl.read_text().replace('"target":"', '"target":"1', 1))
    with pytest.raises(ManifestError, match="jsonl/train.jsonl: SHA-256 differs"):
        load_dataset(tmp_path / "d")
    with pytest.raises(ManifestError, match="not a progeval dataset"):
        load_dataset(tmp_path / "nothing")


def test_regenerate_reproduces_every_byte(tmp_path):
    generate_dataset(small(curriculum="naive"), tmp_path / "d", progress=False)
    _, differ = regenerate(tmp_path / "d" / "manifest.json", tmp_path / "again", progress=False)
    assert differ == []
    assert tree_bytes(tmp_path / "d") == tree_bytes(tmp_path / "again")


def test_different_seeds_still_never_share_a_program_across_splits():
    a, _ = generate_splits(
        small(seed=1, length=1, nesting=1, train=2000, valid=200, test=200, test_extrapolate=0),
        progress=False,
    )
    b, _ = generate_splits(
        small(seed=2, length=1, nesting=1, train=2000, valid=200, test=200, test_extrapolate=0),
        progress=False,
    )
    train = {r["canonical_hash"] for r in a["train"]} | {r["canonical_hash"] for r in b["train"]}
    held_out = {r["canonical_hash"] for s in ("valid", "test") for r in a[s] + b[s]}
    assert not train & held_out


def all_programs_length1_nesting1() -> set[str]:
    """Every length-1, nesting-1 program, listed by hand from the operations' definitions."""
    d, m = range(1, 10), range(1, 5)
    out = set()
    for a, b, op in itertools.product(d, d, "+-"):
        out.add(f"print(({a}{op}{b}))")
        out.add(f"a={a};\nprint((a{op}{b}))")
        for n in m:
            out.add(f"a={a}\nfor x in range({n}):a{op}={b}\nprint(a)")
    for a, k in itertools.product(d, m):
        out |= {f"print(({a}*{k}))", f"print(({k}*{a}))"}
    out |= {f"print({a})" for a in d}
    for a, b, c, e, cmp in itertools.product(d, d, d, d, "<>"):
        out.add(f"print(({c} if {a}{cmp}{b} else {e}))")
    return out


def test_capacity_of_the_smallest_cell_is_counted_exactly():
    by_hand = all_programs_length1_nesting1()
    assert len(by_hand) == 14_159
    assert unique_hashes(1, 1) == {canonical_hash(p) for p in by_hand}
    generated = {progeval.generate_program(0, "train", 1, 1, i).source for i in range(3000)}
    assert {canonical_hash(p) for p in generated} <= unique_hashes(1, 1)


def test_asking_a_cell_for_more_than_it_holds_says_what_it_holds():
    holds = sum(
        1 for p in all_programs_length1_nesting1() if progeval.splits.bucket(canonical_hash(p)) == "valid"
    )
    cfg = DatasetConfig(
        length=1,
        nesting=1,
        curriculum="baseline",
        train=10,
        valid=holds + 1,
        test=0,
        test_extrapolate=0,
    )
    with pytest.raises(CapacityError, match=f"holds {holds} unique programs for split 'valid'"):
        generate_splits(cfg, progress=False)
    cfg = DatasetConfig(
        length=1,
        nesting=1,
        curriculum="baseline",
        train=10,
        valid=holds // 2,
        test=0,
        test_extrapolate=0,
    )
    records, _ = generate_splits(cfg, progress=False)
    assert len({r["canonical_hash"] for r in records["valid"]}) == holds // 2
