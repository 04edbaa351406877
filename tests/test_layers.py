"""The core imports no plugin (docs/architecture.md, Layers; issue 13, "the core knows no paper").

Every module under ``merc_bench/`` is parsed and every import in it is checked — module level and
function level alike (``ast.walk`` reaches imports inside functions, methods and ``if`` blocks), plus
``importlib.import_module("...")`` / ``__import__("...")`` with a literal name — against every
top-level package under ``plugins/`` and ``examples/``. A failure names the module and the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "merc_bench"


def _top_packages(folder: Path) -> set[str]:
    """Names of the top-level packages in ``folder``'s tree (a package whose parent is not a package)."""
    names = set()
    for init in folder.rglob("__init__.py"):
        package = init.parent
        while (package.parent / "__init__.py").is_file():
            package = package.parent
        names.add(package.name)
    return names


PLUGIN_PACKAGES = _top_packages(ROOT / "plugins") | _top_packages(ROOT / "examples")


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted module name) of every import in ``tree``, wherever it is."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            found.append((node.lineno, node.args[0].value))
    return found


def plugin_imports(path: Path) -> list[str]:
    """``module:line imports name`` for every import of a plugin package in the file at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return [f"{module}:{line} imports {name}" for line, name in _imported_names(tree)
            if name.split(".")[0] in PLUGIN_PACKAGES]


def test_the_plugin_packages_are_found():
    # Guards the scan itself: an empty list would make the next test pass vacuously.
    assert {"merc_bench_datasets", "merc_bench_summer", "merc_bench_sdt", "merc_bench_plugin_example"} <= \
        PLUGIN_PACKAGES
    assert "merc_bench" not in PLUGIN_PACKAGES


def test_the_scan_sees_function_level_and_dynamic_imports():
    source = ("import os\n"
              "def later():\n"
              "    from merc_bench_datasets.layouts import read_source\n"
              "    import merc_bench_sdt as sdt\n"
              "    return importlib.import_module('merc_bench_summer.grids')\n")
    tree = ast.parse(source)
    names = [name for _, name in _imported_names(tree) if name.split(".")[0] in PLUGIN_PACKAGES]
    assert names == ["merc_bench_datasets.layouts", "merc_bench_sdt", "merc_bench_summer.grids"]


def test_the_core_imports_no_plugin():
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) > 20
    offenders = [problem for path in modules for problem in plugin_imports(path)]
    assert offenders == [], "the core must reach plugins through hooks only:\n" + "\n".join(offenders)
