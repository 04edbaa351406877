"""The code stays readable: lint-clean under the committed ruff config, and no core function too long
or too branchy to read at once (issue 13: at most ~60 lines, radon cyclomatic grade C or better).

The limits are for ``merc_bench/`` (the core every plugin builds on); plugins are held to the
lint config only. A function that must grow past a limit is split into named steps instead.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import radon.complexity as radon  # in the [test] extra

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "merc_bench"
MAX_LINES = 60
WORST_GRADE = "C"  # radon: A 1-5, B 6-10, C 11-20, D 21-30, E 31-40, F 41+


def _functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_ruff_is_clean_under_the_committed_config():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _long_functions(paths: list[Path]) -> list[str]:
    return [f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in paths for node in _functions(path) if node.end_lineno - node.lineno + 1 > MAX_LINES]


def _complex_functions(paths: list[Path]) -> list[str]:
    return [f"{path.name}:{block.lineno} {block.fullname} {radon.cc_rank(block.complexity)} ({block.complexity})"
            for path in paths for block in radon.cc_visit(path.read_text(encoding="utf-8"))
            if radon.cc_rank(block.complexity) > WORST_GRADE]


def test_no_core_function_is_longer_than_the_limit():
    long = _long_functions(sorted(CORE.rglob("*.py")))
    assert not long, f"core functions over {MAX_LINES} lines; split them into named steps:\n" + "\n".join(long)


def test_no_core_function_is_more_complex_than_grade_c():
    worse = _complex_functions(sorted(CORE.rglob("*.py")))
    assert not worse, "core functions worse than radon grade C; split them:\n" + "\n".join(worse)


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The limits are live: a 61-line function and a grade-D function are reported, 60 lines and grade C are not."""
    at_limit, over = tmp_path / "at_limit.py", tmp_path / "over.py"
    at_limit.write_text("def f():\n" + "    x = 1\n" * (MAX_LINES - 2) + "    return x\n")
    over.write_text("def f():\n" + "    x = 1\n" * (MAX_LINES - 1) + "    return x\n")
    assert _long_functions([at_limit]) == [] and len(_long_functions([over])) == 1

    def branchy(branches: int) -> str:
        return "def g(x):\n" + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(branches)) + "    return -1\n"

    grade_c, grade_d = tmp_path / "c.py", tmp_path / "d.py"
    grade_c.write_text(branchy(19))  # complexity 20: the worst C
    grade_d.write_text(branchy(20))  # complexity 21: D
    assert _complex_functions([grade_c]) == [] and len(_complex_functions([grade_d])) == 1
