"""gfseq.nn layers as a user meets them: torch's RNN surface, torch's own numbers, errors, padding."""

import pytest
import torch
from torch import nn

from gfseq.nn import GFGRU, GFLSTM, GFRNN, GatedFeedbackRNN, make_stack

TORCH = {"tanh": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
OURS = {"tanh": GFRNN, "gru": GFGRU, "lstm": GFLSTM}
UNITS = ("tanh", "gru", "lstm")


def states(result):
    """(h_n,) or (h_n, c_n) from a forward's second value."""
    return tuple(result) if isinstance(result, tuple) else (result,)


def initial_state(unit, layers, batch, hidden, dtype, batched=True):
    shape = (layers, batch, hidden) if batched else (layers, hidden)
    h = torch.randn(*shape, dtype=dtype)
    return (h, torch.randn(*shape, dtype=dtype)) if unit == "lstm" else h


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("arch,layers", [("single", 1), ("stacked", 3)])
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("impl", ["auto", "reference"])
def test_single_and_stacked_load_torch_weights_and_reproduce_torch(
    unit, arch, layers, dtype, atol, batch_first, with_hx, impl
):
    torch.manual_seed(0)
    theirs = TORCH[unit](6, 5, layers, batch_first=batch_first).to(dtype)
    ours = OURS[unit](6, 5, layers, batch_first=batch_first, arch=arch).to(dtype)
    ours.load_state_dict(theirs.state_dict())  # strict: same names, same shapes
    ours.impl = impl
    x = torch.randn(3, 7, 6, dtype=dtype) if batch_first else torch.randn(7, 3, 6, dtype=dtype)
    hx = initial_state(unit, layers, 3, 5, dtype) if with_hx else None
    out_t, st_t = theirs(x, hx)
    out_o, st_o = ours(x, hx)
    assert out_o.shape == out_t.shape
    torch.testing.assert_close(out_o, out_t, atol=atol, rtol=0)
    for a, b in zip(states(st_o), states(st_t), strict=True):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("arch", ["stacked", "gf", "gf-nogate"])
@pytest.mark.parametrize("impl", ["auto", "reference"])
def test_padded_rows_end_with_the_state_of_running_each_row_alone(unit, arch, impl):
    torch.manual_seed(1)
    rnn = OURS[unit](4, 6, 3, arch=arch).double()
    rnn.impl = impl
    lengths = [3, 7, 1, 5]  # unsorted, and one full length
    x = torch.randn(7, 4, 4, dtype=torch.float64)
    hx = initial_state(unit, 3, 4, 6, torch.float64)
    out, st = rnn(x, hx, lengths=torch.tensor(lengths))
    for row, n in enumerate(lengths):
        hx_row = tuple(s[:, row : row + 1] for s in hx) if unit == "lstm" else hx[:, row : row + 1]
        alone_out, alone_st = rnn(x[:n, row : row + 1], hx_row)
        torch.testing.assert_close(out[:n, row], alone_out[:, 0], atol=1e-12, rtol=0)
        assert torch.all(out[n:, row] == 0)
        for a, b in zip(states(st), states(alone_st), strict=True):
            torch.testing.assert_close(a[:, row], b[:, 0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("unit", UNITS)
def test_stacked_padding_matches_torch_packed_sequences(unit):
    torch.manual_seed(2)
    theirs = TORCH[unit](3, 4, 2, batch_first=True).double()
    ours = OURS[unit](3, 4, 2, batch_first=True, arch="stacked").double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([2, 5, 4])
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_t, st_t = theirs(packed)
    out_t = nn.utils.rnn.pad_packed_sequence(out_t, batch_first=True, total_length=5)[0]
    out_o, st_o = ours(x, lengths=lengths)
    torch.testing.assert_close(out_o, out_t, atol=1e-12, rtol=0)
    for a, b in zip(states(st_o), states(st_t), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("arch", ["stacked", "gf"])
def test_unbatched_input_equals_a_batch_of_one(unit, arch):
    torch.manual_seed(3)
    rnn = OURS[unit](3, 4, 2, arch=arch).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    hx = initial_state(unit, 2, 1, 4, torch.float64, batched=False)
    out, st = rnn(x, hx)
    hx_batched = tuple(s.unsqueeze(1) for s in hx) if unit == "lstm" else hx.unsqueeze(1)
    out_b, st_b = rnn(x.unsqueeze(1), hx_batched)
    assert out.shape == (5, 4)
    torch.testing.assert_close(out, out_b[:, 0])
    for a, b in zip(states(st), states(st_b), strict=True):
        assert a.shape == (2, 4)
        torch.testing.assert_close(a, b[:, 0])


@pytest.mark.parametrize("arch", ["stacked", "gf", "gf-nogate"])
def test_dropout_is_random_in_train_and_deterministic_in_eval(arch):
    torch.manual_seed(4)
    rnn = GFLSTM(5, 8, 3, dropout=0.5, arch=arch)
    x = torch.randn(6, 4, 5)
    rnn.train()
    assert not torch.equal(rnn(x)[0], rnn(x)[0])
    rnn.eval()
    first = rnn(x)[0]
    assert torch.equal(first, rnn(x)[0])
    rnn.dropout = 0.0  # eval ignores dropout: the same as a stack without it
    assert torch.equal(first, rnn(x)[0])


def test_dropout_reaches_only_the_inputs_of_upper_layers():
    torch.manual_seed(5)
    with pytest.warns(UserWarning, match="dropout=0.9 with num_layers=1 does nothing"):
        rnn = GFLSTM(5, 8, 1, dropout=0.9, arch="gf")  # one layer: nothing between layers to drop
    x = torch.randn(6, 4, 5)
    rnn.train()
    assert torch.equal(rnn(x)[0], rnn(x)[0])


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: GFLSTM(5, 0, 2), r"hidden_size: expected an integer >= 1, got 0"),
        (lambda: GFLSTM(5, 4, 0), r"num_layers: expected an integer >= 1, got 0"),
        (lambda: GFLSTM(5, 4, 2, dropout=1.0), r"dropout: expected a number in \[0, 1\), got 1.0"),
        (lambda: GFLSTM(5, 4, 2, dropout=-0.1), r"dropout: expected a number in \[0, 1\), got -0.1"),
        (
            lambda: GFLSTM(5, 4, 2, arch="gated"),
            r"arch: expected one of single, stacked, gf, gf-nogate, got 'gated'",
        ),
        (
            lambda: make_stack("lstmm", 5, 4),
            r"unit: expected one of tanh, gru, lstm, got 'lstmm' \(did you mean 'lstm'\?\)",
        ),
        (lambda: GFLSTM(5, 4, 3, arch="single"), r"num_layers: arch 'single' has exactly 1 layer, got 3"),
        (lambda: GFLSTM(5, 4, unit="gru"), r"unit: GFLSTM is the 'lstm' unit, got unit='gru'"),
        (lambda: GatedFeedbackRNN(5, 4), r"unit: GatedFeedbackRNN needs unit='tanh', 'gru' or 'lstm'"),
    ],
)
def test_bad_construction_names_what_was_expected_and_what_came(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_inputs_name_what_was_expected_and_what_came():
    rnn = GFLSTM(5, 4, 2)
    x = torch.randn(7, 3, 5)
    with pytest.raises(ValueError, match=r"input: expected last dimension input_size=5, got 6"):
        rnn(torch.randn(7, 3, 6))
    with pytest.raises(
        ValueError, match=r"input: expected 2 \(unbatched\) or 3 dimensions, got shape \(7,\)"
    ):
        rnn(torch.randn(7))
    with pytest.raises(ValueError, match=r"hx\[0\] \(h_0\): expected shape \(2, 3, 4\), got \(1, 3, 4\)"):
        rnn(x, (torch.zeros(1, 3, 4), torch.zeros(2, 3, 4)))
    with pytest.raises(ValueError, match=r"hx: expected a tuple \(h_0, c_0\) for the LSTM, got Tensor"):
        rnn(x, torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"hx: expected shape \(2, 3, 4\), got \(2, 4\)"):
        GFGRU(5, 4, 2)(x, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"lengths: expected values in 1\.\.7, got 0\.\.7"):
        rnn(x, lengths=[7, 0, 3])
    with pytest.raises(
        ValueError, match=r"lengths: expected 3 integers \(one per row\) in 1\.\.7, got shape \(2,\)"
    ):
        rnn(x, lengths=[7, 3])
    for bad in (
        [True, True, True],
        ["5", "3", "1"],
        [None, 3, 1],
        torch.ones(3, dtype=torch.bool),
        torch.ones(3),
    ):
        with pytest.raises(ValueError, match=r"^lengths: expected 3 integers \(one per row\) in 1\.\.7, got"):
            rnn(x, lengths=bad)
    with pytest.raises(
        ValueError, match=r"input: expected dtype torch.float32 \(the module's\), got torch.float64"
    ):
        rnn(x.double())
    with pytest.raises(
        ValueError, match=r"input: expected dtype torch.float32 \(the module's\), got torch.int64"
    ):
        rnn(x.long())
    with pytest.raises(
        ValueError,
        match=r"hx\[1\] \(c_0\): expected torch.float32 on cpu \(the module's\), got torch.float64",
    ):
        rnn(x, (torch.zeros(2, 3, 4), torch.zeros(2, 3, 4, dtype=torch.float64)))
    with pytest.raises(ValueError, match=r"hx\[1\] \(c_0\): expected shape \(2, 3, 4\), got NoneType"):
        rnn(x, (torch.zeros(2, 3, 4), None))


def test_state_dict_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(6)
    rnn = GFGRU(3, 4, 3, arch="gf")
    torch.save(rnn.state_dict(), tmp_path / "gf.pt")
    again = GFGRU(3, 4, 3, arch="gf")
    again.load_state_dict(torch.load(tmp_path / "gf.pt", weights_only=True))
    x = torch.randn(5, 2, 3)
    assert torch.equal(rnn(x)[0], again(x)[0])


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("arch", ["stacked", "gf"])
@pytest.mark.parametrize("lengths", [None, [5, 3]])
def test_outputs_are_independent_contiguous_tensors(unit, arch, lengths):
    rnn = OURS[unit](3, 4, 2, arch=arch)
    with torch.no_grad():
        out, st = rnn(torch.randn(5, 2, 3), lengths=lengths)
        kept = [s.clone() for s in states(st)]
        out.mul_(0)  # editing the output in place leaves the final states alone
    for a, b in zip(states(st), kept, strict=True):
        assert torch.equal(a, b) and a.is_contiguous()
    assert out.is_contiguous()


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("arch", ["stacked", "gf", "gf-nogate"])
def test_nan_in_padding_reaches_neither_outputs_nor_gradients(unit, arch):
    torch.manual_seed(7)
    rnn = OURS[unit](3, 4, 2, arch=arch)
    x = torch.randn(5, 2, 3)
    x[3:, 1] = float("nan")
    out, st = rnn(x, lengths=[5, 3])
    assert torch.all(out[3:, 1] == 0) and torch.isfinite(out).all()
    (out.sum() + sum(s.sum() for s in states(st))).backward()
    assert all(torch.isfinite(p.grad).all() for p in rnn.parameters())
