"""Gated-Feedback RNN layers (Chung et al., ICML 2015) and their single-layer and stacked baselines.

from gfseq.nn import GFLSTM
rnn = GFLSTM(input_size=32, hidden_size=128, num_layers=3, arch="gf")
output, (h_n, c_n) = rnn(x)                  # the nn.LSTM surface
with rnn.record_gates() as trace:            # g^{i->j}_t for every step
    rnn(x)
plot_gates(trace.gates, "gates.png")
"""

from gfseq.nn.layers import GFGRU, GFLSTM, GFRNN, GatedFeedbackRNN, GateTrace
from gfseq.nn.plot import plot_gates
from gfseq.nn.spec import (
    ARCHS,
    PAPER_LARGE,
    PAPER_NOGATE,
    PAPER_TABLE1,
    PRESETS,
    UNITS,
    Preset,
    match_hidden_size,
    num_parameters,
)


def fused_kernels_available() -> bool:
    """Whether the C++ CPU kernels are in use (built on first call; ``GFSEQ_KERNELS=python``: off)."""
    from gfseq.nn import _ext

    return _ext.load() is not None


def free_kernel_workspace() -> None:
    """Free this thread's backward workspace of the C++ kernels (kept between calls for speed)."""
    from gfseq.nn import _ext

    _ext.free_workspace()


def make_preset(name: str, input_size: int, **kwargs) -> GatedFeedbackRNN:
    """The stack of a paper preset (``PRESETS``: Table 1, the no-gate ablation, the larger GF-LSTM)."""
    presets = PRESETS
    if name not in presets:
        import difflib

        near = difflib.get_close_matches(name, list(presets), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(f"preset: expected one of {', '.join(presets)}, got {name!r}{hint}")
    p = presets[name]
    return GatedFeedbackRNN(input_size, p.hidden_size, p.num_layers, arch=p.arch, unit=p.unit, **kwargs)


def make_stack(unit: str, *args, **kwargs) -> GatedFeedbackRNN:
    """A stack of ``unit`` (``tanh``, ``gru`` or ``lstm``); other arguments as :class:`GatedFeedbackRNN`."""
    return GatedFeedbackRNN(*args, unit=unit, **kwargs)


__all__ = [
    "ARCHS",
    "GFGRU",
    "GFLSTM",
    "GFRNN",
    "GateTrace",
    "GatedFeedbackRNN",
    "PAPER_LARGE",
    "PAPER_NOGATE",
    "PAPER_TABLE1",
    "PRESETS",
    "Preset",
    "UNITS",
    "free_kernel_workspace",
    "fused_kernels_available",
    "make_preset",
    "make_stack",
    "match_hidden_size",
    "num_parameters",
    "plot_gates",
]
