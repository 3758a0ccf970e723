"""progeval: Learning-to-Execute programs with execution ground truth, curricula and leak-free splits.

    >>> from progeval import generate_program, run_trusted
    >>> p = generate_program(seed=0, split="train", length=2, nesting=2, index=0)
    >>> run_trusted(p.source) == oracle_output(p.source)
    True

This package imports no torch.
"""

from progeval.curriculum import CURRICULA, CurriculumState
from progeval.execute import Limits, run_trusted, run_untrusted
from progeval.generator import build_program, generate_program
from progeval.oracle import OracleMismatch, oracle_output
from progeval.program import Program, canonical_form, canonical_hash, parse_stream, to_stream
from progeval.safety import UnsafeProgramError, check_program


def __getattr__(name: str):
    # The dataset layer imports Hugging Face datasets; load it only when it is asked for.
    lazy = {
        "DatasetConfig": "progeval.config",
        "generate_dataset": "progeval.store",
        "load_dataset": "progeval.store",
        "regenerate": "progeval.store",
        "verify_dataset": "progeval.verify",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'progeval' has no attribute {name!r}")


__version__ = "0.1.0"
#: Bumped whenever the same arguments could give a different program.
GENERATOR_VERSION = "l2e-1"

__all__ = [
    "CURRICULA",
    "DatasetConfig",
    "generate_dataset",
    "load_dataset",
    "regenerate",
    "verify_dataset",
    "CurriculumState",
    "GENERATOR_VERSION",
    "Limits",
    "OracleMismatch",
    "Program",
    "UnsafeProgramError",
    "build_program",
    "canonical_form",
    "canonical_hash",
    "check_program",
    "generate_program",
    "oracle_output",
    "parse_stream",
    "run_trusted",
    "run_untrusted",
    "to_stream",
]
