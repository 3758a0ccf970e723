"""The program-evaluation task: data, model shapes at equal parameter count, training, scoring."""

from __future__ import annotations

from dataclasses import asdict

import torch

from gfseq.config import ConfigError, RunConfig
from gfseq.data.progeval import Example, TrainSampler, batches_in_order, collate
from gfseq.engine import Dist, Task
from gfseq.metrics import Scores, greedy_rows, is_exact, teacher_forced
from gfseq.models.seq2seq import Seq2Seq, Seq2SeqShape, matched_shape

#: Largest parameter mismatch allowed between the compared models.
PARAMETER_TOLERANCE = 0.02


def shapes(cfg: RunConfig) -> dict[str, Seq2SeqShape]:
    """Each arch's model shape, all with the parameter count of the baseline (or ``model.params``).

    The baseline is ``stacked`` when compared, else the last arch listed, at ``model.hidden``.
    """
    m = cfg.model
    base_arch = "stacked" if "stacked" in m.archs else m.archs[-1]
    base_layers = 1 if base_arch == "single" else m.layers
    budget = m.params or Seq2SeqShape(m.unit, base_arch, base_layers, m.hidden, m.embedding).num_parameters()
    out = {arch: matched_shape(m.unit, arch, m.layers, m.embedding, budget, m.dropout) for arch in m.archs}
    counts = {a: s.num_parameters() for a, s in out.items()}
    if max(counts.values()) > (1 + PARAMETER_TOLERANCE) * min(counts.values()):
        raise ConfigError(
            f"model: cannot match parameter counts within {PARAMETER_TOLERANCE:.0%} at this size "
            f"({', '.join(f'{a} {n:,}' for a, n in counts.items())}); "
            "use a larger model.hidden or model.params"
        )
    return out


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
