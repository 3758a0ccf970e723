"""Model sizes for fair comparisons: the width whose model has a given parameter count."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gfseq.config import ConfigError

S = TypeVar("S")

#: Largest parameter mismatch allowed between models compared at one parameter count.
PARAMETER_TOLERANCE = 0.02


def closest_width(make: Callable[[int], S], budget: int) -> S:
    """``make(h)`` for the hidden size ``h`` whose ``num_parameters()`` is closest to ``budget``
    (ties: the smaller). The count grows with ``h``: find a bracket, then bisect."""
    lo, hi = 1, 2
    while make(hi).num_parameters() < budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if make(mid).num_parameters() < budget else (lo, mid)
    return make(min((lo, hi), key=lambda h: (abs(make(h).num_parameters() - budget), h)))


def require_matched(shapes: dict[str, S]) -> dict[str, S]:
    """``shapes`` unchanged when their counts are within PARAMETER_TOLERANCE, else a ConfigError."""
    counts = {a: s.num_parameters() for a, s in shapes.items()}
    if max(counts.values()) > (1 + PARAMETER_TOLERANCE) * min(counts.values()):
        listed = ", ".join(f"{a} {n:,}" for a, n in counts.items())
        raise ConfigError(
            f"model: cannot match parameter counts within {PARAMETER_TOLERANCE:.0%} at this size "
            f"({listed}); use a larger model.hidden or model.params"
        )
    return shapes
