"""The fast path for ``gf`` and ``gf-nogate``: a custom autograd Function with backward through time.

Same equations as :mod:`gfseq.nn.reference` (the slow twin; tests compare the two), computed so that
each step costs few, large operations:

* the bottom layer's input products (its weights and its gates' ``w_g``) for all steps are one matrix
  product, done outside the Function by autograd;
* every product that reads the previous step's states -- each layer's own recurrence, every
  ``U^{i->j} h_{t-1}^i`` and every gate's ``u_g . h*_{t-1}`` -- is one batched product per step,
  ``H_{t-1} (L, N, H) @ Wrec (L, H, K)``: source layer i's slice of ``Wrec`` holds all the columns
  that read ``h_{t-1}^i`` (its non-memory blocks, its memory block for every target layer, and its
  share of every gate logit);
* no Python loop over layer pairs: the gated sum of a target layer is one broadcast and one sum;
* backward walks the steps once in reverse, keeping the gate values saved in forward, and forms the
  recurrent and upper-layer weight gradients at the end as one large product over all steps.

Layout inside: block order puts the memory block last (tanh: n; GRU: r z n; LSTM: i f o g), so the
sigmoid blocks are one contiguous slice.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from gfseq.nn import _ext

BLOCKS = {"tanh": 1, "gru": 3, "lstm": 4}
#: torch's gate order -> ours (memory block last).
ORDER = {"tanh": [0], "gru": [0, 1, 2], "lstm": [0, 1, 3, 2]}


def _reorder(w: Tensor, unit: str) -> Tensor:
    """Rows of a torch-ordered (G*H, ...) weight or bias, put in our block order."""
    g = BLOCKS[unit]
    return torch.cat([w.chunk(g, 0)[k] for k in ORDER[unit]], 0)


def pack(module) -> dict[str, Tensor | None]:
    """Gather the module's parameters into the Function's layout (differentiable, once per call).

    Returns ``win0`` (G*H + Lg, I), ``bin0``, ``win`` (L-1, G*H + Lg, H), ``bin`` (L-1, G*H + Lg),
    ``wrec`` (L, H, K) and ``bhn`` (L, H) for the GRU's b_hn, where Lg = L when gated, else 0.
    For the tanh and LSTM units both recurrent biases are added to the input side: they sit outside
    the global gates, so the sum is the same. The GRU's b_hn sits inside r and stays apart.
    """
    unit, layers, hs = module.unit, module.num_layers, module.hidden_size
    g, gated = BLOCKS[unit], module.arch == "gf"
    p = dict(module.named_parameters())
    win, bins, cols = [], [], [[] for _ in range(layers)]
    for j in range(layers):
        w = _reorder(p[f"weight_ih_l{j}"], unit)
        if gated:
            w = torch.cat([w, p[f"gate_weight_ih_l{j}"]], 0)
        win.append(w)
        if module.bias:
            b = (
                p[f"bias_ih_l{j}"] + p[f"bias_hh_l{j}"]
                if unit != "gru"
                else p[f"bias_ih_l{j}"]
                + torch.cat([p[f"bias_hh_l{j}"][: 2 * hs], torch.zeros_like(p[f"bias_hh_l{j}"][2 * hs :])])
            )
            b = _reorder(b, unit)
            if gated:
                b = torch.cat([b, p[f"gate_bias_l{j}"]])
        else:
            b = w.new_zeros(w.shape[0])
        bins.append(b)
    for i in range(layers):  # source layer i: every column that reads h_{t-1}^i
        own = _reorder(p[f"weight_hh_l{i}"], unit)
        cols[i].append(own[: (g - 1) * hs].t())
        for j in range(layers):
            if i == j:
                cols[i].append(own[(g - 1) * hs :].t())
            else:
                slot = i if i < j else i - 1
                cols[i].append(p[f"weight_fb_l{j}"][:, slot * hs : (slot + 1) * hs].t())
    if gated:
        # gate_weight_hh_l{j}[p, i*H:(i+1)*H] reads h^i for the gate of pair p -> j.
        g_hh = torch.stack([p[f"gate_weight_hh_l{j}"].view(layers, layers, hs) for j in range(layers)])
        g_hh = g_hh.permute(2, 3, 0, 1).reshape(layers, hs, layers * layers)  # (i, H, j*L + p)
        for i in range(layers):
            cols[i].append(g_hh[i])
    if unit == "gru" and module.bias:
        bhn = torch.stack([p[f"bias_hh_l{j}"][2 * hs :] for j in range(layers)])
    else:
        bhn = None
    return {
        "win0": win[0],
        "bin0": bins[0],
        "win": torch.stack(win[1:]) if layers > 1 else None,
        "bin": torch.stack(bins[1:]) if layers > 1 else None,
        "wrec": torch.stack([torch.cat(c, 1) for c in cols]),
        "bhn": bhn,
    }


class _Sizes:
    def __init__(self, unit: str, gated: bool, layers: int, hidden: int) -> None:
        self.unit, self.gated, self.L, self.H = unit, gated, layers, hidden
        self.G = BLOCKS[unit]
        self.GH = self.G * hidden
        self.NF = (self.G - 1) * hidden  # non-memory blocks
        self.Lg = layers if gated else 0
        self.fb = self.NF  # first memory column in wrec; target j's block starts at fb + j*H
        self.gate = self.NF + layers * hidden  # first gate column in wrec


def _step_forward(s: _Sizes, j: int, a, r, glh, hprev, cprev, bhn_j, out) -> None:
    """Layer j's step from its input products ``a`` (N, GH + Lg) and the batched recurrent products
    ``r`` (L, N, K); writes into ``out`` = (h, c, acts, q, gates) views of the saved buffers."""
    h_out, c_out, act, q_out, g_out = out
    hs, nf = s.H, s.NF
    mem = r[:, :, s.fb + j * hs : s.fb + (j + 1) * hs]  # (L, N, H): U^{i->j} h_{t-1}^i for each i
    if s.gated:
        torch.add(a[:, s.GH :], glh[:, j * s.L : (j + 1) * s.L], out=g_out).sigmoid_()  # (N, L)
        gated_sum = torch.einsum("ni,inh->nh", g_out, mem)
    else:
        gated_sum = mem.sum(0)
    if s.unit == "tanh":
        torch.add(a[:, :hs], gated_sum, out=h_out).tanh_()
        return
    sig = act[:, :nf]
    torch.add(a[:, :nf], r[j, :, :nf], out=sig).sigmoid_()
    cand = act[:, nf:]
    if s.unit == "lstm":
        torch.add(a[:, nf : s.GH], gated_sum, out=cand).tanh_()
        i_g, f_g, o_g = sig.chunk(3, 1)
        torch.mul(f_g, cprev, out=c_out).addcmul_(i_g, cand)
        torch.mul(o_g, torch.tanh(c_out), out=h_out)
        return
    # gru: q = gated sum + b_hn, n = tanh(a_n + r * q), h = n + z * (h_prev - n)
    if bhn_j is None:
        q_out.copy_(gated_sum)
    else:
        torch.add(gated_sum, bhn_j, out=q_out)
    r_g, z_g = sig.chunk(2, 1)
    torch.addcmul(a[:, nf : s.GH], r_g, q_out, out=cand).tanh_()
    torch.sub(hprev, cand, out=h_out).mul_(z_g).add_(cand)


class GFStackFunction(torch.autograd.Function):
    """Whole-sequence forward and backward through time of a gf / gf-nogate stack.

    Inputs: ``a0`` (T, N, G*H + Lg) bottom input products with biases; ``win`` (L-1, G*H + Lg, H) and
    ``bin`` (L-1, G*H + Lg) for layers 2..L; ``wrec`` (L, H, K); ``bhn`` (L, H) or None; ``h0``,
    ``c0`` (L, N, H); ``masks`` (L-1, T, N, H) dropout masks or None.
    Outputs: every layer's states ``hs`` (T, L, N, H), cells ``cs`` (T, L, N, H; empty unless LSTM)
    and the gates (T, L, N, L) = g^{i->j} at [t, j, n, i] (not differentiable).
    """

    @staticmethod
    def forward(ctx, unit, gated, a0, win, bin_, wrec, bhn, h0, c0, masks):
        cpu_kernels = a0.device.type == "cpu" and a0.dtype in (torch.float32, torch.float64)
        ext = _ext.load() if cpu_kernels and h0.shape[0] <= _ext.MAX_LAYERS else None
        ctx.sizes = _Sizes(unit, gated, h0.shape[0], h0.shape[2])
        ctx.has = (win is not None, bin_ is not None, bhn is not None)
        ctx.ext = ext
        if ext is not None:
            hs, cs, acts, qs, gates, mem = ext.forward(unit, gated, a0, win, bin_, wrec, bhn, h0, c0, masks)
            ctx.save_for_backward(win, wrec, masks, hs, cs, acts, qs, gates, mem)
            ctx.mark_non_differentiable(gates)
            hs_out = hs.permute(1, 0, 2, 3)[1:]  # (T, L, N, H)
            cs_out = cs.permute(1, 0, 2, 3)[1:] if unit == "lstm" else cs
            return hs_out, cs_out, gates
        return _python_forward(ctx, unit, gated, a0, win, bin_, wrec, bhn, h0, c0, masks)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_hs, d_cs, _d_gates):
        if ctx.ext is None:
            return _python_backward(ctx, d_hs, d_cs)
        win, wrec, masks, hs, cs, acts, qs, gates, mem = ctx.saved_tensors
        s: _Sizes = ctx.sizes
        d_cs = d_cs if s.unit == "lstm" else None
        d_a0, d_win, d_bin, d_wrec, d_bhn, d_h0, d_c0 = ctx.ext.backward(
            s.unit, s.gated, d_hs, d_cs, win, wrec, masks, hs, cs, acts, qs, gates, mem
        )
        return _input_grads(ctx, d_a0, d_win, d_bin, d_wrec, d_bhn, d_h0, d_c0)


def _python_forward(ctx, unit, gated, a0, win, bin_, wrec, bhn, h0, c0, masks):
    """The Python implementation (the twin of the C++ kernels, and the path on GPUs)."""
    steps, batch, _ = a0.shape
    layers, _, hidden = h0.shape
    s = _Sizes(unit, gated, layers, hidden)
    new = a0.new_empty
    hs = new(steps + 1, layers, batch, hidden)
    hs[0] = h0
    cs = new(steps + 1, layers, batch, hidden) if unit == "lstm" else new(0)
    if unit == "lstm":
        cs[0] = c0
    acts = new(steps, layers, batch, s.GH) if unit != "tanh" else new(0)
    qs = new(steps, layers, batch, hidden) if unit == "gru" else new(0)
    gates = new(steps, layers, batch, layers) if gated else new(0)
    rs = new(steps, layers, batch, wrec.shape[2])
    for t in range(steps):
        r = rs[t]  # (L, N, K): everything read from step t-1, one product per source layer
        for i in range(layers):  # (faster than one bmm on CPU, which splits threads by batch)
            torch.mm(hs[t, i], wrec[i], out=r[i])
        glh = r[:, :, s.gate :].sum(0) if gated else None  # (N, L*L)
        for j in range(layers):
            if j == 0:
                a = a0[t]
            else:
                below = hs[t + 1, j - 1] if masks is None else hs[t + 1, j - 1] * masks[j - 1, t]
                a = torch.addmm(bin_[j - 1], below, win[j - 1].t())
            out = (
                hs[t + 1, j],
                cs[t + 1, j] if unit == "lstm" else None,
                acts[t, j] if unit != "tanh" else None,
                qs[t, j] if unit == "gru" else None,
                gates[t, j] if gated else None,
            )
            cprev = cs[t, j] if unit == "lstm" else None
            bhn_j = bhn[j] if bhn is not None else None
            _step_forward(s, j, a, r, glh, hs[t, j], cprev, bhn_j, out)
    ctx.save_for_backward(a0, win, wrec, bhn, masks, hs, cs, acts, qs, gates, rs)
    ctx.mark_non_differentiable(gates)
    return hs[1:], cs[1:] if unit == "lstm" else cs, gates


def _python_backward(ctx, d_hs, d_cs):
    a0, win, wrec, bhn, masks, hs, cs, acts, qs, gates, rs = ctx.saved_tensors
    s: _Sizes = ctx.sizes
    steps, layers, batch, hidden = d_hs.shape
    nf, gh = s.NF, s.GH
    new = d_hs.new_zeros
    d_a0 = d_hs.new_empty(a0.shape)
    d_a = d_hs.new_empty(layers - 1, steps, batch, gh + s.Lg) if layers > 1 else None
    d_rs = d_hs.new_empty(layers, steps, batch, wrec.shape[2])
    d_bhn = new(layers, hidden) if s.unit == "gru" else None
    wrec_t = wrec.transpose(1, 2)
    carry_h = new(layers, batch, hidden)
    carry_c = new(layers, batch, hidden) if s.unit == "lstm" else None
    for t in range(steps - 1, -1, -1):
        dh_all = d_hs[t] + carry_h  # (L, N, H): this step's states
        dc_all = (d_cs[t] + carry_c) if s.unit == "lstm" else None
        direct = new(layers, batch, hidden) if s.unit != "tanh" else None  # d h_{t-1} / d c_{t-1}
        d_r = d_rs[:, t]  # (L, N, K)
        for j in range(layers - 1, -1, -1):
            da = d_a0[t] if j == 0 else d_a[j - 1, t]
            d_mem = _backward_cell(s, t, j, dh_all[j], dc_all, hs, cs, acts, qs, da, direct)
            if d_bhn is not None:
                d_bhn[j] += d_mem.sum(0)
            mem_cols = slice(s.fb + j * hidden, s.fb + (j + 1) * hidden)
            if s.gated:
                g = gates[t, j]  # (N, L)
                mem = rs[t][:, :, mem_cols]  # (L, N, H)
                torch.mul(g.t()[:, :, None], d_mem, out=d_r[:, :, mem_cols])
                d_logit = torch.einsum("nh,inh->ni", d_mem, mem).mul_(g).mul_(1 - g)
                da[:, gh:] = d_logit
                d_r[:, :, s.gate + j * layers : s.gate + (j + 1) * layers] = d_logit
            else:
                d_r[:, :, mem_cols] = d_mem
            if nf:
                d_r[j, :, :nf] = da[:, :nf]
            if j > 0:
                d_below = da @ win[j - 1]
                if masks is not None:
                    d_below.mul_(masks[j - 1, t])
                dh_all[j - 1] += d_below
        carry_h = d_hs.new_empty(layers, batch, hidden)
        for i in range(layers):
            torch.mm(d_r[i], wrec_t[i], out=carry_h[i])
        if s.unit == "gru":
            carry_h += direct
        elif s.unit == "lstm":
            carry_c = direct
    # Weight gradients: one product over all steps.
    h_prev = hs[:steps].transpose(0, 1).reshape(layers, steps * batch, hidden)
    d_wrec = torch.bmm(h_prev.transpose(1, 2), d_rs.view(layers, steps * batch, -1))
    d_win = d_bin = None
    if layers > 1:
        below = hs[1:, :-1] if masks is None else hs[1:, :-1] * masks.transpose(0, 1)  # (T, L-1, N, H)
        below = below.permute(1, 0, 2, 3).reshape(layers - 1, steps * batch, hidden)
        flat = d_a.view(layers - 1, steps * batch, -1)
        d_win = torch.bmm(flat.transpose(1, 2), below)
        d_bin = flat.sum(1)
    return _input_grads(ctx, d_a0, d_win, d_bin, d_wrec, d_bhn, carry_h, carry_c)


def _input_grads(ctx, d_a0, d_win, d_bin, d_wrec, d_bhn, d_h0, d_c0) -> tuple:
    """Gradients in the order of GFStackFunction.forward's inputs (None where an input was None)."""
    has_win, has_bin, has_bhn = ctx.has
    return (
        None,
        None,
        d_a0,
        d_win if has_win else None,
        d_bin if has_bin else None,
        d_wrec,
        d_bhn if has_bhn else None,
        d_h0,
        d_c0 if ctx.sizes.unit == "lstm" else None,
        None,
    )


def _backward_cell(s: _Sizes, t, j, dh, dc_all, hs, cs, acts, qs, da, direct) -> Tensor:
    """Layer j's step in reverse: writes its input-product grads into ``da[:, :GH]`` and its direct
    grads into ``direct[j]`` (GRU: d h_{t-1}; LSTM: d c_{t-1}); returns d(gated sum)."""
    hidden, nf, gh = s.H, s.NF, s.GH
    if s.unit == "tanh":
        h = hs[t + 1, j]
        d_pre = da[:, :gh]
        torch.mul(h, h, out=d_pre).neg_().add_(1).mul_(dh)
        return d_pre
    act = acts[t, j]
    sig, cand = act[:, :nf], act[:, nf:]
    d_sig, d_cand = da[:, :nf], da[:, nf:gh]
    if s.unit == "lstm":
        i_g, f_g, o_g = sig.chunk(3, 1)
        tanh_c = torch.tanh(cs[t + 1, j])
        dc = dc_all[j].addcmul(dh * o_g, 1 - tanh_c * tanh_c)
        torch.mul(dc, cand, out=d_sig[:, :hidden])
        torch.mul(dc, cs[t, j], out=d_sig[:, hidden : 2 * hidden])
        torch.mul(dh, tanh_c, out=d_sig[:, 2 * hidden :])
        torch.mul(dc, i_g, out=d_cand).mul_(1 - cand * cand)
        torch.mul(dc, f_g, out=direct[j])
        d_sig.mul_(sig * (1 - sig))
        return d_cand
    # gru
    r_g, z_g = sig.chunk(2, 1)
    h_prev = hs[t, j]
    torch.mul(dh, 1 - z_g, out=d_cand).mul_(1 - cand * cand)  # d pre-activation of n
    torch.mul(d_cand, qs[t, j], out=d_sig[:, :hidden])  # d r
    torch.mul(dh, h_prev - cand, out=d_sig[:, hidden:])  # d z
    d_sig.mul_(sig * (1 - sig))
    torch.mul(dh, z_g, out=direct[j])
    return d_cand * r_g
