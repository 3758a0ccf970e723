"""GF-RNN equations: an independent numpy step, the slow twin, both fast kernels, gradients, gates."""

import numpy as np
import pytest
import torch

from gfseq.nn import GFGRU, GFLSTM, GFRNN, free_kernel_workspace, fused_kernels_available
from gfseq.nn.fused import GFStackFunction, pack

OURS = {"tanh": GFRNN, "gru": GFGRU, "lstm": GFLSTM}
UNITS = ("tanh", "gru", "lstm")
KERNELS = ["cpp", "python"]
#: The fast path is checked on every device this machine has (the C++ kernels are for the CPU).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=KERNELS)
def kernels(request, monkeypatch):
    """Run a test with the C++ kernels and again with their Python twin."""
    monkeypatch.setenv("GFSEQ_KERNELS", request.param)
    if request.param == "cpp" and not fused_kernels_available():
        pytest.fail("the C++ kernels did not build on this machine")
    return request.param


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_gf_step(p, unit, layers, hidden, x, h, c):
    """One step of a gf stack from the paper's equations, in numpy, pair by pair (no torch code)."""
    hstar = np.concatenate(h)
    new_h, new_c, gates = [], [], np.zeros((layers, layers))
    below = x
    for j in range(layers):
        w_ih, w_hh = p[f"weight_ih_l{j}"], p[f"weight_hh_l{j}"]
        b_ih, b_hh = p[f"bias_ih_l{j}"], p[f"bias_hh_l{j}"]
        mem = {"tanh": 0, "gru": 2, "lstm": 2}[unit]
        feedback = np.zeros(hidden)
        for i in range(layers):
            g = sigmoid(
                p[f"gate_weight_ih_l{j}"][i] @ below
                + p[f"gate_weight_hh_l{j}"][i] @ hstar
                + p[f"gate_bias_l{j}"][i]
            )
            gates[j, i] = g
            if i == j:
                u = w_hh[mem * hidden : (mem + 1) * hidden]
            else:
                slot = i if i < j else i - 1
                u = p[f"weight_fb_l{j}"][:, slot * hidden : (slot + 1) * hidden]
            feedback += g * (u @ h[i])
        wx = w_ih @ below + b_ih
        wh = w_hh @ h[j] + b_hh
        blk = lambda v, k: v[k * hidden : (k + 1) * hidden]  # noqa: E731
        if unit == "tanh":
            hj, cj = np.tanh(wx + feedback + b_hh), None
        elif unit == "gru":
            r, z = sigmoid(blk(wx, 0) + blk(wh, 0)), sigmoid(blk(wx, 1) + blk(wh, 1))
            n = np.tanh(blk(wx, 2) + r * (feedback + blk(b_hh, 2)))
            hj, cj = (1 - z) * n + z * h[j], None
        else:
            i_g, f_g, o_g = (sigmoid(blk(wx, k) + blk(wh, k)) for k in (0, 1, 3))
            cand = np.tanh(blk(wx, 2) + feedback + blk(b_hh, 2))
            cj = f_g * c[j] + i_g * cand
            hj = o_g * np.tanh(cj)
        new_h.append(hj)
        new_c.append(cj)
        below = hj
    return new_h, new_c, gates


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("impl", ["auto", "reference"])
def test_gf_matches_an_independent_numpy_implementation_of_the_equations(unit, impl):
    torch.manual_seed(10)
    layers, hidden = 3, 4
    rnn = OURS[unit](3, hidden, layers, arch="gf").double()
    rnn.impl = impl
    p = {k: v.detach().numpy() for k, v in rnn.named_parameters()}
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    h0 = torch.randn(layers, 2, hidden, dtype=torch.float64)
    c0 = torch.randn(layers, 2, hidden, dtype=torch.float64)
    with rnn.record_gates() as trace:
        out, st = rnn(x, (h0, c0) if unit == "lstm" else h0)
    for n in range(2):
        h, c = list(h0[:, n].numpy()), list(c0[:, n].numpy())
        for t in range(4):
            h, c, gates = numpy_gf_step(p, unit, layers, hidden, x[t, n].numpy(), h, c)
            np.testing.assert_allclose(out[t, n].detach().numpy(), h[-1], rtol=0, atol=1e-12)
            np.testing.assert_allclose(trace.gates[t, n].numpy(), gates, rtol=0, atol=1e-12)
        h_n = st[0] if unit == "lstm" else st
        np.testing.assert_allclose(h_n[:, n].detach().numpy(), np.stack(h), rtol=0, atol=1e-12)


def run_with_grads(rnn, x, hx, lengths=None):
    rnn.zero_grad()
    x = x.clone().requires_grad_(True)
    hx = (
        tuple(s.clone().requires_grad_(True) for s in hx)
        if isinstance(hx, tuple)
        else hx.clone().requires_grad_(True)
    )
    out, st = rnn(x, hx, lengths=lengths)
    st = st if isinstance(st, tuple) else (st,)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * weights).sum() + sum((s.sin() * (k + 1)).sum() for k, s in enumerate(st))
    loss.backward()
    hx_grads = [s.grad for s in hx] if isinstance(hx, tuple) else [hx.grad]
    return [out, *st, x.grad, *hx_grads] + [p.grad.clone() for p in rnn.parameters()]


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("arch", ["gf", "gf-nogate"])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("device", DEVICES)
def test_fast_path_equals_the_slow_twin_values_and_gradients(kernels, unit, arch, layers, device):
    torch.manual_seed(11)
    rnn = OURS[unit](5, 7, layers, arch=arch).double()  # 7: not a multiple of any vector width
    x = torch.randn(6, 4, 5, dtype=torch.float64)
    hx = (
        tuple(torch.randn(2, layers, 4, 7, dtype=torch.float64))
        if unit == "lstm"
        else torch.randn(layers, 4, 7, dtype=torch.float64)
    )
    lengths = torch.tensor([6, 2, 5, 1])
    rnn, x = rnn.to(device), x.to(device)
    hx = tuple(s.to(device) for s in hx) if unit == "lstm" else hx.to(device)
    for lens in (None, lengths):
        rnn.impl = "auto"
        fast = run_with_grads(rnn, x, hx, lens)
        rnn.impl = "reference"
        slow = run_with_grads(rnn, x, hx, lens)
        for a, b in zip(fast, slow, strict=True):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("gated", [True, False])
def test_gradcheck_of_the_fused_function(kernels, unit, gated):
    torch.manual_seed(12)
    steps, batch, layers, hidden, below = 3, 2, 2, 3, 4
    rnn = OURS[unit](below, hidden, layers, arch="gf" if gated else "gf-nogate").double()
    w = {
        k: (v.detach().clone().requires_grad_(True) if v is not None else None) for k, v in pack(rnn).items()
    }
    a0 = torch.randn(steps, batch, w["win0"].shape[0], dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(layers, batch, hidden, dtype=torch.float64, requires_grad=True)
    c0 = (
        torch.randn(layers, batch, hidden, dtype=torch.float64, requires_grad=True)
        if unit == "lstm"
        else None
    )

    def f(a0, win, bin_, wrec, bhn, h0, c0):
        hs, cs, _ = GFStackFunction.apply(unit, gated, a0, win, bin_, wrec, bhn, h0, c0, None)
        return (hs, cs) if unit == "lstm" else hs

    inputs = (a0, w["win"], w["bin"], w["wrec"], w["bhn"], h0, c0)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("unit", UNITS)
def test_cpp_kernels_equal_their_python_twin_with_dropout_in_float32(unit, monkeypatch):
    if not fused_kernels_available():
        pytest.fail("the C++ kernels did not build on this machine")
    torch.manual_seed(13)
    rnn = OURS[unit](6, 19, 3, dropout=0.3, arch="gf")  # dropout masks come from the same seed
    x = torch.randn(9, 5, 6)
    hx = tuple(torch.randn(2, 3, 5, 19)) if unit == "lstm" else torch.randn(3, 5, 19)
    results = {}
    for kernels in KERNELS:
        monkeypatch.setenv("GFSEQ_KERNELS", kernels)
        torch.manual_seed(99)
        results[kernels] = run_with_grads(rnn, x, hx)
    for a, b in zip(results["cpp"], results["python"], strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("unit", UNITS)
def test_gf_without_cross_layer_weights_and_with_open_gates_is_the_stacked_stack(kernels, unit):
    torch.manual_seed(14)
    gf = OURS[unit](5, 6, 3, arch="gf").double()
    stacked = OURS[unit](5, 6, 3, arch="stacked").double()
    with torch.no_grad():
        for k in range(3):
            getattr(gf, f"weight_fb_l{k}").zero_()
            getattr(gf, f"gate_weight_ih_l{k}").zero_()
            getattr(gf, f"gate_weight_hh_l{k}").zero_()
            getattr(gf, f"gate_bias_l{k}").fill_(50.0)  # sigmoid(50) is 1 in float64
    missing = stacked.load_state_dict(gf.state_dict(), strict=False)
    assert missing.missing_keys == []
    x = torch.randn(8, 3, 5, dtype=torch.float64)
    with gf.record_gates() as trace:
        out_gf, st_gf = gf(x)
    assert torch.all(trace.gates == 1)
    out_st, st_st = stacked(x)
    torch.testing.assert_close(out_gf, out_st, atol=1e-12, rtol=0)
    for a, b in zip(
        st_gf if unit == "lstm" else (st_gf,), st_st if unit == "lstm" else (st_st,), strict=True
    ):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_a_gate_is_one_scalar_per_pair_and_example_scaling_all_of_u_times_h(kernels):
    """Perturb only the top layer's previous state; the bottom layer's pre-activation moves by exactly
    g^{3->1} * U^{3->1} delta, one scalar per example, and nothing else."""
    torch.manual_seed(15)
    rnn = GFRNN(3, 5, 3, arch="gf").double()  # tanh unit: atanh(h) is the pre-activation
    with torch.no_grad():
        rnn.gate_weight_hh_l0[:, 10:15] = 0  # gates into layer 1 do not read layer 3's state
        rnn.weight_ih_l0.mul_(0.1)
    x = torch.randn(1, 4, 3, dtype=torch.float64)
    h0 = torch.randn(3, 4, 5, dtype=torch.float64) * 0.3
    delta = torch.randn(4, 5, dtype=torch.float64) * 0.1
    moved = h0.clone()
    moved[2] += delta
    with rnn.record_gates() as trace:
        _, h_a = rnn(x, h0)
        _, h_b = rnn(x, moved)
    g_a, g_b = trace.calls
    assert g_a.shape == (1, 4, 3, 3)
    torch.testing.assert_close(g_a[:, :, 0], g_b[:, :, 0], atol=1e-14, rtol=0)  # gates into layer 1 unchanged
    assert not torch.allclose(g_a[0, 0], g_a[0, 1])  # per example, not shared across the batch
    u_31 = rnn.weight_fb_l0[:, 5:10]  # U^{3->1}: the second "other layer" block of layer 1
    expected = g_a[0, :, 0, 2, None] * (delta @ u_31.t())
    shift = torch.atanh(h_b[0]) - torch.atanh(h_a[0])
    torch.testing.assert_close(shift, expected, atol=1e-10, rtol=0)


def test_gate_trace_shape_range_padding_and_batch_first(kernels):
    torch.manual_seed(16)
    rnn = GFLSTM(3, 4, 2, batch_first=True, arch="gf")
    x = torch.randn(3, 5, 3)
    with rnn.record_gates() as trace:
        out, _ = rnn(x, lengths=[5, 2, 4])
    g = trace.gates
    assert g.shape == (3, 5, 2, 2) and not g.requires_grad  # (N, T, L_target, L_source)
    assert torch.isnan(g[1, 2:]).all() and torch.isnan(g[2, 4:]).all()
    valid = g[~torch.isnan(g)]
    assert valid.numel() == (5 + 2 + 4) * 4 and torch.all((valid > 0) & (valid < 1))
    rnn(x)  # outside the block: nothing recorded
    assert len(trace.calls) == 1
    stacked = GFLSTM(3, 4, 2, arch="stacked")
    with pytest.raises(ValueError, match="arch 'stacked' has no global gates"), stacked.record_gates():
        pass
    with GFLSTM(3, 4, 2, arch="gf-nogate").record_gates() as ones:
        GFLSTM(3, 4, 2, arch="gf-nogate")(x)
    assert ones.calls == []  # another module's calls are not recorded


def test_gf_nogate_records_gates_fixed_to_one():
    rnn = GFGRU(3, 4, 2, arch="gf-nogate")
    with rnn.record_gates() as trace:
        rnn(torch.randn(5, 2, 3))
    assert torch.equal(trace.gates, torch.ones(5, 2, 2, 2))


def test_stacks_deeper_than_the_cpp_kernels_allow_run_on_the_python_path():
    torch.manual_seed(17)
    rnn = GFRNN(2, 2, 70, arch="gf").double()  # the C++ kernels stop at 64 layers
    x = torch.randn(2, 1, 2, dtype=torch.float64)
    fast = run_with_grads(rnn, x, torch.zeros(70, 1, 2, dtype=torch.float64))
    rnn.impl = "reference"
    slow = run_with_grads(rnn, x, torch.zeros(70, 1, 2, dtype=torch.float64))
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_the_kernel_workspace_can_be_freed_between_backward_passes(kernels):
    torch.manual_seed(18)
    rnn = GFLSTM(3, 5, 2, arch="gf").double()
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    hx = tuple(torch.zeros(2, 2, 2, 5, dtype=torch.float64))
    first = run_with_grads(rnn, x, hx)
    free_kernel_workspace()
    again = run_with_grads(rnn, x, hx)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
