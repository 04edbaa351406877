"""What a plugin may depend on: merc_bench's public API, never another plugin; a recipe that uses
another plugin's components names it, and a missing one is an error naming it."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import merc_bench
from merc_bench import Recipe, UserError
from merc_bench.plugins import get_registry, reset
from merc_bench.registry import DECLARATION_ATTRIBUTE, Registry
from merc_bench.testing import SMALL_CONTEXT

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ROOTS = [ROOT / "plugins", ROOT / "examples" / "merc-bench-plugin-example" / "src"]
SLOTS = ("encoder", "mixer", "fuser", "distiller")


def plugin_files() -> list[tuple[str, Path]]:
    """(package, file) for every module of every built-in plugin and of the example plugin."""
    found = []
    for root in PLUGIN_ROOTS:
        for package in sorted(p for p in root.iterdir() if (p / "__init__.py").is_file()):
            found += [(package.name, path) for path in sorted(package.rglob("*.py"))]
    return found


def imported_modules(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) for every absolute import in the file, at any depth (function-level too)."""
    imports = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            imports += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imports.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return imports


def boundary_violations(package: str, path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for line, module, names in imported_modules(path):
        where = f"{path.relative_to(root)}:{line}"
        top = module.split(".")[0]
        if top.startswith("merc_bench_") and top != package:
            problems.append(f"{where} imports {module}, another plugin's package: declare it in the recipe's "
                            "requires and use registered names, or move what both need into the core")
        elif top == "merc_bench" and module not in merc_bench.PUBLIC_MODULES:
            problems.append(f"{where} imports {module}, which is not a public module (merc_bench.PUBLIC_MODULES)")
        elif module == "merc_bench":
            private = [n for n in names if n not in merc_bench.__all__ and f"merc_bench.{n}" not in
                       merc_bench.PUBLIC_MODULES]
            if private:
                problems.append(f"{where} imports {private} from merc_bench, not in its __all__")
    return problems


def test_the_scan_sees_function_level_imports_and_other_plugins(tmp_path):
    module = tmp_path / "sneaky.py"
    module.write_text("from merc_bench import Recipe\n\n"
                      "def later():\n    from merc_bench.trainer import Trainer\n    import merc_bench_sdt.recipe\n")
    problems = [p.split(" ", 1)[1] for p in boundary_violations("merc_bench_summer", module, root=tmp_path)]
    assert problems == [
        "imports merc_bench.trainer, which is not a public module (merc_bench.PUBLIC_MODULES)",
        "imports merc_bench_sdt.recipe, another plugin's package: declare it in the recipe's requires and use "
        "registered names, or move what both need into the core",
    ]


def test_plugins_import_only_the_public_api_and_never_each_other():
    files = plugin_files()
    assert len({package for package, _ in files}) >= 11  # ten built-ins and the example: the scan found them
    problems = [problem for package, path in files for problem in boundary_violations(package, path)]
    assert not problems, "\n".join(problems)


def test_the_public_modules_are_listed_in_the_architecture_notes_and_exist():
    text = (ROOT / "docs" / "architecture.md").read_text()
    layers = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(merc_bench(?:\.[a-z_]+)?)`", layers.split("Public modules", 1)[1]))
    assert listed == set(merc_bench.PUBLIC_MODULES)
    for module in merc_bench.PUBLIC_MODULES:
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file() or module == "merc_bench", module


def test_importing_merc_bench_and_its_plugin_api_names_loads_no_torch():
    code = ("import sys, merc_bench; merc_bench.component; merc_bench.BuildContext; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- declared once ------------------------------------------------------------------------------------
def test_every_builtin_component_is_declared_beside_its_class():
    """Each registered class carries the declaration its entry was made from: the options live in one
    config, the registration beside the class (nothing registered from a list far away)."""
    entries = [e for e in get_registry().entries() if e.kind != "recipe" and e.plugin == "merc-bench"]
    assert len(entries) >= 25
    for entry in entries:
        declaration = vars(entry.obj).get(DECLARATION_ATTRIBUTE)
        assert declaration is not None, f"{entry.kind} {entry.name!r} is registered without @merc_bench.component"
        assert (declaration.kind, declaration.name, declaration.config, declaration.search_space) == (
            entry.kind, entry.short_name, entry.config, entry.search_space)
        assert set(entry.context_parameters()) <= set(SMALL_CONTEXT), entry.name


# -- recipes name the plugins they use ----------------------------------------------------------------
def _used_components(registry, recipe_entry) -> set[tuple[str, str]]:
    """(kind, name) of every component a recipe uses in any family, a distiller's teacher included."""
    used = set()
    for family in ("meld", "iemocap"):
        values = recipe_entry.obj.resolve(family)
        used |= {(slot, values[slot]["name"]) for slot in SLOTS}
        entry = registry.get("distiller", values["distiller"]["name"])
        distiller = entry.build(entry.make_config(values["distiller"]["config"]), SMALL_CONTEXT)
        if callable(getattr(distiller, "teacher_overrides", None)):
            teacher = distiller.teacher_overrides(
                values, lambda name, family=family: registry.get("recipe", name).obj.resolve(family))
            used |= {(slot, teacher[slot]["name"]) for slot in SLOTS if slot in teacher}
    return used


def test_every_recipe_requires_the_plugins_whose_components_it_uses():
    registry = get_registry()
    for recipe in registry.entries("recipe"):
        allowed = {recipe.source, *recipe.obj.requires}
        for kind, name in sorted(_used_components(registry, recipe)):
            owner = registry.get(kind, name).source
            assert owner in allowed, (f"recipe {recipe.name!r} uses {kind} {name!r} of plugin {owner!r} without "
                                      f"naming it in requires={recipe.obj.requires}")
        needless = set(recipe.obj.requires) - {registry.get(k, n).source for k, n in _used_components(registry, recipe)}
        assert not needless, f"recipe {recipe.name!r} requires {needless} but uses none of their components"


def test_a_recipe_whose_required_plugin_is_blocked_names_it(monkeypatch):
    monkeypatch.setenv("MERC_BENCH_BLOCK_PLUGINS", "sdt")
    reset()
    try:
        registry = get_registry()
        with pytest.raises(UserError, match=r"recipe 'summer-small' needs plugin 'sdt', which is not loaded: it is "
                                            r"blocked \(MERC_BENCH_BLOCK_PLUGINS\)"):
            registry.get("recipe", "summer-small")
        assert registry.get("recipe", "bigru-concat").name == "bigru-concat"  # needs only basic
    finally:
        monkeypatch.delenv("MERC_BENCH_BLOCK_PLUGINS")
        reset()


def test_a_recipe_whose_required_plugin_is_not_installed_or_broke_names_it():
    registry = Registry()
    registry.register("recipe", "needy", Recipe(name="needy", description="", encoder={"name": "linear"},
                                                mixer={"name": "identity"}, fuser={"name": "mean"},
                                                distiller={"name": "none"}, requires=("acme",)), source="mine")
    with pytest.raises(UserError, match="needs plugin 'acme', which is not loaded: no installed distribution "
                                        "provides it"):
        registry.get("recipe", "needy")
    registry.unavailable["acme"] = "its distribution 'acme 1.0' could not be imported: ImportError: no numpy"
    with pytest.raises(UserError, match="needs plugin 'acme'.*could not be imported: ImportError: no numpy"):
        registry.get("recipe", "needy")


def test_requires_must_be_plugin_names():
    with pytest.raises(Exception, match="requires must be a tuple of plugin"):
        Registry().register("recipe", "odd", Recipe(name="odd", description="", encoder={}, mixer={}, fuser={},
                                                    distiller={}, requires="sdt"))


@pytest.mark.timeout(300)
def test_validate_says_which_plugin_is_missing(tmp_path):
    env = dict(os.environ, MERC_BENCH_BLOCK_PLUGINS="sdt", MERC_BENCH_CACHE=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "merc_bench.cli", "validate", "summer-small"], env=env,
                            capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "needs plugin 'sdt'" in result.stderr and "blocked" in result.stderr
    assert "unknown encoder" not in result.stderr and "Traceback" not in result.stderr


# -- merc_bench.layers ----------------------------------------------------------------------------------
def test_masked_attention_ignores_padded_keys_and_matches_the_definition():
    from merc_bench.layers import MaskedMultiHeadAttention

    torch.manual_seed(0)
    attention = MaskedMultiHeadAttention(8, 2, 0.0).eval()
    query, source = torch.randn(1, 4, 8), torch.randn(1, 4, 8)
    mask = torch.tensor([[True, True, True, False]])
    out = attention(query, source, mask)
    noisy = source.clone()
    noisy[0, 3] = 1e3
    assert torch.allclose(out, attention(query, noisy, mask), atol=1e-5)
    q = attention.query(query).view(4, 2, 4).transpose(0, 1)  # (heads, L, d)
    k, v = attention.key_value(source).view(4, 2, 2, 4).permute(1, 2, 0, 3)  # each (heads, L, d)
    scores = (q @ k.transpose(1, 2)) / 2.0 + torch.where(mask[0], 0.0, float("-inf"))  # √d = 2
    expected = attention.output((scores.softmax(-1) @ v).transpose(0, 1).reshape(1, 4, 8))
    assert torch.allclose(out, expected, atol=1e-5)
    with pytest.raises(ValueError, match="not divisible"):
        MaskedMultiHeadAttention(8, 3, 0.0)


def test_gated_fusion_weighs_modalities_per_feature_and_freezes_for_one():
    from merc_bench.layers import GatedFusion

    torch.manual_seed(0)
    fusion = GatedFusion(4, 2)
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    weights = torch.softmax(torch.stack([fusion.score(a), fusion.score(b)]), dim=0)
    assert torch.allclose(fusion([a, b]), weights[0] * a + weights[1] * b, atol=1e-6)
    assert fusion.score.weight.requires_grad and not GatedFusion(4, 1).score.weight.requires_grad
