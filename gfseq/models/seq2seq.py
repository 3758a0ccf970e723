"""A character-level encoder-decoder built from any gfseq.nn stack.

The encoder reads the program (padded rows end with their own last character: ``lengths=``); the
decoder starts from the encoder's final states of every layer and is trained with teacher forcing.
One contract, as in nanoGPT: ``forward(src, src_lengths, tgt_in, tgt_out) -> (logits, loss)``, the
loss summed over target characters (PAD ignored) and divided by their count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gfseq.data.progeval import EOS, GO, PAD, VOCAB
from gfseq.models.sizing import closest_width
from gfseq.nn import make_stack, num_parameters


@dataclass(frozen=True)
class Seq2SeqShape:
    unit: str
    arch: str
    layers: int
    hidden: int
    embedding: int
    vocab: int = len(VOCAB)
    dropout: float = 0.0

    def num_parameters(self) -> int:
        """Closed form: shared embedding + encoder + decoder + output layer."""
        stack = num_parameters(self.unit, self.arch, self.embedding, self.hidden, self.layers)
        return self.vocab * self.embedding + 2 * stack + self.hidden * self.vocab + self.vocab


def matched_shape(
    unit: str, arch: str, layers: int, embedding: int, budget: int, dropout: float = 0.0
) -> Seq2SeqShape:
    """The shape of ``arch`` whose model's parameter count is closest to ``budget``."""
    if arch == "single":
        layers = 1

    return closest_width(lambda h: Seq2SeqShape(unit, arch, layers, h, embedding, dropout=dropout), budget)


class Seq2Seq(nn.Module):
    def __init__(self, shape: Seq2SeqShape) -> None:
        super().__init__()
        self.shape = shape
        self.embed = nn.Embedding(shape.vocab, shape.embedding, padding_idx=PAD)
        kw = {"arch": shape.arch, "batch_first": True, "dropout": shape.dropout if shape.layers > 1 else 0.0}
        self.encoder = make_stack(shape.unit, shape.embedding, shape.hidden, shape.layers, **kw)
        self.decoder = make_stack(shape.unit, shape.embedding, shape.hidden, shape.layers, **kw)
        self.out = nn.Linear(shape.hidden, shape.vocab)

    def encode(self, src: Tensor, src_lengths: Tensor):
        _, state = self.encoder(self.embed(src), lengths=src_lengths)  # every layer's final state
        return state

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, tgt_out: Tensor | None = None):
        state = self.encode(src, src_lengths)
        hidden, _ = self.decoder(self.embed(tgt_in), state)  # (N, U, H)
        logits = self.out(hidden)  # (N, U, V)
        if tgt_out is None:
            return logits, None
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(), tgt_out.flatten(), ignore_index=PAD, reduction="sum"
        )
        return logits, loss / (tgt_out != PAD).sum().clamp(min=1)

    @torch.no_grad()
    def greedy(self, src: Tensor, src_lengths: Tensor, max_len: int) -> Tensor:
        """Greedy decoding: (N, max_len) token ids; rows that emitted EOS keep emitting PAD."""
        state = self.encode(src, src_lengths)
        token = torch.full((src.shape[0], 1), GO, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        out = []
        for _ in range(max_len):
            hidden, state = self.decoder(self.embed(token), state)
            token = self.out(hidden).argmax(-1)  # (N, 1)
            token = torch.where(done[:, None], PAD, token)
            out.append(token)
            done |= token[:, 0] == EOS
            if bool(done.all()):
                break
        ids = torch.cat(out, 1)
        if ids.shape[1] < max_len:
            ids = F.pad(ids, (0, max_len - ids.shape[1]), value=PAD)
        return ids
