"""A byte-level language model built from any gfseq.nn stack: bytes -> stack -> softmax over 256 bytes.

The input is one-hot bytes (``embedding=0``, as in the paper, whose Table 1 sizes assume it) or a
learned embedding of ``embedding`` features. ``forward(x, state) -> (logits, state)``: the state of
every layer comes back so that truncated BPTT can carry it into the next window (detached there by
:func:`detach_state`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gfseq.models.sizing import closest_width
from gfseq.nn import make_stack, num_parameters

VOCAB = 256


@dataclass(frozen=True)
class CharLMShape:
    unit: str
    arch: str
    layers: int
    hidden: int
    embedding: int = 0  # 0: one-hot bytes straight into the stack
    vocab: int = VOCAB
    dropout: float = 0.0

    @property
    def input_size(self) -> int:
        return self.embedding or self.vocab

    def num_parameters(self) -> int:
        """Closed form: embedding (none for one-hot) + stack + output layer (weights and bias)."""
        stack = num_parameters(self.unit, self.arch, self.input_size, self.hidden, self.layers)
        return self.vocab * self.embedding + stack + self.hidden * self.vocab + self.vocab


def matched_lm_shape(
    unit: str, arch: str, layers: int, embedding: int, budget: int, dropout: float = 0.0
) -> CharLMShape:
    """The shape of ``arch`` whose language model's parameter count is closest to ``budget``."""
    if arch == "single":
        layers = 1

    return closest_width(lambda h: CharLMShape(unit, arch, layers, h, embedding, dropout=dropout), budget)


def detach_state(state):
    """Every layer's carried state cut from the previous window's graph (truncated BPTT)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


class CharLM(nn.Module):
    def __init__(self, shape: CharLMShape) -> None:
        super().__init__()
        self.shape = shape
        self.embed = nn.Embedding(shape.vocab, shape.embedding) if shape.embedding else None
        dropout = shape.dropout if shape.layers > 1 else 0.0
        self.rnn = make_stack(
            shape.unit,
            shape.input_size,
            shape.hidden,
            shape.layers,
            arch=shape.arch,
            batch_first=True,
            dropout=dropout,
        )
        self.out = nn.Linear(shape.hidden, shape.vocab)

    def inputs(self, x: Tensor) -> Tensor:
        if self.embed is not None:
            return self.embed(x)
        return F.one_hot(x, self.shape.vocab).to(self.out.weight.dtype)

    def forward(self, x: Tensor, state=None):
        """``x``: (N, T) byte values; returns (N, T, 256) logits and every layer's final state."""
        hidden, state = self.rnn(self.inputs(x), state)
        return self.out(hidden), state

    @torch.no_grad()
    def sample(self, prime: bytes, n: int, generator: torch.Generator, temperature: float = 1.0) -> bytes:
        """``n`` bytes drawn one at a time after reading ``prime`` (at least one byte)."""
        device = self.out.weight.device
        x = torch.tensor([list(prime)], dtype=torch.long, device=device)
        logits, state = self(x)
        out = bytearray()
        for _ in range(n):
            probs = torch.softmax(logits[0, -1].float() / temperature, -1).cpu()
            byte = int(torch.multinomial(probs, 1, generator=generator))
            out.append(byte)
            logits, state = self(torch.tensor([[byte]], device=device), state)
        return bytes(out)
