"""The package structure: imports in ``core`` flow one way along the pipeline (docs/architecture.md).

Every import in ``src/napari_atomdefect`` is read from the source (AST, also the lazy ones inside
functions) and resolved to a module of the package; each ``core`` module belongs to one layer.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "napari_atomdefect"
PKG = "napari_atomdefect"

#: Layers of ``core`` from the bottom up: a module may import its own layer and the ones below it.
LAYERS = ["base", "materials", "io", "simulate", "lattice", "cells", "models", "train", "detect",
          "finetune"]
#: Modules directly in ``core/`` that every package may import.
BASE = {"errors", "progress", "device", "cpu_share", "robust", "sampling", "parallel"}


def module_name(path: Path) -> str:
    """Dotted module name of a source file of the package."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


SOURCES = sorted(SRC.rglob("*.py"))
MODULES = {module_name(p) for p in SOURCES}


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Absolute names of the modules a source file imports, with line numbers (lazy imports too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # ``from .pkg import module`` names a module; ``from napari.x import _private`` a private name
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names
                      if f"{target}.{alias.name}" in MODULES or alias.name.startswith("_")]
    return found


def layer_of(module: str) -> str | None:
    """The layer of a ``napari_atomdefect.core`` module (None outside ``core``)."""
    parts = module.split(".")
    if parts[:2] != [PKG, "core"] or len(parts) < 3:
        return None
    return "base" if parts[2] in BASE else parts[2]


CORE_SOURCES = [p for p in SOURCES if layer_of(module_name(p)) or module_name(p) == f"{PKG}.core"]


def test_every_core_module_has_a_layer():
    unknown = {module_name(p) for p in CORE_SOURCES if module_name(p) != f"{PKG}.core"
               and layer_of(module_name(p)) not in LAYERS}
    assert not unknown, f"core modules outside the known layers: {sorted(unknown)}"


def package_imports() -> dict[tuple[str, str], list[str]]:
    """(importing layer, imported layer) -> the import sites, for imports between two core layers."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in CORE_SOURCES:
        src_layer = layer_of(module_name(path))
        for target, line in imports_of(path):
            dst_layer = layer_of(target)
            if src_layer and dst_layer and dst_layer != src_layer and dst_layer in LAYERS:
                edges.setdefault((src_layer, dst_layer), []).append(
                    f"{path.relative_to(SRC)}:{line} imports {target}")
    return edges


def test_core_imports_only_downwards():
    upward = [site for (src, dst), sites in package_imports().items()
              if LAYERS.index(dst) > LAYERS.index(src) for site in sites]
    assert not upward, "upward imports in core:\n" + "\n".join(upward)


def test_no_cycle_between_core_packages():
    edges = package_imports()
    graph: dict[str, set[str]] = {}
    for src, dst in edges:
        graph.setdefault(src, set()).add(dst)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a, b in edges if reaches(b, a, {b}))
    assert not cycles, "cycles between core packages: " + "; ".join(cycles)


def test_inference_does_not_import_training():
    """Detection (and what it builds on) never needs the training code."""
    sites = [f"{path.relative_to(SRC)}:{line} imports {target}"
             for path in CORE_SOURCES if layer_of(module_name(path)) == "detect"
             for target, line in imports_of(path) if layer_of(target) == "train"]
    assert not sites, "\n".join(sites)


@pytest.mark.parametrize("gui", ["napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui",
                                 f"{PKG}.widgets"])
def test_core_never_imports_gui(gui):
    sites = [f"{path.relative_to(SRC)}:{line} imports {target}" for path in CORE_SOURCES
             for target, line in imports_of(path)
             if target == gui or target.startswith(gui + ".")]
    assert not sites, "\n".join(sites)


def test_no_private_napari_imports():
    sites = [f"{path.relative_to(SRC)}:{line} imports {target}" for path in SOURCES
             for target, line in imports_of(path)
             if target.startswith("napari.") and any(p.startswith("_") for p in target.split(".")[1:])]
    assert not sites, "private napari modules imported:\n" + "\n".join(sites)


def test_relative_imports_resolve_to_modules():
    """An import rewritten to a wrong depth would point outside the package or at nothing."""
    names = MODULES
    missing = []
    for path in SOURCES:
        for target, line in imports_of(path):
            if target.startswith(PKG + ".") or target == PKG:
                parent = target.rpartition(".")[0]
                if target not in names and parent not in names:
                    missing.append(f"{path.relative_to(SRC)}:{line} imports {target}")
    assert not missing, "\n".join(missing)


def public_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    """Module-level public functions and the public methods of public classes."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            found.append(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            found += [f for f in node.body
                      if isinstance(f, ast.FunctionDef) and not f.name.startswith("_")]
    return found


def test_public_core_functions_have_type_hints():
    missing = []
    for path in CORE_SOURCES:
        for fn in public_functions(ast.parse(path.read_text(encoding="utf-8"))):
            args = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
            args += [a for a in (fn.args.vararg, fn.args.kwarg) if a is not None]
            bare = [a.arg for a in args if a.annotation is None and a.arg not in ("self", "cls")]
            if bare or fn.returns is None:
                what = ", ".join(bare + ([] if fn.returns else ["return"]))
                missing.append(f"{path.relative_to(SRC)}:{fn.lineno} {fn.name}: {what}")
    assert not missing, "public functions without type hints:\n" + "\n".join(missing)


def test_torch_is_imported_lazily():
    """napari imports the package and the widget modules at start-up: none of that loads torch."""
    code = ("import sys, napari_atomdefect, napari_atomdefect.widgets.detect, napari_atomdefect.cli; "
            "from napari_atomdefect.core.models import registry, readout; "
            "print('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_detection_loads_no_heavy_scipy_module_it_rarely_needs():
    """``scipy.signal`` (with ``scipy.stats``) costs 0.5 s of every CLI run and batch worker;
    only a Mo/W alloy's equalisation uses it, and imports it there."""
    code = ("import sys, napari_atomdefect.core.detect.detect, napari_atomdefect.cli; "
            "print('scipy.signal' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
