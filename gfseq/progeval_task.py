"""The program-evaluation task: data, model shapes at equal parameter count, training, scoring."""

from __future__ import annotations

from dataclasses import asdict

import torch

from gfseq.config import ConfigError, RunConfig
from gfseq.data.progeval import Example, TrainSampler, batches_in_order, collate
from gfseq.engine import Dist, Task
from gfseq.metrics import Scores, greedy_rows, is_exact, teacher_forced
from gfseq.models.seq2seq import Seq2Seq, Seq2SeqShape, matched_shape
from gfseq.models.sizing import require_matched
from gfseq.results import METRIC_INFO


def shapes(cfg: RunConfig) -> dict[str, Seq2SeqShape]:
    """Each arch's model shape, all with the parameter count of the baseline (or ``model.params``).

    The baseline is ``stacked`` when compared, else the last arch listed, at ``model.hidden``.
    """
    m = cfg.model
    base_arch = "stacked" if "stacked" in m.archs else m.archs[-1]
    base_layers = 1 if base_arch == "single" else m.layers
    budget = m.params or Seq2SeqShape(m.unit, base_arch, base_layers, m.hidden, m.embedding).num_parameters()
    return require_matched(
        {arch: matched_shape(m.unit, arch, m.layers, m.embedding, budget, m.dropout) for arch in m.archs}
    )


def score(model: Seq2Seq, examples: list[Example], device, batch_size: int, split: str, arch: str):
    """Scores per cell and one prediction row per example (teacher-forced counts and greedy output)."""
    scores, rows = Scores(), []
    if not examples:
        return scores, rows
    max_len = max(len(ex.target) for ex in examples) + 2
    model.eval()
    with torch.no_grad():
        for chunk in batches_in_order(examples, batch_size):
            b = collate(chunk).to(device)
            logits, _ = model(b.src, b.src_lengths, b.tgt_in)
            right, counted = teacher_forced(logits, b.tgt_out)
            decoded = greedy_rows(model.greedy(b.src, b.src_lengths, max_len))
            for ex, r, n, (pred, eos) in zip(chunk, right, counted, decoded, strict=True):
                scores.add(ex.cell, r, n, is_exact(pred, eos, ex.target))
                rows.append(
                    {
                        "split": split,
                        "arch": arch,
                        "id": ex.id,
                        "length": ex.length,
                        "nesting": ex.nesting,
                        "target": ex.target,
                        "prediction": pred,
                        "eos": eos,
                        "chars_correct": r,
                        "chars_total": n,
                    }
                )
    return scores, rows


def make_task(cfg: RunConfig, splits: dict[str, list[Example]], curriculum, device, dist: Dist) -> Task:
    sampler = TrainSampler(splits["train"], cfg.train.seed)
    valid = splits["valid"][: cfg.train.eval_examples]
    per_rank = max(1, cfg.train.batch // dist.world)

    def batch(step: int, rank: int):
        return collate(sampler.batch(curriculum, step, per_rank, rank)).to(device)

    def loss(net, b):
        logits, _ = net(b.src, b.src_lengths, b.tgt_in)
        summed = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), b.tgt_out.flatten(), ignore_index=0, reduction="sum"
        )
        return summed, (b.tgt_out != 0).sum()

    def evaluate(model):
        s, _ = score(model, valid, device, cfg.eval.batch, "valid", "")
        total = s.overall()
        return {"accuracy": total.char_accuracy, "exact_match": total.exact_match}

    return Task(batch, loss, evaluate)


def shape_dict(shape: Seq2SeqShape) -> dict:
    return {**asdict(shape), "parameters": shape.num_parameters()}


class ProgevalJob:
    """What ``gfseq.run`` needs from the program-evaluation task (see gfseq.run._run)."""

    predictions_file = "predictions.jsonl"

    def __init__(self, cfg: RunConfig, args, device, dist: Dist) -> None:
        self.cfg, self.args, self.device, self.dist = cfg, args, device, dist
        if cfg.model.sizes != "matched":
            raise ConfigError(
                f"model.sizes: progeval compares models at one parameter count, got {cfg.model.sizes!r}"
            )
        if cfg.model.embedding < 1:
            raise ConfigError("model.embedding: progeval needs an embedding of >= 1 features, got 0")

    metric_info = METRIC_INFO

    def shapes(self) -> dict[str, Seq2SeqShape]:
        return shapes(self.cfg)

    shape_dict = staticmethod(shape_dict)

    @staticmethod
    def describe(shape: Seq2SeqShape) -> str:
        return f"{shape.layers} x {shape.hidden} {shape.unit} encoder and decoder"

    def prepare(self, progress: bool) -> None:
        from gfseq.data.progeval import load_splits, prepare

        root = self.args.data_root
        if root.exists() and not root.is_dir():
            raise ConfigError(f"--data-root: {str(root)!r} is a file, not a folder")
        self.folder = prepare(self.cfg.data, root, progress=progress)
        self.splits, self.manifest = load_splits(self.folder)

    def build(self, shape: Seq2SeqShape) -> Seq2Seq:
        return Seq2Seq(shape)

    def task(self, model):
        from progeval import CurriculumState

        d = self.cfg.data
        curriculum = CurriculumState(
            d.curriculum, d.length, d.nesting, threshold=d.level_threshold, patience=d.level_patience
        )
        return make_task(self.cfg, self.splits, curriculum, self.device, self.dist), curriculum

    def score(self, model, arch: str, progress: bool = False) -> tuple[dict, list[dict]]:
        out, rows = {}, []
        for split in self.cfg.eval.splits:
            scores, split_rows = score(
                model, self.splits.get(split, []), self.device, self.cfg.eval.batch, split, arch
            )
            if split_rows:
                out[split] = scores.to_dict()
                rows += split_rows
        return out, rows

    def data_info(self) -> dict:
        from pathlib import Path

        return {
            "fingerprint": self.manifest["fingerprint"],
            "generator_version": str(self.manifest.get("generator_version", "unknown")),
            "config": self.cfg.data.__dict__,
            "path": str(Path(self.folder).resolve()),
        }

    def seeds(self) -> dict:
        return {"data": self.cfg.data.seed, "train": self.cfg.train.seed}

    def examples(self) -> dict:
        return {s: len(self.splits.get(s, [])) for s in self.cfg.eval.splits}

    def report(self, metrics: dict, histories: dict, folder) -> list[str]:
        from gfseq import results

        written = []
        scored = [s for s in self.cfg.eval.splits if any(s in m for m in metrics.values())]
        if scored:
            results.heatmap(metrics, scored[0], folder / "heatmap.png")
            written.append("heatmap.png")
        results.curves(histories, folder / "curves.png")
        written.append("curves.png")
        examples = self.examples()
        for s in self.cfg.eval.splits:
            text = results.table(metrics, s)
            if text:
                what = "teacher-forced character accuracy / greedy exact match"
                print(f"\n{s} ({examples[s]} programs): {what}\n")
                print(text)
        return written
