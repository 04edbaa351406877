"""The example third-party package installs, registers through the public hooks alone, runs,
compares against SUMMER, passes the contract kit in its own tests — and is gone once uninstalled.

Every check runs merc-bench in a fresh process, as a user would after ``pip install``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "merc-bench-plugin-example"
DISTRIBUTION = "merc-bench-plugin-example"
CLI = [sys.executable, "-m", "merc_bench.cli"]
TINY = ["--set", "dataset.dialogues=12", "--set", "model.hidden_size=16", "--epochs", "2", "--no-track"]


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
                   check=True, capture_output=True, text=True)


def _merc_bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    wide = dict(os.environ, COLUMNS="250")  # rich would otherwise shorten long names to fit 80 columns
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=wide)


@pytest.fixture(scope="module")
def installed():
    # --no-build-isolation: build with the venv's setuptools instead of downloading one.
    _pip("install", "--no-deps", "--no-build-isolation", "-e", str(EXAMPLE))
    try:
        yield
    finally:
        _pip("uninstall", "-y", DISTRIBUTION)


def test_listed_with_distribution_version_and_entries(installed, tmp_path):
    listed = _merc_bench("plugins", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    text = " ".join(listed.stdout.replace("│", " ").split())
    assert f"example {DISTRIBUTION} 0.2.0" in text
    assert f"fuser {DISTRIBUTION}:lmf" in text and f"dataset {DISTRIBUTION}:tiny-dialogues" in text
    assert f"recipe {DISTRIBUTION}:lmf" in text
    listed = _merc_bench("list", "fuser", cwd=tmp_path)
    assert f"{DISTRIBUTION}:lmf" in listed.stdout


def test_runs_by_short_name_with_its_lifecycle_hook(installed, tmp_path):
    result = _merc_bench("run", "lmf", "--dataset", "tiny-dialogues", "--out", "out", *TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["config"]["fuser"]["name"] == "lmf"
    history = saved["runs"][0]["history"]
    best = [row["best_dev_weighted_f1_so_far"] for row in history]  # added by the plugin's after-epoch hook
    assert best == [max(row["dev_weighted_f1"] for row in history[: i + 1]) for i in range(len(history))]
    swapped = _merc_bench("run", "bigru-concat", "--set", f"fuser={DISTRIBUTION}:lmf", "--out", "swap",
                          "--set", "dataset.train_dialogues=6", "--set", "dataset.dev_dialogues=3",
                          "--set", "dataset.test_dialogues=3", "--set", "model.hidden_size=16", "--epochs", "1",
                          "--no-track", cwd=tmp_path)
    assert swapped.returncode == 0, swapped.stderr


def test_compares_against_summer(installed, tmp_path):
    result = _merc_bench("compare", "lmf", "summer", "--dataset", "tiny-dialogues", "--seeds", "1",
                         "--tsne", "none", "--out", "cmp", *TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    markdown = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| lmf |" in markdown and "| summer |" in markdown
    assert markdown.splitlines()[0].startswith("| model | negative ACC | negative F1 |")


def test_chosen_by_a_tune_study_when_allowed(installed, tmp_path):
    (tmp_path / "space.toml").write_text(
        f'[slots]\nfuser = ["concat", "{DISTRIBUTION}:lmf"]\n[model]\nhidden_size = 16\n')
    result = _merc_bench("tune", "lmf", "--dataset", "tiny-dialogues", "--space", "space.toml", "--trials", "3",
                         "--epochs", "2", "--pruner", "none", "--set", "dataset.dialogues=12", "--no-track",
                         "--out", "study", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    trials = (tmp_path / "study" / "trials.csv").read_text()
    assert f"{DISTRIBUTION}:lmf" in trials  # trial 0 is the lmf recipe itself; the others choose between both
    assert "fuser.merc-bench-plugin-example:lmf.rank" in trials  # its own search space, namespaced


def test_its_own_suite_uses_the_contract_kit(installed, tmp_path):
    assert "merc_bench.testing" in (EXAMPLE / "tests" / "test_contract.py").read_text()
    suite = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                           cwd=EXAMPLE, capture_output=True, text=True, timeout=600)
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert "4 passed" in suite.stdout


def test_its_command_is_listed_by_help_and_runs(installed, tmp_path):
    shown = _merc_bench("--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "lmf-size" in shown.stdout and "warning" not in shown.stderr
    ran = _merc_bench("lmf-size", "--hidden-size", "8", "--rank", "2", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    # 3 modalities x 2 ranks x (8 + 1) x 8 + 2 + 8 = 442; (8 + 1)^3 x 8 + 8 = 5,840
    assert "LMF rank 2: 442 parameters; full tensor fusion: 5,840 (13.2x)" in ran.stdout
    refused = _merc_bench("lmf-size", "--modalities", "4", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert " ".join(refused.stderr.split()).startswith("error: --modalities 4 is not a number of modalities")
    # --help loads the command module, but neither the plugin's components nor PyTorch. (sys.modules, not
    # -X importtime: entry points are loaded with importlib.import_module, which importtime does not log.)
    probe = ("import sys\nfrom merc_bench.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'merc_bench_plugin_example.commands', 'merc_bench_plugin_example.plugin')"
             " if m in sys.modules), file=sys.stderr)")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert loaded.stderr.strip().splitlines()[-1] == "['merc_bench_plugin_example.commands']", loaded.stderr


def test_gone_after_uninstall(installed, tmp_path):
    """Last in this module (pytest keeps file order): uninstall, and nothing of it is left."""
    _pip("uninstall", "-y", DISTRIBUTION)  # the fixture's own uninstall then finds nothing to do
    listed = _merc_bench("list", cwd=tmp_path)
    assert DISTRIBUTION not in listed.stdout
    run = _merc_bench("run", "lmf", "--no-track", cwd=tmp_path)
    assert run.returncode == 2
    assert "unknown recipe 'lmf'" in run.stderr
    assert "lmf-size" not in _merc_bench("--help", cwd=tmp_path).stdout
