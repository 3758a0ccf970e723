"""The allow-list: a program must be made only of what the generator emits before anything runs it.

Grammar accepted (everything else is rejected with the construct and its line):

    program    := (assign | loop)* "print(" expr ")"
    assign     := NAME "=" expr
    loop       := "for" NAME "in range(" INT "):" NAME ("+=" | "-=") expr
    expr       := INT | NAME | expr ("+" | "-") expr | expr "*" expr   # one side without NAMEs
                | expr "if" expr ("<" | ">") expr "else" expr

(checked on the syntax tree, so parentheses are free). The source is ASCII and at most
MAX_SOURCE_CHARS long; NAME is one lowercase letter, INT a non-negative literal of at most
MAX_LITERAL_DIGITS digits; expressions nest at most MAX_DEPTH deep; a range is at most MAX_RANGE, all
ranges together at most MAX_TOTAL_ITERATIONS; every variable is read at most once and a loop body reads
neither its counter nor the variable it updates (which must differ). So a value's digits are bounded
from the tree (the printed one by MAX_VALUE_DIGITS), and the check and the run take time linear in the
program's size.
"""

from __future__ import annotations

import ast

MAX_SOURCE_CHARS = 20_000
MAX_LITERAL_DIGITS = 30
MAX_RANGE = 10_000
MAX_TOTAL_ITERATIONS = 100_000
MAX_DEPTH = 100
#: Python refuses to print integers of more than 4,300 digits; the check bounds every value below it.
MAX_VALUE_DIGITS = 4_000

_FRIENDLY = {
    "Import": "import statement",
    "ImportFrom": "import statement",
    "Attribute": "attribute access",
    "While": "while loop",
    "FunctionDef": "function definition",
    "AsyncFunctionDef": "function definition",
    "Lambda": "lambda",
    "ClassDef": "class definition",
    "Subscript": "subscript",
    "Pow": "operator **",
    "LShift": "operator <<",
    "Div": "operator /",
    "FloorDiv": "operator //",
    "Mod": "operator %",
    "JoinedStr": "f-string",
    "Starred": "starred argument",
    "Global": "global statement",
    "Nonlocal": "nonlocal statement",
    "With": "with statement",
    "Try": "try statement",
    "Raise": "raise statement",
    "Delete": "del statement",
}


class UnsafeProgramError(ValueError):
    """A program outside the allow-list; the message names the construct and its line."""


def _reject(node: ast.AST | None, what: str) -> UnsafeProgramError:
    line = getattr(node, "lineno", None)
    return UnsafeProgramError(f"line {line}: {what}" if line else what)


def _describe(node: ast.AST) -> str:
    kind = type(node).__name__
    return f"{_FRIENDLY.get(kind, kind)} ({kind}) is not allowed"


class _Checker:
    def __init__(self) -> None:
        self.defined: set[str] = set()
        self.read: set[str] = set()
        self.forbidden: set[str] = set()
        self.digits: dict[str, int] = {}  # an upper bound on the digits of each variable's value
        self.iterations = 0

    def name(self, node: ast.AST, store: bool) -> str:
        if not isinstance(node, ast.Name):
            raise _reject(node, _describe(node))
        if node.id.startswith("__"):
            raise _reject(node, f"name {node.id!r} is not allowed (dunder names)")
        if len(node.id) != 1 or not "a" <= node.id <= "z":
            raise _reject(node, f"name {node.id!r} is not allowed (variables are single letters)")
        if not store:
            if node.id not in self.defined:
                raise _reject(node, f"name {node.id!r} is read before it is assigned")
            if node.id in self.forbidden:
                raise _reject(node, f"a loop body may not read {node.id!r}, which the loop updates")
            if node.id in self.read:
                raise _reject(node, f"variable {node.id!r} is read more than once")
            self.read.add(node.id)
        return node.id

    def literal(self, node: ast.AST, bound: int | None = None, role: str = "literal") -> int:
        if isinstance(node, ast.Constant) and type(node.value) is not int:
            kind = type(node.value).__name__
            raise _reject(node, f"{kind} literal {node.value!r} is not allowed")
        if not isinstance(node, ast.Constant):
            raise _reject(node, f"{role} must be an integer literal, got {ast.unparse(node)[:40]}")
        if node.value < 0 or len(str(node.value)) > MAX_LITERAL_DIGITS:
            raise _reject(node, f"integer literal longer than {MAX_LITERAL_DIGITS} digits")
        if bound is not None and node.value > bound:
            raise _reject(node, f"range({node.value}) exceeds the bound {bound}")
        return node.value

    def expr(self, node: ast.AST, depth: int = 0) -> tuple[bool, int]:
        """Check an expression; returns (whether it reads a variable, a bound on its digits)."""
        if depth > MAX_DEPTH:
            raise _reject(node, f"expression nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Constant):
            return False, len(str(self.literal(node)))
        if isinstance(node, ast.Name):
            return True, self.digits[self.name(node, store=False)]
        if isinstance(node, ast.BinOp):
            if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
                raise _reject(node, _describe(node.op))
            left_reads, left = self.expr(node.left, depth + 1)
            right_reads, right = self.expr(node.right, depth + 1)
            if isinstance(node.op, ast.Mult):
                if left_reads and right_reads:
                    raise _reject(node, "multiplication needs a side made of integer literals only")
                return left_reads or right_reads, left + right
            return left_reads or right_reads, max(left, right) + 1
        if isinstance(node, ast.IfExp):
            test = node.test
            if not (
                isinstance(test, ast.Compare)
                and len(test.ops) == 1
                and isinstance(test.ops[0], (ast.Lt, ast.Gt))
            ):
                raise _reject(node, "the condition of an if-expression must be 'a < b' or 'a > b'")
            parts = [test.left, test.comparators[0], node.body, node.orelse]
            checked = [self.expr(part, depth + 1) for part in parts]
            return any(r for r, _ in checked), max(checked[2][1], checked[3][1])
        if isinstance(node, ast.Call):
            raise _reject(node, f"call to {ast.unparse(node.func)[:40]} is not allowed here")
        raise _reject(node, _describe(node))

    def range_count(self, node: ast.AST) -> int:
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "range"
            and len(node.args) == 1
            and not node.keywords
        ):
            raise _reject(node, "a for-loop must iterate over range(<integer literal>)")
        return self.literal(node.args[0], bound=MAX_RANGE, role="the argument of range()")

    def loop(self, node: ast.For) -> None:
        if node.orelse or len(node.body) != 1 or not isinstance(node.body[0], ast.AugAssign):
            raise _reject(node, "a for-loop body must be one 'v += e' or 'v -= e'")
        count = self.range_count(node.iter)
        self.iterations += count
        if self.iterations > MAX_TOTAL_ITERATIONS:
            raise _reject(node, f"loops run more than {MAX_TOTAL_ITERATIONS} iterations in all")
        counter = self.name(node.target, store=True)
        body = node.body[0]
        if not isinstance(body.op, (ast.Add, ast.Sub)):
            raise _reject(body, _describe(body.op))
        target = self.name(body.target, store=True)
        if target not in self.defined:
            raise _reject(body, f"name {target!r} is updated before it is assigned")
        if target == counter:
            raise _reject(body, f"the loop counter {counter!r} may not be the variable the loop updates")
        # The body may read neither the counter nor the variable it updates, so a loop adds
        # count * (a fixed value) and cannot grow a number exponentially.
        self.forbidden = {counter, target}
        _, step = self.expr(body.value)
        self.forbidden = set()
        self.digits[target] = max(self.digits[target], len(str(count)) + step) + 1
        if count >= 1:  # Python binds the counter only when the loop runs at least once.
            self.defined.add(counter)
            self.read.discard(counter)
            self.digits[counter] = len(str(count))

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            _, digits = self.expr(node.value)
            name = self.name(node.targets[0], store=True)
            self.defined.add(name)
            self.read.discard(name)
            self.digits[name] = digits
        elif isinstance(node, ast.For):
            self.loop(node)
        else:
            raise _reject(node, _describe(node))

    def program(self, tree: ast.Module) -> None:
        if not tree.body:
            raise UnsafeProgramError("the program is empty; it must end with print(<expression>)")
        *body, last = tree.body
        for node in body:
            self.statement(node)
        is_print = (
            isinstance(last, ast.Expr)
            and isinstance(last.value, ast.Call)
            and isinstance(last.value.func, ast.Name)
            and last.value.func.id == "print"
            and len(last.value.args) == 1
            and not last.value.keywords
        )
        if not is_print:
            if not isinstance(last, ast.Expr):
                self.statement(last)  # names the construct when it is not allowed anywhere
            raise _reject(last, "the last statement must be print(<expression>)")
        _, digits = self.expr(last.value.args[0])
        if digits > MAX_VALUE_DIGITS:
            raise _reject(last, f"the printed value could have more than {MAX_VALUE_DIGITS} digits")


def check_program(source: str) -> ast.Module:
    """Parse ``source`` and check it against the allow-list; returns the tree, raises otherwise."""
    if not isinstance(source, str):
        raise UnsafeProgramError(f"a program must be a str, got {type(source).__name__}")
    if len(source) > MAX_SOURCE_CHARS:
        raise UnsafeProgramError(f"program has {len(source)} characters; at most {MAX_SOURCE_CHARS}")
    if not source.isascii():
        # Python folds Unicode names (NFKC), so text-level renaming would not see what Python sees.
        bad = next(c for c in source if not c.isascii())
        line = source[: source.index(bad)].count("\n") + 1
        raise UnsafeProgramError(f"line {line}: non-ASCII character {bad!r} is not allowed")
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as err:
        raise UnsafeProgramError(f"line {err.lineno}: syntax error: {err.msg}") from None
    except (RecursionError, MemoryError, ValueError) as err:
        raise UnsafeProgramError(f"program cannot be parsed: {type(err).__name__}") from None
    try:
        _Checker().program(tree)
    except RecursionError:
        raise UnsafeProgramError(f"program nests deeper than {MAX_DEPTH} levels") from None
    return tree
