"""The package's shape: imports only go down the pipeline's layers, with no cycle
(function-level imports included), and modules and functions stay short."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "precision_lab"
# the layers, bottom first: a module may import its own layer and those below
LAYERS = (("errors", "interrupts"), ("numerics",), ("families",), ("engine",), ("analysis",), ("output",),
          ("result",), ("pipeline",), ("api",), ("cli", "testing"), ("entry", "__main__"))
MODULE_LINES = 420  # "about 400"
FUNCTION_LINES = 66  # "about 60"


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """The package modules `name` imports anywhere in its file (functions included)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "precision_lab":
                base = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                full = ".".join(base + [alias.name])
                found.add(full if full in known else ".".join(base))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "precision_lab":
                    found.add(".".join(alias.name.split(".")[1:]))
    return {m for m in found if m in known and m != name}


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"module {module} is in no layer")


GRAPH = {n: _imports(n, p, set(_modules()) - {""}) for n, p in _modules().items() if n}


def test_every_import_goes_down_or_across_a_layer():
    up = sorted(f"{a} imports {b}" for a, bs in GRAPH.items() for b in bs if _layer(b) > _layer(a))
    if up:
        pytest.fail("imports that climb back up:\n" + "\n".join(up), pytrace=False)


def test_no_import_cycle():
    state, cycles = {}, []

    def visit(n, stack):
        state[n] = 1
        for m in sorted(GRAPH[n]):
            if state.get(m) == 1:
                cycles.append(" -> ".join(stack[stack.index(m):] + [m]))
            elif m not in state:
                visit(m, stack + [m])
        state[n] = 2

    for n in sorted(GRAPH):
        if n not in state:
            visit(n, [n])
    if cycles:
        pytest.fail("import cycles:\n" + "\n".join(cycles), pytrace=False)


def test_modules_and_functions_are_short():
    long = []
    for name, path in sorted(_modules().items()):
        text = path.read_text()
        if len(text.splitlines()) > MODULE_LINES:
            long.append(f"module {name or 'precision_lab'}: {len(text.splitlines())} lines")
        long += [f"function {name}.{n.name}: {n.end_lineno - n.lineno + 1} lines" for n in ast.walk(ast.parse(text))
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.end_lineno - n.lineno + 1 > FUNCTION_LINES]
    if long:
        pytest.fail("too long to read at a glance:\n" + "\n".join(long), pytrace=False)


def test_the_installed_package_holds_every_subpackage():
    """`pip install .` must ship every folder of the package: pyproject's package
    discovery finds each directory that has an __init__.py (a fixed list once left
    the subpackages out of the wheel, and `precision-lab` failed outside the checkout)."""
    import tomllib

    import setuptools

    root = pathlib.Path(__file__).resolve().parents[1]
    conf = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = set(setuptools.find_packages(str(root), include=conf["include"]))
    on_disk = {".".join(p.parent.relative_to(root).parts) for p in (root / "precision_lab").rglob("__init__.py")}
    assert on_disk and on_disk == found
