import threading
import time
from pathlib import Path

import pytest

from progeval import UnsafeProgramError, check_program, generate_program, run_trusted, run_untrusted
from progeval.execute import Limits, _run_batch

HOSTILE = {
    "import os\nprint(1)": r"line 1: import statement \(Import\)",
    "a=1\nprint(open('pwned','w'))": r"line 2: call to open is not allowed",
    "print(__import__('os').system('touch pwned'))": r"line 1: call to __import__\('os'\).system",
    "print(().__class__)": r"line 1: attribute access \(Attribute\)",
    "a=1\nwhile a:\n  a+=1\nprint(a)": r"line 2: while loop \(While\)",
    "print(9**9**9)": r"line 1: operator \*\* \(Pow\)",
    "a=1\nfor x in range(10**9):a+=1\nprint(a)": (
        r"line 2: the argument of range\(\) must be an integer literal, got 10 \*\* 9"
    ),
    "a=1\nfor x in range(1000000000):a+=1\nprint(a)": r"line 2: range\(1000000000\) exceeds",
    "a=2\nb=a*a\nprint(b)": r"line 2: variable 'a' is read more than once",
    "a=2\nb=3\nprint(a*b)": r"line 3: multiplication needs a side made of integer literals only",
    "a=5\nfor a in range(3):a+=1\nprint(a)": r"line 2: the loop counter 'a' may not be the variable",
    "b=1\n\uff42=3\nprint(b)": r"line 2: non-ASCII character '\uff42'",
    "print(" + "1*" * 150 + "1)": r"nested deeper than 100 levels",
    "print(" + "1*" * 2500 + "1)": r"nested deeper than 100 levels",
    "print(" + "(" * 300 + "1" + ")" * 300 + ")": r"syntax error|nest",
    # Three products of 60 thirty-digit factors: 5,400 digits, more than Python can print.
    "a="
    + "*".join(["9" * 30] * 60)
    + "\nb=a*"
    + "*".join(["9" * 30] * 60)
    + "\nc=b*"
    + "*".join(["9" * 30] * 60)
    + "\nprint(c)": r"line 4: the printed value could have more than 4000",
    "a=2\nfor x in range(50):a+=a\nprint(a)": r"line 2: a loop body may not read 'a'",
    "a=9\nb=(a+a)\nprint(b)": r"line 2: variable 'a' is read more than once",
    "print(b)": r"line 1: name 'b' is read before it is assigned",
    "print(__builtins__)": r"line 1: name '__builtins__' is not allowed \(dunder",
    "def f():\n  return 1\nprint(1)": r"line 1: function definition",
    "print((lambda: 1)())": r"line 1: call to",
    "print('x')": r"line 1: str literal 'x' is not allowed",
    "print(1, 2)": r"line 1: the last statement must be print",
    "print(1)\nprint(2)": r"line 1: Expr",
    "exec('import os')\nprint(1)": r"line 1: Expr",
    "a=1\nprint(a[0])": r"line 2: subscript",
    "print(1+)": r"line 1: syntax error",
    "": r"empty",
}


@pytest.mark.parametrize("source,message", list(HOSTILE.items()))
def test_allow_list_names_the_construct_and_line(source, message):
    with pytest.raises(UnsafeProgramError, match=message):
        check_program(source)


def test_hostile_programs_never_run_in_the_sandbox(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    outcomes = run_untrusted(list(HOSTILE))
    assert time.monotonic() - t0 < 10
    assert all(o.output is None and o.error.startswith("rejected: ") for o in outcomes)
    assert not Path("pwned").exists() and list(tmp_path.iterdir()) == []


def test_sandbox_limits_stop_a_program_that_skipped_the_allow_list(tmp_path):
    # _run_batch is the inner layer; run_untrusted never hands it an unchecked program. It still
    # must contain one: no builtins, CPU-time, memory and file limits.
    pwned = tmp_path / "pwned"
    assert _run_batch([f"open({str(pwned)!r}, 'w')"], Limits())[0].error.startswith("NameError")
    t0 = time.monotonic()
    result = _run_batch(["while True:\n  pass"], Limits(cpu_seconds=1, wall_seconds=20))
    assert isinstance(result, str) and time.monotonic() - t0 < 15
    hog = _run_batch(["a=[0] * 10**9\nprint(1)"], Limits(memory_bytes=256 << 20))
    assert hog[0].error.startswith("MemoryError")
    loud = _run_batch(["for x in range(100):\n  print(10**50)"], Limits(output_chars=1000))
    assert "output longer than 1000" in loud[0].error
    assert not pwned.exists()


def test_untrusted_results_match_trusted_execution():
    sources = [generate_program(1, "test", 5, 4, i).source for i in range(200)]
    outcomes = run_untrusted(sources)
    assert [o.output for o in outcomes] == [run_trusted(s) for s in sources]


def test_a_failing_batch_is_pinned_on_the_right_program():
    sources = [generate_program(1, "test", 3, 3, i).source for i in range(5)]
    limits = Limits(output_chars=30)  # only long outputs trip it; find one by construction
    long_one = "a=" + "9" * 29 + "\nfor x in range(10000):a+=" + "9" * 29 + "\nprint(a)"
    outcomes = run_untrusted([*sources, long_one], limits)
    assert [o.output for o in outcomes[:5]] == [run_trusted(s) for s in sources]
    assert outcomes[5].output is None and "output longer" in outcomes[5].error


def test_trusted_execution_is_thread_safe():
    sources = [generate_program(2, "train", 6, 5, i).source for i in range(400)]
    expected = [run_trusted(s) for s in sources]
    results: dict[int, list[str]] = {}

    def work(k: int) -> None:
        results[k] = [run_trusted(s) for s in sources]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results.values())
