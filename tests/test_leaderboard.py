"""The leaderboard as a submitter and a reader meet it: refusals, ranks, escaping, verification."""

import json
import math
from pathlib import Path

import pytest

from gfseq import leaderboard as lb
from gfseq.data import enwik8
from gfseq.run import main as run_main

GOLDEN = Path(__file__).with_name("golden") / "leaderboard.md"
TINY = [
    "--nest", "1", "--length", "1", "--quiet", "--steps", "2",
    "--set", "data.train=600", "--set", "data.valid=40", "--set", "data.test=40",
    "--set", "data.test_extrapolate=0", "--set", 'eval.splits=["test"]', "--set", "model.hidden=16",
    "--set", "train.eval_every=2", "--set", "train.eval_examples=20",
]  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A real progeval result, and a datasets file that names its data as canonical."""
    tmp = tmp_path_factory.mktemp("lb")
    assert run_main([*TINY, "--data-root", str(tmp / "data"), "--out", str(tmp / "run")]) == 0
    result = json.loads((tmp / "run" / "result.json").read_text())
    datasets = tmp / "datasets.toml"
    datasets.write_text(
        f'[[dataset]]\nname = "tiny"\ntask = "progeval"\nfingerprint = "{result["data"]["fingerprint"]}"\n'
    )
    return tmp, datasets


def edited(made, tmp_path, change) -> Path:
    """A copy of the run folder whose result.json was changed by ``change(result_text) -> text``."""
    src = made[0] / "run"
    dst = tmp_path / "edited"
    dst.mkdir()
    (dst / "predictions.jsonl").write_bytes((src / "predictions.jsonl").read_bytes())
    (dst / "result.json").write_text(change((src / "result.json").read_text()))
    return dst / "result.json"


def refuse(made, tmp_path, path, capsys, monkeypatch) -> str:
    monkeypatch.setattr(lb, "DATASETS_FILE", made[1])
    assert lb.main(["--root", str(tmp_path / "board"), "submit", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gfseq.leaderboard: refused: ")
    assert not (tmp_path / "board" / "entries").exists() or not any((tmp_path / "board").rglob("*.json"))
    return err


def set_metric(key: str, value: str):
    def change(text):
        r = json.loads(text)
        r["metrics"]["gf"]["test"]["overall"][key] = "@@"
        return json.dumps(r).replace('"@@"', value)

    return change


def test_a_valid_result_is_accepted_and_ranked_and_a_second_copy_refused(made, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(lb, "DATASETS_FILE", made[1])
    root = tmp_path / "board"
    result = made[0] / "run" / "result.json"
    assert lb.main(["--root", str(root), "submit", str(result), "--name", "tiny | <b>run</b>"]) == 0
    [entry] = list((root / "entries" / "progeval").glob("*.json"))
    stored = json.loads(entry.read_text())
    assert stored["result"] == json.loads(result.read_text())  # the result itself, untouched
    assert (entry.parent / stored["entry"]["predictions"]["file"]).is_file()
    capsys.readouterr()
    assert lb.main(["--root", str(root), "submit", str(result), "--name", "again"]) == 2
    assert "already submitted as" in capsys.readouterr().err
    assert lb.main(["--root", str(root), "render"]) == 0
    text = (root / "README.md").read_text()
    r = stored["result"]["metrics"]
    best = max(r, key=lambda a: (r[a]["test"]["overall"]["exact_match"], a == "gf"))
    ranks = [line for line in text.splitlines() if "tiny \\| &lt;b&gt;run&lt;/b&gt;" in line]
    assert len(ranks) == 2 and all(line.count(" | ") >= 8 for line in ranks)
    assert any(line.startswith("| 1 | ") and f"| {best} |" in line for line in ranks)
    assert (root / "figures" / f"progeval-{stored['entry']['id']}.png").is_file()
    assert lb.main(["--root", str(root), "verify"]) == 0


@pytest.mark.parametrize(
    "change,reason",
    [
        (set_metric("exact_match", "NaN"), "expected a finite number, got nan"),
        (set_metric("exact_match", "1.5"), "1.5 is greater than the maximum of 1"),
        (
            lambda t: t.replace('"exact_match": ', '"exact_matchX": ', 1),
            "'exact_match' is a required property",
        ),
        (lambda t: t.replace('"git_commit": "', '"git_commit": "x', 1), "result.git_commit"),
    ],
)
def test_bad_results_are_refused_with_one_line(made, tmp_path, capsys, monkeypatch, change, reason):
    assert reason in refuse(made, tmp_path, edited(made, tmp_path, change), capsys, monkeypatch)


def test_data_other_than_the_canonical_datasets_is_refused(made, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(lb, "DATASETS_FILE", lb.DATASETS_FILE)  # the repository's own list
    path = made[0] / "run" / "result.json"
    assert lb.main(["--root", str(tmp_path / "board"), "submit", str(path)]) == 2
    err = capsys.readouterr().err
    assert "is not a canonical progeval dataset (progeval-default" in err and err.count("\n") == 1


def test_a_negative_bpc_is_refused(made, tmp_path, capsys, monkeypatch):
    result = json.loads((made[0] / "run" / "result.json").read_text())
    result["task"]["name"] = result["config"]["task"]["name"] = "enwik8"
    result["metrics"] = {"gf": {"test": {"bpc": -0.5, "bits": 1.0, "bytes": 2, "streams": 1}}}
    result["data"]["verified"] = True  # everything else an enwik8 result needs, so the BPC is what fails
    result["metric_info"] = {"bpc": {"direction": "lower", "unit": "bits per byte"}}
    result["examples"] = {"test": 2}
    path = edited(made, tmp_path, lambda _: json.dumps(result))
    assert "-0.5 is less than the minimum of 0" in refuse(made, tmp_path, path, capsys, monkeypatch)


def test_the_canonical_fingerprints_are_the_data_they_name(tmp_path):
    from gfseq.config import load_task
    from gfseq.data.progeval import prepare
    from progeval.store import read_manifest

    named = {d["name"]: d for d in lb.canonical_datasets()}
    assert named["enwik8"]["fingerprint"] == enwik8.CANONICAL_FINGERPRINT
    folder = prepare(load_task("progeval").data, tmp_path, progress=False)  # the main job's default data
    assert read_manifest(folder)["fingerprint"] == named["progeval-default"]["fingerprint"]


def test_verify_catches_a_claim_that_is_not_its_predictions_and_a_tampered_file(made, tmp_path, monkeypatch):
    monkeypatch.setattr(lb, "DATASETS_FILE", made[1])
    root = tmp_path / "board"
    entry = lb.submit(made[0] / "run" / "result.json", "x", root)
    assert lb.verify(root) == []
    stored = json.loads(entry.read_text())
    stored["result"]["metrics"]["gf"]["test"]["overall"]["exact"] += 1  # a better claim ...
    stored["entry"]["result_sha256"] = lb.result_digest(stored["result"])  # ... even with a new hash
    entry.write_text(json.dumps(stored))
    assert any("gf test metrics differ from its predictions" in p for p in lb.verify(root))
    pred = entry.parent / stored["entry"]["predictions"]["file"]
    pred.write_text(pred.read_text().replace('"eos": false', '"eos": true', 1))
    assert any("does not match the SHA-256" in p for p in lb.verify(root))
    assert lb.main(["--root", str(root), "verify"]) == 1


# --------------------------------------------------------------------------------------- golden render


def synthetic(entry_id, name, task, models, metrics, sizes="matched"):
    return {
        "entry": {"id": entry_id, "name": name},
        "result": {
            "task": {"name": task, "version": 1},
            "config": {"model": {"sizes": sizes}},
            "models": models,
            "metrics": metrics,
        },
    }


def lm(unit, arch, layers, hidden, parameters):
    return {"unit": unit, "arch": arch, "layers": layers, "hidden": hidden, "parameters": parameters}


def bpc(test=None, valid=None):
    out = {}
    if test is not None:
        out["test"] = {"bpc": test}
    if valid is not None:
        out["valid"] = {"bpc": valid}
    return out


def prog(exact, char):
    return {"test": {"overall": {"exact_match": exact, "char_accuracy": char}}}


ENTRIES = [
    synthetic("a-1", "GF | <script>alert(1)</script>", "enwik8",
              {"gf": lm("lstm", "gf", 3, 140, 697_813)}, {"gf": bpc(1.801, 1.79)}, "fixed"),
    synthetic("b-2", "stacked *baseline*", "enwik8",
              {"stacked": lm("lstm", "stacked", 3, 191, 978_940)}, {"stacked": bpc(1.95)}, "fixed"),
    synthetic("c-3", "valid only", "enwik8",
              {"gf": lm("gru", "gf", 3, 165, 750_133)}, {"gf": bpc(valid=1.7)}, "fixed"),
    synthetic("d-4", "big", "enwik8",
              {"gf": lm("lstm", "gf", 3, 400, 5_000_000)}, {"gf": bpc(1.5)}, "fixed"),
    synthetic("e-5", "tie one", "enwik8",
              {"stacked": lm("gru", "stacked", 3, 228, 1_017_592)}, {"stacked": bpc(1.95)}, "fixed"),
    synthetic("f-6", "prog [link](x)", "progeval",
              {"gf": lm("lstm", "gf", 2, 119, 441_504), "stacked": lm("lstm", "stacked", 2, 128, 438_774)},
              {"gf": prog(0.2, 0.58), "stacked": prog(0.25, 0.55)}),
]  # fmt: skip


def test_render_matches_the_golden_file(tmp_path):
    assert lb.render_text(ENTRIES) == GOLDEN.read_text()  # reviewed by hand when it was made


def test_ranks_directions_and_reported_rows(tmp_path):
    text = lb.render_text(ENTRIES)
    lines = text.splitlines()
    matched = lines[lines.index("### parameter-matched") : lines.index("### open")]
    body = [line for line in matched if line.startswith("| ") and "---" not in line][1:]
    # lower BPC first; reported rows take their place by value, unranked; ties share a rank;
    # the entry without a test BPC comes last, unranked
    values = [float(line.split(" | ")[7]) for line in body if line.split(" | ")[7] != "-"]
    assert values == sorted(values)
    ranks = [line.split(" | ")[0][2:] for line in body if "entry `" in line]
    assert ranks == ["1", "2", "2", "unranked"]
    assert body[-1].startswith("| unranked | valid only")
    assert "| - | lstm-gf (Chung et al. \\(2015\\), Table 2) | reported |" not in text  # parentheses stay
    assert (
        "| - | lstm-gf (Chung et al. (2015), Table 2) | reported | lstm | gf | 3 x 140 | 697,813 | 1.842 |"
        in text
    )
    assert "test BPC (bits per byte) ↓ lower is better" in text
    assert "test exact match ↑ higher is better" in text
    # the 5 M-parameter GF-LSTM is not within 10 % of Table 1's 697,813: open track
    assert "| 1 | big |" in "\n".join(lines[lines.index("### open") :])
    # progeval: higher exact match first
    prog_lines = [line for line in lines if "prog \\[link\\](x)" in line]
    assert prog_lines[0].startswith("| 1 |") and "| stacked |" in prog_lines[0]
    # escaping: no raw HTML or table breaks from names
    assert "<script>" not in text and "GF \\| &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert math.isclose(float(body[0].split(" | ")[7]), 1.801)  # the entry beats every reported row
    # GF-L (Table 1's GF-LSTM at the stacked sizes, 1.2 M parameters) is reported in the open track
    assert "lstm-gf-l (Chung" in "\n".join(lines[lines.index("### open") :])
