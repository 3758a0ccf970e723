"""Sample bytes from a trained enwik8 model: ``python -m gfseq.sample CHECKPOINT --prime "<page>" -n 500``.

CHECKPOINT is a model's checkpoint.pt from an enwik8 run (``runs/<id>/<arch>/checkpoint.pt``) or its
folder. It is loaded with ``weights_only=True``. The model reads the prime's UTF-8 bytes, then draws
``-n`` bytes one at a time (``--temperature`` divides the logits; ``--seed`` names the sampling seed),
and the prime plus the sample are written to stdout (bytes that are not valid UTF-8 are replaced).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m gfseq.sample", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, help="checkpoint.pt of an enwik8 run's model, or its folder")
    p.add_argument("--prime", default="<page>", help="text the model reads first (default: <page>)")
    p.add_argument("-n", type=int, default=500, help="bytes to draw (default 500)")
    p.add_argument("--temperature", type=float, default=1.0, help="logits are divided by this (default 1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    return p


def load_model(path: Path, device: str = "cpu"):
    """The CharLM stored in an enwik8 checkpoint (weights only), in eval mode."""
    from gfseq.engine import CheckpointError, load_checkpoint
    from gfseq.models.charlm import CharLM, CharLMShape

    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    state = load_checkpoint(path)
    config = state.get("config")
    task = config.get("task", {}).get("name") if isinstance(config, dict) else None
    if task != "enwik8":
        raise CheckpointError(f"{path}: a {task or 'unknown'} model, not an enwik8 language model")
    if not isinstance(state.get("shape"), dict):
        raise CheckpointError(f"{path}: not a gfseq.run checkpoint (no model shape)")
    shape = dict(state["shape"])
    shape.pop("parameters", None)
    model = CharLM(CharLMShape(**shape))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n < 0:
        print(f"gfseq.sample: error: -n: expected a count >= 0, got {args.n}", file=sys.stderr)
        return 2
    if not 1e-3 <= args.temperature <= 1e3:
        print(
            f"gfseq.sample: error: --temperature: expected a number in [0.001, 1000], got {args.temperature}",
            file=sys.stderr,
        )
        return 2
    prime = args.prime.encode("utf-8", "surrogateescape")  # bytes from the command line as given
    if not prime:
        print("gfseq.sample: error: --prime: expected at least one character", file=sys.stderr)
        return 2
    import re

    import torch

    from gfseq.engine import CheckpointError

    try:
        if args.device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", args.device):
            raise CheckpointError(f"--device: expected cpu, cuda or cuda:N, got {args.device!r}")
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise CheckpointError(f"--device: {args.device!r} was asked for but torch sees no GPU")
        model = load_model(args.checkpoint, args.device)
    except (CheckpointError, TypeError, RuntimeError, KeyError, AttributeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        print(f"gfseq.sample: error: {first}", file=sys.stderr)
        return 2
    generator = torch.Generator().manual_seed(args.seed)
    drawn = model.sample(prime, args.n, generator, args.temperature)
    sys.stdout.write((prime + drawn).decode("utf-8", errors="replace") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
