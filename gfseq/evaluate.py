"""Re-score a finished run's checkpoints: ``python -m gfseq.evaluate runs/<id> [--split test_extrapolate]``.

Loads every model's checkpoint (weights only), the run's dataset (checked against the fingerprint in
result.json when there is one), scores the split per cell (progeval) or in bits per byte (enwik8;
``--batch`` never changes the number, ``--streams`` may) and prints the table; ``--write`` also
saves eval-<split>.json and predictions-<split>.jsonl (bits-<split>.jsonl) in the run folder.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from gfseq.config import ConfigError, RunConfig
from gfseq.engine import CheckpointError, load_checkpoint
from progeval.config import ConfigError as DataConfigError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m gfseq.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a run folder written by python -m gfseq.run")
    p.add_argument("--split", default="test", choices=["valid", "test", "test_extrapolate"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--data-root", type=Path, default=Path("data"), help="progeval: where datasets are")
    p.add_argument("--data-dir", help="enwik8: folder holding enwik8 (default: the run's data.dir)")
    p.add_argument(
        "--streams", type=int, help="enwik8: read the split as this many streams (default: the run's)"
    )
    p.add_argument(
        "--write", action="store_true", help="save eval-<split>.json and predictions-<split>.jsonl"
    )
    return p


def evaluate(
    run: Path,
    split: str,
    batch: int,
    device: str,
    data_root: Path,
    data_dir: str | None = None,
    streams: int | None = None,
) -> tuple[dict, list[dict]]:
    import torch

    from gfseq.data.progeval import load_splits, prepare
    from gfseq.models.seq2seq import Seq2Seq, Seq2SeqShape
    from gfseq.progeval_task import score

    config_path = run / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{str(run)!r} is not a run folder (no config.json)")
    try:
        cfg = RunConfig.from_dict(json.loads(config_path.read_text())["config"])
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{config_path}: not a run config ({type(err).__name__}: {err})") from None
    if device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", device):
        raise ConfigError(f"--device: expected cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device: {device!r} was asked for but torch sees no GPU")
    states = {}
    for arch in cfg.model.archs:  # every checkpoint before any data work
        path = run / arch / "checkpoint.pt"
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (the run stopped before {arch} had a checkpoint)")
        states[arch] = load_checkpoint(path)
        if not isinstance(states[arch].get("shape"), dict):
            raise CheckpointError(f"{path}: not a gfseq.run checkpoint (no model shape)")
        if not states[arch]["done"]:
            print(
                f"gfseq.evaluate: warning: {arch} is unfinished (step {states[arch]['step']})",
                file=sys.stderr,
            )
    result_path = run / "result.json"
    recorded = json.loads(result_path.read_text()) if result_path.is_file() else None
    if cfg.task.name == "enwik8":
        return _enwik8(cfg, states, recorded, split, batch, device, data_dir, streams)
    folder = Path(recorded["data"]["path"]) if recorded and recorded["data"].get("path") else None
    if folder is None or not folder.is_dir():
        folder = prepare(cfg.data, data_root, progress=False)
    splits, manifest = load_splits(folder)
    if recorded and manifest["fingerprint"] != recorded["data"]["fingerprint"]:
        raise CheckpointError(f"{folder}: data fingerprint differs from the run's result.json")
    if not splits.get(split):
        raise ConfigError(f"--split: the run's dataset has no {split} programs")
    metrics, rows = {}, []
    for arch, state in states.items():
        shape = Seq2SeqShape(**{k: v for k, v in state["shape"].items() if k != "parameters"})
        model = Seq2Seq(shape)
        model.load_state_dict(state["model"])
        model.to(device)
        scores, arch_rows = score(model, splits.get(split, []), device, batch, split, arch)
        metrics[arch] = {split: scores.to_dict()}
        rows += arch_rows
    return metrics, rows


def _enwik8(cfg, states, recorded, split, batch, device, data_dir, streams):
    """Bits per byte of every model of an enwik8 run on ``split`` (the run's data, checked again)."""
    from gfseq.config import with_overrides
    from gfseq.engine import Dist
    from gfseq.enwik8_task import Enwik8Job
    from gfseq.models.charlm import CharLM, CharLMShape

    changes = {"eval.splits": [split], "eval.batch": batch, "eval.streams": streams or cfg.eval.streams}
    if data_dir:
        changes["data.dir"] = data_dir
    job = Enwik8Job(with_overrides(cfg, changes), None, device, Dist())
    job.prepare(progress=False)
    if recorded and job.data.manifest["fingerprint"] != recorded["data"]["fingerprint"]:
        raise CheckpointError(f"{job.data.path}: data fingerprint differs from the run's result.json")
    metrics, rows = {}, []
    for arch, state in states.items():
        model = CharLM(CharLMShape(**{k: v for k, v in state["shape"].items() if k != "parameters"}))
        model.load_state_dict(state["model"])
        metrics[arch], arch_rows = job.score(model.to(device), arch)
        rows += arch_rows
    return metrics, rows


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.batch < 1:
            raise ConfigError(f"--batch: expected an integer >= 1, got {args.batch}")
        if args.streams is not None and args.streams < 1:
            raise ConfigError(f"--streams: expected an integer >= 1, got {args.streams}")
        metrics, rows = evaluate(
            args.run, args.split, args.batch, args.device, args.data_root, args.data_dir, args.streams
        )
    except (ConfigError, CheckpointError, DataConfigError, OSError, json.JSONDecodeError) as err:
        print(f"gfseq.evaluate: error: {err}", file=sys.stderr)
        return 2
    from gfseq import results

    if rows and "bits" in rows[0]:  # enwik8
        from gfseq.enwik8_task import table

        print(table(metrics, [args.split]))
        if args.write:
            results.write_json(args.run / f"eval-{args.split}.json", metrics)
            results.write_predictions(args.run / f"bits-{args.split}.jsonl", rows)
            print(f"\nwrote {args.run}/eval-{args.split}.json and bits-{args.split}.jsonl")
        return 0
    n = len({r["id"] for r in rows})
    print(f"{args.split} ({n} programs): teacher-forced character accuracy / greedy exact match\n")
    print(results.table(metrics, args.split))
    if args.write:
        results.write_json(args.run / f"eval-{args.split}.json", metrics)
        results.write_predictions(args.run / f"predictions-{args.split}.jsonl", rows)
        print(f"\nwrote {args.run}/eval-{args.split}.json and predictions-{args.split}.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
