"""The main job as a user runs it: the real CLI on tiny budgets, resume, torchrun, bad input."""

import json
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


def test_interrupt_and_resume_give_the_losses_of_one_uninterrupted_run(tmp_path, data_root, capsys):
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
    assert main(["--resume", str(tmp_path / "cut"), "--quiet", "--data-root", str(data_root)]) == 0
    for arch in ("gf", "stacked"):
        whole, cut = losses(tmp_path / "whole", arch), losses(tmp_path / "cut", arch)
        assert cut == whole  # same steps, same losses to the bit, same curriculum levels
    levels = [tuple(r[2]) for r in losses(tmp_path / "whole", "gf") if r[2]]
    assert levels == [(2, 1), (1, 2), (2, 2), (2, 2), (2, 2), (2, 2)]  # up at every evaluation, then the top
    a = json.loads((tmp_path / "whole" / "result.json").read_text())["metrics"]
    b = json.loads((tmp_path / "cut" / "result.json").read_text())["metrics"]
    assert a == b


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
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "refused" in r.stderr


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
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "gfseq.run", *TINY, "--steps", "4", "--data-root", str(data_root),
           "--out", str(tmp_path / "ddp"), "--device", "cpu"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    results.validate(result)
    assert result["models"]["gf"]["steps"] == 4
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir() if p.suffix == ".json") == [
        "config.json",
        "result.json",
    ]
