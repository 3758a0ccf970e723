"""What a GF-RNN stack is made of: units, architectures, the closed-form parameter count, presets.

No torch here: these are the sizes a layer is built from and the numbers a comparison is made with.

Parameter count, in closed form. For a stack of ``L`` layers of ``H`` units reading ``I`` input
features, with ``G`` weight blocks per unit (tanh 1, GRU 3, LSTM 4) and ``b`` biases per block
(torch's layout has two, ``bias_ih`` and ``bias_hh``; the paper's equations have one; ``bias=False``
has none)::

    standard(L)  = G*H*(I + H + b) + (L - 1) * G*H*(H + H + b)        # single, stacked: nn.LSTM's count
    feedback     = L*(L - 1) * H*H                                     # U^{i->j}, i != j, one block each
    gates        = L*(I + L*H + c) + (L - 1)*L*(H + L*H + c)            # w_g, u_g and bias per pair i->j

where ``c`` is 1 with a bias and 0 without. ``gf`` = standard + feedback + gates; ``gf-nogate`` =
standard + feedback (its gates are fixed to 1, so it has none); ``single`` requires ``L = 1``.

In ``gf`` only the unit's memory content reads the other layers (the LSTM's cell candidate, the GRU's
candidate, the tanh unit's whole pre-activation), so ``feedback`` is one H x H block per ordered pair
of distinct layers, whatever the unit. Example (input 20, hidden 100, 3 layers, one bias per block):
GF-LSTM 272,569 and stacked LSTM 209,200; with torch's two biases 273,769 and 210,400.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Weight blocks per unit, in torch's gate order: tanh (n), GRU (r, z, n), LSTM (i, f, g, o).
UNITS = {"tanh": 1, "gru": 3, "lstm": 4}
ARCHS = ("single", "stacked", "gf", "gf-nogate")


def _close(word: str, choices) -> str:
    import difflib

    near = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def check_unit(unit: object) -> str:
    if unit not in UNITS:
        raise ValueError(f"unit: expected one of {', '.join(UNITS)}, got {unit!r}{_close(str(unit), UNITS)}")
    return unit  # type: ignore[return-value]


def check_arch(arch: object) -> str:
    if arch not in ARCHS:
        raise ValueError(f"arch: expected one of {', '.join(ARCHS)}, got {arch!r}{_close(str(arch), ARCHS)}")
    return arch  # type: ignore[return-value]


def _positive(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


def num_parameters(
    unit: str,
    arch: str,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    bias: bool = True,
    biases_per_block: int = 2,
) -> int:
    """The closed-form parameter count (module docstring); equals ``sum(p.numel())`` at the default.

    ``biases_per_block=2`` is torch's layout, which the layers use so that ``stacked`` loads
    ``nn.LSTM`` weights; ``1`` is the paper's equations (one bias per map).
    """
    g = UNITS[check_unit(unit)]
    check_arch(arch)
    i, h, n = (
        _positive(k, v)
        for k, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers))
    )
    if arch == "single" and n != 1:
        raise ValueError(f"num_layers: arch 'single' has exactly 1 layer, got {n}")
    if biases_per_block not in (0, 1, 2) or isinstance(biases_per_block, bool):
        raise ValueError(f"biases_per_block: expected 0, 1 or 2, got {biases_per_block!r}")
    b = biases_per_block if bias else 0
    c = 1 if bias else 0
    total = g * h * (i + h + b) + (n - 1) * g * h * (2 * h + b)
    if arch in ("gf", "gf-nogate"):
        total += n * (n - 1) * h * h
    if arch == "gf":
        total += n * (i + n * h + c) + (n - 1) * n * (h + n * h + c)
    return total


def match_hidden_size(
    unit: str,
    arch: str,
    input_size: int,
    num_layers: int,
    budget: int,
    bias: bool = True,
    biases_per_block: int = 2,
) -> int:
    """The hidden size whose stack has the parameter count closest to ``budget`` (ties: the smaller).

    For fair comparisons, e.g. a ``gf`` stack with as many parameters as a ``stacked`` one.
    """
    _positive("budget", budget)

    def count(h: int) -> int:
        return num_parameters(unit, arch, input_size, h, num_layers, bias, biases_per_block)

    lo, hi = 1, 1
    while count(hi) < budget:  # the count grows with h: find a bracket, then bisect
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < budget else (lo, mid)
    return lo if abs(count(lo) - budget) <= abs(count(hi) - budget) else hi


@dataclass(frozen=True)
class Preset:
    """One model of the paper's Table 1 (sizes) with its Table 2 enwik8 result as reported."""

    name: str
    unit: str
    arch: str
    num_layers: int
    hidden_size: int
    reported_bpc: float | None


#: Chung et al. (2015), Table 1 sizes and Table 2 BPC on enwik8 ("GF-L": gf at the stacked sizes).
PAPER_TABLE1: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tanh-single", "tanh", "single", 1, 1000, 1.937),
        Preset("tanh-stacked", "tanh", "stacked", 3, 390, 1.892),
        Preset("tanh-gf", "tanh", "gf", 3, 303, 1.949),
        Preset("gru-single", "gru", "single", 1, 540, 1.883),
        Preset("gru-stacked", "gru", "stacked", 3, 228, 1.871),
        Preset("gru-gf", "gru", "gf", 3, 165, 1.855),
        Preset("gru-gf-l", "gru", "gf", 3, 228, 1.813),
        Preset("lstm-single", "lstm", "single", 1, 456, 1.887),
        Preset("lstm-stacked", "lstm", "stacked", 3, 191, 1.868),
        Preset("lstm-gf", "lstm", "gf", 3, 140, 1.842),
        Preset("lstm-gf-l", "lstm", "gf", 3, 191, 1.789),
    )
}
#: The larger GF-LSTM of the paper's Table 2 (1.58 BPC). DESIGN.md does not give its size; 5 x 700 is
#: our reading of the paper's text and is labelled as such wherever it is shown (verify it).
PAPER_LARGE = Preset("lstm-gf-large", "lstm", "gf", 5, 700, 1.58)
#: The paper's ablation: GF-LSTM with every global gate fixed to 1 (1.854 BPC). The paper gives no
#: size for it; we assume the GF-LSTM's 3 x 140.
PAPER_NOGATE = Preset("lstm-gf-nogate", "lstm", "gf-nogate", 3, 140, 1.854)
#: Every named preset: Table 1, the no-gate ablation and the larger GF-LSTM.
PRESETS: dict[str, Preset] = {**PAPER_TABLE1, PAPER_NOGATE.name: PAPER_NOGATE, PAPER_LARGE.name: PAPER_LARGE}
