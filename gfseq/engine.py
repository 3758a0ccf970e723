"""The training engine shared by the tasks: one loop, checkpoints that resume exactly, data parallelism.

A task gives the engine three callables: ``batch(step, rank)`` (a pure function of the step, so a
resumed run sees the same data), ``loss(model, batch) -> (summed loss, token count)`` and
``evaluate(model) -> {metric: ..., ...}``, the name of the metric that decides early stopping and
whether higher is better, and, when it carries state from step to step (truncated BPTT),
``state()`` / ``load_state()`` so that a checkpoint holds that state too. The engine does the rest:
device placement, optional bf16 autocast on CUDA, warm-up + cosine learning rate, gradient
clipping, token-weighted losses (across ranks too), curriculum levels driven by validation
accuracy, early stopping, a progress bar, a metrics log (JSONL; TensorBoard when installed),
atomic checkpoints every N steps and on SIGINT/SIGTERM, and ``torch.distributed`` data parallelism
when launched by torchrun (rank 0 alone writes files).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from gfseq.config import ConfigError, TrainConfig

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be used (unreadable, not ours, or holding pickled objects)."""


class Interrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint."""

    def __init__(self, step: int, path: Path | None) -> None:
        super().__init__(f"interrupted at step {step}")
        self.step, self.path = step, path


@dataclass
class Dist:
    """Where this process stands in a torchrun launch (world 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    """Join the process group when torchrun started us (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, dist: Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device: {name!r} was asked for but torch sees no GPU")
        return torch.device(f"cuda:{dist.local_rank}" if name == "cuda" else name)
    return torch.device(name)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` at the last step."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, cfg: TrainConfig):
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    return opt, sched


# --------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


#: What every checkpoint written by ``train`` holds.
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "rng", "step", "best", "stale", "history", "done")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Tensors and plain data only (``weights_only=True``); anything else is refused."""
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: damaged or not a checkpoint (not a torch.save archive)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read: {err.strerror or err}") from None
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused: it holds pickled objects, not only tensors and plain data "
            "(checkpoints load with weights_only=True)"
        ) from None
    except Exception as err:  # a damaged archive fails in many ways inside torch.load
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"{path}: damaged or not a checkpoint ({first[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a gfseq checkpoint (format {CHECKPOINT_FORMAT} expected)")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {', '.join(missing)}")
    return state


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------- the loop


@dataclass
class Task:
    batch: Callable[[int, int], Any]  # (step, rank) -> batch on the device
    loss: Callable[[nn.Module, Any], tuple[torch.Tensor, torch.Tensor]]  # summed loss, token count
    evaluate: Callable[[nn.Module], dict[str, float]]  # holds ``metric``
    metric: str = "accuracy"
    higher_is_better: bool = True
    state: Callable[[], dict[str, torch.Tensor]] | None = None  # this rank's carried tensors
    load_state: Callable[[dict[str, torch.Tensor]], None] | None = None

    def improved(self, score: float, best: float | None) -> bool:
        if best is None:
            return True
        return score > best + 1e-4 if self.higher_is_better else score < best - 1e-4


@dataclass
class Outcome:
    step: int
    stopped_early: bool
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0  # training time, summed over every session of a resumed run

    @classmethod
    def from_checkpoint(cls, state: dict) -> Outcome:
        return cls(
            state["step"],
            bool(state.get("stopped_early", False)),
            list(state["history"]),
            float(state.get("seconds", 0.0)),
        )


class _StopFlag:
    """SIGINT/SIGTERM set a flag that the loop reads after each step (the main thread only)."""

    def __init__(self) -> None:
        self.raised: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if sys.platform != "win32" and _main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.raised = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def train(
    model: nn.Module,
    task: Task,
    cfg: TrainConfig,
    device: torch.device,
    folder: Path,
    dist: Dist,
    curriculum=None,
    resume: dict | None = None,
    extra_state: dict | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Outcome:
    """Train ``model`` for ``cfg.steps`` steps (fewer when early stopping fires); returns its outcome.

    ``folder`` receives checkpoint.pt and metrics.jsonl (rank 0). ``resume``: a loaded checkpoint of
    this same run. ``extra_state`` is stored in every checkpoint (the resolved config, the model shape).
    """
    model.to(device)
    net = model
    if dist.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    opt, sched = make_optimizer(model, cfg)
    step, best, stale, history, before = 0, None, 0, [], 0.0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        set_rng_state(resume["rng"])
        step, best, stale, history = resume["step"], resume["best"], resume["stale"], list(resume["history"])
        before = float(resume.get("seconds", 0.0))
        if task.load_state is not None:
            saved = resume.get("task_state") or []
            if len(saved) != dist.world:
                raise CheckpointError(
                    f"checkpoint: written by {len(saved)} process(es), resumed with {dist.world}; "
                    "resume with the same number of processes"
                )
            task.load_state({k: v.to(device) for k, v in saved[dist.rank].items()})
        if curriculum is not None and resume.get("curriculum") is not None:
            # in place: the task's batch function holds this same object
            curriculum.__dict__.update(type(curriculum).from_state_dict(resume["curriculum"]).__dict__)
    folder.mkdir(parents=True, exist_ok=True)
    log = None
    if dist.main:  # the log holds exactly the checkpoint's history: drop what a crash left after it
        log = (folder / "metrics.jsonl").open("w")
        log.writelines(json.dumps(entry) + "\n" for entry in history)
        log.flush()
    writer = _tensorboard(folder) if dist.main else None
    autocast = device.type == "cuda" and cfg.bf16
    started, tokens_seen, stopped_early = time.perf_counter(), 0, False

    def checkpoint(done: bool = False) -> Path | None:
        """Every rank calls this at the same step (the carried task state is gathered to rank 0)."""
        task_state = _gather_task_state(task, dist)
        if not dist.main:
            return None
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": rng_state(),
            "step": step,
            "best": best,
            "stale": stale,
            "history": history,
            "curriculum": curriculum.state_dict() if curriculum is not None else None,
            "task_state": task_state,
            "done": done,
            "stopped_early": stopped_early,
            "seconds": before + time.perf_counter() - started,
            **(extra_state or {}),
        }
        save_checkpoint(folder / "checkpoint.pt", state)
        return folder / "checkpoint.pt"

    def record(entry: dict) -> None:
        history.append(entry)
        if log is not None:
            log.write(json.dumps(entry) + "\n")
            log.flush()
        if writer is not None:
            for k, v in entry.items():
                if isinstance(v, int | float) and k != "step":
                    writer.add_scalar(k, v, entry["step"])

    bar = tqdm(
        total=cfg.steps, initial=step, desc=folder.name, unit="step", disable=not (progress and dist.main)
    )
    try:
        with _StopFlag() as flag:
            while step < cfg.steps and not stopped_early:
                net.train()
                batch = task.batch(step, dist.rank)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                    loss_sum, count = task.loss(net, batch)
                total = count.detach().clone().float()
                summed = loss_sum.detach().clone().float()  # for the log: every rank's loss, not ours
                if dist.world > 1:
                    torch.distributed.all_reduce(total)
                    torch.distributed.all_reduce(summed)
                loss = loss_sum * dist.world / total.clamp(min=1)  # token-weighted over every rank
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                opt.step()
                sched.step()
                step += 1
                tokens_seen += int(total.item())
                mean_loss = (summed / total.clamp(min=1)).item()
                bar.update(1)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    record(
                        {
                            "step": step,
                            "loss": mean_loss,
                            "lr": sched.get_last_lr()[0],
                            "tokens_per_s": tokens_seen / (time.perf_counter() - started),
                        }
                    )
                if step % cfg.eval_every == 0 or step == cfg.steps:
                    net.eval()
                    scores = task.evaluate(model)
                    level_up = curriculum.update(scores["accuracy"]) if curriculum is not None else False
                    if task.improved(scores[task.metric], best):
                        best, stale = scores[task.metric], 0
                    else:
                        stale += 1
                    stopped_early = bool(cfg.patience) and stale >= cfg.patience
                    level = curriculum.current if curriculum is not None else None
                    record(
                        {
                            "step": step,
                            "loss": mean_loss,
                            **{f"valid_{k}": v for k, v in scores.items()},
                            **(
                                {"level": list(level) if level else None, "level_up": level_up}
                                if curriculum is not None
                                else {}
                            ),
                        }
                    )
                    bar.set_postfix(loss=f"{mean_loss:.3f}", **{task.metric: f"{scores[task.metric]:.3f}"})
                if on_step is not None:
                    on_step(step)
                if _stop_requested(flag, dist, device):
                    raise Interrupted(step, checkpoint())
                if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                    checkpoint()
            checkpoint(done=True)
    finally:
        bar.close()
        if log is not None:
            log.close()
        if writer is not None:
            writer.close()
    return Outcome(step, stopped_early, history, before + time.perf_counter() - started)


def _stop_requested(flag: _StopFlag, dist: Dist, device: torch.device) -> bool:
    """Whether any rank was signalled: all ranks stop (and checkpoint) at the same step."""
    raised = flag.raised is not None
    if dist.world == 1:
        return raised
    t = torch.tensor([1.0 if raised else 0.0], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item())


def _gather_task_state(task: Task, dist: Dist) -> list[dict[str, torch.Tensor]] | None:
    """Every rank's carried task state, on CPU, in rank order (None when the task carries none)."""
    if task.state is None:
        return None
    mine = task.state()
    if dist.world == 1:
        return [{k: v.detach().cpu().clone() for k, v in mine.items()}]
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(dist.world)]
    for key in sorted(mine):
        parts = [torch.empty_like(mine[key]) for _ in range(dist.world)]
        torch.distributed.all_gather(parts, mine[key].contiguous())
        for rank, part in enumerate(parts):
            out[rank][key] = part.cpu()
    return out


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: tensorboard not installed
        return None
    return SummaryWriter(str(folder / "tensorboard"))
