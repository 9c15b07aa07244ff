"""A policy as the edit of the user's code: the function's source with `.astype` added
where each widened line reads a narrow value (an argument, or a variable set on a
line that stays narrow), where a narrow line reads a wide one, and on a widened
return. Python constants need none (they take the type of what they meet).

A rendering of the policy that `analysis.policy` proved on the jaxpr (see
``families.widen``); `tests/test_policy.py` runs the edited source and compares it
with the proven function bit for bit.
"""

from __future__ import annotations

import ast
import inspect
import textwrap


def edited(fn, lines: list[str], wide: str) -> str | None:
    """The source of `fn` with the casts of the policy `lines` ("file.py:N"), or None
    where the source cannot be read or the lines are not in the function's body."""
    try:
        source, first = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return None
    tree = ast.parse(textwrap.dedent("".join(source)))
    func = tree.body[0]
    if not isinstance(func, ast.FunctionDef):
        return None
    numbers = {int(s.rpartition(":")[2]) - first + 1 for s in lines if s.rpartition(":")[2].isdigit()}
    args = [a.arg for a in func.args.args]
    if not numbers or not args:
        return None
    narrow_of = f"{args[0]}.dtype"
    wide_vars: set[str] = set()
    local = set(args[:2])  # the function's values: its inputs (z or logits, and y or the label) and the
    # variables it sets; further arguments are parameters (γ, ε), Python numbers
    for stmt in func.body:
        span = set(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
        is_wide = bool(span & numbers)
        _Casts(wide_vars, local, is_wide, wide, narrow_of).visit(stmt)
        if isinstance(stmt, ast.Return) and is_wide and stmt.value is not None:
            stmt.value = _call(stmt.value, "astype", ast.parse(narrow_of, mode="eval").body)
        for target in (stmt.targets if isinstance(stmt, ast.Assign) else []):
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    local.add(name.id)
                    (wide_vars.add if is_wide else wide_vars.discard)(name.id)
    return ast.unparse(tree)


def _call(value, method: str, arg) -> ast.Call:
    return ast.Call(ast.Attribute(value, method, ast.Load()), [arg], [])


class _Casts(ast.NodeTransformer):
    """Names read by one statement, cast to where the statement computes."""

    def __init__(self, wide_vars, local, is_wide: bool, wide: str, narrow_of: str):
        self.wide_vars, self.local, self.is_wide = wide_vars, local, is_wide
        self.wide = ast.parse(f"jnp.{wide}", mode="eval").body
        self.narrow = ast.parse(narrow_of, mode="eval").body

    def visit_Name(self, node: ast.Name):
        if not isinstance(node.ctx, ast.Load):
            return node
        if node.id not in self.local:
            return node  # a module, a function, a global
        if self.is_wide and node.id not in self.wide_vars:
            return _call(node, "astype", self.wide)
        if not self.is_wide and node.id in self.wide_vars:
            return _call(node, "astype", self.narrow)
        return node

    def visit_Assign(self, node: ast.Assign):
        node.value = self.visit(node.value)
        return node
