"""Running programs to get their printed output.

* `run_trusted` runs a program this process generated: allow-list check, then ``exec`` in a fresh
  namespace whose only names are a capturing ``print`` and ``range``. Nothing process-global changes
  (no stdout redirection, no signals), so it is safe to call from many threads at once.
* `run_untrusted` runs programs from anywhere else (a dataset file, user input): each is checked
  against the allow-list first, then the batch runs in a separate Python process with CPU-time,
  memory, file-size, open-file and output limits, in an empty temporary folder with an empty
  environment.
"""

from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from progeval.safety import UnsafeProgramError, check_program


class ExecutionError(RuntimeError):
    """A program passed the allow-list but did not run to a printed integer."""


def _namespace(out: list[str]) -> dict[str, object]:
    def capture(value: object) -> None:
        out.append(str(value))

    return {"__builtins__": {}, "print": capture, "range": range}


def run_trusted(source: str, tree: ast.Module | None = None) -> str:
    """The printed output of a generated program (without the trailing newline)."""
    tree = check_program(source) if tree is None else tree
    out: list[str] = []
    exec(compile(tree, "<progeval>", "exec"), _namespace(out))
    if len(out) != 1:
        raise ExecutionError(f"program printed {len(out)} lines; expected 1")
    return out[0]


@dataclass(frozen=True)
class Limits:
    """Limits for one untrusted batch of programs.

    Default: 10 s of CPU for the batch, 1 GiB of address space, 65,536 characters printed per
    program, 60 s of wall-clock time; no files may be written or opened.
    """

    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30
    output_chars: int = 1 << 16
    wall_seconds: float = 60.0


@dataclass(frozen=True)
class Outcome:
    """What happened to one program: its output, or why there is none."""

    output: str | None
    error: str | None = None


DEFAULT_LIMITS = Limits()
_RUNNER = Path(__file__).with_name("_sandbox_runner.py")


def _run_batch(sources: list[str], limits: Limits) -> list[Outcome] | str:
    """Run already-checked programs in one limited child; a reason string if the child failed."""
    payload = json.dumps({"programs": sources, "limits": limits.__dict__})
    with tempfile.TemporaryDirectory(prefix="progeval-sandbox-") as cwd:
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-S", "-c", _RUNNER.read_text()],
                input=payload,
                capture_output=True,
                text=True,
                cwd=cwd,
                env={},
                timeout=limits.wall_seconds,
            )
        except subprocess.TimeoutExpired:
            return f"ran past the wall-clock limit of {limits.wall_seconds} s"
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return f"stopped at the CPU-time limit of {limits.cpu_seconds} s"
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no message"]
        return f"sandbox failed (exit code {proc.returncode}): {tail[0][:200]}"
    if len(proc.stdout) > limits.output_chars * (len(sources) + 1):
        return "sandbox produced more output than allowed"
    rows = json.loads(proc.stdout)
    return [Outcome(r.get("output"), r.get("error")) for r in rows]


def run_untrusted(sources: list[str], limits: Limits = DEFAULT_LIMITS) -> list[Outcome]:
    """Check each program, then run the accepted ones in a limited subprocess.

    A rejected program gets ``Outcome(None, "rejected: ...")`` and never runs. If the batch as a whole
    fails (a limit hit), each program is run alone so the failure is pinned on the right one.
    """
    outcomes: list[Outcome | None] = [None] * len(sources)
    runnable: list[int] = []
    for i, src in enumerate(sources):
        try:
            check_program(src)
        except UnsafeProgramError as err:
            outcomes[i] = Outcome(None, f"rejected: {err}")
        else:
            runnable.append(i)
    if runnable:
        batch = _run_batch([sources[i] for i in runnable], limits)
        if isinstance(batch, str):
            batch = (
                [_single(sources[i], limits) for i in runnable]
                if len(runnable) > 1
                else [Outcome(None, batch)]
            )
        for i, outcome in zip(runnable, batch, strict=True):
            outcomes[i] = outcome
    return [o for o in outcomes if o is not None]


def _single(source: str, limits: Limits) -> Outcome:
    result = _run_batch([source], limits)
    return Outcome(None, result) if isinstance(result, str) else result[0]
