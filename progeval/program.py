"""A generated program: its statements, final expression, operations and renderings.

Values are kept apart from their rendering: the generator builds a `Program`; `source` is the Python 3
text (one statement a line, ``print(...)`` last) and `stream` is the original single-stream form,
``stmt#stmt#print(expr)@target.``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

STATEMENT_SEP = "#"
TARGET_SEP = "@"
END = "."

_NAME = re.compile(r"\b[a-z]\b")


@dataclass(frozen=True)
class Program:
    statements: tuple[str, ...]
    expr: str
    ops: tuple[str, ...]
    length: int
    nesting: int

    @property
    def lines(self) -> tuple[str, ...]:
        return (*self.statements, f"print({self.expr})")

    @property
    def source(self) -> str:
        """Python 3 source, one statement a line, no trailing newline."""
        return "\n".join(self.lines)


def to_stream(source: str, target: str) -> str:
    """The single-stream form: lines joined by ``#``, then ``@``, the target and ``.``."""
    return STATEMENT_SEP.join(source.split("\n")) + TARGET_SEP + target + END


def parse_stream(stream: str) -> tuple[str, str]:
    """Inverse of `to_stream`: ``(source, target)``."""
    if not stream.endswith(END) or stream.count(TARGET_SEP) != 1:
        raise ValueError(f"stream must look like 'stmt#...#print(e)@target.', got {stream[:60]!r}")
    body, target = stream[: -len(END)].split(TARGET_SEP)
    return "\n".join(body.split(STATEMENT_SEP)), target


def canonical_form(source: str) -> str:
    """The source with variables renamed a, b, c, ... in order of first appearance.

    Two programs that differ only in their variable names have the same canonical form, so a renamed
    copy of a training program cannot land in a test split.
    """
    mapping: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        name = match.group(0)
        if name not in mapping:
            mapping[name] = chr(ord("a") + len(mapping))
        return mapping[name]

    return _NAME.sub(rename, source)


def canonical_hash(source: str) -> str:
    """SHA-256 (hex) of the canonical form."""
    return hashlib.sha256(canonical_form(source).encode()).hexdigest()
