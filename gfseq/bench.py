"""Speed and memory of the GF-RNN layers against torch's own, side by side in one run.

    python -m gfseq.bench                      # CPU (and CUDA when present), prints a Markdown table
    python -m gfseq.bench --out benchmarks/gfseq_layers.md --repeats 9

For each unit (LSTM, GRU): torch's nn.LSTM / nn.GRU, our ``stacked`` (torch's kernels under our
module), ``gf`` at the same shape, ``gf`` with its hidden size matched to torch's parameter count, and
``gf`` on the Python twin of the C++ kernels. Every repeat times each model once, in turn (so the
machine's noise hits all of them alike); the table gives medians over repeats, tokens/s, and the
ratio to torch's layer as the median of per-repeat ratios. Peak memory: on CUDA the allocator's peak
during one forward+backward; on CPU the growth of the process's peak resident memory during one
forward+backward (Linux's VmHWM, reset just before), in a fresh subprocess per model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import torch
from torch import nn

from gfseq.nn import GatedFeedbackRNN, match_hidden_size, num_parameters


@dataclass(frozen=True)
class Case:
    label: str
    unit: str
    arch: str  # "torch" for nn.LSTM / nn.GRU
    hidden: int
    kernels: str = "auto"


def cases(unit: str, hidden: int, layers: int, features: int) -> list[Case]:
    budget = num_parameters(unit, "stacked", features, hidden, layers)
    matched = match_hidden_size(unit, "gf", features, layers, budget)
    name = unit.upper()
    return [
        Case(f"nn.{name}", unit, "torch", hidden),
        Case(f"stacked {name} (ours)", unit, "stacked", hidden),
        Case(f"GF-{name}", unit, "gf", hidden),
        Case(f"GF-{name}, equal params", unit, "gf", matched),
        Case(f"GF-{name}, Python kernels", unit, "gf", hidden, kernels="python"),
    ]


def build(case: Case, features: int, layers: int, device: str) -> nn.Module:
    if case.arch == "torch":
        model = {"lstm": nn.LSTM, "gru": nn.GRU}[case.unit](features, case.hidden, layers)
    else:
        model = GatedFeedbackRNN(features, case.hidden, layers, arch=case.arch, unit=case.unit)
    return model.to(device)


def step(model: nn.Module, x: torch.Tensor, case: Case, device: str) -> float:
    """One forward+backward; seconds."""
    before = os.environ.get("GFSEQ_KERNELS")
    os.environ["GFSEQ_KERNELS"] = case.kernels
    try:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model(x)[0]
        out.sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start
    finally:
        if before is None:
            os.environ.pop("GFSEQ_KERNELS", None)
        else:
            os.environ["GFSEQ_KERNELS"] = before


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_memory(case: Case, args: argparse.Namespace, device: str) -> int:
    """Bytes: CUDA allocator peak, or on CPU the peak-RSS growth of one step in a fresh process."""
    if device == "cuda":
        torch.manual_seed(0)
        model = build(case, args.features, args.layers, device)
        x = torch.randn(args.steps, args.batch, args.features, device=device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(model, x, case, device)
        return torch.cuda.max_memory_allocated() - base
    spec = json.dumps(
        {**case.__dict__, **{k: getattr(args, k) for k in ("features", "layers", "steps", "batch")}}
    )
    out = subprocess.run(
        [sys.executable, "-m", "gfseq.bench", "--_memory-probe", spec],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GFSEQ_KERNELS": case.kernels},
    )
    return int(out.stdout.strip().splitlines()[-1])


def _memory_probe(spec: str) -> None:
    s = json.loads(spec)
    case = Case(s["label"], s["unit"], s["arch"], s["hidden"], s["kernels"])
    torch.manual_seed(0)
    model = build(case, s["features"], s["layers"], "cpu")
    x = torch.randn(s["steps"], s["batch"], s["features"])
    if case.arch == "gf":  # build the kernels before measuring
        model(x[:1])
    base = _status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # Linux: reset the peak (VmHWM) to the current RSS
        f.write("5")
    step(model, x, case, "cpu")
    print(max(0, _status_bytes("VmHWM") - base))


def measure(unit: str, args: argparse.Namespace, device: str) -> list[dict]:
    todo = cases(unit, args.hidden, args.layers, args.features)
    torch.manual_seed(0)
    models = [build(c, args.features, args.layers, device) for c in todo]
    x = torch.randn(args.steps, args.batch, args.features, device=device)
    for model, case in zip(models, todo, strict=True):  # warm-up: kernels built, caches filled
        step(model, x, case, device)
    times: list[list[float]] = [[] for _ in todo]
    for r in range(args.repeats):
        print(f"  {unit} repeat {r + 1}/{args.repeats}", file=sys.stderr, flush=True)
        for k, (model, case) in enumerate(zip(models, todo, strict=True)):
            times[k].append(step(model, x, case, device))
    rows = []
    tokens = args.steps * args.batch
    for k, case in enumerate(todo):
        ratios = [a / b for a, b in zip(times[k], times[0], strict=True)]
        rows.append(
            {
                "model": case.label,
                "layers x hidden": f"{args.layers} x {case.hidden}",
                "parameters": sum(p.numel() for p in models[k].parameters()),
                "median s": statistics.median(times[k]),
                "tokens/s": tokens / statistics.median(times[k]),
                "x torch": statistics.median(ratios),
                "peak MiB": peak_memory(case, args, device) / 2**20,
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["model"],
            r["layers x hidden"],
            f"{r['parameters']:,}",
            f"{r['median s']:.3f}",
            f"{r['tokens/s']:,.0f}",
            f"{r['x torch']:.2f}",
            f"{r['peak MiB']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    return (
        f"{os.cpu_count()} CPU threads ({platform.machine()}, {platform.processor() or 'cpu'}), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gfseq.bench", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--features", type=int, default=256, help="input features")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--units", default="lstm,gru")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--out", type=Path, help="also write the tables (Markdown) here")
    p.add_argument("--_memory-probe", dest="memory_probe", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_probe:
        _memory_probe(args.memory_probe)
        return 0
    for name in ("steps", "batch", "hidden", "layers", "features", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"argument --{name}: expected an integer >= 1, got {getattr(args, name)}")
    units = args.units.split(",")
    if not set(units) <= {"lstm", "gru"}:
        p.error(f"argument --units: expected a comma-separated subset of lstm,gru, got {args.units!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("argument --device: cuda was asked for but torch sees no GPU")
    devices = ["cpu", "cuda"] if args.device == "auto" and torch.cuda.is_available() else [args.device]
    devices = ["cpu"] if devices == ["auto"] else devices
    command = "python -m gfseq.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    parts = []
    for device in devices:
        rows = [row for unit in units for row in measure(unit, args, device)]
        text = (
            f"### {device}, {date.today().isoformat()}: {machine(device)}\n\n"
            f"Shape: {args.layers} layers, batch {args.batch}, {args.steps} steps, {args.features} input "
            f"features; forward + backward; median of {args.repeats} repeats.\n"
            f"Command: `{command.strip()}`\n\n{table(rows)}\n"
        )
        print(text)
        parts.append(text)
    if args.out:
        args.out.write_text("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
