"""Every hook is documented — in its docstring and in CONTRIBUTING.md — and every documented hook exists."""

import inspect
import re
from pathlib import Path

from merc_bench import hookspecs

CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def _hookspecs() -> dict:
    marker = f"{hookspecs.PROJECT}_spec"
    return {name: function for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(function, marker)}


def _documented_hooks() -> set[str]:
    text = CONTRIBUTING.read_text(encoding="utf-8")
    section = re.search(r"^## Hooks\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert section, "CONTRIBUTING.md needs a '## Hooks' section"
    return set(re.findall(r"`(merc_bench_\w+)\(", section.group(1)))


def test_every_hookspec_has_a_docstring_naming_its_arguments_and_when_it_is_called():
    specs = _hookspecs()
    assert {"merc_bench_register", "merc_bench_after_epoch", "merc_bench_after_run"} <= set(specs)
    for name, function in specs.items():
        doc = inspect.getdoc(function) or ""
        assert "Called" in doc, f"{name}: say when it is called"
        for parameter in inspect.signature(function).parameters:
            assert f"``{parameter}``" in doc, f"{name}: document the argument {parameter!r}"


def test_contributing_documents_exactly_the_hooks_that_exist():
    assert _documented_hooks() == set(_hookspecs())
