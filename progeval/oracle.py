"""An independent oracle: evaluates a program's syntax tree with exact sympy integers, never running it.

It shares nothing with execution but the parser and the allow-list. Loops are evaluated in closed form
(``v += e`` repeated ``n`` times is ``v + n*e``), which the allow-list makes exact: a loop body never
reads the counter or the variable it updates.
"""

from __future__ import annotations

import ast

import sympy

from progeval.safety import check_program


class OracleMismatch(AssertionError):
    """Execution and the oracle disagree: a bug in the generator, the executor or the oracle."""


def _value(node: ast.expr, env: dict[str, sympy.Integer]) -> sympy.Integer:
    if isinstance(node, ast.Constant):
        return sympy.Integer(node.value)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, env), _value(node.right, env)
        # sympy.Integer arithmetic is exact at any size (and stays a sympy.Integer).
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        return left * right
    if isinstance(node, ast.IfExp):
        test = node.test
        assert isinstance(test, ast.Compare)
        a, b = _value(test.left, env), _value(test.comparators[0], env)
        holds = (a < b) if isinstance(test.ops[0], ast.Lt) else (a > b)
        return _value(node.body if holds is sympy.true else node.orelse, env)
    raise TypeError(f"oracle cannot evaluate {type(node).__name__}")  # excluded by the allow-list


def oracle_output(source: str, tree: ast.Module | None = None) -> str:
    """What ``print`` would show, computed symbolically (``tree``: the already-checked parse)."""
    tree = check_program(source) if tree is None else tree
    env: dict[str, sympy.Integer] = {}
    *statements, last = tree.body
    for stmt in statements:
        if isinstance(stmt, ast.Assign):
            env[stmt.targets[0].id] = _value(stmt.value, env)  # type: ignore[attr-defined]
        else:
            assert isinstance(stmt, ast.For)
            count = sympy.Integer(stmt.iter.args[0].value)  # type: ignore[attr-defined]
            body = stmt.body[0]
            assert isinstance(body, ast.AugAssign) and isinstance(body.target, ast.Name)
            sign = 1 if isinstance(body.op, ast.Add) else -1
            step = _value(body.value, env)
            env[body.target.id] = env[body.target.id] + sign * count * step
            if count >= 1:
                env[stmt.target.id] = count - 1  # type: ignore[attr-defined]
    value = _value(last.value.args[0], env)  # type: ignore[attr-defined]
    if not isinstance(value, sympy.Integer):
        raise TypeError(f"oracle produced a non-integer {value}")
    return str(int(value))
