"""progeval programs as character sequences for an encoder-decoder.

The encoder reads the program's Python source character by character; the decoder starts from GO and
emits the printed output's characters, then EOS. A fixed vocabulary (not one read off the data) keeps
models comparable across datasets. Training batches are a pure function of (seed, step, rank): each
row draws its difficulty cell from the curriculum, then a program of that cell, so a run resumed at
step k sees exactly the batches it would have seen.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gfseq.config import DataConfig

PAD, GO, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<go>", "<eos>", "<unk>"]
#: Every character progeval's programs and outputs use (source form and single-stream form).
CHARACTERS = sorted(set("0123456789abcdefghijklmnopqrstuvwxyz ()+-*=<>:\n#@."))
VOCAB = SPECIALS + CHARACTERS
INDEX = {c: i for i, c in enumerate(VOCAB)}


def encode(text: str) -> list[int]:
    return [INDEX.get(c, UNK) for c in text]


def decode(ids: list[int]) -> str:
    """Characters up to the first EOS; any other special token is written by name (``<pad>``), so a
    prediction holding one can never equal a target."""
    out = []
    for i in ids:
        if i == EOS:
            break
        out.append(VOCAB[i])
    return "".join(out)


@dataclass(frozen=True)
class Example:
    id: str
    program: str
    target: str
    length: int
    nesting: int

    @property
    def cell(self) -> tuple[int, int]:
        return self.length, self.nesting


def dataset_config(cfg: DataConfig):
    from progeval import DatasetConfig

    shared = ("length", "nesting", "curriculum", "train", "valid", "test", "test_extrapolate", "seed")
    return DatasetConfig(**{k: getattr(cfg, k) for k in shared})


def prepare(cfg: DataConfig, root: Path, progress: bool = True) -> Path:
    """The dataset folder for ``cfg`` under ``root``: reused when its manifest checks, else generated."""
    import progeval

    dcfg = dataset_config(cfg)
    key = hashlib.sha256(json.dumps(dcfg.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(root) / f"progeval-{key}"
    if (folder / "manifest.json").is_file():
        try:
            progeval.load_dataset(folder)  # checks every file against the manifest
            return folder
        except (ValueError, OSError):
            pass  # damaged: make it again
    progeval.generate_dataset(dcfg, folder, num_proc=1, overwrite=folder.exists(), progress=progress)
    return folder


def load_splits(folder: Path) -> tuple[dict[str, list[Example]], dict]:
    """Every split's examples, and the dataset manifest."""
    import progeval
    from progeval.store import read_manifest

    dd = progeval.load_dataset(folder)
    splits = {}
    for name, ds in dd.items():
        cols = ds.select_columns(["id", "program", "target", "length", "nesting"]).to_dict()
        splits[name] = [Example(*row) for row in zip(*cols.values(), strict=True)]
    return splits, read_manifest(folder)


class TrainSampler:
    """Training batches by step: each row's cell from the curriculum, then a program of that cell."""

    def __init__(self, examples: list[Example], seed: int) -> None:
        self.pools: dict[tuple[int, int], list[Example]] = defaultdict(list)
        for ex in examples:
            self.pools[ex.cell].append(ex)
        self.seed = seed

    def batch(self, curriculum, step: int, size: int, rank: int = 0) -> list[Example]:
        rng = random.Random(f"gfseq-batch/{self.seed}/{rank}/{step}")
        rows = []
        for _ in range(size):
            cell = curriculum.sample_cell(rng)
            pool = self.pools.get(cell)
            if not pool:  # a cell the dataset does not hold: nearest held cell below it
                held = [c for c in self.pools if c[0] <= cell[0] and c[1] <= cell[1]] or list(self.pools)
                pool = self.pools[max(held)]
            rows.append(pool[rng.randrange(len(pool))])
        return rows


@dataclass
class Batch:
    src: Tensor  # (N, S) program characters, right-padded with PAD
    src_lengths: Tensor  # (N,)
    tgt_in: Tensor  # (N, U): GO + target characters
    tgt_out: Tensor  # (N, U): target characters + EOS, PAD after
    examples: list[Example]

    def to(self, device) -> Batch:
        return Batch(
            self.src.to(device),
            self.src_lengths.to(device),
            self.tgt_in.to(device),
            self.tgt_out.to(device),
            self.examples,
        )


def collate(examples: list[Example]) -> Batch:
    src = [encode(ex.program) for ex in examples]
    tgt = [encode(ex.target) for ex in examples]
    n, s, u = len(examples), max(map(len, src)), max(map(len, tgt)) + 1
    src_t = torch.full((n, s), PAD, dtype=torch.long)
    tgt_in = torch.full((n, u), PAD, dtype=torch.long)
    tgt_out = torch.full((n, u), PAD, dtype=torch.long)
    for i, (a, b) in enumerate(zip(src, tgt, strict=True)):
        src_t[i, : len(a)] = torch.tensor(a)
        tgt_in[i, : len(b) + 1] = torch.tensor([GO, *b])
        tgt_out[i, : len(b) + 1] = torch.tensor([*b, EOS])
    lengths = torch.tensor([len(a) for a in src])
    return Batch(src_t, lengths, tgt_in, tgt_out, list(examples))


def batches_in_order(examples: list[Example], size: int) -> list[list[Example]]:
    """Evaluation batches: sorted by program length (less padding), every example exactly once."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i].program), i))
    return [[examples[i] for i in order[k : k + size]] for k in range(0, len(order), size)]
