"""Scores per difficulty cell, as sums and counts (never means of batch means).

* teacher-forced character accuracy (the original Learning-to-Execute metric): the share of target
  characters, EOS included, that the decoder predicts given the true previous characters;
* exact match under greedy decoding (the honest one): the decoded characters up to the first EOS equal
  the target and an EOS was emitted.

Padding and everything after EOS never count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import Tensor

from gfseq.data.progeval import EOS, PAD, decode


@dataclass
class Counts:
    chars_correct: int = 0
    chars_total: int = 0
    exact: int = 0
    examples: int = 0

    def add(self, other: Counts) -> None:
        for k in ("chars_correct", "chars_total", "exact", "examples"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    @property
    def char_accuracy(self) -> float:
        return self.chars_correct / self.chars_total if self.chars_total else 0.0

    @property
    def exact_match(self) -> float:
        return self.exact / self.examples if self.examples else 0.0

    def summary(self) -> dict:
        return {**asdict(self), "char_accuracy": self.char_accuracy, "exact_match": self.exact_match}


def teacher_forced(logits: Tensor, tgt_out: Tensor) -> tuple[list[int], list[int]]:
    """Per row: characters predicted right and characters counted (PAD excluded)."""
    mask = tgt_out != PAD
    right = (logits.argmax(-1) == tgt_out) & mask
    return right.sum(1).tolist(), mask.sum(1).tolist()


def greedy_rows(ids: Tensor) -> list[tuple[str, bool]]:
    """Per row: the decoded text (up to EOS) and whether EOS was emitted."""
    return [(decode(row), EOS in row) for row in ids.tolist()]


def is_exact(prediction: str, eos: bool, target: str) -> bool:
    return eos and prediction == target


class Scores:
    """Counts per cell ("LxN") and overall."""

    def __init__(self) -> None:
        self.cells: dict[str, Counts] = {}

    def add(self, cell: tuple[int, int], correct: int, total: int, exact: bool) -> None:
        c = self.cells.setdefault(f"{cell[0]}x{cell[1]}", Counts())
        c.add(Counts(correct, total, int(exact), 1))

    def overall(self) -> Counts:
        total = Counts()
        for c in self.cells.values():
            total.add(c)
        return total

    def to_dict(self) -> dict:
        cells = sorted(self.cells, key=lambda k: tuple(int(v) for v in k.split("x")))
        return {"overall": self.overall().summary(), "cells": {k: self.cells[k].summary() for k in cells}}


def scores_from_predictions(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """Recompute {arch: {split: scores}} from predictions.jsonl rows (an independent path)."""
    out: dict[str, dict[str, Scores]] = {}
    for r in rows:
        s = out.setdefault(r["arch"], {}).setdefault(r["split"], Scores())
        s.add(
            (r["length"], r["nesting"]),
            r["chars_correct"],
            r["chars_total"],
            is_exact(r["prediction"], r["eos"], r["target"]),
        )
    return {a: {k: v.to_dict() for k, v in d.items()} for a, d in out.items()}
