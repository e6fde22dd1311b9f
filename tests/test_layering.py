"""minicnn's modules import downward only, with no cycle and no private name taken from another module.

The layers, lowest first (a module may import its own layer or a lower one):

    errors, config, backend.shapes           what everything shares
    backend, device, random, init, data      devices and their kernels; the dataset
    fast                                     the fast paths (CPU kernels, dispatch rules, process tuning)
    distributed                              data-parallel training's collectives (MPI, NCCL)
    autograd                                 NDArray, Function, backward
    ops                                      the textbook Functions
    nn, loss, optim, checkpoint              Gluon-like layers, loss, Trainer, parameter files
    models                                   the chapter's networks
    everything else                          training, summary, profile, pictures, the CLI

Every import counts, also those inside functions: a lazy import upward is still a dependency upward.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "minicnn"

LAYERS = [
    ("minicnn.errors", "minicnn.config", "minicnn.files", "minicnn.backend.shapes"),
    ("minicnn.backend", "minicnn.device", "minicnn.random", "minicnn.init", "minicnn.data"),
    ("minicnn.fast",),
    ("minicnn.distributed", "minicnn.distributed_nccl"),
    ("minicnn.autograd",),
    ("minicnn.ops",),
    ("minicnn.nn", "minicnn.loss", "minicnn.optim", "minicnn.checkpoint"),
    ("minicnn.models",),
]
TOP = len(LAYERS)


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = module_names()


def layer_of(module: str) -> int:
    """The layer of the longest prefix listed in LAYERS; TOP for the package itself and everything not listed."""
    best, best_len = TOP, -1
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = level, len(prefix)
    return best


def imports_of(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported minicnn module, names taken from it, line) for every import statement of the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "minicnn"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "minicnn":
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            others = [n for n in names if f"{target}.{n}" not in MODULES]
            found += [(s, [], node.lineno) for s in submodules]
            if others or not submodules:
                found.append((target, others, node.lineno))
    return found


def graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in imports_of(m, p) if t != m} for m, p in MODULES.items()}


def test_the_layers_list_only_modules_that_exist():
    for prefixes in LAYERS:
        for prefix in prefixes:
            assert prefix in MODULES, f"{prefix} is in LAYERS but not a module of minicnn"


def test_no_module_imports_from_a_higher_layer():
    upward = []
    for module, path in MODULES.items():
        for target, _, line in imports_of(module, path):
            if layer_of(target) > layer_of(module):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {target}")
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def cycles_in(edges: dict[str, set[str]]) -> list[str]:
    """Every cycle a depth-first walk meets (a grey node met again closes one), as 'a -> b -> a'."""
    state, cycles = {}, []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "grey"
        for t in sorted(edges.get(m, ())):
            if state.get(t) == "grey":
                cycles.append(" -> ".join(stack[stack.index(t) :] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "black"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    return cycles


def test_the_import_graph_has_no_cycle():
    cycles = cycles_in(graph())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_takes_a_private_name_from_another():
    private = []
    for module, path in MODULES.items():
        for target, names, line in imports_of(module, path):
            taken = [n for n in names if n.startswith("_") and n != "__version__"]
            if taken and target != module:
                private.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {taken} from {target}")
    assert not private, "private names imported across modules:\n" + "\n".join(private)


def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path):
    """The checks above would catch the two faults they are for (a test that cannot fail proves nothing)."""
    assert layer_of("minicnn.backend.cpu") < layer_of("minicnn.ops.conv") < layer_of("minicnn.cli")
    assert layer_of("minicnn.backend.shapes") == 0 and layer_of("minicnn") == TOP
    fake = tmp_path / "x.py"
    fake.write_text("from ..ops import activation\ndef f():\n    from .. import cli\n")
    targets = [t for t, _, _ in imports_of("minicnn.backend.x", fake)]
    assert targets == ["minicnn.ops.activation", "minicnn.cli"]
    assert all(layer_of(t) > layer_of("minicnn.backend.x") for t in targets)
    assert cycles_in({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert cycles_in({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) == []
