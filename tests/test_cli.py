import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from progeval.build import SplitStats
from progeval.config import DatasetConfig
from progeval.store import write_dataset


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "progeval", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


SMALL = [
    "--length",
    "2",
    "--nest",
    "2",
    "--train",
    "200",
    "--valid",
    "40",
    "--test",
    "40",
    "--test-extrapolate",
    "40",
    "--quiet",
]


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def test_generate_show_stats_verify_regenerate(tmp_path):
    out = tmp_path / "pe"
    r = cli("generate", *SMALL, "--seed", "3", "--num-proc", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "train 200, valid 40, test 40, test_extrapolate 40" in r.stdout
    shown = cli("show", str(out), "-n", "2", "--split", "test")
    assert shown.returncode == 0 and shown.stdout.count("--- test-") == 2 and "=> " in shown.stdout
    stats = cli("stats", str(out))
    assert stats.returncode == 0 and "== train: 200 examples" in stats.stdout
    assert "duplicate rate" in stats.stdout and "program length" in stats.stdout
    ok = cli("verify", str(out), "--quiet")
    assert ok.returncode == 0 and "verified 320 programs" in ok.stdout and "all correct" in ok.stdout
    again = cli("regenerate", str(out / "manifest.json"), "--out", str(tmp_path / "pe2"), "--quiet")
    assert again.returncode == 0 and "identical" in again.stdout
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "args,message",
    [
        (["--nest", "0"], "argument --nest: expected an integer >= 1, got 0"),
        (["--length", "0"], "argument --length: expected an integer >= 1, got 0"),
        (["--length", "x"], "argument --length: expected an integer, got 'x'"),
        (["--curriculum", "greedy"], "argument --curriculum: invalid choice: 'greedy'"),
        (["--nest", "40"], r"argument --nest: expected an integer in 1\.\.25, got 40"),
        (["--length", "99"], r"argument --length: expected an integer in 1\.\.30, got 99"),
        (["--bogus"], r"^progeval generate: error: unrecognized arguments: --bogus$"),
        (["--train", "100000000"], r"argument --train: expected an integer in 0\.\.10000000"),
        (
            ["--length", "1", "--nest", "2", "--max-program-chars", "1"],
            r"found only 0 unique programs .* broke the --max-program-chars or --max-target-chars limit",
        ),
        (
            ["--length", "1", "--nest", "1", "--curriculum", "baseline", "--train", "20000"],
            r"cell \(length=1, nesting=1\) holds 11\d\d\d unique programs for split 'train' "
            r"\(14159 in all\); asked for 20000",
        ),
    ],
)
def test_bad_arguments_are_one_line_exit_2_and_leave_nothing(tmp_path, args, message):
    out = tmp_path / "pe"
    r = cli("generate", "--quiet", "--out", str(out), *args)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and re.search(message, r.stderr, re.M) and "Traceback" not in r.stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_non_empty_out_needs_overwrite_and_overwrite_only_replaces_a_dataset(tmp_path):
    out = tmp_path / "pe"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "thesis.tex").write_text("keep me")
    r = cli("generate", *SMALL, "--out", str(out))
    assert r.returncode == 2 and "is not empty; pass --overwrite" in r.stderr
    r = cli("generate", *SMALL, "--out", str(out), "--overwrite")
    assert r.returncode == 2 and "not a progeval dataset; --overwrite only replaces" in r.stderr
    assert r.stderr.count("\n") == 1 and (out / "sub" / "thesis.tex").read_text() == "keep me"
    data = tmp_path / "data"
    assert cli("generate", *SMALL, "--seed", "1", "--out", str(data)).returncode == 0
    first = (data / "manifest.json").read_text()
    r = cli("generate", *SMALL, "--seed", "2", "--out", str(data), "--overwrite")
    assert r.returncode == 0 and (data / "manifest.json").read_text() != first
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "args",
    [
        [
            "--length",
            "3",
            "--nest",
            "2",
            "--test-extrapolate",
            "0",
            "--extrapolate-length",
            "0",
            "--extrapolate-nest",
            "0",
        ],
        [
            "--length",
            "30",
            "--nest",
            "25",
            "--curriculum",
            "baseline",
            "--train",
            "3",
            "--valid",
            "1",
            "--test",
            "1",
            "--test-extrapolate",
            "0",
        ],
    ],
)
def test_extremes_and_no_extrapolation_work(tmp_path, args):
    base = ["--train", "20", "--valid", "4", "--test", "4", "--quiet"]
    r = cli("generate", *base, *args, "--out", str(tmp_path / "pe"))
    assert r.returncode == 0, r.stderr
    assert cli("verify", str(tmp_path / "pe"), "--quiet").returncode == 0


def test_output_piped_into_head_is_not_an_error(tmp_path):
    assert cli("generate", *SMALL, "--out", str(tmp_path / "pe")).returncode == 0
    r = subprocess.run(
        f"{sys.executable} -m progeval show {tmp_path / 'pe'} -n 200 | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.stdout.startswith("--- train-") and r.stderr == ""


def test_bytes_do_not_depend_on_pythonhashseed_or_processes(tmp_path):
    trees = []
    for hashseed, procs in (("0", "1"), ("4242", "2")):
        out = tmp_path / f"pe{hashseed}"
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        r = subprocess.run(
            [sys.executable, "-m", "progeval", "generate", *SMALL, "--num-proc", procs, "--out", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        trees.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert trees[0] == trees[1]


def test_progeval_imports_no_torch():
    code = "import sys, progeval, progeval.cli, progeval.verify; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_unwritable_out_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = cli("generate", *SMALL, "--out", str(blocker / "pe"))
    assert r.returncode == 2 and "is a file, not a folder" in r.stderr and r.stderr.count("\n") == 1
    r = cli("generate", *SMALL, "--out", ".", "--overwrite", cwd=tmp_path)
    assert r.returncode == 2 and "is the current folder or holds it" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    r = cli("generate", *SMALL, "--out", "/proc/pe")  # a folder no one can create entries in
    assert r.returncode == 2 and "--out: cannot write in '/proc'" in r.stderr
    assert r.stderr.count("\n") == 1


def test_missing_parent_folders_are_made(tmp_path):
    r = cli("generate", *SMALL, "--out", "data/pe", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "data" / "pe" / "manifest.json").is_file()
    assert oct((tmp_path / "data" / "pe").stat().st_mode & 0o777) == "0o755"


def test_verify_exits_1_on_changed_files_and_on_exports_that_disagree(tmp_path):
    out = tmp_path / "pe"
    assert cli("generate", *SMALL, "--out", str(out)).returncode == 0
    jsonl = out / "jsonl" / "train.jsonl"
    original = jsonl.read_text()
    first = json.loads(original.splitlines()[0])
    edited = original.replace(f'"target":"{first["target"]}"', '"target":"123456789"', 1)
    jsonl.write_text(edited)
    r = cli("verify", str(out), "--quiet")
    assert r.returncode == 1 and "jsonl/train.jsonl: SHA-256 differs from the manifest" in r.stdout
    # Re-hashing the manifest hides the edit from the hash check, not from the comparison with hf/.
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["jsonl/train.jsonl"] = hashlib.sha256(edited.encode()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    r = cli("verify", str(out / "manifest.json"), "--quiet")
    assert r.returncode == 1 and "jsonl/train.jsonl: rows differ from hf/train" in r.stdout
    assert "manifest fingerprint does not match the data" in r.stdout


def test_ctrl_c_with_workers_stops_cleanly_and_leaves_nothing(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "progeval",
            "generate",
            "--curriculum",
            "baseline",
            "--train",
            "3000000",
            "--num-proc",
            "2",
            "--quiet",
            "--out",
            str(tmp_path / "big"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err == "progeval generate: interrupted; nothing was written\n"
    assert list(tmp_path.iterdir()) == []


def test_reading_commands_refuse_a_folder_that_is_not_a_dataset(tmp_path):
    for command in ("verify", "stats", "show"):
        r = cli(command, str(tmp_path))
        assert r.returncode == 2 and "not a progeval dataset" in r.stderr, command
        assert r.stderr.count("\n") == 1


def hostile_dataset(root: Path, tmp: Path) -> Path:
    marker = tmp / "side-effect"
    programs = [
        f"import os\nprint(os.system('touch {marker}'))",
        f"print(open('{marker}', 'w').write('x'))",
        "a=1\nwhile a:\n  a+=1\nprint(a)",
        "a=1\nfor x in range(10000000000):a+=1\nprint(a)",
        "print(().__class__.__mro__[1].__subclasses__())",
        "print(" + "1*" * 2500 + "1)",  # allowed by no rule, deep enough to crash a naive checker
        "a=7;\nprint((a+1))",  # an honest row, with a wrong label
    ]
    rows = [
        {
            "id": f"h{i}",
            "program": p,
            "stream": "",
            "target": "8" if i < 5 else "9",
            "length": 1,
            "nesting": 1,
            "ops": [],
            "canonical_hash": "",
        }
        for i, p in enumerate(programs)
    ]
    cfg = DatasetConfig(length=1, nesting=1, train=len(rows), valid=0, test=0, test_extrapolate=0)
    empty = {s: [] for s in ("valid", "test", "test_extrapolate")}
    stats = {s: SplitStats() for s in ("train", *empty)}
    write_dataset({"train": rows, **empty}, stats, cfg, root)
    return marker


@pytest.mark.parametrize("flags", [[], ["--no-exec"]])
def test_verify_rejects_hostile_programs_before_running_them(tmp_path, flags):
    marker = hostile_dataset(tmp_path / "bad", tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "progeval", "verify", str(tmp_path / "bad"), "--quiet", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    rejected = [x for x in lines if "rejected before execution" in x]
    assert len(rejected) == 6
    assert "train/h5: rejected before execution: nested deeper than" not in r.stdout
    assert "train/h0: rejected before execution: line 1: import statement (Import)" in r.stdout
    assert "train/h2: rejected before execution: line 2: while loop (While)" in r.stdout
    assert "train/h5: rejected before execution: line 1: expression nested deeper than 100" in r.stdout
    assert "train/h6: target '9' but the oracle computes '8'" in r.stdout
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


def test_regenerate_refuses_a_manifest_from_another_generator(tmp_path):
    r = cli("generate", *SMALL, "--out", str(tmp_path / "pe"))
    assert r.returncode == 0
    manifest = tmp_path / "pe" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["versions"]["generator"] = "l2e-0"
    manifest.write_text(json.dumps(m))
    r = cli("regenerate", str(manifest), "--out", str(tmp_path / "pe2"))
    assert r.returncode == 2 and "written by generator 'l2e-0'" in r.stderr
    assert not (tmp_path / "pe2").exists()
