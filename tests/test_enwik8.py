"""enwik8 as a user meets it: the file checked and split, BPC that means bits per byte, truncated BPTT,
training that learns, runs that resume exactly and work under torchrun, sampling.

The real file cannot be downloaded here, so the tests write their own 100,000,000-byte files."""

import gc
import hashlib
import json
import math
import signal
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from gfseq import results
from gfseq.config import load_task
from gfseq.data import enwik8
from gfseq.data.__main__ import main as data_main
from gfseq.engine import Dist, load_checkpoint
from gfseq.enwik8_task import TrainStreams, make_task, stream_bits
from gfseq.models.charlm import CharLM, CharLMShape
from gfseq.nn import PRESETS
from gfseq.run import main as run_main
from tests.helpers import free_port

WORDS = [b"the ", b"cat ", b"sat ", b"on ", b"a ", b"mat. ", b"<page>\n", b"[[link]] ", b"dog ", b"ran "]


def structured(n: int, seed: int = 0) -> bytes:
    """Text with structure a small model can learn: words from a fixed list, chosen at random."""
    rng = np.random.default_rng(seed)
    out = b"".join(WORDS[i] for i in rng.integers(0, len(WORDS), n // 3 + 16))
    return out[:n]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("enwik8")
    period = structured(999_983)  # a prime period: no two splits hold the same bytes
    (folder / "enwik8").write_bytes((period * 101)[: enwik8.SIZE])
    return folder


# ----------------------------------------------------------------------------------------------- data


def test_splits_are_the_standard_bytes_contiguous_and_complete(data_dir):
    data = enwik8.prepare(data_dir, allow_unverified=True, progress=False)
    raw = (data_dir / "enwik8").read_bytes()
    train, valid, test = (data.split(s) for s in ("train", "valid", "test"))
    assert (len(train), len(valid), len(test)) == (90_000_000, 5_000_000, 5_000_000)
    assert train.tobytes() + valid.tobytes() + test.tobytes() == raw  # nothing lost, nothing twice
    assert valid.tobytes() == raw[90_000_000:95_000_000]
    assert isinstance(data.bytes, np.memmap) and not valid.flags.owndata  # views into the mapped file
    m = data.manifest
    assert m["md5"] == hashlib.md5(raw).hexdigest() and m["verified"] is False
    assert m["splits"]["test"] == {
        "offset": 95_000_000,
        "length": 5_000_000,
        "sha256": hashlib.sha256(raw[95_000_000:]).hexdigest(),
    }
    assert data.context("valid") == raw[89_999_999] and data.context("train") is None


def test_an_md5_mismatch_is_refused_unless_allowed(data_dir, capsys):
    with pytest.raises(enwik8.Enwik8Error, match="MD5 .* is not enwik8's a1fa5ffddb56f4953e226637dabbb36a"):
        enwik8.prepare(data_dir, progress=False)
    assert data_main(["enwik8", "--data-dir", str(data_dir), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--allow-unverified" in err


def test_the_published_md5_makes_the_file_verified_and_the_fingerprint_canonical(data_dir, monkeypatch):
    md5 = hashlib.md5((data_dir / "enwik8").read_bytes()).hexdigest()
    monkeypatch.setattr(enwik8, "MD5", md5)
    m = enwik8.check(data_dir / "enwik8", progress=False)
    assert m["verified"] is True and m["fingerprint"] == enwik8.fingerprint(md5)
    # the real file's fingerprint is known without it, and differs from this one
    assert enwik8.fingerprint("a1fa5ffddb56f4953e226637dabbb36a") == enwik8.CANONICAL_FINGERPRINT
    assert m["fingerprint"] != enwik8.CANONICAL_FINGERPRINT


def test_json_manifest_from_the_command(data_dir, capsys):
    code = data_main(["enwik8", "--data-dir", str(data_dir), "--allow-unverified", "--json", "--quiet"])
    assert code == 0
    m = json.loads(capsys.readouterr().out)
    assert m["size"] == 100_000_000 and m["verified"] is False
    assert {k: (s["offset"], s["length"]) for k, s in m["splits"].items()} == {
        "train": (0, 90_000_000),
        "valid": (90_000_000, 5_000_000),
        "test": (95_000_000, 5_000_000),
    }


def test_a_missing_file_says_how_to_get_it(tmp_path, capsys):
    assert data_main(["enwik8", "--data-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no enwik8 or enwik8.zip" in err and enwik8.URL in err and "--download" in err


def test_a_truncated_file_is_an_error_even_when_unverified_is_allowed(tmp_path, data_dir):
    (tmp_path / "enwik8").write_bytes((data_dir / "enwik8").read_bytes()[:-1])
    with pytest.raises(enwik8.Enwik8Error, match="truncated: expected 100,000,000 bytes, found 99,999,999"):
        enwik8.prepare(tmp_path, allow_unverified=True, progress=False)


def test_the_zip_is_unzipped_once_and_gives_the_same_data(data_dir, tmp_path):
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.mkdir("enwik8")  # as `zip -r` of a folder named enwik8 writes it: the folder entry first
        zf.write(data_dir / "enwik8", "enwik8/enwik8")
    data = enwik8.prepare(tmp_path, allow_unverified=True, progress=False)
    assert data.path == tmp_path / "enwik8"
    assert data.manifest["md5"] == hashlib.md5((data_dir / "enwik8").read_bytes()).hexdigest()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_bad_zip_is_refused_before_anything_is_written(tmp_path):
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w") as zf:
        zf.writestr("enwik8", b"too short")
    with pytest.raises(enwik8.Enwik8Error, match="holds a 9-byte enwik8, expected 100,000,000"):
        enwik8.prepare(tmp_path, allow_unverified=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enwik8.zip"]  # nothing left to hide the zip
    fake = tmp_path / "other.zip"
    fake.write_bytes(b"not a zip")
    with pytest.raises(enwik8.Enwik8Error, match="--data-dir: .* is not a zip file"):
        enwik8.prepare(fake, allow_unverified=True, progress=False)


def test_an_unreadable_folder_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_file", denied)
    assert data_main(["enwik8", "--data-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gfseq.data: error: --data-dir: cannot read") and err.count("\n") == 1


# ------------------------------------------------------------------------------------ bits per byte


def slow_bits(model: CharLM, targets: np.ndarray, context: int) -> float:
    """The twin of stream_bits: one byte at a time, -log2 of its probability, summed in Python."""
    total, state = 0.0, None
    previous = context
    with torch.no_grad():
        for byte in targets.tolist():
            logits, state = model(torch.tensor([[previous]]), state)
            p = torch.softmax(logits[0, -1].double(), -1)[byte].item()
            total -= math.log2(p)
            previous = byte
    return total


@pytest.mark.parametrize("unit,arch", [("lstm", "gf"), ("gru", "stacked"), ("tanh", "gf")])
def test_stream_bits_equals_byte_by_byte_scoring(unit, arch):
    torch.manual_seed(0)
    model = CharLM(CharLMShape(unit, arch, 2, 12))
    text = np.frombuffer(structured(300, seed=1), dtype=np.uint8)
    fast = stream_bits(model, text, context=65, streams=1, batch=1, window=7, device="cpu")
    assert fast.bytes == 300 and fast.starts == [0] and fast.ends == [300]
    assert fast.total_bits == pytest.approx(slow_bits(model, text, 65), rel=1e-6)


def test_a_uniform_model_gives_exactly_8_bits_per_byte():
    model = CharLM(CharLMShape("lstm", "gf", 2, 8))
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.zero_()
    text = np.frombuffer(structured(5000), dtype=np.uint8)
    bits = stream_bits(model, text, context=0, streams=3, batch=2, window=100, device="cpu")
    assert bits.bytes == 5000
    assert abs(bits.bpc - 8.0) < 1e-6


def test_a_split_is_read_as_exactly_the_streams_asked_for():
    model = CharLM(CharLMShape("gru", "stacked", 1, 4))
    text = np.frombuffer(structured(1003), dtype=np.uint8)
    bits = stream_bits(model, text, context=0, streams=600, batch=600, window=10, device="cpu")
    assert len(bits.starts) == 600 and bits.starts[0] == 0 and bits.ends[-1] == 1003
    assert bits.starts[1:] == bits.ends[:-1]
    assert {e - s for s, e in zip(bits.starts, bits.ends, strict=True)} == {1, 2}


def test_bpc_does_not_depend_on_the_evaluation_batch():
    torch.manual_seed(1)
    model = CharLM(CharLMShape("lstm", "gf", 3, 16))
    text = np.frombuffer(structured(20_011, seed=2), dtype=np.uint8)  # streams of unequal length
    one = stream_bits(model, text, context=10, streams=16, batch=1, window=50, device="cpu")
    many = stream_bits(model, text, context=10, streams=16, batch=16, window=50, device="cpu")
    some = stream_bits(model, text, context=10, streams=16, batch=5, window=33, device="cpu")
    assert one.bytes == many.bytes == some.bytes == 20_011
    assert abs(one.bpc - many.bpc) < 1e-6 and abs(one.bpc - some.bpc) < 1e-6
    assert 6 < one.bpc < 10  # untrained: about uniform


# ------------------------------------------------------------------------------ truncated BPTT, training


class Bytes:
    """An in-memory stand-in for Enwik8 (split, context), for training tests that need no 100 MB."""

    def __init__(self, text: bytes) -> None:
        self.array = np.frombuffer(text, dtype=np.uint8)
        n = len(self.array)
        self.bounds = {"train": (0, int(n * 0.9)), "valid": (int(n * 0.9), n)}

    def split(self, name):
        a, b = self.bounds[name]
        return self.array[a:b]

    def context(self, name):
        a, _ = self.bounds[name]
        return int(self.array[a - 1]) if a else None


def lm_config(**extra):
    sets = {
        "data.window": 20,
        "data.valid_bytes": 2000,
        "data.valid_streams": 4,
        "train.batch": 8,
        "eval.batch": 8,
        "model.embedding": 8,
        **extra,
    }
    from gfseq.config import with_overrides

    return with_overrides(load_task("enwik8"), sets)


def test_train_streams_are_contiguous_and_cover_each_stream_in_order():
    s = TrainStreams(np.arange(1000, dtype=np.int64), streams=4, window=10)
    assert s.length == 250 and s.windows == 24
    x0, y0, first = s.batch(0, slice(0, 4))
    x1, _, second = s.batch(1, slice(0, 4))
    assert first and not second
    assert x0[:, 1:].tolist() == y0[:, :-1].tolist()  # targets are the inputs shifted by one byte
    assert x1[:, 0].tolist() == y0[:, -1].tolist()  # the next window continues each stream
    assert x0[:, 0].tolist() == [0, 250, 500, 750] and x0[0].tolist() == list(range(10))
    assert s.batch(24, slice(0, 4))[2]  # a new pass starts after the last window


def test_carried_state_is_detached_before_every_window_and_memory_stays_flat():
    torch.manual_seed(0)
    cfg = lm_config()
    model = CharLM(CharLMShape("lstm", "gf", 3, 16, embedding=8))
    task = make_task(cfg, model, Bytes(structured(60_000)), "cpu", Dist())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    live = []
    for step in range(20):
        b = task.batch(step, 0)
        for t in task.carried["state"].values():
            assert t.grad_fn is None and not t.requires_grad
        loss, count = task.loss(model, b)
        opt.zero_grad()
        (loss / count).backward()
        opt.step()
        del loss, count, b
        gc.collect()
        with warnings.catch_warnings():  # looking at every object touches deprecated torch names
            warnings.simplefilter("ignore")
            live.append(sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor)))
    assert step >= task.carried["state"]["h"].shape[0]
    assert live[3] == live[-1]  # the number of live tensors does not grow with the windows
    assert any(t.abs().sum() > 0 for t in task.carried["state"].values())  # state really is carried


def test_a_tiny_lm_learns_structured_text_far_below_8_bits(tmp_path):
    from gfseq.engine import train

    steps = {"train.steps": 700, "train.lr": 0.005, "train.warmup_steps": 10, "train.eval_every": 700}
    cfg = lm_config(**steps, **{"train.batch": 32, "data.window": 50})
    torch.manual_seed(0)
    model = CharLM(CharLMShape("lstm", "gf", 2, 48, embedding=16))
    data = Bytes(structured(200_000, seed=3))
    task = make_task(cfg, model, data, "cpu", Dist())
    outcome = train(model, task, cfg.train, torch.device("cpu"), tmp_path, Dist(), progress=False)
    held_out = stream_bits(model, data.split("valid"), data.context("valid"), 4, 4, 100, "cpu")
    # the text's entropy is about log2(10) / 4.5 = 0.74 bits per byte, a unigram model's about 3.4,
    # an untrained model's about 8: below 2.5, the model has learned to spell the words
    assert held_out.bpc < 2.5, held_out.bpc
    assert outcome.history[-1]["valid_bpc"] < 2.5


# ----------------------------------------------------------------------------------- the run command


TINY = [
    "--task", "enwik8", "--allow-unverified", "--quiet",
    "--set", "model.sizes=\"fixed\"", "--set", "model.hidden=16", "--set", "model.embedding=8",
    "--set", "train.batch=8", "--set", "data.window=20", "--set", "train.warmup_steps=2",
    "--set", "train.eval_every=4", "--set", "train.log_every=1", "--set", "train.checkpoint_every=3",
    "--set", "data.valid_bytes=4000", "--set", "data.valid_streams=4",
    "--set", "eval.splits=[\"valid\"]", "--set", "eval.streams=1000", "--set", "eval.batch=1000",
]  # fmt: skip


def run(tmp_path, data_dir, *extra, out="run", on_step=None):
    args = [*TINY, "--data-dir", str(data_dir), "--out", str(tmp_path / out), *extra]
    return run_main(args, on_step=on_step)


def losses(folder: Path, arch: str):
    rows = [json.loads(x) for x in (folder / arch / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r.get("valid_bpc")) for r in rows]


def test_run_writes_a_valid_result_whose_bpc_is_the_streams_bits(tmp_path, data_dir, capsys):
    assert run(tmp_path, data_dir, "--steps", "6") == 0
    folder = tmp_path / "run"
    result = json.loads((folder / "result.json").read_text())
    results.validate(result)
    assert result["data"]["verified"] is False and result["examples"] == {"valid": 5_000_000}
    assert result["metric_info"]["bpc"]["direction"] == "lower"
    rows = results.read_predictions(folder / "bits.jsonl")
    for arch in ("gf", "stacked"):
        mine = [r for r in rows if r["arch"] == arch]
        assert len(mine) == 1000 and sum(r["end"] - r["start"] for r in mine) == 5_000_000
        m = result["metrics"][arch]["valid"]
        assert m["bpc"] == pytest.approx(math.fsum(r["bits"] for r in mine) / 5_000_000, rel=1e-12)
    assert "| gf |" in capsys.readouterr().out
    # the checkpoints scored again with another evaluation batch give the same numbers
    from gfseq.evaluate import main as evaluate_main

    again = ["--split", "valid", "--batch", "300", "--streams", "1000", "--write"]
    assert evaluate_main([str(folder), *again]) == 0
    rescored = json.loads((folder / "eval-valid.json").read_text())
    for arch in ("gf", "stacked"):
        assert abs(rescored[arch]["valid"]["bpc"] - result["metrics"][arch]["valid"]["bpc"]) < 1e-6
    assert "| stacked |" in capsys.readouterr().out


def test_interrupt_and_resume_give_the_losses_of_one_uninterrupted_run(tmp_path, data_dir, capsys):
    extra = ["--steps", "10", "--arch", "gf"]
    assert run(tmp_path, data_dir, *extra, out="whole") == 0

    def interrupt(step):
        if step == 5:
            signal.raise_signal(signal.SIGINT)

    assert run(tmp_path, data_dir, *extra, out="cut", on_step=interrupt) == 130
    assert "interrupted at step 5" in capsys.readouterr().err
    saved = load_checkpoint(tmp_path / "cut" / "gf" / "checkpoint.pt")
    assert saved["step"] == 5 and saved["task_state"][0]["h"].abs().sum() > 0  # the carried state
    assert run_main(["--resume", str(tmp_path / "cut"), "--quiet"]) == 0
    assert losses(tmp_path / "cut", "gf") == losses(tmp_path / "whole", "gf")  # to the bit
    whole = json.loads((tmp_path / "whole" / "result.json").read_text())["metrics"]
    cut = json.loads((tmp_path / "cut" / "result.json").read_text())["metrics"]
    assert cut == whole


def test_torchrun_with_two_processes_gives_the_single_process_loss(tmp_path, data_dir):
    assert run(tmp_path, data_dir, "--steps", "2", "--arch", "stacked", out="one") == 0
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(free_port()),
        "-m", "gfseq.run", *TINY, "--data-dir", str(data_dir), "--out", str(tmp_path / "two"),
        "--steps", "2", "--arch", "stacked",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "two" / "result.json").read_text())
    assert result["processes"] == 2
    one, two = losses(tmp_path / "one", "stacked"), losses(tmp_path / "two", "stacked")
    assert [r[0] for r in one] == [r[0] for r in two]
    for a, b in zip(one, two, strict=True):  # the same streams, split across two ranks
        assert b[1] == pytest.approx(a[1], rel=1e-5)
    state = load_checkpoint(tmp_path / "two" / "stacked" / "checkpoint.pt")["task_state"]
    assert len(state) == 2 and state[0]["h"].shape[1] == 4  # each rank's 4 streams kept


def test_sample_prints_the_prime_and_n_bytes_reproducibly(tmp_path, data_dir):
    assert run(tmp_path, data_dir, "--steps", "2", "--arch", "gf") == 0
    ckpt = tmp_path / "run" / "gf" / "checkpoint.pt"
    cmd = [sys.executable, "-m", "gfseq.sample", str(ckpt), "--prime", "<page>", "-n", "40", "--seed", "3"]
    a = subprocess.run(cmd, capture_output=True, timeout=300)
    b = subprocess.run(cmd, capture_output=True, timeout=300)
    assert a.returncode == 0, a.stderr.decode()[-2000:]
    assert a.stdout == b.stdout and a.stdout.startswith(b"<page>")
    for argv, expected in [
        ([*cmd[:3], str(tmp_path / "nothing.pt")], "no such checkpoint"),
        ([*cmd, "--temperature", "0"], "--temperature: expected a number in [0.001, 1000]"),
        ([*cmd, "--device", "tpu"], "--device: expected cpu, cuda or cuda:N"),
    ]:
        bad = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and expected in bad.stderr, bad.stderr
    raw_prime = [*cmd[:3], str(ckpt), "--prime", "\udcff<", "-n", "3"]  # the byte 0xff, not UTF-8
    odd = subprocess.run(raw_prime, capture_output=True, timeout=300)
    assert odd.returncode == 0 and odd.stdout.startswith("\ufffd<".encode())


def test_resuming_on_other_data_is_refused(tmp_path, data_dir, capsys):
    assert run(tmp_path, data_dir, "--steps", "2", "--arch", "stacked") == 0
    other = tmp_path / "other"
    other.mkdir()
    raw = bytearray((data_dir / "enwik8").read_bytes())
    raw[123] ^= 1  # one bit of the train split
    (other / "enwik8").write_bytes(raw)
    code = run_main(["--resume", str(tmp_path / "run"), "--data-dir", str(other), "--quiet"])
    assert code == 2
    assert "--resume: the data differ from the run's" in capsys.readouterr().err


def test_a_result_without_the_count_of_a_scored_split_is_invalid(tmp_path, data_dir):
    assert run(tmp_path, data_dir, "--steps", "2", "--arch", "stacked") == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    result["examples"] = {"test": 5_000_000}
    with pytest.raises(results.ResultError, match="no count for this split"):
        results.validate(result)
    result["examples"] = {"valid": 5_000_000, "test_extrapolate": 1}
    with pytest.raises(results.ResultError, match="test_extrapolate"):
        results.validate(result)


# --------------------------------------------------------------------------------- presets and sizes


@pytest.mark.parametrize("unit", ["tanh", "gru", "lstm"])
@pytest.mark.parametrize("arch", ["single", "stacked", "gf", "gf-nogate"])
@pytest.mark.parametrize("embedding", [0, 5])
def test_the_closed_form_count_is_the_modules(unit, arch, embedding):
    shape = CharLMShape(unit, arch, 1 if arch == "single" else 3, 7, embedding)
    assert sum(p.numel() for p in CharLM(shape).parameters()) == shape.num_parameters()


def test_a_paper_preset_selects_enwik8_and_its_table1_size(capsys):
    from gfseq.run import build_parser, resolve

    cfg = resolve(build_parser().parse_args(["--preset", "gru-gf", "--data-dir", "/x"]))
    assert cfg.task.name == "enwik8" and cfg.data.dir == "/x"
    assert (cfg.model.unit, cfg.model.archs, cfg.model.layers, cfg.model.hidden) == ("gru", ("gf",), 3, 165)
    assert run_main(["--list-presets"]) == 0
    table = capsys.readouterr().out
    for name, p in PRESETS.items():
        n = CharLMShape(p.unit, p.arch, p.num_layers, p.hidden_size).num_parameters()
        assert f"| {name} | {p.unit} | {p.arch} | {p.num_layers} x {p.hidden_size}" in table
        assert f"| {n:,} | {p.reported_bpc} |" in table


def test_the_default_task_compares_the_table1_lstms():
    cfg = load_task("enwik8")
    from gfseq.enwik8_task import shapes

    s = shapes(cfg)
    assert (s["gf"].layers, s["gf"].hidden, s["stacked"].layers, s["stacked"].hidden) == (3, 140, 3, 191)
    assert cfg.eval.streams == 1 and cfg.data.window == 100


def test_bad_enwik8_input_is_one_line_and_exit_2(tmp_path, data_dir, capsys):
    cases = [
        (["--task", "enwik8", "--data-dir", str(tmp_path)], "no enwik8 or enwik8.zip"),
        (["--task", "enwik8", "--data-dir", str(data_dir)], "is not enwik8's"),
        (["--preset", "lstm-gff"], "did you mean 'lstm-gf'"),
        (["--preset", "tanh-gf", "--set", "eval.splits=[\"test_extrapolate\"]"], "has splits valid, test"),
        (["--task", "enwik8", "--arch", "gf-nogate", "--unit", "gru"], "no 'gru-gf-nogate'"),
        (["--task", "progeval", "--data-dir", "x"], "--data-dir: applies to --task enwik8, not progeval"),
        (["--task", "enwik8", "--nest", "3"], "--nest: applies to --task progeval, not enwik8"),
        (["--preset", "lstm-gf", "--task", "progeval"], "enwik8 language models"),
        (["--task", "enwik8", "--data-dir", str(data_dir), "--allow-unverified",
          "--set", "train.batch=10000000"], "shorter than one window"),
    ]  # fmt: skip
    for argv, expected in cases:
        assert run_main([*argv, "--quiet", "--out", str(tmp_path / "never")]) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1, (argv, err)
        assert not (tmp_path / "never").exists()
