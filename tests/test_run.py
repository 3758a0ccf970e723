"""The main job as a user runs it: the real CLI on tiny budgets, resume, torchrun, bad input."""

import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gfseq import results
from gfseq.engine import CheckpointError, load_checkpoint
from gfseq.metrics import scores_from_predictions
from gfseq.run import main
from tests.helpers import free_port

TINY = [
    "--nest", "2", "--length", "1", "--quiet",
    "--set", "data.train=1500", "--set", "data.valid=60", "--set", "data.test=60",
    "--set", "data.test_extrapolate=40", "--set", "model.hidden=24", "--set", "train.warmup_steps=2",
    "--set", "train.eval_every=4", "--set", "train.eval_examples=30", "--set", "train.log_every=1",
    "--set", "train.checkpoint_every=3",
]  # fmt: skip


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def run(tmp_path, data_root, *extra, out="run", on_step=None):
    args = [*TINY, "--data-root", str(data_root), "--out", str(tmp_path / out), *extra]
    return main(args, on_step=on_step)


def test_smoke_result_validates_and_its_metrics_are_the_predictions(tmp_path, data_root, capsys):
    assert run(tmp_path, data_root, "--steps", "8") == 0
    folder = tmp_path / "run"
    result = json.loads((folder / "result.json").read_text())
    results.validate(result)  # the schema, and no NaN
    rows = results.read_predictions(folder / "predictions.jsonl")
    assert results.sha256_file(folder / "predictions.jsonl") == result["predictions"]["sha256"]
    assert scores_from_predictions(rows) == result["metrics"]
    assert set(result["metrics"]) == {"gf", "stacked"}
    counts = [m["parameters"] for m in result["models"].values()]
    assert max(counts) <= 1.02 * min(counts)
    assert len(rows) == 2 * (60 + 40) and result["examples"] == {"test": 60, "test_extrapolate": 40}
    for name in ("heatmap.png", "curves.png", "gf/checkpoint.pt", "stacked/metrics.jsonl", "config.json"):
        assert (folder / name).is_file(), name
    assert load_checkpoint(folder / "gf" / "checkpoint.pt")["done"] is True
    printed = capsys.readouterr().out
    assert (
        "| cell (len x nest) | gf: char / exact | stacked: char / exact | gf - stacked (exact) |" in printed
    )


def losses(folder: Path, arch: str) -> list[tuple[int, float, object]]:
    rows = [json.loads(x) for x in (folder / arch / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r.get("level")) for r in rows]


def test_interrupt_and_resume_give_the_losses_of_one_uninterrupted_run(
    tmp_path, data_root, capsys, monkeypatch
):
    extra = ["--steps", "12", "--length", "2", "--set", 'data.curriculum="naive"',
             "--set", "train.eval_every=2", "--set", "data.level_threshold=0.0"]  # fmt: skip
    assert run(tmp_path, data_root, *extra, out="whole") == 0

    def interrupt(step):
        if step == 6:
            signal.raise_signal(signal.SIGINT)

    assert run(tmp_path, data_root, *extra, out="cut", on_step=interrupt) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 6" in err and "--resume" in err
    assert not (tmp_path / "cut" / "result.json").exists()
    monkeypatch.chdir(tmp_path)  # the resumed run finds its data where it made them, not in ./data
    assert main(["--resume", str(tmp_path / "cut"), "--quiet"]) == 0
    assert not (tmp_path / "data").exists()
    for arch in ("gf", "stacked"):
        whole, cut = losses(tmp_path / "whole", arch), losses(tmp_path / "cut", arch)
        assert cut == whole  # same steps, same losses to the bit, same curriculum levels
    levels = [tuple(r[2]) for r in losses(tmp_path / "whole", "gf") if r[2]]
    assert levels == [(2, 1), (1, 2), (2, 2), (2, 2), (2, 2), (2, 2)]  # up at every evaluation, then the top
    a = json.loads((tmp_path / "whole" / "result.json").read_text())
    b = json.loads((tmp_path / "cut" / "result.json").read_text())
    assert a["metrics"] == b["metrics"]
    for arch in ("gf", "stacked"):  # both sessions' training time is counted
        assert b["models"][arch]["steps"] == 12 and b["models"][arch]["train_seconds"] > 0


def test_a_crash_after_a_checkpoint_resumes_without_duplicate_log_rows(tmp_path, data_root):
    extra = ["--steps", "8"]
    assert run(tmp_path, data_root, *extra, out="whole") == 0

    def crash(step):
        if step == 5:  # checkpoints at 3 and 6: steps 4 and 5 are lost and must be redone
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        run(tmp_path, data_root, *extra, out="cut", on_step=crash)
    assert main(["--resume", str(tmp_path / "cut"), "--quiet", "--data-root", str(data_root)]) == 0
    assert losses(tmp_path / "cut", "gf") == losses(tmp_path / "whole", "gf")


def test_schema_and_rules_refuse_results_that_do_not_add_up(tmp_path, data_root):
    assert run(tmp_path, data_root, "--steps", "2") == 0
    good = json.loads((tmp_path / "run" / "result.json").read_text())
    results.validate(good)

    def broken(edit):
        bad = json.loads(json.dumps(good))
        edit(bad)
        return bad

    cases = {
        "more right than counted": lambda r: r["metrics"]["gf"]["test"]["overall"].update(
            chars_correct=10**6
        ),
        "does not equal its counts": lambda r: r["metrics"]["gf"]["test"]["overall"].update(exact_match=0.9),
        "holds arch 'stacked'": lambda r: r["models"]["gf"].update(arch="stacked"),
        "differ by more than 2%": lambda r: r["models"]["gf"].update(parameters=10**7),
        "no such model": lambda r: r["metrics"].update(single=r["metrics"]["gf"]),
        "Additional properties": lambda r: r.update(comment="trust me"),
        "expected a finite number": lambda r: r["metrics"]["gf"]["test"]["overall"].update(
            char_accuracy=float("nan")
        ),
        "is not one of": lambda r: r["metrics"]["gf"].update(foo=r["metrics"]["gf"]["test"]),
        "does not match": lambda r: r["predictions"].update(file="/etc/passwd"),
    }
    for message, edit in cases.items():
        with pytest.raises(results.ResultError, match=message):
            results.validate(broken(edit))


def test_checkpoints_with_pickled_objects_are_refused(tmp_path, data_root):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": Path("/etc/passwd")}, path)  # any non-tensor object
    with pytest.raises(CheckpointError, match="refused: it holds pickled objects"):
        load_checkpoint(path)
    assert run(tmp_path, data_root, "--steps", "3") == 0
    torch.save(
        {**load_checkpoint(tmp_path / "run" / "gf" / "checkpoint.pt"), "done": False, "extra": Path(".")},
        tmp_path / "run" / "gf" / "checkpoint.pt",
    )
    r = subprocess.run(
        [sys.executable, "-m", "gfseq.run", "--resume", str(tmp_path / "run"), "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "refused" in r.stderr
    assert not (tmp_path / "data").exists()  # refused before any data work


@pytest.mark.parametrize(
    "args,message",
    [
        (["--nest", "0"], r"data\.nesting: expected an integer in 1\.\.25, got 0"),
        (
            ["--task", "progevl"],
            r"--task: unknown task 'progevl'; known: .*progeval.* \(did you mean 'progeval'\?\)",
        ),
        (["--set", "train.lrr=0.1"], r"unknown key 'train\.lrr' \(did you mean 'train\.lr'\?\)"),
        (
            ["--arch", "gf,stackd"],
            r"model\.archs: expected names from .*, got 'stackd' \(did you mean 'stacked'\?\)",
        ),
        (["--resume", "/nonexistent/run"], r"--resume: '/nonexistent/run' is not a run folder"),
        (["--seed", str(2**64)], r"train\.seed: expected an integer in 0\.\.9223372036854775807"),
        (["--set", 'task.name="../escape"'], r"task\.name: expected letters, digits"),
        (["--set", "eval.splits=[]"], r"eval\.splits: expected one or more distinct split names, got \[\]"),
        (["--set", "train.lr=1e400"], r"train\.lr: expected a number >= 0\.0, got inf"),
        (["--set", "model.hidden=3000000"], r"model\.hidden: expected an integer in 1\.\.65536"),
        (
            ["--data-root", "/etc/passwd", "--nest", "1", "--length", "1"],
            r"--data-root: '/etc/passwd' is a file",
        ),
        (["--out", "/etc/passwd/run"], r"--out: '/etc/passwd' is a file, not a folder"),
    ]
    + (
        []
        if torch.cuda.is_available()
        else [(["--device", "cuda"], r"--device: 'cuda' was asked for but torch sees no GPU")]
    ),
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    r = subprocess.run(
        [sys.executable, "-m", "gfseq.run", "--quiet", "--out", str(tmp_path / "x"), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert __import__("re").search(message, r.stderr), r.stderr
    assert not (tmp_path / "x").exists()


def test_torchrun_with_two_processes_on_cpu_writes_one_result(tmp_path, data_root):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(free_port()),
           "-m", "gfseq.run", *TINY, "--steps", "4", "--data-root", str(data_root),
           "--out", str(tmp_path / "ddp"), "--device", "cpu"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    results.validate(result)
    assert result["models"]["gf"]["steps"] == 4 and result["processes"] == 2
    first = json.loads((tmp_path / "ddp" / "gf" / "metrics.jsonl").read_text().splitlines()[0])
    assert abs(first["loss"] - math.log(54)) < 0.5  # every rank's loss, not rank 0's share of it
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir() if p.suffix == ".json") == [
        "config.json",
        "result.json",
    ]


def test_resume_refuses_a_checkpoint_of_another_model_and_a_broken_config(tmp_path, data_root):
    assert run(tmp_path, data_root, "--steps", "2") == 0
    folder = tmp_path / "run"
    (folder / "stacked" / "checkpoint.pt").write_bytes((folder / "gf" / "checkpoint.pt").read_bytes())
    r = subprocess.run([sys.executable, "-m", "gfseq.run", "--resume", str(folder), "--quiet",
                        "--data-root", str(data_root)], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "holds 'gf'" in r.stderr
    (folder / "stacked" / "checkpoint.pt").write_text("not a checkpoint")
    r = subprocess.run([sys.executable, "-m", "gfseq.evaluate", str(folder), "--data-root", str(data_root)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "damaged or not a checkpoint" in r.stderr
    r = subprocess.run([sys.executable, "-m", "gfseq.evaluate", str(folder), "--device", "gpu"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "--device: expected cpu, cuda or cuda:N, got 'gpu'" in r.stderr
    (folder / "config.json").write_text("[]")
    r = subprocess.run([sys.executable, "-m", "gfseq.run", "--resume", str(folder), "--quiet"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot read" in r.stderr
