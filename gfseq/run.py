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
    "data_dir": "data.dir",
    "allow_unverified": "data.allow_unverified",
    "download": "data.download",
}
#: Flags that may change when a run is resumed (where things are, not what is computed).
RESUME_FLAGS = ("device", "data_dir")
#: Flags that belong to one task only.
TASK_FLAGS = {"nest": "progeval", "length": "progeval", "data_dir": "enwik8",
              "allow_unverified": "enwik8", "download": "enwik8"}  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m gfseq.run", description=__doc__.splitlines()[0])
    p.add_argument(
        "--task",
        help="tasks/NAME.toml (progeval, enwik8) or a path to a .toml file; default progeval, "
        "or enwik8 with a paper preset",
    )
    p.add_argument("--nest", type=int, help="nesting of the target cell (data.nesting)")
    p.add_argument("--length", type=int, help="digits per number (data.length)")
    p.add_argument("--unit", help="tanh, gru or lstm (model.unit)")
    p.add_argument("--arch", help="comma-separated archs to compare, e.g. gf,stacked (model.archs)")
    p.add_argument("--params", type=int, help="parameter budget of every model (model.params)")
    p.add_argument("--steps", type=int, help="training steps per model (train.steps)")
    p.add_argument("--device", help="auto, cpu or cuda (train.device)")
    p.add_argument("--seed", type=int, help="model initialisation and batch order (train.seed)")
    p.add_argument("--data-dir", help="enwik8: folder holding enwik8 or enwik8.zip (data.dir)")
    p.add_argument(
        "--allow-unverified",
        action="store_const",
        const=True,
        help="enwik8: accept a file whose MD5 is not the published one (data.allow_unverified)",
    )
    p.add_argument(
        "--download",
        action="store_const",
        const=True,
        help="enwik8: fetch enwik8.zip when it is not in --data-dir (data.download)",
    )
    p.add_argument(
        "--preset",
        help="a model of the paper (lstm-gf, gru-stacked, ...: see --list-presets) or "
        "tasks/presets/NAME.toml applied over the task (paper)",
    )
    p.add_argument("--list-presets", action="store_true", help="print the paper presets and their sizes")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any key, e.g. train.lr=3e-4"
    )
    p.add_argument("--out", type=Path, help="run folder (default: runs/<task>-<time>-s<seed>)")
    p.add_argument(
        "--data-root",
        type=Path,
        help="progeval: where datasets are made and reused (default data/; on --resume, the run's own)",
    )
    p.add_argument("--resume", type=Path, help="continue the run in this folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def resolve(args: argparse.Namespace) -> RunConfig:
    from gfseq.nn.spec import PRESETS

    task = args.task or ("enwik8" if args.preset in PRESETS else "progeval")
    cfg = load_task(task)
    for flag, owner in TASK_FLAGS.items():
        if getattr(args, flag) is not None and cfg.task.name != owner:
            name = "--" + flag.replace("_", "-")
            raise ConfigError(f"{name}: applies to --task {owner}, not {cfg.task.name}")
    if args.preset in PRESETS and cfg.task.name != "enwik8":
        raise ConfigError(
            f"--preset: {args.preset!r} is one of the paper's enwik8 language models; "
            f"use it with --task enwik8 (or without --task), not {cfg.task.name}"
        )
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
    """A paper model's size (``lstm-gf``, ...) or the dotted keys of tasks/presets/NAME.toml."""
    import tomllib

    from gfseq.config import TASKS_DIR, _hint
    from gfseq.nn.spec import PRESETS

    if name in PRESETS:
        p = PRESETS[name]
        return {
            "model.unit": p.unit,
            "model.archs": [p.arch],
            "model.layers": p.num_layers,
            "model.hidden": p.hidden_size,
            "model.sizes": "fixed",
        }
    path = TASKS_DIR / "presets" / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in (TASKS_DIR / "presets").glob("*.toml")) + list(PRESETS)
        raise ConfigError(
            f"--preset: unknown preset {name!r}; known: {', '.join(known) or 'none'}" + _hint(name, known)
        )
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
    if args.data_root is None:  # where the run's data were made, unless told otherwise
        try:
            recorded = json.loads(path.read_text()).get("data_root")
        except (OSError, json.JSONDecodeError, AttributeError):
            recorded = None
        args.data_root = Path(recorded) if isinstance(recorded, str) else None
    moved = {FLAGS[f]: getattr(args, f) for f in RESUME_FLAGS if getattr(args, f) is not None}
    return with_overrides(cfg, moved) if moved else cfg  # where things are may change, not what runs


def list_presets() -> str:
    """The paper's models as byte-level LMs (one-hot input): name, size, parameters, reported BPC."""
    from gfseq.models.charlm import CharLMShape
    from gfseq.nn.spec import PAPER_LARGE, PRESETS

    lines = [
        "| preset | unit | arch | layers x hidden | parameters (byte LM) | paper's enwik8 BPC |",
        "|---|---|---|---|---|---|",
    ]
    for name, p in PRESETS.items():
        n = CharLMShape(p.unit, p.arch, p.num_layers, p.hidden_size).num_parameters()
        note = " (size: our reading, see gfseq/nn/spec.py)" if p is PAPER_LARGE else ""
        size = f"{p.num_layers} x {p.hidden_size}{note}"
        lines.append(f"| {name} | {p.unit} | {p.arch} | {size} | {n:,} | {p.reported_bpc} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, on_step=None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_presets:
        print(list_presets())
        return 0
    try:
        import torch

        from gfseq.engine import init_distributed, resolve_device

        if args.resume is not None:
            given = (
                [
                    f"--{f.replace('_', '-')}"
                    for f in FLAGS
                    if f not in RESUME_FLAGS and getattr(args, f) is not None
                ]
                + (["--set"] if args.set else [])
                + (["--preset"] if args.preset else [])
                + (["--task"] if args.task else [])
            )
            if given:
                raise ConfigError(f"--resume: the run's own config is used; drop {', '.join(given)}")
            cfg = _resume_config(args.resume, args)
            folder = args.resume
        else:
            cfg = resolve(args)
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            folder = args.out or Path("runs") / f"{cfg.task.name}-{stamp}-s{cfg.train.seed}"
        if args.data_root is None:
            args.data_root = Path("data")
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
        print(
            f"gfseq.run: interrupted at step {stop.step}{where}; "
            f"continue with: python -m gfseq.run --resume {args.resume or folder}",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:  # before training started (data generation) or while scoring
        print("gfseq.run: interrupted before a checkpoint was due; nothing new was kept", file=sys.stderr)
        return 130


def _job(cfg: RunConfig, args, device, dist: Dist):
    if cfg.task.name == "enwik8":
        from gfseq.enwik8_task import Enwik8Job

        return Enwik8Job(cfg, args, device, dist)
    from gfseq.progeval_task import ProgevalJob

    return ProgevalJob(cfg, args, device, dist)


def _run(cfg: RunConfig, folder: Path, device, dist: Dist, args, on_step) -> int:
    """Every task: data, then each arch trained (or resumed) in turn, scored, and the outputs written."""
    import torch

    from gfseq import engine, results

    started = time.perf_counter()
    job = _job(cfg, args, device, dist)
    model_shapes = job.shapes()  # fails early when the sizes cannot be matched
    _check_folder(folder, resuming=args.resume is not None)  # every rank, before any rank writes
    checkpoints = {}  # every checkpoint is checked before any work (data generation included)
    for arch, shape in model_shapes.items():
        path = folder / arch / "checkpoint.pt"
        if path.is_file():
            checkpoints[arch] = engine.load_checkpoint(path)
            _check_resumable(checkpoints[arch], arch, job.shape_dict(shape), path)
    if dist.world > 1:
        torch.distributed.barrier()
    if dist.main:  # the data first: an interrupted generation leaves no run folder behind
        job.prepare(progress=not args.quiet)
        fingerprint = job.data_info()["fingerprint"]
        if args.resume is not None:
            _check_same_data(folder, fingerprint)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if args.resume is None:
                results.write_json(
                    folder / "config.json",
                    {
                        "config": cfg.to_dict(),
                        "command": results.command_line(),
                        "data_fingerprint": fingerprint,
                        "data_root": str(args.data_root.resolve()),
                    },
                )
        except OSError as err:
            raise ConfigError(f"--out: cannot write {str(folder)!r}: {err.strerror or err}") from None
    if dist.world > 1:
        torch.distributed.barrier()
        if not dist.main:
            job.prepare(progress=False)

    metrics: dict[str, dict[str, dict]] = {}
    models_info, histories, prediction_rows = {}, {}, []
    for arch, shape in model_shapes.items():
        resume = checkpoints.get(arch)
        torch.manual_seed(cfg.train.seed)  # the same initialisation seed for every arch
        model = job.build(shape)
        if resume is not None and resume.get("done"):
            model.load_state_dict(resume["model"])
            model.to(device)
            outcome = engine.Outcome.from_checkpoint(resume)
            if dist.main:
                print(f"{arch}: finished before, {resume['step']} steps", file=sys.stderr)
        else:
            if dist.main:
                print(
                    f"{arch}: {job.describe(shape)}, {shape.num_parameters():,} parameters", file=sys.stderr
                )
            task, curriculum = job.task(model)
            outcome = engine.train(
                model,
                task,
                cfg.train,
                device,
                folder / arch,
                dist,
                curriculum=curriculum,
                resume=resume,
                extra_state={"config": cfg.to_dict(), "shape": job.shape_dict(shape), "arch": arch},
                progress=not args.quiet,
                on_step=on_step,
            )
        histories[arch] = outcome.history
        models_info[arch] = {
            **job.shape_dict(shape),
            "steps": outcome.step,
            "stopped_early": outcome.stopped_early,
            "train_seconds": round(outcome.seconds, 3),
        }
        if dist.main:
            metrics[arch], rows = job.score(model, arch, progress=not args.quiet)
            prediction_rows += rows
    if dist.main:
        _write_outputs(
            cfg,
            folder,
            device,
            job,
            metrics,
            models_info,
            histories,
            prediction_rows,
            time.perf_counter() - started,
            dist.world,
        )
    if dist.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0


def _check_same_data(folder: Path, fingerprint: str) -> None:
    """A resumed run must train on the data it started with."""
    try:
        started = json.loads((folder / "config.json").read_text()).get("data_fingerprint")
    except (OSError, json.JSONDecodeError, AttributeError):
        started = None
    if started is not None and started != fingerprint:
        raise CheckpointError(
            f"--resume: the data differ from the run's (fingerprint {started[:12]}..., now "
            f"{fingerprint[:12]}...); point --data-dir or --data-root at the data the run started with"
        )


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
    cfg, folder, device, job, metrics, models_info, histories, rows, seconds, processes
) -> None:
    from gfseq import results

    result = {
        "schema_version": 1,
        "task": {"name": cfg.task.name, "version": cfg.task.version},
        "data": job.data_info(),
        "models": models_info,
        "config": cfg.to_dict(),
        "seeds": job.seeds(),
        "metrics": metrics,
        "metric_info": job.metric_info,
        "examples": job.examples(),
        "wall_time_s": round(seconds, 3),
        "device": results.device_name(device),
        "processes": processes,
        "versions": results.versions(),
        "git_commit": results.git_commit(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": results.command_line(),
        "predictions": {"file": job.predictions_file, "sha256": "0" * 64},
    }
    results.validate(result)  # before anything is written: a failing result leaves no new file
    result["predictions"]["sha256"] = results.write_predictions(folder / job.predictions_file, rows)
    results.write_json(folder / "result.json", result)
    written = ["result.json", job.predictions_file, *job.report(metrics, histories, folder)]
    print(f"\nwrote {folder}/{', '.join(written)}")


if __name__ == "__main__":
    sys.exit(main())
