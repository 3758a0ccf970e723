"""Build (once) and load the C++ CPU kernels in ``csrc/gf_cpu.cpp``.

The kernels are compiled on first use with torch's C++ extension builder (about a minute; the result
is cached in torch's extensions folder, ``TORCH_EXTENSIONS_DIR``, keyed by a hash of the source and
flags). ``GFSEQ_KERNELS=python`` skips them; if the build fails, a warning says why and the Python
implementation of the same Function is used.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import threading
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("csrc") / "gf_cpu.cpp"
#: The kernels keep per-layer scalars on the stack (kMaxLayers); deeper stacks use the Python path.
MAX_LAYERS = 64
_lock = threading.Lock()
_state: dict[str, object] = {}


def _flags() -> list[str]:
    flags = ["-O3", "-fopenmp"]  # OpenMP: at::parallel_for shares torch's own thread pool (its libgomp)
    capability = torch.backends.cpu.get_cpu_capability()
    if platform.machine() in ("x86_64", "AMD64") and capability in ("AVX2", "AVX512"):
        # torch's own vectorised math (Sleef) for exp and tanh; AVX2 runs on every AVX-512 machine too.
        flags += ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
    return flags


def choice() -> str:
    value = os.environ.get("GFSEQ_KERNELS", "auto")
    if value not in ("auto", "cpp", "python"):
        raise ValueError(f"GFSEQ_KERNELS: expected auto, cpp or python, got {value!r}")
    return value


def load():
    """The compiled module, or None when disabled or unavailable (with one warning saying why)."""
    if choice() == "python":
        return None
    with _lock:
        if "module" in _state:
            return _state["module"]
        flags = _flags()
        digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(flags).encode()).hexdigest()[:12]
        try:
            from torch.utils.cpp_extension import load as build

            name = f"gfseq_gf_cpu_{digest}"
            root = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions"
            folder = Path(root) / name
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / f"{name}.so").exists():
                print(
                    "gfseq: compiling the CPU kernels (once, about a minute)...", file=sys.stderr, flush=True
                )
            module = build(
                name=name,
                sources=[str(SOURCE)],
                extra_cflags=flags,
                extra_ldflags=["-fopenmp"],
                build_directory=str(folder),
                verbose=False,
            )
        except Exception as err:  # a missing compiler, ninja or headers: fall back, say so once
            if choice() == "cpp":
                raise
            warnings.warn(
                f"gfseq: C++ kernels unavailable ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                "using the slower Python implementation",
                RuntimeWarning,
                stacklevel=2,
            )
            module = None
        _state["module"] = module
        return module


def free_workspace() -> None:
    """Free the calling thread's backward workspace of the C++ kernels (it is kept between calls, at
    the size of the largest backward so far, to spare the page faults of fresh memory)."""
    module = _state.get("module")
    if module is not None:
        module.free_workspace()
