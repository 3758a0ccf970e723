"""How much each layer listens to each other layer over time: a figure of recorded global gates."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor


def plot_gates(gates: Tensor, path: str | Path | None = None, example: int | None = None, title: str = ""):
    """Plot g^{i->j}_t from :class:`gfseq.nn.GateTrace` (shape (T, N, L, L), ``[t, n, j, i]``).

    One panel per target layer j, one line per source layer i, step t on the x axis. ``example``
    picks a row; by default the mean over rows is drawn with a band from the 10th to the 90th
    percentile (NaN entries, past a row's length, are left out). Returns the matplotlib Figure and
    writes it to ``path`` (PNG) when given.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if gates.dim() != 4 or gates.shape[2] != gates.shape[3]:
        raise ValueError(f"gates: expected shape (T, N, L, L), got {tuple(gates.shape)}")
    g = gates.detach().float().cpu()
    steps, batch, layers, _ = g.shape
    if example is not None:
        if not 0 <= example < batch:
            raise ValueError(f"example: expected 0..{batch - 1}, got {example}")
        g = g[:, example : example + 1]
    centre = torch.nanmean(g, dim=1)  # (T, L, L)
    low = torch.nanquantile(g, 0.1, dim=1)
    high = torch.nanquantile(g, 0.9, dim=1)
    fig, axes = plt.subplots(1, layers, figsize=(3.2 * layers, 2.8), sharey=True, squeeze=False)
    t = range(1, steps + 1)
    for j, ax in enumerate(axes[0]):
        for i in range(layers):
            line = ax.plot(t, centre[:, j, i], label=f"from layer {i + 1}")[0]
            if g.shape[1] > 1:
                ax.fill_between(t, low[:, j, i], high[:, j, i], alpha=0.2, color=line.get_color())
        ax.set_title(f"into layer {j + 1}")
        ax.set_xlabel("step t")
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("global gate g")
    axes[0][-1].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
