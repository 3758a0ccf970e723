"""Independent re-implementations used as test oracles (they share no code with progeval)."""

import ast
import subprocess
import sys


def canonical_by_ast(source: str) -> str:
    """Variables renamed in order of first appearance, through the syntax tree (not a regex)."""
    names: dict[str, str] = {}

    class Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.Name:
            if node.id in ("print", "range"):
                return node
            names.setdefault(node.id, f"v{len(names)}")
            return ast.copy_location(ast.Name(names[node.id], node.ctx), node)

    tree = ast.parse(source)
    # Visit in source order: ast.walk is breadth-first, so walk statements and fields in order.
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            stmt.value = Rename().visit(stmt.value)
            stmt.targets = [Rename().visit(t) for t in stmt.targets]
        elif isinstance(stmt, ast.For):
            stmt.target = Rename().visit(stmt.target)
            stmt.body = [Rename().visit(b) for b in stmt.body]
        else:
            Rename().visit(stmt)
    return ast.unparse(tree)


def python_prints(source: str) -> str:
    """What a real, separate Python 3 interpreter prints for the program."""
    out = subprocess.run(
        [sys.executable, "-I", "-c", source], capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.rstrip("\n")


def free_port() -> int:
    """A TCP port nobody listens on now (for torchrun's rendezvous; fixed ports collide)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
