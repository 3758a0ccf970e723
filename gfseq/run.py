"""The main job: ``python -m gfseq.run --task progeval --nest 3``.

Generates (or reuses) a curriculum dataset, trains a gated-feedback encoder-decoder and its stacked
baseline at the same parameter count on the same data, seeds and number of steps, scores both per
difficulty cell and writes runs/<id>/: result.json, predictions.jsonl, heatmap.png, curves.png, and per
model a checkpoint and a metrics log. ``--resume runs/<id>`` continues an interrupted run exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from gfseq.config import ConfigError, RunConfig, load_task, parse_value, with_overrides
from gfseq.engine import CheckpointError, Dist, Interrupted
from gfseq.results import ResultError
from progeval.config import ConfigError as DataConfigError

#: Flags and the config keys they set.
FLAGS = {
    "nest": "data.nesting",
    "length": "data.length",
    "unit": "model.unit",
    "arch": "model.archs",
    "params": "model.params",
    "steps": "train.steps",
    "device": "train.device",
    "seed": "train.seed",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m gfseq.run", description=__doc__.splitlines()[0])
    p.add_argument("--task", default="progeval", help="tasks/NAME.toml or a path to a .toml file")
    p.add_argument("--nest", type=int, help="nesting of the target cell (data.nesting)")
    p.add_argument("--length", type=int, help="digits per number (data.length)")
    p.add_argument("--unit", help="tanh, gru or lstm (model.unit)")
    p.add_argument("--arch", help="comma-separated archs to compare, e.g. gf,stacked (model.archs)")
    p.add_argument("--params", type=int, help="parameter budget of every model (model.params)")
    p.add_argument("--steps", type=int, help="training steps per model (train.steps)")
    p.add_argument("--device", help="auto, cpu or cuda (train.device)")
    p.add_argument("--seed", type=int, help="model initialisation and batch order (train.seed)")
    p.add_argument("--preset", help="tasks/presets/NAME.toml applied over the task, e.g. paper")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any key, e.g. train.lr=3e-4"
    )
    p.add_argument("--out", type=Path, help="run folder (default: runs/<task>-<time>-s<seed>)")
    p.add_argument("--data-root", type=Path, default=Path("data"), help="where datasets are made and reused")
    p.add_argument("--resume", type=Path, help="continue the run in this folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def resolve(args: argparse.Namespace) -> RunConfig:
    cfg = load_task(args.task)
    if args.preset:
        cfg = with_overrides(cfg, preset_overrides(args.preset))
    overrides = {}
    for flag, key in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value.split(",") if flag == "arch" else value
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        overrides[key.strip()] = parse_value(value.strip())
    return with_overrides(cfg, overrides)


def preset_overrides(name: str) -> dict:
    """The dotted keys of tasks/presets/NAME.toml."""
    import tomllib

    from gfseq.config import TASKS_DIR

    path = TASKS_DIR / "presets" / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in (TASKS_DIR / "presets").glob("*.toml"))
        raise ConfigError(f"--preset: unknown preset {name!r}; known: {', '.join(known) or 'none'}")
    raw = tomllib.loads(path.read_text())
    return {f"{section}.{key}": value for section, table in raw.items() for key, value in table.items()}


def _resume_config(folder: Path, args: argparse.Namespace) -> RunConfig:
    path = folder / "config.json"
    if not folder.is_dir() or not path.is_file():
        raise CheckpointError(f"--resume: {str(folder)!r} is not a run folder (no config.json)")
    try:
        cfg = RunConfig.from_dict(json.loads(path.read_text())["config"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"--resume: cannot read {str(path)!r}: {type(err).__name__}: {err}") from None
    except ConfigError as err:
        raise CheckpointError(
            f"--resume: {str(path)!r} holds a config that no longer checks: {err}"
        ) from None
    if args.device:  # the one thing that may change on resume
        cfg = with_overrides(cfg, {"train.device": args.device})
    return cfg


def main(argv: list[str] | None = None, on_step=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import torch

        from gfseq.engine import init_distributed, resolve_device

        if args.resume is not None:
            given = (
                [f"--{f}" for f in FLAGS if f != "device" and getattr(args, f) is not None]
                + (["--set"] if args.set else [])
                + (["--preset"] if args.preset else [])
            )
            if given:
                raise ConfigError(f"--resume: the run's own config is used; drop {', '.join(given)}")
            cfg = _resume_config(args.resume, args)
            folder = args.resume
        else:
            cfg = resolve(args)
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            folder = args.out or Path("runs") / f"{cfg.task.name}-{stamp}-s{cfg.train.seed}"
        kind = (
            "cuda"
            if cfg.train.device.startswith("cuda")
            or (cfg.train.device == "auto" and torch.cuda.is_available())
            else "cpu"
        )
        if kind == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"--device: {cfg.train.device!r} was asked for but torch sees no GPU")
        dist = init_distributed(kind)
        device = resolve_device(cfg.train.device, dist)
        return _run(cfg, folder, device, dist, args, on_step)
    except (ConfigError, CheckpointError, DataConfigError, ResultError) as err:
        print(f"gfseq.run: error: {err}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        where = f"; checkpoint {stop.path}" if stop.path else ""
        data = f" --data-root {args.data_root}" if args.data_root != Path("data") else ""
        print(
            f"gfseq.run: interrupted at step {stop.step}{where}; "
            f"continue with: python -m gfseq.run --resume {args.resume or folder}{data}",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:  # before training started (data generation) or while scoring
        print("gfseq.run: interrupted before a checkpoint was due; nothing new was kept", file=sys.stderr)
        return 130


def _run(cfg: RunConfig, folder: Path, device, dist: Dist, args, on_step) -> int:
    import torch

    from gfseq import engine, results
    from gfseq.data.progeval import load_splits, prepare
    from gfseq.models.seq2seq import Seq2Seq
    from gfseq.progeval_task import make_task, score, shape_dict, shapes

    started = time.perf_counter()
    model_shapes = shapes(cfg)  # fails early when the sizes cannot be matched
    _check_folder(folder, resuming=args.resume is not None)  # every rank, before any rank writes
    if args.data_root.exists() and not args.data_root.is_dir():
        raise ConfigError(f"--data-root: {str(args.data_root)!r} is a file, not a folder")
    if dist.world > 1:
        torch.distributed.barrier()
    if dist.main:  # the data first: an interrupted generation leaves no run folder behind
        data_folder = prepare(cfg.data, args.data_root, progress=not args.quiet)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if args.resume is None:
                results.write_json(
                    folder / "config.json", {"config": cfg.to_dict(), "command": results.command_line()}
                )
        except OSError as err:
            raise ConfigError(f"--out: cannot write {str(folder)!r}: {err.strerror or err}") from None
    if dist.world > 1:
        torch.distributed.barrier()
        if not dist.main:
            data_folder = prepare(cfg.data, args.data_root, progress=False)
    splits, manifest = load_splits(data_folder)
    from progeval import CurriculumState

    checkpoints = {}  # every checkpoint is checked before any work
    for arch, shape in model_shapes.items():
        path = folder / arch / "checkpoint.pt"
        if path.is_file():
            checkpoints[arch] = engine.load_checkpoint(path)
            _check_resumable(checkpoints[arch], arch, shape_dict(shape), path)
    metrics: dict[str, dict[str, dict]] = {}
    models_info, histories, prediction_rows = {}, {}, []
    for arch, shape in model_shapes.items():
        arch_folder = folder / arch
        resume = checkpoints.get(arch)
        torch.manual_seed(cfg.train.seed)  # the same initialisation seed for every arch
        model = Seq2Seq(shape)
        curriculum = CurriculumState(
            cfg.data.curriculum,
            cfg.data.length,
            cfg.data.nesting,
            threshold=cfg.data.level_threshold,
            patience=cfg.data.level_patience,
        )
        task = make_task(cfg, splits, curriculum, device, dist)
        if resume is not None and resume.get("done"):
            model.load_state_dict(resume["model"])
            model.to(device)
            outcome = engine.Outcome.from_checkpoint(resume)
            if dist.main:
                print(f"{arch}: finished before, {resume['step']} steps", file=sys.stderr)
        else:
            if dist.main:
                print(
                    f"{arch}: {shape.layers} x {shape.hidden} {shape.unit}, "
                    f"{shape.num_parameters():,} parameters",
                    file=sys.stderr,
                )
            outcome = engine.train(
                model,
                task,
                cfg.train,
                device,
                arch_folder,
                dist,
                curriculum=curriculum,
                resume=resume,
                extra_state={"config": cfg.to_dict(), "shape": shape_dict(shape), "arch": arch},
                progress=not args.quiet,
                on_step=on_step,
            )
        histories[arch] = outcome.history
        models_info[arch] = {
            **shape_dict(shape),
            "steps": outcome.step,
            "stopped_early": outcome.stopped_early,
            "train_seconds": round(outcome.seconds, 3),
        }
        if dist.main:
            metrics[arch] = {}
            for split in cfg.eval.splits:
                scores, rows = score(model, splits.get(split, []), device, cfg.eval.batch, split, arch)
                if rows:
                    metrics[arch][split] = scores.to_dict()
                    prediction_rows += rows
    if dist.main:
        manifest = {**manifest, "_path": str(Path(data_folder).resolve())}
        _write_outputs(
            cfg,
            folder,
            device,
            manifest,
            metrics,
            models_info,
            histories,
            prediction_rows,
            {s: len(splits.get(s, [])) for s in cfg.eval.splits},
            time.perf_counter() - started,
            dist.world,
        )
    if dist.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0


def _check_resumable(state: dict, arch: str, shape: dict, path: Path) -> None:
    """A checkpoint must be this run's model: same arch and shape (a copied file is refused)."""
    if state.get("arch") != arch or state.get("shape") != shape:
        raise CheckpointError(
            f"{path}: holds {state.get('arch')!r} {state.get('shape')}, but this run's {arch!r} is {shape}"
        )


def _check_folder(folder: Path, resuming: bool) -> None:
    if resuming:
        return
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe != folder and not probe.is_dir():
        raise ConfigError(f"--out: {str(probe)!r} is a file, not a folder")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"--out: {str(folder)!r} exists and is not empty; choose another or --resume it")


def _write_outputs(
    cfg, folder, device, manifest, metrics, models_info, histories, rows, examples, seconds, processes
) -> None:
    from gfseq import results

    digest = results.write_predictions(folder / "predictions.jsonl", rows)
    result = {
        "schema_version": 1,
        "task": {"name": cfg.task.name, "version": cfg.task.version},
        "data": {
            "fingerprint": manifest["fingerprint"],
            "generator_version": str(manifest.get("generator_version", "unknown")),
            "config": cfg.data.__dict__,
            "path": str(manifest.get("_path", "")),
        },
        "models": models_info,
        "config": cfg.to_dict(),
        "seeds": {"data": cfg.data.seed, "train": cfg.train.seed},
        "metrics": metrics,
        "metric_info": results.METRIC_INFO,
        "examples": examples,
        "wall_time_s": round(seconds, 3),
        "device": results.device_name(device),
        "processes": processes,
        "versions": results.versions(),
        "git_commit": results.git_commit(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": results.command_line(),
        "predictions": {"file": "predictions.jsonl", "sha256": digest},
    }
    results.validate(result)
    results.write_json(folder / "result.json", result)
    written = ["result.json", "predictions.jsonl"]
    scored = [s for s in cfg.eval.splits if any(s in m for m in metrics.values())]
    if scored:
        results.heatmap(metrics, scored[0], folder / "heatmap.png")
        written.append("heatmap.png")
    results.curves(histories, folder / "curves.png")
    written.append("curves.png")
    for s in cfg.eval.splits:
        text = results.table(metrics, s)
        if text:
            print(f"\n{s} ({examples[s]} programs): teacher-forced character accuracy / greedy exact match\n")
            print(text)
    print(f"\nwrote {folder}/{', '.join(written)}")


if __name__ == "__main__":
    sys.exit(main())
