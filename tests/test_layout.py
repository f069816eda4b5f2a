"""The house rules of the README's Layout section: each room of keras_resnets imports only the
rooms before it, and nothing imports the explorer or the tests."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "keras_resnets"
ROOMS = ("design", "runtime", "layers", "interop", "models", "data", "runs", "training",
         "experiments")
"""In import order: a room may import itself and the rooms before it."""
TOP = ("__init__", "__main__", "cli")
"""Modules at the top, which may import any room."""


def _room(module):
    """The room of a dotted module name under keras_resnets (``None`` outside it)."""
    parts = module.split(".")
    if parts[0] != "keras_resnets":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path):
    """Every module that ``path`` imports, at any depth (imports inside functions too)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def test_the_rooms_are_the_subpackages():
    found = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert found == set(ROOMS)
    assert {p.stem for p in PACKAGE.glob("*.py")} == set(TOP)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_room_imports_only_the_rooms_before_it(path):
    room = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if room in TOP:
        return
    allowed = set(ROOMS[: ROOMS.index(room) + 1])
    wrong = set()
    for module in _imports(path):
        if module.split(".")[0] in ("explorer", "tests", "benchmarks"):
            wrong.add(module)
        target = _room(module)
        if target is not None and target not in allowed:
            wrong.add(module)  # `import keras_resnets` too: it loads every room
    assert not wrong, f"{room} may import only {sorted(allowed)}, not {sorted(wrong)}"


def test_the_design_needs_no_keras():
    """The design room is plain data: it imports no backend, so the command line validates a
    design before one starts."""
    for path in (PACKAGE / "design").glob("*.py"):
        heavy = {m for m in _imports(path) if m.split(".")[0] in ("keras", "tensorflow", "jax", "torch")}
        assert not heavy, f"{path.name} imports {sorted(heavy)}"


STANDARD = ("os", "sys")  # their underscored names (os._exit) are documented Python API


def _private_reads(tree, ours):
    """``x._name`` and ``getattr(x, "_name")`` in ``tree`` whose name is not one of ``ours``."""
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            if getattr(node.value, "id", None) in STANDARD:
                continue
            name = node.attr
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr"
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
            name = node.args[1].value
        private = isinstance(name, str) and name.startswith("_") and not name.startswith("__")
        if private and name not in ours:
            yield name


def test_private_keras_and_torch_attributes_are_read_in_one_module():
    """A private name the package does not define itself is Keras' or PyTorch's: it is read in
    runtime/internals.py only, whose docstring says why and which versions it was checked on."""
    trees = {path: ast.parse(path.read_text()) for path in _modules()}
    ours = {path.stem for path in trees}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                ours.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                ours.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                ours.add(node.id)
    found = {str(path.relative_to(PACKAGE)): sorted(set(_private_reads(tree, ours)))
             for path, tree in trees.items() if path.name != "internals.py"}
    assert {path: names for path, names in found.items() if names} == {}
