"""The allow-list: a program must be made only of what the generator emits before anything runs it.

Grammar accepted (everything else is rejected with the construct and its line):

    program    := (assign | loop)* "print(" expr ")"
    assign     := NAME "=" expr
    loop       := "for" NAME "in range(" INT "):" NAME ("+=" | "-=") expr
    expr       := INT | NAME | "(" expr ("+" | "-") expr ")" | expr "*" expr   # a side without NAMEs
                | "(" expr "if" expr ("<" | ">") expr "else" expr ")"

NAME is one lowercase letter, INT a non-negative literal of at most MAX_LITERAL_DIGITS digits, a range
is at most MAX_RANGE, all ranges together at most MAX_TOTAL_ITERATIONS, and every variable is read at
most once (a loop body never reads its own variables). With these rules every value has about as many
digits as the program has characters, and every program runs in time linear in its size.
"""

from __future__ import annotations

import ast

MAX_SOURCE_CHARS = 20_000
MAX_LITERAL_DIGITS = 30
MAX_RANGE = 10_000
MAX_TOTAL_ITERATIONS = 100_000

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


def _reads_name(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) for n in ast.walk(node))


class _Checker:
    def __init__(self) -> None:
        self.defined: set[str] = set()
        self.read: set[str] = set()
        self.forbidden: set[str] = set()
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

    def expr(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            self.literal(node)
        elif isinstance(node, ast.Name):
            self.name(node, store=False)
        elif isinstance(node, ast.BinOp):
            if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
                raise _reject(node, _describe(node.op))
            if isinstance(node.op, ast.Mult) and all(map(_reads_name, (node.left, node.right))):
                raise _reject(node, "multiplication needs a side made of integer literals only")
            self.expr(node.left)
            self.expr(node.right)
        elif isinstance(node, ast.IfExp):
            test = node.test
            if not (
                isinstance(test, ast.Compare)
                and len(test.ops) == 1
                and isinstance(test.ops[0], (ast.Lt, ast.Gt))
            ):
                raise _reject(node, "the condition of an if-expression must be 'a < b' or 'a > b'")
            self.expr(test.left)
            self.expr(test.comparators[0])
            self.expr(node.body)
            self.expr(node.orelse)
        elif isinstance(node, ast.Call):
            raise _reject(node, f"call to {ast.unparse(node.func)[:40]} is not allowed here")
        else:
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
        # The body may read neither the counter nor the variable it updates, so a loop adds
        # count * (a fixed value) and cannot grow a number exponentially.
        self.forbidden = {counter, target}
        self.expr(body.value)
        self.forbidden = set()
        if count >= 1:  # Python binds the counter only when the loop runs at least once.
            self.defined.add(counter)
            self.read.discard(counter)

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            self.expr(node.value)
            name = self.name(node.targets[0], store=True)
            self.defined.add(name)
            self.read.discard(name)
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
        self.expr(last.value.args[0])


def check_program(source: str) -> ast.Module:
    """Parse ``source`` and check it against the allow-list; returns the tree, raises otherwise."""
    if not isinstance(source, str):
        raise UnsafeProgramError(f"a program must be a str, got {type(source).__name__}")
    if len(source) > MAX_SOURCE_CHARS:
        raise UnsafeProgramError(f"program has {len(source)} characters; at most {MAX_SOURCE_CHARS}")
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as err:
        raise UnsafeProgramError(f"line {err.lineno}: syntax error: {err.msg}") from None
    except (RecursionError, MemoryError, ValueError) as err:
        raise UnsafeProgramError(f"program cannot be parsed: {type(err).__name__}") from None
    _Checker().program(tree)
    return tree
