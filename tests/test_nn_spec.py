"""Parameter accounting, fair-size matching, the paper's presets, the gate plot."""

import pytest
import torch
from torch import nn

from gfseq.nn import (
    ARCHS,
    PAPER_NOGATE,
    PAPER_TABLE1,
    make_preset,
    make_stack,
    match_hidden_size,
    num_parameters,
    plot_gates,
)


def test_closed_form_matches_the_design_numbers_with_one_bias_per_map():
    # Hand count for input 20, hidden 100, 3 layers, one bias per map:
    # stacked LSTM: 4*100*(20+100+1) + 2 * 4*100*(100+100+1) = 48,400 + 160,800
    assert num_parameters("lstm", "stacked", 20, 100, 3, biases_per_block=1) == 209_200
    # gf adds 3*2 blocks U^{i->j} of 100x100 and, per pair, w_g + u_g + b: 3*(20+300+1) + 6*(100+300+1)
    assert num_parameters("lstm", "gf", 20, 100, 3, biases_per_block=1) == 209_200 + 60_000 + 963 + 2_406
    assert num_parameters("lstm", "gf", 20, 100, 3, biases_per_block=1) == 272_569
    # torch's layout has two biases per block: 4*100 more per layer
    assert num_parameters("lstm", "stacked", 20, 100, 3) == 210_400
    assert num_parameters("lstm", "gf", 20, 100, 3) == 273_769


@pytest.mark.parametrize("unit", ["tanh", "gru", "lstm"])
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("bias", [True, False])
def test_every_stack_has_exactly_its_closed_form_count(unit, arch, bias):
    layers = 1 if arch == "single" else 3
    rnn = make_stack(unit, 7, 5, layers, bias=bias, arch=arch)
    counted = sum(p.numel() for p in rnn.parameters())
    assert counted == num_parameters(unit, arch, 7, 5, layers, bias) == rnn.num_parameters()
    if arch in ("single", "stacked"):
        torch_rnn = {"tanh": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[unit](7, 5, layers, bias=bias)
        assert counted == sum(p.numel() for p in torch_rnn.parameters())


@pytest.mark.parametrize("unit", ["tanh", "gru", "lstm"])
@pytest.mark.parametrize("arch", ["stacked", "gf", "gf-nogate"])
@pytest.mark.parametrize("budget", [10_000, 210_400, 1_234_567])
def test_match_hidden_size_is_the_closest_count_by_brute_force(unit, arch, budget):
    found = match_hidden_size(unit, arch, 20, 3, budget)
    best = min(range(1, 2000), key=lambda h: (abs(num_parameters(unit, arch, 20, h, 3) - budget), h))
    assert found == best


def test_gf_lstm_matched_to_a_stacked_lstm_is_within_two_percent():
    stacked = num_parameters("lstm", "stacked", 64, 256, 3)
    h = match_hidden_size("lstm", "gf", 64, 3, stacked)
    assert h < 256 and abs(num_parameters("lstm", "gf", 64, h, 3) - stacked) / stacked < 0.02


def test_paper_presets_have_table_1_sizes_and_build():
    expected = {
        "tanh-single": (1, 1000, 1.937),
        "tanh-stacked": (3, 390, 1.892),
        "tanh-gf": (3, 303, 1.949),
        "gru-single": (1, 540, 1.883),
        "gru-stacked": (3, 228, 1.871),
        "gru-gf": (3, 165, 1.855),
        "gru-gf-l": (3, 228, 1.813),
        "lstm-single": (1, 456, 1.887),
        "lstm-stacked": (3, 191, 1.868),
        "lstm-gf": (3, 140, 1.842),
        "lstm-gf-l": (3, 191, 1.789),
    }
    assert {k: (p.num_layers, p.hidden_size, p.reported_bpc) for k, p in PAPER_TABLE1.items()} == expected
    assert (PAPER_NOGATE.arch, PAPER_NOGATE.reported_bpc) == ("gf-nogate", 1.854)
    for preset in (*PAPER_TABLE1.values(), PAPER_NOGATE):
        rnn = make_preset(preset.name, 205)
        assert (rnn.unit, rnn.arch, rnn.num_layers, rnn.hidden_size) == (
            preset.unit,
            preset.arch,
            preset.num_layers,
            preset.hidden_size,
        )
    with pytest.raises(
        ValueError, match=r"preset: expected one of .*, got 'lstm-fg' \(did you mean 'lstm-gf'\?\)"
    ):
        make_preset("lstm-fg", 205)


def test_unknown_unit_or_arch_in_the_count():
    with pytest.raises(ValueError, match=r"arch: expected one of .*, got 'gf-l'"):
        num_parameters("lstm", "gf-l", 20, 100, 3)
    with pytest.raises(ValueError, match=r"hidden_size: expected an integer >= 1, got 0"):
        num_parameters("lstm", "gf", 20, 0, 3)


def test_plot_gates_writes_a_png_with_one_panel_per_target_layer(tmp_path):
    torch.manual_seed(0)
    rnn = make_stack("gru", 3, 4, 3, arch="gf")
    with rnn.record_gates() as trace:
        rnn(torch.randn(12, 5, 3), lengths=[12, 4, 9, 12, 1])
    fig = plot_gates(trace.gates, tmp_path / "gates.png", title="GF-GRU")
    assert len(fig.axes) == 3
    assert (tmp_path / "gates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    single = plot_gates(trace.gates, example=1)
    assert len(single.axes[0].lines) == 3  # one line per source layer
    with pytest.raises(ValueError, match=r"gates: expected shape \(T, N, L, L\), got \(12, 5, 3\)"):
        plot_gates(trace.gates[..., 0])
