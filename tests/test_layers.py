"""The import direction of docs/architecture.md: a module imports only from its own layer or below.

Counts every ``import``/``from ... import`` of a ``biocoreset`` module anywhere in a file (deferred
imports inside functions included; ``if TYPE_CHECKING:`` blocks too, to keep the picture simple).
"""

import ast
from pathlib import Path

import biocoreset

# Layer of each top-level module or package of biocoreset (see docs/architecture.md).
LAYERS = {
    # 0 foundation: no biocoreset imports beyond this layer
    "errors": 0,
    "protocols": 0,
    "capabilities": 0,
    "stats": 0,
    "runtime": 0,
    "_version": 0,
    # 1 data, storage, the registry (built-ins are named by string, not imported)
    "data": 1,
    "store": 1,
    "plugins": 1,
    # 2 numerics and model code
    "grads": 2,
    "curvature": 2,
    "scorers": 2,
    "selectors": 2,
    "adapters": 2,
    # 3 configuration and model I/O
    "config": 3,
    "modelio": 3,
    # 4 phases
    "scoring": 4,
    "selection": 4,
    "train": 4,
    "diagnose": 4,
    "bench": 4,
    # 5 facades
    "api": 5,
    "run": 5,
    "testing": 5,
    "__init__": 5,
    # 6 the command line
    "cli": 6,
}


def _unit(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "biocoreset":
                names = [f"biocoreset.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "biocoreset" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_module_has_a_layer():
    root = Path(biocoreset.__file__).parent
    units = {_unit(p, root) for p in root.rglob("*.py")}
    assert units - set(LAYERS) == set(), "add new modules to LAYERS and docs/architecture.md"


def test_imports_point_down_the_layers():
    root = Path(biocoreset.__file__).parent
    upward = []
    for path in sorted(root.rglob("*.py")):
        unit = _unit(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target in _imported(tree):
            if target in LAYERS and LAYERS[target] > LAYERS[unit]:
                upward.append(
                    f"{path.relative_to(root)} ({unit}, layer {LAYERS[unit]}) imports "
                    f"{target} (layer {LAYERS[target]})"
                )
    assert not upward, "imports against the layers:\n" + "\n".join(upward)
