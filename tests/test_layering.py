"""The library's layers: core → datasets → chapters → tools, imports pointing down only.

Every import of every module is read from its source, including imports inside functions, so a sideways
import cannot hide in a function body. The rules:

* ``core`` imports only ``core``; ``datasets`` only ``core``; ``chapters`` only ``core`` and ``datasets``;
  ``tools`` may import anything, and nothing imports ``tools``.
* no import cycle between modules;
* no private name (``_x``) imported from another module;
* no import inside a function, except one that defers a heavy optional dependency or breaks a real cycle,
  with a comment on that line or the line before saying so (``deferred``, ``optional`` or ``cycle``);
* the tools' dependencies (papermill, yaml) are not imported by ``core``, ``datasets`` or ``chapters`` at
  module level;
* every chapter notebook ``book/chNN_M_<slug>.ipynb`` has its module ``halluc_lib/chapters/<slug>.py`` and
  imports it.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "halluc_lib"
LAYERS = ("core", "datasets", "chapters", "tools")
ALLOWED = {
    "core": {"core"},
    "datasets": {"core"},
    "chapters": {"core", "datasets"},
    "tools": {"core", "datasets", "chapters", "tools"},
}
TOOL_DEPENDENCIES = {"papermill", "yaml"}
JUSTIFIED = re.compile(r"#.*\b(deferred|optional|cycle)\b", re.IGNORECASE)


def modules() -> dict[str, Path]:
    """Every module of the library by dotted name, e.g. ``halluc_lib.core.train``."""
    found = {}
    for path in LIB.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = modules()


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str) -> list[dict]:
    """Every import in module ``name``: target module, imported names, line, and whether inside a function."""
    path = MODULES[name]
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    in_function.add(id(inner))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, path.name == "__init__.py")
            targets = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append((sub, None) if sub in MODULES else (base, alias.name))
        else:
            continue
        context = " ".join(lines[max(node.lineno - 2, 0) : node.end_lineno])
        for target, imported in targets:
            found.append(
                {
                    "target": target,
                    "name": imported,
                    "line": node.lineno,
                    "in_function": id(node) in in_function,
                    "justified": bool(JUSTIFIED.search(context)),
                }
            )
    return found


def layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else None


def test_every_module_is_in_a_layer():
    outside = [n for n in MODULES if n != "halluc_lib" and layer(n) is None and n.count(".") > 1]
    loose = [n for n in MODULES if n.count(".") == 1 and n.split(".")[1] not in LAYERS]
    assert not outside and not loose, f"modules outside core/datasets/chapters/tools: {outside + loose}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n)))
def test_imports_point_down(name):
    source_layer = layer(name)
    wrong = []
    for imp in imports_of(name):
        target = imp["target"]
        if not target.startswith("halluc_lib"):
            continue
        if target == "halluc_lib":
            if imp["name"] not in (None, "__version__"):
                wrong.append(f"line {imp['line']}: from halluc_lib import {imp['name']}")
            continue
        target_layer = layer(target) or target.split(".")[1]
        if target_layer not in ALLOWED[source_layer]:
            wrong.append(f"line {imp['line']}: {source_layer} → {target} ({target_layer})")
    assert not wrong, f"{name} imports up or sideways:\n" + "\n".join(wrong)


def test_chapters_do_not_import_each_other():
    sideways = [
        f"{name} → {imp['target']}"
        for name in MODULES
        if layer(name) == "chapters"
        for imp in imports_of(name)
        if layer(imp["target"]) == "chapters" and imp["target"] != "halluc_lib.chapters"
    ]
    assert not sideways, "a chapter imports another chapter:\n" + "\n".join(sideways)


def test_no_import_cycle():
    graph = {
        name: {imp["target"] for imp in imports_of(name) if imp["target"] in MODULES and imp["target"] != name}
        for name in MODULES
    }
    # a package's __init__ is not an edge worth following: importing halluc_lib.core.x runs halluc_lib.core too
    graph = {n: {t for t in targets if not MODULES[t].name == "__init__.py"} for n, targets in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" → ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_name_imported_across_modules():
    private = [
        f"{name}:{imp['line']} imports {imp['name']} from {imp['target']}"
        for name in MODULES
        for imp in imports_of(name)
        if imp["name"] and imp["name"].startswith("_") and imp["name"] != "__version__" and imp["target"] != name
        if imp["target"].startswith("halluc_lib")
    ]
    assert not private, "\n".join(private)


def test_imports_inside_functions_say_why():
    unexplained = [
        f"{name}:{imp['line']} imports {imp['target']}"
        for name in MODULES
        for imp in imports_of(name)
        if imp["in_function"] and not imp["justified"]
    ]
    assert not unexplained, (
        "imports inside functions need a comment saying they defer an optional dependency or break a cycle:\n"
        + "\n".join(unexplained)
    )


def test_tool_dependencies_stay_in_tools():
    leaking = [
        f"{name}:{imp['line']} imports {imp['target']}"
        for name in MODULES
        if layer(name) in ("core", "datasets", "chapters")
        for imp in imports_of(name)
        if imp["target"].split(".")[0] in TOOL_DEPENDENCIES and not imp["in_function"]
    ]
    assert not leaking, "\n".join(leaking)


def chapter_notebooks() -> list[Path]:
    return sorted((ROOT / "book").glob("ch*.ipynb"))


def slug(notebook: Path) -> str:
    """``ch02_1_exposure`` → ``exposure``; ``ch01_concepts`` → ``concepts``."""
    match = re.fullmatch(r"ch\d+(?:_\d+)?_(\w+)", notebook.stem)
    assert match, f"{notebook.name} is not named chNN[_M]_<slug>.ipynb"
    return match.group(1)


@pytest.mark.parametrize("notebook", chapter_notebooks(), ids=lambda p: p.stem)
def test_every_chapter_notebook_has_its_module_and_imports_it(notebook):
    module = f"halluc_lib.chapters.{slug(notebook)}"
    assert module in MODULES, f"{notebook.name} has no module {module}"
    code = "\n".join(
        "".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"] if cell["cell_type"] == "code"
    )
    imported = re.search(
        rf"from halluc_lib\.chapters import [^\n]*\b{slug(notebook)}\b|import halluc_lib\.chapters\.{slug(notebook)}\b"
        rf"|from halluc_lib\.chapters\.{slug(notebook)} import",
        code,
    )
    assert imported, f"{notebook.name} does not import its module {module}"


def test_the_layering_rules_catch_a_sideways_import(tmp_path, monkeypatch):
    """The checker itself: a chapter that imports another chapter inside a function is found."""
    fake = LIB / "chapters" / "exposure.py"
    text = fake.read_text() + "\n\ndef _sneaky():\n    from . import monofacts\n\n    return monofacts\n"
    copy = tmp_path / "exposure.py"
    copy.write_text(text)
    monkeypatch.setitem(MODULES, "halluc_lib.chapters.exposure", copy)
    found = [imp for imp in imports_of("halluc_lib.chapters.exposure") if imp["target"].endswith("monofacts")]
    assert found and found[0]["in_function"] and not found[0]["justified"]
    assert layer(found[0]["target"]) == "chapters"
