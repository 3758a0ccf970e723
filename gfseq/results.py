"""What a run leaves behind: result.json (checked against its JSON Schema), predictions, figures, tables."""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from progeval.store import sha256_file  # one definition for datasets and results

SCHEMA_PATH = Path(__file__).with_name("schemas") / "result.schema.json"
METRIC_INFO = {
    "char_accuracy": {
        "direction": "higher",
        "unit": "fraction of target characters (EOS included), teacher-forced",
    },
    "exact_match": {"direction": "higher", "unit": "fraction of programs, greedy decoding"},
}


class ResultError(ValueError):
    """A result does not satisfy the schema (the message names the first place that fails)."""


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("gfseq", "torch", "numpy", "datasets", "sympy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _finite(obj, where: str = "result") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ResultError(f"{where}: expected a finite number, got {obj}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite(v, f"{where}[{i}]")


from gfseq.models.sizing import PARAMETER_TOLERANCE  # noqa: E402 (one definition)


def validate(result: dict) -> None:
    """Raise ResultError unless ``result`` satisfies schemas/result.schema.json and the rules JSON
    Schema cannot state: finite numbers, counts that add up, metrics only for listed models, and
    parameter counts within 2 %."""
    import jsonschema

    _finite(result)
    schema = json.loads(SCHEMA_PATH.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(result), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "result" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in e.path)
        raise ResultError(f"{where}: {e.message}")
    if result["config"].get("task", {}).get("name") != result["task"]["name"]:
        raise ResultError(
            f"result.config.task.name: {result['config'].get('task', {}).get('name')!r} is not "
            f"result.task.name {result['task']['name']!r}"
        )
    models = result["models"]
    for key, model in models.items():
        if model["arch"] != key:
            raise ResultError(f"result.models.{key}: holds arch {model['arch']!r}, expected {key!r}")
    counts = [m["parameters"] for m in models.values()]
    matched = result["config"].get("model", {}).get("sizes", "matched") == "matched"
    if matched and max(counts) > (1 + PARAMETER_TOLERANCE) * min(counts):
        raise ResultError(
            f"result.models: parameter counts {counts} differ by more than {PARAMETER_TOLERANCE:.0%}"
        )
    for arch, splits in result["metrics"].items():
        if arch not in models:
            raise ResultError(f"result.metrics.{arch}: no such model in result.models")
        for split, scores in splits.items():
            where = f"result.metrics.{arch}.{split}"
            if result["task"]["name"] == "enwik8":
                _check_bits(where, scores, result["examples"].get(split))
                continue
            for name, c in [("overall", scores["overall"]), *scores["cells"].items()]:
                _check_counts(f"{where}.{name}", c)


def _check_bits(where: str, s: dict, scored: int | None) -> None:
    if abs(s["bpc"] - s["bits"] / s["bytes"]) > 1e-9 * max(1.0, s["bpc"]):
        raise ResultError(f"{where}.bpc: {s['bpc']} does not equal bits / bytes ({s['bits'] / s['bytes']})")
    if s["streams"] > s["bytes"]:
        raise ResultError(f"{where}.streams: {s['streams']} streams cannot hold {s['bytes']} bytes")
    if scored is None:
        raise ResultError(f"{where}: scored, but result.examples has no count for this split")
    if s["bytes"] != scored:
        raise ResultError(f"{where}.bytes: {s['bytes']} scored, but result.examples says {scored}")


def _check_counts(where: str, c: dict) -> None:
    if c["chars_correct"] > c["chars_total"] or c["exact"] > c["examples"]:
        raise ResultError(f"{where}: more right than counted ({c})")
    expect = {
        "char_accuracy": c["chars_correct"] / c["chars_total"] if c["chars_total"] else 0.0,
        "exact_match": c["exact"] / c["examples"] if c["examples"] else 0.0,
    }
    for k, v in expect.items():
        if abs(c[k] - v) > 1e-9:
            raise ResultError(f"{where}.{k}: {c[k]} does not equal its counts ({v})")


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def write_predictions(path: Path, rows: list[dict]) -> str:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    tmp.replace(path)
    return sha256_file(path)


def read_predictions(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _cells(metrics: dict) -> list[tuple[int, int]]:
    return sorted({tuple(int(v) for v in k.split("x")) for k in metrics["cells"]})


def table(metrics: dict[str, dict[str, dict]], split: str) -> str:
    """Cells (length x nesting) as rows; per arch teacher-forced char accuracy / greedy exact match."""
    archs = [a for a in metrics if split in metrics[a]]
    if not archs:
        return ""
    cells = sorted({c for a in archs for c in _cells(metrics[a][split])})
    head = ["cell (len x nest)"] + [f"{a}: char / exact" for a in archs]
    gap = "gf" in archs and "stacked" in archs
    if gap:
        head.append("gf - stacked (exact)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell_row(label: str, pick) -> str:
        vals = [pick(metrics[a][split]) for a in archs]
        parts = [label] + [f"{v['char_accuracy']:.3f} / {v['exact_match']:.3f}" if v else "-" for v in vals]
        if gap:
            g, s = pick(metrics["gf"][split]), pick(metrics["stacked"][split])
            parts.append(f"{g['exact_match'] - s['exact_match']:+.3f}" if g and s else "-")
        return "| " + " | ".join(parts) + " |"

    for length, nesting in cells:
        key = f"{length}x{nesting}"
        lines.append(cell_row(f"{length} x {nesting}", lambda m, k=key: m["cells"].get(k)))
    lines.append(cell_row("all", lambda m: m["overall"]))
    return "\n".join(lines)


def heatmap(metrics: dict[str, dict[str, dict]], split: str, path: Path) -> None:
    """Exact match per cell for each arch, and the GF - stacked gap, like the paper's figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    archs = [a for a in metrics if split in metrics[a]]
    cells = sorted({c for a in archs for c in _cells(metrics[a][split])})
    lengths = sorted({c[0] for c in cells})
    nests = sorted({c[1] for c in cells})

    def grid(arch: str):
        g = np.full((len(nests), len(lengths)), np.nan)
        for ln, ne in cells:
            v = metrics[arch][split]["cells"].get(f"{ln}x{ne}")
            if v:
                g[nests.index(ne), lengths.index(ln)] = v["exact_match"]
        return g

    panels = [(a, grid(a), "viridis", (0, 1)) for a in archs]
    if "gf" in archs and "stacked" in archs:
        gap = grid("gf") - grid("stacked")
        bound = max(0.05, float(np.nanmax(np.abs(gap))) if np.isfinite(gap).any() else 0.05)
        panels.append(("gf - stacked", gap, "RdBu", (-bound, bound)))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, (title, g, cmap, (lo, hi)) in zip(axes[0], panels, strict=True):
        im = ax.imshow(g, cmap=cmap, vmin=lo, vmax=hi, origin="lower")
        for (i, j), v in np.ndenumerate(g):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(lengths)), lengths)
        ax.set_yticks(range(len(nests)), nests)
        ax.set_xlabel("length")
        ax.set_ylabel("nesting")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"greedy exact match, {split}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves(histories: dict[str, list[dict]], path: Path, metric: str = "accuracy") -> None:
    """Training loss and the validation metric by step, per model (``metric``: accuracy or bpc)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    for arch, hist in histories.items():
        loss = [(h["step"], h["loss"]) for h in hist if "lr" in h]
        if loss:
            a.plot(*zip(*loss, strict=True), label=arch)
        if metric == "bpc":
            val = [(h["step"], h["valid_bpc"]) for h in hist if "valid_bpc" in h]
            if val:
                b.plot(*zip(*val, strict=True), label=arch)
            continue
        val = [
            (h["step"], h["valid_accuracy"], h["valid_exact_match"]) for h in hist if "valid_accuracy" in h
        ]
        if val:
            steps, acc, exact = zip(*val, strict=True)
            line = b.plot(steps, acc, label=f"{arch} char")[0]
            b.plot(steps, exact, "--", color=line.get_color(), label=f"{arch} exact")
    a.set_xlabel("step")
    a.set_ylabel("training loss (nats / " + ("byte)" if metric == "bpc" else "char)"))
    a.set_yscale("log")
    b.set_xlabel("step")
    if metric == "bpc":
        b.set_ylabel("validation bits per byte (lower is better)")
    else:
        b.set_ylabel("validation accuracy")
        b.set_ylim(0, 1)
    for ax in (a, b):
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def command_line() -> str:
    return " ".join(["python -m gfseq.run", *sys.argv[1:]])
