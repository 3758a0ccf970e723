"""Leak-free split assignment by a stable hash of the canonical form.

The SHA-256 of a program's canonical form (variables renamed in order of appearance) places it in one
bucket of the unit interval: ``train``, ``valid`` or ``test``. A split only accepts programs of its own
bucket, so an identical or renamed program can never be in two of them, whatever the seed, size or
machine; ``test_extrapolate`` draws from the ``test`` bucket and drops programs already in ``test``.
"""

from __future__ import annotations

SPLITS = ("train", "valid", "test", "test_extrapolate")
BUCKETS = ("train", "valid", "test")
BUCKET_OF = {"train": "train", "valid": "valid", "test": "test", "test_extrapolate": "test"}
DEFAULT_WEIGHTS = (0.8, 0.1, 0.1)


def bucket(canonical_sha256: str, weights: tuple[float, float, float] = DEFAULT_WEIGHTS) -> str:
    """The bucket of a program, from the hex SHA-256 of its canonical form."""
    u = int(canonical_sha256[:16], 16) / 2**64
    edge = 0.0
    for name, w in zip(BUCKETS, weights, strict=True):
        edge += w
        if u < edge:
            return name
    return BUCKETS[-1]


def oracle_sampled(canonical_sha256: str, rate: float) -> bool:
    """Whether the oracle checks this program; decided by its hash, so independent of chunking."""
    return int(canonical_sha256[16:32], 16) / 2**64 < rate
