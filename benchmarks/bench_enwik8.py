"""Training speed of the paper's enwik8 models: bytes per second and hours per 90 MB epoch.

    .venv/bin/python benchmarks/bench_enwik8.py --repeats 3          # CPU; add --device cuda on a GPU

For every preset (Table 1 of Chung et al. 2015, the no-gate ablation and the larger GF-LSTM) as a
byte-level language model with one-hot input: the real training step of ``python -m gfseq.run --task
enwik8`` (truncated-BPTT window, carried state, cross-entropy, backward, clipping, Adam) at the task's
batch (128 streams) and window (100 bytes). Each repeat times every model in turn (side by side, so the
machine's noise falls on all of them) for at least ``--min-seconds``; the table gives the median bytes
per second over repeats and the implied hours for one pass over the 90,000,000-byte train split.
"Eval bytes/s" is the standard single-stream evaluation (batch 1, forward only, state carried), and
"test min" the minutes it implies for the 5,000,000-byte test split.
Prints a Markdown table and writes it to benchmarks/enwik8_throughput.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from gfseq.config import load_task, with_overrides
from gfseq.engine import Dist, make_optimizer
from gfseq.enwik8_task import make_task, stream_bits
from gfseq.models.charlm import CharLM, CharLMShape
from gfseq.nn import PRESETS


class RandomBytes:
    """Stand-in data (the real file is not needed to time a step): uniform random bytes."""

    def __init__(self, n: int) -> None:
        self.array = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8)

    def split(self, name: str) -> np.ndarray:
        return self.array

    def context(self, name: str) -> int:
        return 0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=3.0, help="timed training per model per repeat")
    ap.add_argument("--eval-bytes", type=int, default=2000, help="bytes scored for the eval column")
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma-separated preset names")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("enwik8_throughput.md"))
    args = ap.parse_args()
    device = torch.device(args.device)
    cfg = load_task("enwik8")
    cfg = with_overrides(cfg, {"train.device": device.type})
    batch, window = cfg.train.batch, cfg.data.window
    data = RandomBytes(batch * window * 40)
    names = args.presets.split(",")
    setups = {}
    for name in names:
        p = PRESETS[name]
        torch.manual_seed(0)
        model = CharLM(CharLMShape(p.unit, p.arch, p.num_layers, p.hidden_size)).to(device)
        task = make_task(cfg, model, data, device, Dist())
        opt, _ = make_optimizer(model, cfg.train)
        setups[name] = (model, task, opt)

    def step(name: str, k: int) -> None:
        model, task, opt = setups[name]
        loss, count = task.loss(model, task.batch(k, 0))
        opt.zero_grad(set_to_none=True)
        (loss / count).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip)
        opt.step()

    for name in names:  # warm-up: kernels built, buffers allocated
        step(name, 0)
    sync(device)
    speed: dict[str, list[float]] = {n: [] for n in names}
    evals: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.repeats):
        for name in names:
            k, start = 0, time.perf_counter()
            while True:
                step(name, 1 + k)
                k += 1
                sync(device)
                elapsed = time.perf_counter() - start
                if elapsed >= args.min_seconds:
                    break
            speed[name].append(k * batch * window / elapsed)
            model = setups[name][0]
            start = time.perf_counter()
            stream_bits(model, data.array[: args.eval_bytes], 0, 1, 1, window, device)
            sync(device)
            evals[name].append(args.eval_bytes / (time.perf_counter() - start))
            print(f"repeat {r + 1}/{args.repeats} {name}: {speed[name][-1]:,.0f} bytes/s", flush=True)

    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu, {torch.get_num_threads()} threads"
    )
    lines = [
        f"Recorded {date.today().isoformat()} on {where}, torch {torch.__version__}; batch {batch} streams x "
        f"window {window} bytes, one-hot input, Adam; median of {args.repeats} repeats of >= "
        f"{args.min_seconds:g} s per model.",
        "",
        "| preset | layers x hidden | parameters | train bytes/s | hours / 90 MB epoch "
        "| eval bytes/s (1 stream) | test min |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        p = PRESETS[name]
        params = CharLMShape(p.unit, p.arch, p.num_layers, p.hidden_size).num_parameters()
        bps, ebps = statistics.median(speed[name]), statistics.median(evals[name])
        lines.append(
            f"| {name} | {p.num_layers} x {p.hidden_size} | {params:,} | {bps:,.0f} | "
            f"{90e6 / bps / 3600:,.1f} | {ebps:,.0f} | {5e6 / ebps / 60:,.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
