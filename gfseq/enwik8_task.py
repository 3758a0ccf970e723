"""Character-level language modelling on enwik8: truncated-BPTT training and bits per byte.

Training (the standard layout, as in Mikolov's and Zaremba's PTB code): the train split is cut into
``train.batch`` contiguous streams of equal length; step ``s`` reads window ``s mod W`` of every stream
(``data.window`` bytes), so a batch is a pure function of the step. The state of every layer is
carried from one window into the next and detached there; it starts at zero with each pass over the
data. Under torchrun each rank owns ``batch / world`` of the streams; checkpoints hold every rank's
carried state, so a resumed run continues exactly.

Evaluation: bits per byte, ``sum(-log2 p(byte | everything before it in its stream)) / bytes``
over every byte of the split, summed in float64. A split is read as ``eval.streams`` contiguous
streams (1, the standard, is one stream over the whole split), each starting from a zero state and
the byte before it; ``eval.batch`` only says how many streams run side by side, so the number does
not depend on it. The split's first byte is predicted from the last byte of the split before it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gfseq.config import ConfigError, RunConfig
from gfseq.engine import Dist, Task
from gfseq.models.charlm import CharLM, CharLMShape, detach_state, matched_lm_shape
from gfseq.models.sizing import require_matched
from gfseq.nn.spec import PAPER_NOGATE, PAPER_TABLE1

METRIC_INFO = {
    "bpc": {
        "direction": "lower",
        "unit": "bits per byte (log base 2; enwik8's characters are bytes), mean over the split's bytes",
    },
}


def paper_preset(unit: str, arch: str):
    name = f"{unit}-{arch}"
    presets = {**PAPER_TABLE1, PAPER_NOGATE.name: PAPER_NOGATE}
    if name not in presets:
        raise ConfigError(
            f'model.sizes: the paper\'s Table 1 has no {name!r}; use sizes = "fixed" or "matched"'
        )
    return presets[name]


def shapes(cfg: RunConfig) -> dict[str, CharLMShape]:
    """Each arch's language-model shape under ``model.sizes`` (matched, fixed or paper)."""
    m = cfg.model
    if m.sizes == "paper":
        return {
            arch: CharLMShape(m.unit, arch, p.num_layers, p.hidden_size, m.embedding, dropout=m.dropout)
            for arch in m.archs
            for p in [paper_preset(m.unit, arch)]
        }
    if m.sizes == "fixed":
        return {
            arch: CharLMShape(
                m.unit, arch, 1 if arch == "single" else m.layers, m.hidden, m.embedding, dropout=m.dropout
            )
            for arch in m.archs
        }
    base_arch = "stacked" if "stacked" in m.archs else m.archs[-1]
    base = CharLMShape(m.unit, base_arch, 1 if base_arch == "single" else m.layers, m.hidden, m.embedding)
    budget = m.params or base.num_parameters()
    return require_matched(
        {arch: matched_lm_shape(m.unit, arch, m.layers, m.embedding, budget, m.dropout) for arch in m.archs}
    )


def shape_dict(shape: CharLMShape) -> dict:
    return {**asdict(shape), "parameters": shape.num_parameters()}


# ------------------------------------------------------------------------------------------ training


class TrainStreams:
    """``streams`` contiguous streams over ``data``; window ``w`` of each, by step."""

    def __init__(self, data: np.ndarray, streams: int, window: int) -> None:
        self.data, self.window = data, window
        self.length, self.windows = self.layout(len(data), streams, window)
        self.starts = np.arange(streams, dtype=np.int64) * self.length
        self.offsets = np.arange(window + 1, dtype=np.int64)

    @staticmethod
    def layout(n: int, streams: int, window: int) -> tuple[int, int]:
        """(bytes per stream, windows per pass) of ``streams`` streams over ``n`` bytes."""
        length = n // streams
        windows = (length - 1) // window
        if windows < 1:
            raise ConfigError(
                f"train.batch: {streams} streams of {n:,} bytes are {length} bytes each, "
                f"shorter than one window of data.window = {window} bytes"
            )
        return length, windows

    def batch(self, step: int, rows: slice) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(inputs, targets, first window of a pass) for the streams ``rows``: (n, window) each."""
        w = step % self.windows
        idx = self.starts[rows, None] + w * self.window + self.offsets
        chunk = torch.from_numpy(self.data[idx].astype(np.int64))
        return chunk[:, :-1], chunk[:, 1:], w == 0


def zero_state(model: CharLM, rows: int, device) -> dict[str, torch.Tensor]:
    s = model.shape
    h = torch.zeros(s.layers, rows, s.hidden, device=device)
    return {"h": h, "c": torch.zeros_like(h)} if s.unit == "lstm" else {"h": h}


def as_stack_state(state: dict[str, torch.Tensor]):
    return (state["h"], state["c"]) if "c" in state else state["h"]


def from_stack_state(state) -> dict[str, torch.Tensor]:
    if isinstance(state, tuple):
        return {"h": state[0], "c": state[1]}
    return {"h": state}


def make_task(cfg: RunConfig, model: CharLM, data, device, dist: Dist) -> Task:
    """The engine's view of enwik8: windows by step, carried detached state, validation BPC."""
    per_rank = cfg.train.batch // dist.world
    if per_rank < 1:
        raise ConfigError(
            f"train.batch: {cfg.train.batch} streams cannot be shared by {dist.world} processes"
        )
    streams = TrainStreams(data.split("train"), per_rank * dist.world, cfg.data.window)
    rows = slice(dist.rank * per_rank, (dist.rank + 1) * per_rank)
    valid = data.split("valid")[: cfg.data.valid_bytes]
    valid_context = data.context("valid")
    carried = {"state": zero_state(model, per_rank, device)}

    def batch(step: int, rank: int):
        x, y, first = streams.batch(step, rows)
        return x.to(device), y.to(device), first

    def loss(net, b):
        x, y, first = b
        if first:  # a new pass over the data starts from zero, like the first
            carried["state"] = zero_state(model, per_rank, device)
        logits, state = net(x, as_stack_state(carried["state"]))
        carried["state"] = from_stack_state(detach_state(state))
        summed = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum")
        return summed, torch.tensor(y.numel(), device=y.device)

    def evaluate(m):
        r = stream_bits(
            m, valid, valid_context, cfg.data.valid_streams, cfg.eval.batch, cfg.data.window, device
        )
        return {"bpc": r.bpc}

    def state():
        return carried["state"]

    def load_state(saved):
        carried["state"] = dict(saved)

    task = Task(
        batch, loss, evaluate, metric="bpc", higher_is_better=False, state=state, load_state=load_state
    )
    task.carried = carried  # for tests: the state the next window starts from
    return task


# ---------------------------------------------------------------------------------------- evaluation


@dataclass
class Bits:
    """Per stream: [start, end) of the scored bytes and the bits spent on them."""

    starts: list[int]
    ends: list[int]
    bits: list[float]

    @property
    def bytes(self) -> int:
        return sum(e - s for s, e in zip(self.starts, self.ends, strict=True))

    @property
    def total_bits(self) -> float:
        return math.fsum(self.bits)

    @property
    def bpc(self) -> float:
        return self.total_bits / self.bytes

    def rows(self, **extra) -> list[dict]:
        return [
            {**extra, "stream": i, "start": s, "end": e, "bits": b}
            for i, (s, e, b) in enumerate(zip(self.starts, self.ends, self.bits, strict=True))
        ]


@torch.no_grad()
def stream_bits(
    model: CharLM,
    targets: np.ndarray,
    context: int | None,
    streams: int,
    batch: int,
    window: int,
    device,
    progress: bool = False,
    desc: str = "bpc",
) -> Bits:
    """Bits spent on every byte of ``targets``, read as ``streams`` contiguous streams, ``batch`` at a
    time, ``window`` bytes per forward call, the state carried between calls. ``context`` is the
    byte before ``targets[0]`` (None: the first byte is not scored, having nothing to follow)."""
    from tqdm import tqdm

    targets = np.asarray(targets)
    if context is None:
        inputs, targets = targets[:-1], targets[1:]
    else:
        inputs = np.concatenate([np.array([context], dtype=targets.dtype), targets[:-1]])
    n = len(targets)
    if n < 1:
        raise ValueError("stream_bits: nothing to score")
    streams = min(streams, n)  # exactly this many streams, of lengths differing by at most one byte
    starts = np.arange(streams, dtype=np.int64) * n // streams
    ends = np.arange(1, streams + 1, dtype=np.int64) * n // streams
    nats = np.zeros(len(starts), dtype=np.float64)
    was_training = model.training
    model.eval()
    total_windows = sum(
        -(-int(ends[g : g + batch].max() - starts[g]) // window) for g in range(0, len(starts), batch)
    )
    bar = tqdm(total=total_windows, desc=desc, unit="window", disable=not progress, leave=False)
    try:
        for g in range(0, len(starts), batch):
            s, e = starts[g : g + batch], ends[g : g + batch]
            longest = int((e - s).max())
            state = None
            for off in range(0, longest, window):
                idx = s[:, None] + off + np.arange(min(window, longest - off))
                inside = idx < e[:, None]
                idx = np.minimum(idx, n - 1)
                x = torch.from_numpy(inputs[idx].astype(np.int64)).to(device)
                y = torch.from_numpy(targets[idx].astype(np.int64)).to(device)
                logits, state = model(x, state)
                nll = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none").double().cpu()
                nats[g : g + batch] += (nll * torch.from_numpy(inside)).sum(1).numpy()
                bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    return Bits(starts.tolist(), ends.tolist(), (nats / math.log(2)).tolist())


# ------------------------------------------------------------------------------------------ the job


class Enwik8Job:
    """What ``gfseq.run`` needs from the enwik8 task (see gfseq.run._run)."""

    predictions_file = "bits.jsonl"  # per model, split and stream: the bytes scored and the bits spent
    metric_info = METRIC_INFO

    def __init__(self, cfg: RunConfig, args, device, dist: Dist) -> None:
        self.cfg, self.args, self.device, self.dist = cfg, args, device, dist
        from gfseq.data.enwik8 import SPLITS

        # the stream layout is checked before any file is written
        per_rank = cfg.train.batch // dist.world
        if per_rank < 1:
            raise ConfigError(
                f"train.batch: {cfg.train.batch} streams cannot be shared by {dist.world} processes"
            )
        TrainStreams.layout(SPLITS["train"][1], per_rank * dist.world, cfg.data.window)

    def shapes(self) -> dict[str, CharLMShape]:
        return shapes(self.cfg)

    shape_dict = staticmethod(shape_dict)

    @staticmethod
    def describe(shape: CharLMShape) -> str:
        inputs = f"{shape.embedding}-feature embedding" if shape.embedding else "one-hot bytes"
        return f"{shape.layers} x {shape.hidden} {shape.unit} ({shape.arch}) over {inputs}"

    def prepare(self, progress: bool) -> None:
        from gfseq.data import enwik8

        d = self.cfg.data
        try:
            self.data = enwik8.prepare(d.dir, d.allow_unverified, d.download, progress=progress)
        except enwik8.Enwik8Error as err:
            raise ConfigError(str(err)) from None  # the message starts with the flag

    def build(self, shape: CharLMShape) -> CharLM:
        return CharLM(shape)

    def task(self, model: CharLM):
        return make_task(self.cfg, model, self.data, self.device, self.dist), None

    def score(self, model: CharLM, arch: str, progress: bool = False) -> tuple[dict, list[dict]]:
        out, rows = {}, []
        e = self.cfg.eval
        for split in e.splits:
            bits = stream_bits(
                model,
                self.data.split(split),
                self.data.context(split),
                e.streams,
                e.batch,
                self.cfg.data.window,
                self.device,
                progress=progress,
                desc=f"{arch} {split} bpc",
            )
            out[split] = {
                "bpc": bits.bpc,
                "bits": bits.total_bits,
                "bytes": bits.bytes,
                "streams": len(bits.starts),
            }
            rows += bits.rows(arch=arch, split=split)
        return out, rows

    def data_info(self) -> dict:
        m = self.data.manifest
        return {
            "fingerprint": m["fingerprint"],
            "generator_version": f"enwik8 (MD5 {m['md5']})",
            "config": self.cfg.data.__dict__,
            "path": m["file"],
            "verified": m["verified"],
            "splits": m["splits"],
        }

    def seeds(self) -> dict:
        return {"train": self.cfg.train.seed}

    def examples(self) -> dict:
        return {s: len(self.data.split(s)) for s in self.cfg.eval.splits}

    def report(self, metrics: dict, histories: dict, folder) -> list[str]:
        from gfseq import results

        print(f"\n{table(metrics, self.cfg.eval.splits)}")
        results.curves(histories, folder / "curves.png", metric="bpc")
        return ["curves.png"]


def table(metrics: dict[str, dict[str, dict]], splits) -> str:
    """Models as rows, BPC per split (lower is better)."""
    head = ["model", *(f"{s} BPC (lower is better)" for s in splits)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arch, by_split in metrics.items():
        cells = [f"{by_split[s]['bpc']:.4f}" if s in by_split else "-" for s in splits]
        lines.append("| " + " | ".join([arch, *cells]) + " |")
    return "\n".join(lines)
