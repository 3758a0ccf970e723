"""Training throughput of the main job's models: target characters per second, GF vs stacked.

    .venv/bin/python benchmarks/bench_train.py --repeats 5 --steps 40

The models are those of ``python -m gfseq.run --task progeval --nest 3`` (2-layer LSTM encoder and
decoder, the GF one matched to the stacked one's parameter count), trained on the same batches of
length <= 2, nesting <= 3 programs with the run's optimizer settings. Each repeat trains every model
for ``--steps`` steps in turn; the table gives medians over repeats and the GF / stacked ratio as the
median of per-repeat ratios. Prints a Markdown table and writes it to benchmarks/train_throughput.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date
from pathlib import Path

import torch

from gfseq.config import load_task
from gfseq.data.progeval import Example, TrainSampler, collate
from gfseq.engine import make_optimizer
from gfseq.models.seq2seq import Seq2Seq
from gfseq.progeval_task import shapes


def examples(n: int, length: int, nesting: int) -> list[Example]:
    import random

    from progeval.execute import run_trusted
    from progeval.generator import generate_program

    rng = random.Random(0)
    out = []
    for i in range(n):
        cell = (rng.randint(1, length), rng.randint(1, nesting))
        p = generate_program(0, "train", *cell, i)
        out.append(Example(f"p{i}", p.source, run_trusted(p.source), *cell))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("train_throughput.md"))
    args = ap.parse_args()
    cfg = load_task("progeval")
    from progeval import CurriculumState

    curriculum = CurriculumState(cfg.data.curriculum, cfg.data.length, cfg.data.nesting)
    sampler = TrainSampler(examples(5000, cfg.data.length, cfg.data.nesting), seed=0)
    batches = [collate(sampler.batch(curriculum, s, cfg.train.batch)) for s in range(args.steps)]
    chars = sum(int((b.tgt_out != 0).sum()) for b in batches)
    models = {}
    for arch, shape in shapes(cfg).items():
        torch.manual_seed(0)
        model = Seq2Seq(shape)
        models[arch] = (model, make_optimizer(model, cfg.train)[0])

    def train(arch: str) -> float:
        model, opt = models[arch]
        model.train()
        start = time.perf_counter()
        for b in batches:
            _, loss = model(b.src, b.src_lengths, b.tgt_in, b.tgt_out)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip)
            opt.step()
        return time.perf_counter() - start

    for arch in models:  # warm-up (builds the kernels)
        train(arch)
    times = {arch: [] for arch in models}
    for _ in range(args.repeats):
        for arch in models:
            times[arch].append(train(arch))
    ratio = statistics.median(g / s for g, s in zip(times["gf"], times["stacked"], strict=True))
    lines = [
        f"Recorded {date.today().isoformat()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"{args.steps} steps of batch {cfg.train.batch} ({chars:,} target characters), "
        f"median of {args.repeats}.",
        "",
        "| model | layers x hidden | parameters | s per step | target chars/s |",
        "|---|---|---|---|---|",
    ]
    for arch, (model, _) in models.items():
        med = statistics.median(times[arch])
        s = model.shape
        lines.append(
            f"| {s.unit} {arch} | {s.layers} x {s.hidden} | {s.num_parameters():,} | "
            f"{med / args.steps:.4f} | {chars / med:,.0f} |"
        )
    lines += ["", f"GF / stacked time per step: {ratio:.2f}x (median of per-repeat ratios)"]
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
