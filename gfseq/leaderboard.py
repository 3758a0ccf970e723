"""The leaderboard: ``python -m gfseq.leaderboard submit | render | verify``.

    python -m gfseq.leaderboard submit runs/<id>/result.json --name "my GF-LSTM"
    python -m gfseq.leaderboard render
    python -m gfseq.leaderboard verify

* ``submit`` checks a result against gfseq/schemas/result.schema.json (jsonschema) and the rules a
  schema cannot state (finite numbers, counts that add up, ...), requires a known git commit and a
  data fingerprint of one of the canonical datasets in tasks/leaderboard/datasets.toml, checks the
  predictions file against the hash in the result, and copies both into
  leaderboard/entries/<task>/: ``<id>.json`` (the result, untouched, under "result", and the entry's
  own record under "entry") and ``<id>.predictions.jsonl``. Files are never overwritten; the same
  result twice is refused. Every refusal is one line, exit 2.
* ``render`` writes leaderboard/README.md: one table per task and track, each column saying whether
  lower or higher is better, rows ranked by the task's main metric (enwik8: test bits per byte, lower
  first; progeval: test exact match, higher first), entries without that metric listed after the
  ranked ones and never ranked, names escaped for Markdown, the paper's enwik8 numbers (DESIGN.md
  section 4) as rows marked "reported"; and figures under leaderboard/figures/.
* ``verify`` recomputes every entry's metrics from its saved predictions (program evaluation: per
  program; enwik8: per stream's bits) and checks every file against the hashes in its entry; it
  prints each mismatch and exits 1 when there is one.

Tracks: a model is "parameter-matched" when its parameter count is within 10 % of the paper's Table 1
count for its unit and arch (enwik8: the byte-level model of that preset); the paper gives no sizes
for its program-evaluation models, so there a model is "parameter-matched" when its result compared
models at one parameter count (``model.sizes = "matched"``, within 2 %). Every other model is "open".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import shutil
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from gfseq.config import TASKS_DIR
from gfseq.results import ResultError, sha256_file, validate

ROOT = Path(__file__).resolve().parent.parent / "leaderboard"
DATASETS_FILE = TASKS_DIR / "leaderboard" / "datasets.toml"
TRACKS = ("parameter-matched", "open")
TRACK_TOLERANCE = 0.10
#: Each task's ranking metric: (split, metric, higher is better, column title).
RANKED_BY = {
    "enwik8": ("test", "bpc", False, "test BPC (bits per byte) ↓ lower is better"),
    "progeval": ("test", "exact_match", True, "test exact match ↑ higher is better"),
}
SOURCE = "Chung et al. (2015), Table 2"


class SubmissionError(ValueError):
    """A submission is refused; the message is the one-line reason."""


def canonical_datasets(path: Path = DATASETS_FILE) -> list[dict]:
    return tomllib.loads(path.read_text())["dataset"]


def _canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def result_digest(result: dict) -> str:
    """The identity of a result: SHA-256 of its canonical JSON (key order and spacing do not count)."""
    return hashlib.sha256(_canonical_json(result)).hexdigest()


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "entry"


# ----------------------------------------------------------------------------------------------- submit


def _read_result(path: Path) -> dict:
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file")
    try:
        result = json.loads(path.read_text(), parse_constant=lambda c: float(c))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SubmissionError(f"{path}: not a JSON result ({err})") from None
    if not isinstance(result, dict):
        raise SubmissionError(f"{path}: not a JSON result (a {type(result).__name__}, not an object)")
    return result


def check_submission(result: dict, predictions: Path, datasets: list[dict]) -> dict:
    """The canonical dataset the result was measured on; SubmissionError with the reason if refused."""
    try:
        validate(result)
    except ResultError as err:
        raise SubmissionError(str(err)) from None
    if result["git_commit"] in ("", "unknown") or not re.fullmatch(r"[0-9a-f]{40}", result["git_commit"]):
        raise SubmissionError(
            f"result.git_commit: expected the 40-digit commit that ran it, got {result['git_commit']!r}"
        )
    if result["versions"].get("gfseq", "not installed") == "not installed":
        raise SubmissionError("result.versions.gfseq: the package version is missing")
    task, fp = result["task"]["name"], result["data"]["fingerprint"]
    known = [d for d in datasets if d["task"] == task]
    match = [d for d in known if d["fingerprint"] == fp]
    if not match:
        names = ", ".join(d["name"] for d in known) or "none"
        raise SubmissionError(
            f"result.data.fingerprint: {fp[:16]}... is not a canonical {task} dataset ({names}; "
            "see tasks/leaderboard/datasets.toml)"
        )
    if task == "enwik8" and not result["data"].get("verified", False):
        raise SubmissionError("result.data.verified: the enwik8 file's MD5 was not the published one")
    if not predictions.is_file():
        raise SubmissionError(f"{predictions}: the result's predictions file is missing")
    if sha256_file(predictions) != result["predictions"]["sha256"]:
        raise SubmissionError(f"{predictions}: does not match the SHA-256 recorded in the result")
    return match[0]


def submit(result_path: Path, name: str | None, root: Path = ROOT, datasets_file: Path | None = None) -> Path:
    """Check a result and copy it into the leaderboard; the new entry's path."""
    result_path = Path(result_path)
    result = _read_result(result_path)
    pred_name = (
        result.get("predictions", {}).get("file", "predictions.jsonl")
        if isinstance(result.get("predictions"), dict)
        else "predictions.jsonl"
    )
    predictions = result_path.parent / str(pred_name)
    dataset = check_submission(result, predictions, canonical_datasets(datasets_file or DATASETS_FILE))
    name = name if name is not None else result_path.parent.name
    if not name.strip() or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise SubmissionError(f"--name: expected 1 to 200 printable characters, got {name!r}")
    task = result["task"]["name"]
    folder = root / "entries" / task
    digest = result_digest(result)
    for existing in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            seen = json.loads(existing.read_text())["entry"]["result_sha256"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            continue
        if seen == digest:
            raise SubmissionError(f"{result_path}: already submitted as {existing.name}")
    entry_id = f"{_slug(name)}-{digest[:12]}"
    target, pred_target = folder / f"{entry_id}.json", folder / f"{entry_id}.predictions.jsonl"
    if target.exists() or pred_target.exists():
        raise SubmissionError(f"{target}: exists; entries are never overwritten")
    entry = {
        "entry": {
            "id": entry_id,
            "name": name,
            "submitted": datetime.now(UTC).isoformat(timespec="seconds"),
            "dataset": dataset["name"],
            "result_sha256": digest,
            "predictions": {"file": pred_target.name, "sha256": result["predictions"]["sha256"]},
        },
        "result": result,
    }
    folder.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(predictions, pred_target)
        with open(target, "x") as f:  # "x": never overwrite, even in a race
            f.write(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    except BaseException:
        pred_target.unlink(missing_ok=True)
        raise
    return target


# ----------------------------------------------------------------------------------------------- rows


def paper_count(unit: str, arch: str) -> int | None:
    """The parameter count of the paper's Table 1 model of this unit and arch, as a byte-level LM."""
    from gfseq.models.charlm import CharLMShape
    from gfseq.nn.spec import PAPER_NOGATE, PAPER_TABLE1

    p = {**PAPER_TABLE1, PAPER_NOGATE.name: PAPER_NOGATE}.get(f"{unit}-{arch}")
    return CharLMShape(p.unit, p.arch, p.num_layers, p.hidden_size).num_parameters() if p else None


def track(result: dict, model: dict) -> str:
    if result["task"]["name"] == "progeval":
        matched = result["config"].get("model", {}).get("sizes", "matched") == "matched"
        return "parameter-matched" if matched and len(result["models"]) > 1 else "open"
    count = paper_count(model["unit"], model["arch"])
    if count and abs(model["parameters"] - count) <= TRACK_TOLERANCE * count:
        return "parameter-matched"
    return "open"


def load_entries(root: Path = ROOT) -> list[dict]:
    out = []
    for path in sorted((root / "entries").glob("*/*.json")):
        entry = json.loads(path.read_text())
        entry["_path"] = path
        out.append(entry)
    return out


def rows(entries: list[dict]) -> list[dict]:
    """One row per model of every entry, plus the paper's reported enwik8 numbers."""
    from gfseq.nn.spec import PAPER_LARGE, PRESETS

    out = []
    for e in entries:
        result = e["result"]
        task = result["task"]["name"]
        for arch, model in result["models"].items():
            out.append(
                {
                    "task": task,
                    "track": track(result, model),
                    "name": e["entry"]["name"],
                    "entry": e["entry"]["id"],
                    "source": "entry",
                    "unit": model["unit"],
                    "arch": arch,
                    "size": f"{model['layers']} x {model['hidden']}",
                    "parameters": model["parameters"],
                    "metrics": result["metrics"].get(arch, {}),
                }
            )
    from gfseq.models.charlm import CharLMShape

    for name, p in PRESETS.items():
        count = CharLMShape(p.unit, p.arch, p.num_layers, p.hidden_size).num_parameters()
        out.append(
            {
                "task": "enwik8",
                "track": "open"
                if p is PAPER_LARGE
                else track(
                    {"task": {"name": "enwik8"}}, {"unit": p.unit, "arch": p.arch, "parameters": count}
                ),
                "name": f"{name} ({SOURCE})",
                "entry": None,
                "source": "reported",
                "unit": p.unit,
                "arch": p.arch,
                "size": f"{p.num_layers} x {p.hidden_size}"
                + (" (size: our reading)" if p is PAPER_LARGE else ""),
                "parameters": count,
                "metrics": {"test": {"bpc": p.reported_bpc}},
            }
        )
    out.append(
        {
            "task": "enwik8",
            "track": "open",
            "name": f"stacked LSTM, larger ({SOURCE})",
            "entry": None,
            "source": "reported",
            "unit": "lstm",
            "arch": "stacked",
            "size": "not given",
            "parameters": None,
            "metrics": {"test": {"bpc": 1.67}},
        }
    )
    return out


def _value(row: dict) -> float | None:
    split, metric, _, _ = RANKED_BY[row["task"]]
    v = row["metrics"].get(split, {})
    v = v.get("overall", v).get(metric) if isinstance(v, dict) else None
    return v if isinstance(v, int | float) and math.isfinite(v) else None


def ranked(table_rows: list[dict]) -> list[tuple[int | None, dict]]:
    """(rank, row): rows with the metric by value (ties share a rank), then rows without it, unranked.
    Reported rows take their place by value but no rank of their own."""
    task = table_rows[0]["task"]
    higher = RANKED_BY[task][2]
    complete = [r for r in table_rows if _value(r) is not None]
    incomplete = [r for r in table_rows if _value(r) is None]
    complete.sort(key=lambda r: (-_value(r) if higher else _value(r), r["source"] != "entry", r["name"]))
    out, rank, last, position = [], None, None, 0
    for r in complete:
        if r["source"] != "entry":
            out.append((None, r))
            continue
        position += 1
        if _value(r) != last:
            rank, last = position, _value(r)
        out.append((rank, r))
    return out + [(None, r) for r in sorted(incomplete, key=lambda r: r["name"])]


# ----------------------------------------------------------------------------------------------- render


def md(text: object) -> str:
    """Text safe inside a Markdown table cell: no HTML, no table breaks, no emphasis or links."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|#~!])", r"\\\1", s)


def _fmt(v: float | None, digits: int) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) else "-"


def table(task: str, track_name: str, table_rows: list[dict]) -> str:
    split, metric, higher, title = RANKED_BY[task]
    if task == "enwik8":
        head = [
            "rank",
            "name",
            "source",
            "unit",
            "arch",
            "layers x hidden",
            "parameters",
            title,
            "valid BPC ↓",
        ]
    else:
        head = ["rank", "name", "source", "unit", "arch", "layers x hidden", "parameters", title,
                "test char accuracy ↑"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, r in ranked(table_rows):
        if task == "enwik8":
            extra = [_fmt(_value(r), 3), _fmt(r["metrics"].get("valid", {}).get("bpc"), 3)]
        else:
            overall = r["metrics"].get("test", {}).get("overall", {})
            extra = [_fmt(_value(r), 3), _fmt(overall.get("char_accuracy"), 3)]
        source = "reported" if r["source"] == "reported" else f"entry `{r['entry']}`"
        cells = [
            str(rank) if rank is not None else ("-" if r["source"] == "reported" else "unranked"),
            md(r["name"]),
            source,
            r["unit"],
            r["arch"],
            md(r["size"]),
            f"{r['parameters']:,}" if r["parameters"] else "-",
            *extra,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_text(entries: list[dict]) -> str:
    all_rows = rows(entries)
    out = [
        "# Leaderboard",
        "",
        "Written by `python -m gfseq.leaderboard render` from leaderboard/entries/ (do not edit by hand).",
        "Every entry was checked on submission (schema, provenance, canonical data) and can be re-checked",
        'with `python -m gfseq.leaderboard verify`. Rows marked "reported" are the paper\'s numbers as',
        "published (not re-run here) and take no rank; entries without the ranked metric are listed",
        'as "unranked". Tracks: "parameter-matched" is within 10 % of the paper\'s Table 1 parameter',
        "count for the row's unit and arch (program evaluation: the entry compared its models at one",
        'parameter count); "open" is everything else. Parameters of reported rows are our count of',
        "that size as a byte-level model (one-hot input, 256 outputs, torch's two biases per gate).",
    ]
    for task in ("enwik8", "progeval"):
        title = {"enwik8": "enwik8: bits per byte", "progeval": "Program evaluation (progeval)"}[task]
        out += ["", f"## {title}"]
        for track_name in TRACKS:
            these = [r for r in all_rows if r["task"] == task and r["track"] == track_name]
            out += ["", f"### {track_name}", ""]
            out.append(table(task, track_name, these) if these else "No entries yet.")
        if task == "progeval":
            out += [
                "",
                "The paper reports program evaluation as heat maps only (GF ahead of stacked in 31 of 32",
                "cells of length {4, 6, 8, 10} x nesting {2, 3, 4, 5}, by +1.2 to +2.0 points on average),",
                "so there are no reported rows here.",
            ]
    return "\n".join(out) + "\n"


def render(root: Path = ROOT, figures: bool = True) -> Path:
    entries = load_entries(root)
    readme = root / "README.md"
    root.mkdir(parents=True, exist_ok=True)
    readme.write_text(render_text(entries))
    if figures:
        _figures(entries, root / "figures")
    return readme


def _figures(entries: list[dict], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from gfseq import results

    folder.mkdir(parents=True, exist_ok=True)
    # the parameter-matched track: the paper's Table 1 comparison, per unit and arch
    lm = [
        r
        for r in rows(entries)
        if r["task"] == "enwik8" and r["track"] == "parameter-matched" and _value(r) is not None
    ]
    groups = sorted({(r["unit"], r["arch"]) for r in lm})
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(groups)), 3.6))
    labelled = set()
    for i, (unit, arch) in enumerate(groups):
        for source, dx, color in (("reported", -0.2, "lightgray"), ("entry", 0.2, "tab:blue")):
            vals = [_value(r) for r in lm if (r["unit"], r["arch"], r["source"]) == (unit, arch, source)]
            if vals:
                label = None if source in labelled else f"{source} (best)"
                labelled.add(source)
                ax.bar(i + dx, min(vals), 0.4, color=color, label=label)
    ax.set_xticks(range(len(groups)), [f"{u}\n{a}" for u, a in groups], fontsize=8)
    if lm:
        ax.set_ylim(min(_value(r) for r in lm) - 0.2, max(_value(r) for r in lm) + 0.05)
    ax.set_ylabel("test bits per byte (lower is better)")
    ax.set_title("enwik8, parameter-matched track")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(folder / "enwik8-bpc.png", dpi=110)
    plt.close(fig)
    # the GF - stacked gap per unit (best of each)
    gaps = {}
    for unit in sorted({u for u, _ in groups}):
        best = {a: min((_value(r) for r in lm if r["unit"] == unit and r["arch"] == a), default=None)
                for a in ("gf", "stacked")}  # fmt: skip
        if best["gf"] is not None and best["stacked"] is not None:
            gaps[unit] = best["gf"] - best["stacked"]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.bar(
        list(gaps), list(gaps.values()), color=["tab:green" if g < 0 else "tab:red" for g in gaps.values()]
    )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("GF - stacked test BPC (below 0: GF better)")
    ax.set_title("enwik8, parameter-matched, best of each", fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / "enwik8-gap.png", dpi=110)
    plt.close(fig)
    for e in entries:  # per-entry heat maps of program evaluation (GF, stacked and their gap)
        result = e["result"]
        if result["task"]["name"] == "progeval" and any("test" in m for m in result["metrics"].values()):
            results.heatmap(result["metrics"], "test", folder / f"progeval-{e['entry']['id']}.png")


# ----------------------------------------------------------------------------------------------- verify


def verify(root: Path = ROOT) -> list[str]:
    """Every mismatch between an entry, its files and its recomputed metrics (empty: all good)."""
    from gfseq.metrics import scores_from_predictions
    from gfseq.results import read_predictions

    problems = []
    for e in load_entries(root):
        path, entry, result = e["_path"], e["entry"], e["result"]
        if result_digest(result) != entry.get("result_sha256"):
            problems.append(f"{path.name}: the result differs from the one submitted (SHA-256 mismatch)")
        pred = path.parent / entry["predictions"]["file"]
        if not pred.is_file():
            problems.append(f"{path.name}: predictions file {pred.name} is missing")
            continue
        if (
            sha256_file(pred) != entry["predictions"]["sha256"]
            or entry["predictions"]["sha256"] != result["predictions"]["sha256"]
        ):
            problems.append(f"{path.name}: {pred.name} does not match the SHA-256 in the entry")
        lines = read_predictions(pred)
        if result["task"]["name"] == "progeval":
            again = scores_from_predictions(lines)
            for arch, splits in result["metrics"].items():
                for split, claimed in splits.items():
                    if again.get(arch, {}).get(split) != claimed:
                        problems.append(f"{path.name}: {arch} {split} metrics differ from its predictions")
        else:
            for arch, splits in result["metrics"].items():
                for split, claimed in splits.items():
                    mine = [r for r in lines if r["arch"] == arch and r["split"] == split]
                    n = sum(r["end"] - r["start"] for r in mine)
                    bpc = math.fsum(r["bits"] for r in mine) / n if n else float("nan")
                    if n != claimed["bytes"] or not abs(bpc - claimed["bpc"]) <= 1e-9 * max(1.0, bpc):
                        problems.append(f"{path.name}: {arch} {split} BPC differs from its streams' bits")
    return problems


# ----------------------------------------------------------------------------------------------- CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m gfseq.leaderboard", description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=ROOT, help="the leaderboard folder (default: leaderboard/)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit", help="check a result.json and add it as an entry")
    s.add_argument("result", type=Path)
    s.add_argument("--name", help="the entry's name in the table (default: the run folder's name)")
    r = sub.add_parser("render", help="write leaderboard/README.md and its figures")
    r.add_argument("--no-figures", action="store_true")
    sub.add_parser("verify", help="recompute every entry from its files")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "submit":
        try:
            path = submit(args.result, args.name, args.root)
        except SubmissionError as err:
            print(f"gfseq.leaderboard: refused: {err}", file=sys.stderr)
            return 2
        print(f"accepted: {path}; run `python -m gfseq.leaderboard render` to update the table")
        return 0
    if args.command == "render":
        print(f"wrote {render(args.root, figures=not args.no_figures)}")
        return 0
    problems = verify(args.root)
    for line in problems:
        print(f"gfseq.leaderboard: verify: {line}", file=sys.stderr)
    n = len(load_entries(args.root))
    print(f"{n} entries checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
