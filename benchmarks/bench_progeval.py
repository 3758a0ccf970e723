"""progeval throughput: programs generated, executed and checked per second.

Runs the real pipeline (`progeval.build.generate_splits`, training split of one cell, baseline
curriculum): generation, canonical hash and split bucket for every candidate; allow-list, execution
and the oracle (sampled, or on every program) for those in the split's bucket; deduplication. Prints a
Markdown table (medians of repeats, measured side by side in one run) and writes it to
benchmarks/progeval_throughput.md.

    .venv/bin/python benchmarks/bench_progeval.py [--examples 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

from progeval import build
from progeval.build import generate_splits
from progeval.config import DatasetConfig


def measure(length: int, nesting: int, oracle_rate: float, procs: int, n: int, seed: int) -> tuple:
    # A cold start, as a fresh `python -m progeval generate` has: no compiled shapes yet (forked
    # workers would inherit this process's), and a seed no earlier run used.
    build._SHAPES.shapes.clear()
    cfg = DatasetConfig(
        length=length,
        nesting=nesting,
        curriculum="baseline",
        train=n,
        valid=0,
        test=0,
        test_extrapolate=0,
        oracle_rate=oracle_rate,
        seed=seed,
    )
    t0 = time.perf_counter()
    _, stats = generate_splits(cfg, num_proc=procs, progress=False)
    dt = time.perf_counter() - t0
    return n / dt, stats["train"].candidates / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=20_000, help="programs per run on one core")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    rows = []
    for cell in ((6, 3), (10, 5)):
        for rate in (0.1, 1.0):
            for procs in sorted({1, cores}):
                runs = [
                    measure(*cell, rate, procs, args.examples * procs, 100 + r) for r in range(args.repeats)
                ]
                prog = statistics.median(r[0] for r in runs)
                cand = statistics.median(r[1] for r in runs)
                rows.append((cell, rate, procs, prog, prog / procs, cand))
                print(f"  {cell} oracle {rate} procs {procs}: {prog:,.0f} programs/s", flush=True)
    lines = [
        f"progeval throughput, {date.today()}, {platform.processor() or platform.machine()}, "
        f"{cores} cores, Python {platform.python_version()}; median of {args.repeats} runs of "
        f"{args.examples:,} programs per process",
        "",
        "| length x nesting | oracle checks | processes | programs/s | per process | candidates/s |",
        "|---|---|---|---|---|---|",
    ]
    for cell, rate, procs, prog, per, cand in rows:
        lines.append(
            f"| {cell[0]} x {cell[1]} | {rate:.0%} | {procs} | {prog:,.0f} | {per:,.0f} | {cand:,.0f} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    Path(__file__).with_name("progeval_throughput.md").write_text(table)


if __name__ == "__main__":
    main()
