"""The package's shape: no import circle, and each stage imports only the stages below it.

The order, bottom up (README "Architecture"): the shared vocabulary (models,
errors, config), reader, dedup, store, output, run, and the command line on
top. Imports are read from the source, not by importing it.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "aggregator"
LAYERS = {"aggregator": 0, "models": 0, "errors": 0, "redaction": 0, "config": 0, "reader": 1, "dedup": 2, "store": 3,
          "output": 4, "run": 5, "console": 6, "cli": 7, "__main__": 8}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports, wherever in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in names:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
    return targets


def stage(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_module_imports_itself_round_a_circle():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None


def test_each_stage_imports_only_the_stages_below_it():
    known = modules()
    wrong = []
    for name, path in known.items():
        for target in imports(name, path, known):
            if target == "aggregator":
                continue
            mine, theirs = stage(name), stage(target)
            if mine != theirs and LAYERS[theirs] >= LAYERS[mine] and LAYERS[mine] > 0:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "a stage imports one at its level or above:\n" + "\n".join(sorted(wrong))


def test_every_stage_says_what_it_owns():
    for package in (p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        assert ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))), package.name
