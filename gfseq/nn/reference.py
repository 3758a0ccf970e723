"""The slow twin: Gated-Feedback RNN stacks computed step by step, straight from the equations.

Chung, Gulcehre, Cho & Bengio, "Gated Feedback Recurrent Neural Networks", ICML 2015. Layers are
j = 1..L (0-based in code), h_t^0 = x_t feeds the bottom layer only, and h*_{t-1} is the concatenation
of every layer's state at t-1. For each ordered pair of layers (source i -> target j) a *scalar*
global reset gate, per example and per step::

    g^{i->j} = sigmoid(w_g^{i->j} . h_t^{j-1} + u_g^{i->j} . h*_{t-1} + b^{i->j})

and only the unit's memory content reads the other layers, through that gate::

    tanh:  h_t^j  = tanh(W h_t^{j-1} + b_ih + sum_i g^{i->j} U^{i->j} h_{t-1}^i + b_hh)
    GRU:   r, z as in nn.GRU (own layer's h_{t-1}^j and h_t^{j-1})
           h~_t^j = tanh(W_n h_t^{j-1} + b_in + r * (sum_i g^{i->j} U_n^{i->j} h_{t-1}^i + b_hn))
           h_t^j  = (1 - z) * h~_t^j + z * h_{t-1}^j
    LSTM:  i, f, o as in nn.LSTM (own layer's h_{t-1}^j and h_t^{j-1})
           c~_t^j = tanh(W_g h_t^{j-1} + b_ig + sum_i g^{i->j} U_g^{i->j} h_{t-1}^i + b_hg)
           c_t^j  = f * c_{t-1}^j + i * c~_t^j ;  h_t^j = o * tanh(c_t^j)

U^{j->j} is the memory block of torch's ``weight_hh_l{j}``; the recurrent bias stays outside the
gates, so ``stacked`` (only i = j, g = 1) is exactly nn.RNN / nn.GRU / nn.LSTM, and ``gf-nogate`` is
``gf`` with every g fixed to 1.

Loops run over steps, target layers and source layers, one pair at a time: slow and easy to check.
Padded rows (``lengths``) keep their state once their sequence has ended and output zeros.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _memory_block(unit: str) -> int:
    """Index of the memory-content block in torch's gate order (tanh n; GRU r z n; LSTM i f g o)."""
    return {"tanh": 0, "gru": 2, "lstm": 2}[unit]


def feedback_matrix(module, i: int, j: int) -> Tensor:
    """U^{i->j} (H x H): the weight through which layer j's memory content reads layer i's state."""
    h = module.hidden_size
    if i == j:
        k = _memory_block(module.unit)
        return getattr(module, f"weight_hh_l{j}")[k * h : (k + 1) * h]
    slot = i if i < j else i - 1  # weight_fb_l{j} holds the other layers in order, skipping j
    return getattr(module, f"weight_fb_l{j}")[:, slot * h : (slot + 1) * h]


def _global_gate(module, i: int, j: int, below: Tensor, hstar: Tensor) -> Tensor:
    """g^{i->j} for every example: shape (N,)."""
    logit = (
        below @ getattr(module, f"gate_weight_ih_l{j}")[i]
        + hstar @ getattr(module, f"gate_weight_hh_l{j}")[i]
    )
    if module.bias:
        logit = logit + getattr(module, f"gate_bias_l{j}")[i]
    return torch.sigmoid(logit)


def _affine(module, kind: str, j: int, x: Tensor) -> Tensor:
    out = x @ getattr(module, f"weight_{kind}_l{j}").t()
    return out + getattr(module, f"bias_{kind}_l{j}") if module.bias else out


def _cell(module, j: int, below: Tensor, h: list[Tensor], c: list[Tensor], gated_sum: Tensor):
    """One unit's step given the gated feedback sum; returns (h_t^j, c_t^j or None)."""
    hs = module.hidden_size
    wx = _affine(module, "ih", j, below)  # (N, G*H), torch's gate order
    wh = _affine(module, "hh", j, h[j])  # only its non-memory blocks are used below
    bhh = getattr(module, f"bias_hh_l{j}") if module.bias else None
    k = _memory_block(module.unit)
    memory_bias = bhh[k * hs : (k + 1) * hs] if bhh is not None else 0.0
    x_blocks = wx.split(hs, dim=1)
    h_blocks = wh.split(hs, dim=1)
    if module.unit == "tanh":
        return torch.tanh(x_blocks[0] + gated_sum + memory_bias), None
    if module.unit == "gru":
        r = torch.sigmoid(x_blocks[0] + h_blocks[0])
        z = torch.sigmoid(x_blocks[1] + h_blocks[1])
        n = torch.tanh(x_blocks[2] + r * (gated_sum + memory_bias))
        return (1 - z) * n + z * h[j], None
    i_gate = torch.sigmoid(x_blocks[0] + h_blocks[0])
    f_gate = torch.sigmoid(x_blocks[1] + h_blocks[1])
    o_gate = torch.sigmoid(x_blocks[3] + h_blocks[3])
    candidate = torch.tanh(x_blocks[2] + gated_sum + memory_bias)
    c_new = f_gate * c[j] + i_gate * candidate
    return o_gate * torch.tanh(c_new), c_new


def reference_forward(
    module,
    x: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    lengths: Tensor | None = None,
    dropout_masks: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """Run ``module``'s stack on time-major ``x`` (T, N, I) from states ``h0``/``c0`` (L, N, H).

    ``dropout_masks`` (L-1, T, N, H), already scaled by 1/(1-p), multiply the input of layers 2..L.
    Returns (output (T, N, H), h_n (L, N, H), c_n or None, gates (T, N, L, L) with
    gates[t, n, j, i] = g^{i->j}_t; NaN past a row's length; all ones for gf-nogate and stacked).
    """
    steps, batch, _ = x.shape
    layers = module.num_layers
    h = list(h0.unbind(0))
    c = list(c0.unbind(0)) if c0 is not None else [None] * layers
    outputs, gate_steps = [], []
    for t in range(steps):
        hstar = torch.cat(h, dim=1)  # h*_{t-1}: (N, L*H)
        new_h: list[Tensor] = []
        new_c: list[Tensor | None] = []
        gate_rows = []  # per target j: (N, L) over sources i
        for j in range(layers):
            below = x[t] if j == 0 else new_h[j - 1]
            if j > 0 and dropout_masks is not None:
                below = below * dropout_masks[j - 1, t]
            gated_sum = 0.0
            row = [x.new_ones(batch) for _ in range(layers)]
            for i in range(layers):
                if module.arch in ("single", "stacked") and i != j:
                    continue  # no feedback: only the layer's own recurrence, ungated
                if module.arch == "gf":
                    row[i] = _global_gate(module, i, j, below, hstar)
                gated_sum = gated_sum + row[i][:, None] * (h[i] @ feedback_matrix(module, i, j).t())
            gate_rows.append(torch.stack(row, dim=1))
            hj, cj = _cell(module, j, below, h, c, gated_sum)
            new_h.append(hj)
            new_c.append(cj)
        gates = torch.stack(gate_rows, dim=1)  # (N, L_target, L_source)
        if lengths is not None:  # rows whose sequence has ended keep their state
            alive = (t < lengths)[:, None]
            new_h = [torch.where(alive, a, b) for a, b in zip(new_h, h, strict=True)]
            if c0 is not None:
                new_c = [torch.where(alive, a, b) for a, b in zip(new_c, c, strict=True)]
            gates = torch.where(alive[:, :, None], gates, float("nan"))
            outputs.append(torch.where(alive, new_h[-1], 0))
        else:
            outputs.append(new_h[-1])
        h, c = new_h, new_c
        gate_steps.append(gates)
    c_n = torch.stack(c) if c0 is not None else None
    return torch.stack(outputs), torch.stack(h), c_n, torch.stack(gate_steps)
