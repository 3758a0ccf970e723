"""Gated-Feedback RNN stacks with the ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` surface.

The equations live in :mod:`gfseq.nn.reference` (the slow twin); the fast path for ``gf`` and
``gf-nogate`` in :mod:`gfseq.nn.fused`; ``single`` and ``stacked`` run torch's own kernels, since with
torch's parameter names and gate order they *are* nn.RNN / nn.GRU / nn.LSTM.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from gfseq.nn import fused
from gfseq.nn.reference import reference_forward
from gfseq.nn.spec import ARCHS, UNITS, check_arch, check_unit, num_parameters

IMPLS = ("auto", "reference")


@dataclass
class GateTrace:
    """Global gate values recorded by :meth:`GatedFeedbackRNN.record_gates`, one tensor per call.

    Each has shape (T, N, L, L) (``batch_first``: (N, T, L, L)) with ``[t, n, j, i]`` = g^{i->j}_t,
    how much layer j's memory content listens to layer i's previous state; NaN past a row's length.
    """

    calls: list[Tensor] = field(default_factory=list)

    @property
    def gates(self) -> Tensor:
        """The gates of the last call."""
        if not self.calls:
            raise ValueError("no gates recorded: call the layer inside record_gates()")
        return self.calls[-1]


class GatedFeedbackRNN(nn.Module):
    r"""A stack of ``num_layers`` recurrent layers of one ``unit``, wired as ``arch``.

    .. math::
        g^{i\to j}_t = \sigma(w_g^{i\to j} \cdot h_t^{j-1} + u_g^{i\to j} \cdot h^*_{t-1} + b^{i\to j})

    ``arch``: ``single`` (one layer), ``stacked`` (each layer reads only its own past), ``gf`` (every
    layer's memory content reads every layer's past, each through a learned scalar gate per example
    and step) or ``gf-nogate`` (the same with every gate fixed to 1). Full equations:
    :mod:`gfseq.nn.reference`, which is also the slow, readable twin of the fast path.

    Args:
        input_size: features of the input x. Default: required.
        hidden_size: units per layer. Default: required.
        num_layers: layers in the stack. Default: 1
        bias: torch's ``bias_ih`` and ``bias_hh`` per layer and a bias per global gate. Default: True
        batch_first: input and output are (N, L, H_in) instead of (L, N, H_in); states never are.
            Default: False
        dropout: probability of zeroing each input of layers 2..L in training, as in nn.LSTM.
            Default: 0
        arch: ``single``, ``stacked``, ``gf`` or ``gf-nogate``. Default: ``gf``
        unit: ``tanh``, ``gru`` or ``lstm`` (keyword; set by GFRNN, GFGRU and GFLSTM).

    Inputs: ``input, hx, lengths``
        * input: (L, N, H_in), (N, L, H_in) with ``batch_first``, or (L, H_in) unbatched.
        * hx: h_0 (num_layers, N, H) or (num_layers, H) unbatched; for the LSTM a tuple (h_0, c_0).
          Default: zeros.
        * lengths: (N,) true lengths of a padded batch, in 1..L, any order. Each row's final state is
          the one after its own last step; outputs past it are zero. Default: all full length.

    Outputs: ``output, h_n`` (LSTM: ``output, (h_n, c_n)``)
        * output: the top layer's h_t for every t, shaped like input with H features.
        * h_n, c_n: (num_layers, N, H), every layer's final state.

    Parameters keep torch's names and gate order (``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}``), so ``single``/``stacked`` load an nn.RNN/GRU/LSTM state_dict.
    ``gf`` and ``gf-nogate`` add ``weight_fb_l{k}`` (H, (L-1)*H): U^{i->k} for the other layers i in
    order; ``gf`` adds ``gate_weight_ih_l{k}`` (L, H_in of layer k), ``gate_weight_hh_l{k}`` (L, L*H)
    and ``gate_bias_l{k}`` (L,): row i is the gate of pair i -> k. The count in closed form:
    :func:`gfseq.nn.spec.num_parameters`.

    ``impl``: ``auto`` (fast path) or ``reference`` (the slow twin), settable on an instance.
    """

    #: The unit of a subclass (GFRNN, GFGRU, GFLSTM); the base class takes ``unit=``.
    UNIT: str | None = None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        arch: str = "gf",
        device=None,
        dtype=None,
        *,
        unit: str | None = None,
    ) -> None:
        super().__init__()
        if unit is None and self.UNIT is None:
            raise ValueError(
                "unit: GatedFeedbackRNN needs unit='tanh', 'gru' or 'lstm' as a keyword "
                "(or use GFRNN, GFGRU, GFLSTM), got none"
            )
        if unit is not None and self.UNIT is not None and unit != self.UNIT:
            raise ValueError(f"unit: {type(self).__name__} is the {self.UNIT!r} unit, got unit={unit!r}")
        self.unit = check_unit(unit if unit is not None else self.UNIT)
        self.arch = check_arch(arch)
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if arch == "single" and num_layers != 1:
            raise ValueError(f"num_layers: arch 'single' has exactly 1 layer, got {num_layers}")
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
            raise ValueError(f"dropout: expected a number in [0, 1), got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"dropout={dropout} with num_layers=1 does nothing: dropout acts between layers",
                UserWarning,
                stacklevel=2,
            )
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.impl = "auto"
        self._trace: GateTrace | None = None
        kw = {"device": device, "dtype": dtype}
        g, h, n = UNITS[self.unit], hidden_size, num_layers
        for k in range(n):
            below = input_size if k == 0 else h
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(g * h, below, **kw)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(g * h, h, **kw)))
            if bias:
                self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(g * h, **kw)))
                self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(g * h, **kw)))
            if arch in ("gf", "gf-nogate") and n > 1:
                self.register_parameter(f"weight_fb_l{k}", nn.Parameter(torch.empty(h, (n - 1) * h, **kw)))
            if arch == "gf":
                self.register_parameter(f"gate_weight_ih_l{k}", nn.Parameter(torch.empty(n, below, **kw)))
                self.register_parameter(f"gate_weight_hh_l{k}", nn.Parameter(torch.empty(n, n * h, **kw)))
                if bias:
                    self.register_parameter(f"gate_bias_l{k}", nn.Parameter(torch.empty(n, **kw)))
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Every parameter uniform in [-1/sqrt(H), 1/sqrt(H)], as torch's RNNs (``generator``: the RNG)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound, generator=generator)

    def extra_repr(self) -> str:
        s = f"{self.unit}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        s += f", arch={self.arch!r}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s

    def num_parameters(self) -> int:
        """The closed-form count (:func:`gfseq.nn.spec.num_parameters`) for this stack."""
        return num_parameters(
            self.unit, self.arch, self.input_size, self.hidden_size, self.num_layers, self.bias
        )

    @contextmanager
    def record_gates(self) -> Iterator[GateTrace]:
        """Record g^{i->j}_t of every forward call inside the block (see :class:`GateTrace`).

        ``forward``'s return value is unchanged. ``stacked`` and ``single`` have no gates: refused.
        """
        if self.arch in ("single", "stacked"):
            raise ValueError(f"record_gates: arch {self.arch!r} has no global gates; use 'gf' or 'gf-nogate'")
        trace = self._trace = GateTrace()
        try:
            yield trace
        finally:
            self._trace = None

    # ----------------------------------------------------------------------------- input checks

    def _check_input(self, input: Tensor) -> tuple[Tensor, bool]:
        """Returns time-major (T, N, H_in) and whether the input was batched."""
        if not isinstance(input, Tensor):
            raise ValueError(f"input: expected a Tensor, got {type(input).__name__}")
        if input.dim() not in (2, 3):
            raise ValueError(f"input: expected 2 (unbatched) or 3 dimensions, got shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"input: expected last dimension input_size={self.input_size}, got {input.shape[-1]}"
            )
        weight = self.weight_ih_l0
        autocast = torch.is_autocast_enabled(input.device.type) and input.is_floating_point()
        if input.dtype != weight.dtype and not autocast:
            raise ValueError(f"input: expected dtype {weight.dtype} (the module's), got {input.dtype}")
        if input.device != weight.device:
            raise ValueError(
                f"input: expected a tensor on {weight.device} (the module's), got {input.device}"
            )
        batched = input.dim() == 3
        if not batched:
            input = input.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        if input.shape[0] < 1 or input.shape[1] < 1:
            raise ValueError(f"input: expected at least one step and one row, got shape {tuple(input.shape)}")
        return input, batched

    def _check_state(self, name: str, state, batch: int, batched: bool, like: Tensor) -> Tensor:
        want = (self.num_layers, batch, self.hidden_size) if batched else (self.num_layers, self.hidden_size)
        if not isinstance(state, Tensor) or tuple(state.shape) != want:
            got = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
            raise ValueError(f"{name}: expected shape {want}, got {got}")
        weight = self.weight_hh_l0
        if state.dtype != weight.dtype or state.device != weight.device:
            raise ValueError(
                f"{name}: expected {weight.dtype} on {weight.device} (the module's), "
                f"got {state.dtype} on {state.device}"
            )
        return state if batched else state.unsqueeze(1)

    def _check_hx(self, hx, batch: int, batched: bool, like: Tensor) -> tuple[Tensor, Tensor | None]:
        if hx is None:
            zeros = like.new_zeros(self.num_layers, batch, self.hidden_size)
            return (zeros, zeros.clone()) if self.unit == "lstm" else (zeros, None)
        if self.unit == "lstm":
            if not isinstance(hx, tuple | list) or len(hx) != 2:
                raise ValueError(f"hx: expected a tuple (h_0, c_0) for the LSTM, got {type(hx).__name__}")
            return (
                self._check_state("hx[0] (h_0)", hx[0], batch, batched, like),
                self._check_state("hx[1] (c_0)", hx[1], batch, batched, like),
            )
        if isinstance(hx, tuple | list):
            raise ValueError(f"hx: expected a Tensor h_0 for the {self.unit} unit, got a {type(hx).__name__}")
        return self._check_state("hx", hx, batch, batched, like), None

    @staticmethod
    def _check_lengths(lengths, steps: int, batch: int, device) -> Tensor | None:
        if lengths is None:
            return None
        want = f"lengths: expected {batch} integers (one per row) in 1..{steps}"
        if isinstance(lengths, Tensor):
            lengths = lengths.detach().to("cpu") if lengths.device.type != "meta" else None
        else:
            items = list(lengths) if isinstance(lengths, list | tuple) else None
            if items is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
                raise ValueError(f"{want}, got {lengths!r}"[:300])
            lengths = torch.tensor(items, dtype=torch.long) if all(abs(v) < 2**62 for v in items) else None
        if lengths is None or lengths.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64):
            got = "a meta tensor or huge values" if lengths is None else f"dtype {lengths.dtype}"
            raise ValueError(f"{want}, got {got}")
        if lengths.dim() != 1 or lengths.shape[0] != batch:
            raise ValueError(f"{want}, got shape {tuple(lengths.shape)}")
        if len(lengths) and (int(lengths.min()) < 1 or int(lengths.max()) > steps):
            raise ValueError(
                f"lengths: expected values in 1..{steps}, got {int(lengths.min())}..{int(lengths.max())}"
            )
        return lengths.to(dtype=torch.long).to(device)

    # ----------------------------------------------------------------------------- forward

    def forward(self, input: Tensor, hx=None, lengths: Tensor | Sequence[int] | None = None):
        x, batched = self._check_input(input)
        steps, batch, _ = x.shape
        h0, c0 = self._check_hx(hx, batch, batched, x)
        lengths = self._check_lengths(lengths, steps, batch, x.device)
        if self.impl not in IMPLS:
            raise ValueError(f"impl: expected one of {', '.join(IMPLS)}, got {self.impl!r}")
        if lengths is not None:  # padding runs through the gf stacks: it must not poison them (NaN, inf)
            alive = torch.arange(steps, device=x.device)[:, None] < lengths[None, :]
            x = torch.where(alive[:, :, None], x, 0)
        if self.impl == "reference":
            masks = self._dropout_masks(steps, batch, x)
            out, h_n, c_n, gates = reference_forward(self, x, h0, c0, lengths, masks)
        elif self.arch in ("single", "stacked"):
            out, h_n, c_n = self._native(x, h0, c0, lengths)
            gates = None
        else:
            out, h_n, c_n, gates = self._fused(x, h0, c0, lengths)
        if self._trace is not None and gates is not None:
            gates = gates.detach()
            self._trace.calls.append(gates.transpose(0, 1) if self.batch_first and batched else gates)
            if not batched:
                self._trace.calls[-1] = self._trace.calls[-1].squeeze(1)
        if not batched:
            out, h_n = out.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        elif self.batch_first:
            out = out.transpose(0, 1)
        return (out, (h_n, c_n)) if self.unit == "lstm" else (out, h_n)

    def _dropout_masks(self, steps: int, batch: int, like: Tensor) -> Tensor | None:
        """Inputs of layers 2..L kept with probability 1-p, scaled by 1/(1-p); None when not training."""
        if not (self.training and self.dropout > 0 and self.num_layers > 1):
            return None
        keep = 1.0 - self.dropout
        shape = (self.num_layers - 1, steps, batch, self.hidden_size)
        return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(keep).div_(keep)

    def _fused(self, x: Tensor, h0: Tensor, c0: Tensor | None, lengths: Tensor | None):
        steps, batch, _ = x.shape
        w = fused.pack(self)
        a0 = torch.addmm(w["bin0"], x.reshape(steps * batch, -1), w["win0"].t()).view(steps, batch, -1)
        # Under autocast a0 may arrive in half precision: the time loops run in the weights' dtype.
        dtype = w["wrec"].dtype
        a0, h0 = a0.to(dtype), h0.to(dtype)
        c0 = c0.to(dtype) if c0 is not None else None
        masks = self._dropout_masks(steps, batch, x)
        hs, cs, gates = fused.GFStackFunction.apply(
            self.unit, self.arch == "gf", a0, w["win"], w["bin"], w["wrec"], w["bhn"], h0, c0, masks
        )  # hs: (T, L, N, H); gates: (T, L_target, N, L_source)
        gates = (
            gates.permute(0, 2, 1, 3)
            if self.arch == "gf"
            else x.new_ones(steps, batch, *[self.num_layers] * 2)
        )
        # Outputs are copies: the Function's buffers are saved for backward, and views of them would
        # tie h_n to output (an in-place edit of one would change the other) and keep every step alive.
        if lengths is None:
            c_n = cs[-1].clone() if self.unit == "lstm" else None
            return hs[:, -1].clone(), hs[-1].clone(), c_n, gates
        rows = torch.arange(batch, device=x.device)
        last = lengths - 1
        h_n = hs[last, :, rows].transpose(0, 1).contiguous()  # (L, N, H)
        c_n = cs[last, :, rows].transpose(0, 1).contiguous() if self.unit == "lstm" else None
        alive = torch.arange(steps, device=x.device)[:, None] < lengths[None, :]  # (T, N)
        out = torch.where(alive[:, :, None], hs[:, -1], 0)
        gates = gates.masked_fill(~alive[:, :, None, None], float("nan"))
        return out, h_n, c_n, gates

    def _flat_weights(self) -> list[Tensor]:
        names = ["weight_ih_l{}", "weight_hh_l{}"] + (["bias_ih_l{}", "bias_hh_l{}"] if self.bias else [])
        return [getattr(self, n.format(k)) for k in range(self.num_layers) for n in names]

    def _native(self, x: Tensor, h0: Tensor, c0: Tensor | None, lengths: Tensor | None):
        """torch's own RNN kernels (the same ones nn.RNN/GRU/LSTM call), for single and stacked."""
        fn = {"tanh": torch._VF.rnn_tanh, "gru": torch._VF.gru, "lstm": torch._VF.lstm}[self.unit]
        hx = (h0, c0) if self.unit == "lstm" else h0
        args = (self._flat_weights(), self.bias, self.num_layers, self.dropout, self.training, False)
        if lengths is None:
            result = fn(x, hx, *args, False)
            out = result[0]
            states = result[1:]
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
            order = packed.sorted_indices
            hx = (
                tuple(s.index_select(1, order) for s in hx)
                if self.unit == "lstm"
                else hx.index_select(1, order)
            )
            result = fn(packed.data, packed.batch_sizes, hx, *args)
            out_packed = PackedSequence(result[0], packed.batch_sizes, order, packed.unsorted_indices)
            out = pad_packed_sequence(out_packed, total_length=x.shape[0])[0]
            states = [s.index_select(1, packed.unsorted_indices) for s in result[1:]]
        if self.unit == "lstm":
            return out, states[0], states[1]
        return out, states[0], None


class GFRNN(GatedFeedbackRNN):
    """Gated-feedback stack of tanh units (the nn.RNN surface); see :class:`GatedFeedbackRNN`."""

    UNIT = "tanh"


class GFGRU(GatedFeedbackRNN):
    """Gated-feedback stack of GRUs (the nn.GRU surface); see :class:`GatedFeedbackRNN`."""

    UNIT = "gru"


class GFLSTM(GatedFeedbackRNN):
    """Gated-feedback stack of LSTMs (the nn.LSTM surface); see :class:`GatedFeedbackRNN`."""

    UNIT = "lstm"


__all__ = ["ARCHS", "GFGRU", "GFLSTM", "GFRNN", "GateTrace", "GatedFeedbackRNN", "UNITS"]
