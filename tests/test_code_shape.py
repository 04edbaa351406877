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


def test_no_core_function_is_longer_than_the_limit():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted(CORE.rglob("*.py")) for node in _functions(path)
            if node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert not long, f"core functions over {MAX_LINES} lines; split them into named steps:\n" + "\n".join(long)


def test_no_core_function_is_more_complex_than_grade_c():
    worse = []
    for path in sorted(CORE.rglob("*.py")):
        for block in radon.cc_visit(path.read_text(encoding="utf-8")):
            grade = radon.cc_rank(block.complexity)
            if grade > WORST_GRADE:
                worse.append(f"{path.relative_to(ROOT)}:{block.lineno} {block.fullname} {grade} ({block.complexity})")
    assert not worse, "core functions worse than radon grade C; split them:\n" + "\n".join(worse)


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The limits are live: a 61-line function and a grade-D function are found."""
    long = tmp_path / "long.py"
    long.write_text("def f():\n" + "    x = 1\n" * (MAX_LINES - 1) + "    return x\n")
    (node,) = _functions(long)
    assert node.end_lineno - node.lineno + 1 == MAX_LINES + 1
    branchy = "def g(x):\n" + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(21)) + "    return -1\n"
    (block,) = radon.cc_visit(branchy)
    assert radon.cc_rank(block.complexity) > WORST_GRADE
