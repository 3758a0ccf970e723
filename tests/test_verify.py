import re

from progeval.build import generate_splits
from progeval.config import DatasetConfig
from progeval.store import write_dataset
from progeval.verify import verify_dataset


def test_verify_finds_a_renamed_leak_a_wrong_label_and_a_bad_stream(tmp_path):
    cfg = DatasetConfig(length=2, nesting=2, train=60, valid=20, test=20, test_extrapolate=20, seed=8)
    records, stats = generate_splits(cfg, progress=False)
    write_dataset(records, stats, cfg, tmp_path / "ok")
    assert verify_dataset(tmp_path / "ok", progress=False).ok
    leak = next(r for r in records["train"] if "=" in r["program"])
    # A consistent renaming (every variable letter shifted by one) that the leak check must see through.
    renamed = re.sub(r"\b[a-z]\b", lambda m: chr((ord(m.group()) - 96) % 26 + 97), leak["program"])
    assert renamed != leak["program"]
    records["test"].append({**leak, "id": "leaked", "program": renamed})
    wrong = records["valid"][0]
    records["valid"][0] = {**wrong, "target": str(int(wrong["target"]) + 1)}
    records["valid"][1] = {**records["valid"][1], "stream": "x@1."}
    write_dataset(records, stats, cfg, tmp_path / "bad")
    report = verify_dataset(tmp_path / "bad", progress=False)
    text = "\n".join(report.problems)
    assert f"test/leaked: the same program (up to renaming) as train/{leak['id']}" in text
    assert "test/leaked: program belongs to the train bucket" in text
    assert f"valid/{wrong['id']}: target '{int(wrong['target']) + 1}' but the oracle computes" in text
    assert f"valid/{wrong['id']}: target '{int(wrong['target']) + 1}' but execution printed" in text
    assert f"valid/{records['valid'][1]['id']}: stream does not match" in text
    assert report.checked == 121
