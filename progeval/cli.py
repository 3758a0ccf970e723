"""``python -m progeval``: generate, verify, stats, show, regenerate.

Bad input is one line on stderr and exit code 2, never a traceback; a failed check exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from progeval.config import ConfigError, DatasetConfig
from progeval.curriculum import CURRICULA
from progeval.generator import MAX_LENGTH, MAX_NESTING
from progeval.store import ManifestError, generate_dataset, load_dataset, read_manifest, regenerate


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    return parse


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="progeval", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d = DatasetConfig()

    g = sub.add_parser("generate", help="generate a curriculum dataset folder")
    g.add_argument("--length", type=_int(1), default=d.length, help="max digits of every number")
    g.add_argument("--nest", type=_int(1), default=d.nesting, help="operations composed")
    g.add_argument("--curriculum", choices=CURRICULA, default=d.curriculum)
    for split in ("train", "valid", "test", "test-extrapolate"):
        g.add_argument(
            f"--{split}",
            type=_int(0),
            default=d.size(split.replace("-", "_")),
            help=f"examples in {split}",
        )
    g.add_argument(
        "--extrapolate-length",
        type=_int(0),
        default=None,
        help=f"test_extrapolate goes this many digits past --length (default {d.extrapolate_length}, "
        "less where the maximum length is nearer)",
    )
    g.add_argument(
        "--extrapolate-nest",
        type=_int(0),
        default=None,
        help=f"test_extrapolate goes this much deeper than --nest (default {d.extrapolate_nesting}, "
        "less where the maximum nesting is nearer)",
    )
    g.add_argument(
        "--oracle-rate",
        type=_rate,
        default=d.oracle_rate,
        help="share of programs the sympy oracle re-checks (1 = all)",
    )
    g.add_argument("--max-program-chars", type=_int(1), default=None)
    g.add_argument("--max-target-chars", type=_int(1), default=None)
    g.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="allow a program twice inside a split (never across splits); keeps the generator's "
        "operation mix in small cells",
    )
    g.add_argument("--seed", type=_int(0), default=d.seed)
    g.add_argument("--num-proc", type=_int(1), default=1)
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--overwrite", action="store_true")
    g.add_argument("--quiet", action="store_true", help="no progress bar")

    v = sub.add_parser("verify", help="re-check every label of a dataset folder")
    v.add_argument("dir", type=Path)
    v.add_argument("--no-exec", action="store_true", help="oracle only; nothing is executed")
    v.add_argument("--quiet", action="store_true")

    s = sub.add_parser("stats", help="counts per cell, length histograms, duplicate rate")
    s.add_argument("dir", type=Path)

    sh = sub.add_parser("show", help="print a few examples")
    sh.add_argument("dir", type=Path)
    sh.add_argument("-n", type=_int(1), default=5)
    sh.add_argument("--split", default="train")

    r = sub.add_parser("regenerate", help="rebuild a dataset from its manifest and compare")
    r.add_argument("manifest", type=Path)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--num-proc", type=_int(1), default=1)
    r.add_argument("--overwrite", action="store_true")
    r.add_argument("--quiet", action="store_true")
    return p


#: Config fields as the generate command spells them, for error messages.
FLAGS = {
    "length": "--length",
    "nesting": "--nest",
    "train": "--train",
    "valid": "--valid",
    "test": "--test",
    "test_extrapolate": "--test-extrapolate",
    "extrapolate_length": "--extrapolate-length",
    "extrapolate_nesting": "--extrapolate-nest",
    "oracle_rate": "--oracle-rate",
    "max_program_chars": "--max-program-chars",
    "max_target_chars": "--max-target-chars",
    "seed": "--seed",
    "num_proc": "--num-proc",
}


def _flag_names(message: str) -> str:
    """'length: expected ...' -> 'argument --length: expected ...', and field names inside."""
    head, sep, rest = message.partition(": ")
    if sep and head in FLAGS:
        message = f"argument {FLAGS[head]}: {rest}"
    for field_name in sorted(FLAGS, key=len, reverse=True):
        message = message.replace(f" {field_name} ", f" {FLAGS[field_name]} ")
    return message


def _generate(a: argparse.Namespace) -> int:
    d = DatasetConfig()
    if a.extrapolate_length is None:
        a.extrapolate_length = max(0, min(d.extrapolate_length, MAX_LENGTH - a.length))
    if a.extrapolate_nest is None:
        a.extrapolate_nest = max(0, min(d.extrapolate_nesting, MAX_NESTING - a.nest))
    cfg = _config_from_args(a)
    t0 = time.perf_counter()
    m = generate_dataset(cfg, a.out, num_proc=a.num_proc, overwrite=a.overwrite, progress=not a.quiet)
    counts = ", ".join(f"{s} {st['examples']}" for s, st in m["splits"].items())
    print(f"wrote {a.out} in {time.perf_counter() - t0:.1f} s: {counts}")
    print(f"fingerprint {m['fingerprint']}")
    return 0


def _config_from_args(a: argparse.Namespace) -> DatasetConfig:
    return DatasetConfig(
        length=a.length,
        nesting=a.nest,
        curriculum=a.curriculum,
        train=a.train,
        valid=a.valid,
        test=a.test,
        test_extrapolate=a.test_extrapolate,
        seed=a.seed,
        extrapolate_length=a.extrapolate_length,
        extrapolate_nesting=a.extrapolate_nest,
        oracle_rate=a.oracle_rate,
        max_program_chars=a.max_program_chars,
        max_target_chars=a.max_target_chars,
        unique=not a.keep_duplicates,
    )


def _verify(a: argparse.Namespace) -> int:
    from progeval.verify import verify_dataset

    report = verify_dataset(a.dir, execute=not a.no_exec, progress=not a.quiet)
    for line in report.problems[:20]:
        print(line)
    if len(report.problems) > 20:
        print(f"... and {len(report.problems) - 20} more")
    how = "oracle only" if a.no_exec else "oracle and sandboxed execution"
    verdict = "all correct" if report.ok else f"{len(report.problems)} problems"
    print(f"verified {report.checked} programs ({how}): {verdict}")
    return 0 if report.ok else 1


def _histogram(values: list[int], bins: int = 8) -> list[str]:
    if not values:
        return ["  (empty)"]
    lo, hi = min(values), max(values)
    width = max(1, -(-(hi - lo + 1) // bins))
    counts = Counter((v - lo) // width for v in values)
    peak = max(counts.values())
    return [
        f"  {lo + b * width:>5}-{lo + (b + 1) * width - 1:<5} {counts[b]:>7} "
        + "#" * round(40 * counts[b] / peak)
        for b in range(max(counts) + 1)
    ]


def _stats(a: argparse.Namespace) -> int:
    manifest = read_manifest(a.dir)
    dd = load_dataset(a.dir)
    for split, ds in dd.items():
        st = manifest["splits"][split]
        seen = st["examples"] + st["dropped_duplicate"]
        rate = st["dropped_duplicate"] / seen if seen else 0.0
        print(
            f"== {split}: {len(ds)} examples, duplicate rate {rate:.2%} "
            f"({st['dropped_duplicate']} dropped), {st['rejected_other_split']} of "
            f"{st['candidates']} candidates belonged to another split"
        )
        cells = Counter(zip(ds["length"], ds["nesting"], strict=True))
        lengths = sorted({c[0] for c in cells})
        nestings = sorted({c[1] for c in cells})
        print("  length \\ nesting " + "".join(f"{n:>8}" for n in nestings))
        for ln in lengths:
            print(f"  {ln:>16} " + "".join(f"{cells.get((ln, n), 0):>8}" for n in nestings))
        ops = Counter(op for row in ds["ops"] for op in row)
        total = sum(ops.values()) or 1
        print("  operations: " + ", ".join(f"{op} {ops[op] / total:.1%}" for op in sorted(ops)))
        print("  program length (characters):")
        print("\n".join(_histogram([len(p) for p in ds["program"]])))
        print("  target length (characters):")
        print("\n".join(_histogram([len(t) for t in ds["target"]])))
    return 0


def _show(a: argparse.Namespace) -> int:
    dd = load_dataset(a.dir)
    if not dd:
        raise ConfigError(f"{a.dir}: the dataset has no examples in any split")
    if a.split not in dd:
        raise ConfigError(f"--split: expected one of {', '.join(dd)}, got {a.split!r}")
    ds = dd[a.split]
    for row in ds.select(range(min(a.n, len(ds)))):
        print(
            f"--- {row['id']}  length {row['length']}, nesting {row['nesting']}, ops {' '.join(row['ops'])}"
        )
        print(row["program"])
        print(f"=> {row['target']}")
    return 0


def _regenerate(a: argparse.Namespace) -> int:
    _, differ = regenerate(
        a.manifest, a.out, num_proc=a.num_proc, overwrite=a.overwrite, progress=not a.quiet
    )
    if differ:
        print(f"regenerated into {a.out}; {len(differ)} files differ: {', '.join(differ[:5])}")
        return 1
    print(f"regenerated into {a.out}; every file is identical to the manifest")
    return 0


COMMANDS = {
    "generate": _generate,
    "verify": _verify,
    "stats": _stats,
    "show": _show,
    "regenerate": _regenerate,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.exit(2, f"progeval {args.command}: error: unrecognized arguments: {' '.join(extra)}\n")
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # output piped into head and the like
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except (ConfigError, ManifestError) as err:
        message = _flag_names(str(err)) if args.command == "generate" else str(err)
        print(f"progeval {args.command}: error: {message}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as err:
        print(f"progeval {args.command}: error: invalid JSON: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, permissions, a vanished folder: say which, in one line
        print(f"progeval {args.command}: error: {err.strerror or err}: {err.filename or ''}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"progeval {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
