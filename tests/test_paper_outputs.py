"""Paper-ready outputs: figures as PNG and PDF, numeric CSVs, LaTeX escaping, the Δw-F1 interval.

No training here: the results, predictions and grid rows are made up (a few dozen utterances), so
the whole file takes a few seconds.
"""

from __future__ import annotations

import json
import math
import re

import matplotlib
import numpy as np
import pandas as pd
import pytest

from merc_bench.ablation import display_table, grid_table, write_grid
from merc_bench.comparison import (INTERVAL, Measured, comparison_table, f1_error_bars, latex_escape, plot_comparison,
                                   render_markdown, write_comparison)
from merc_bench.report import confusion_panel, write_outputs
from merc_bench.significance import seed_difference_interval

matplotlib.use("Agg")

#: every LaTeX special character, and a "$\x$" that matplotlib's mathtext would refuse
HOSTILE_CLASSES = ["a&b", "50%", "$\\x$", "c#_{}", "~^\\"]
HOSTILE_RECIPE = "r&d_{x}~^$\\#%"


def _metric(values):
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "per_seed": values.tolist()}


def _result(recipe, classes, seeds, weighted_f1, *, seed=0):
    """A results.json summary with the fields the comparison reads (test split only)."""
    rng = np.random.default_rng(seed)
    confusion = rng.integers(0, 9, (len(classes), len(classes)))
    per_class = {name: {"accuracy": _metric(rng.random(len(seeds))), "support": 10,
                        "f1": _metric([0.0] * len(seeds) if i == 0 else rng.random(len(seeds)))}
                 for i, name in enumerate(classes)}
    per_class[classes[1]]["f1"] = _metric([0.99, 0.97, 1.0][: len(seeds)])  # near the top: bars must stop at 100
    test = {"accuracy": _metric(weighted_f1), "weighted_f1": _metric(weighted_f1), "macro_f1": _metric(weighted_f1),
            "per_class": per_class, "confusion": confusion.tolist()}
    return {"recipe": recipe, "dataset": "synthetic", "protocol": "clean", "classes": classes, "seeds": seeds,
            "test": test, "parameters": {"trainable": 12345}}


def _measured(tmp_path, recipe, classes, seeds, weighted_f1, seed):
    out = tmp_path / f"run-{seed}"
    out.mkdir()
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(classes), 40)
    np.savez(out / "predictions.npz", labels=labels, dialogue=np.repeat(np.arange(8), 5),
             predictions=np.where(rng.random((len(seeds), 40)) < 0.6, labels, (labels + 1) % len(classes)),
             seeds=np.asarray(seeds))
    return Measured(recipe, _result(recipe, classes, seeds, weighted_f1, seed=seed), out)


def _compared(tmp_path, seeds, reference_scores, candidate_scores):
    measured = [_measured(tmp_path, "base_1", HOSTILE_CLASSES, seeds, reference_scores, 0),
                _measured(tmp_path, HOSTILE_RECIPE, HOSTILE_CLASSES, seeds, candidate_scores, 1)]
    return measured, comparison_table(measured, reference="base_1", resamples=200)


def test_the_interval_is_the_paired_t_interval_over_seeds_and_none_for_one_seed():
    low, high = seed_difference_interval(np.array([0.6, 0.7, 0.8]), np.array([0.59, 0.68, 0.77]))
    half = 4.302653 * 0.01 / math.sqrt(3)  # t(0.975, 2 df) · sd(d = .01, .02, .03) / √3
    assert (low, high) == pytest.approx((0.02 - half, 0.02 + half))
    assert seed_difference_interval(np.array([0.6]), np.array([0.5])) is None
    assert seed_difference_interval(np.array([0.6, 0.7]), np.array([0.5, 0.6])) == pytest.approx((0.1, 0.1))


def test_the_comparison_csv_is_numeric_with_the_interval_beside_p(tmp_path):
    measured, table = _compared(tmp_path, [0, 1, 2], [0.50, 0.52, 0.51], [0.55, 0.60, 0.56])
    written = write_comparison(table, tmp_path, "a note")
    text = (tmp_path / "comparison.csv").read_text()
    assert "±" not in text
    csv = pd.read_csv(tmp_path / "comparison.csv")
    header = list(csv.columns)
    assert header[header.index("p") + 1: header.index("p") + 3] == [f"{INTERVAL} low", f"{INTERVAL} high"]
    for column in ("w-F1 mean", "w-F1 std", "a&b F1 mean", "Δw-F1", "p", f"{INTERVAL} low", f"{INTERVAL} high"):
        assert csv[column].dtype == float, column
    candidate = csv[csv["model"] == HOSTILE_RECIPE].iloc[0]
    expected = seed_difference_interval(np.array([55.0, 60.0, 56.0]), np.array([50.0, 52.0, 51.0]))
    assert (candidate[f"{INTERVAL} low"], candidate[f"{INTERVAL} high"]) == pytest.approx(expected, abs=1e-4)
    assert math.isnan(csv[csv["model"] == "base_1"].iloc[0][f"{INTERVAL} low"])  # the reference has none
    markdown = (tmp_path / "comparison.md").read_text()
    assert f"[{expected[0]:+.2f}, {expected[1]:+.2f}]" in markdown and "±" in markdown
    assert {p.name for p in written} == {"comparison.md", "comparison.csv", "comparison.tex"}


def test_one_seed_says_n_a_instead_of_an_interval(tmp_path):
    _, table = _compared(tmp_path, [0], [0.5], [0.6])
    row = next(line for line in render_markdown(table, "").splitlines() if line.startswith(f"| {HOSTILE_RECIPE} |"))
    assert row.split(" | ")[-2] == "n/a"


def _unescaped_ampersands(line: str) -> int:
    return len(re.findall(r"(?<!\\)&", line))


def test_latex_escapes_every_special_character_in_names_and_caption(tmp_path):
    _, table = _compared(tmp_path, [0, 1], [0.5, 0.52], [0.55, 0.6])
    write_comparison(table, tmp_path, "note with 100% & $5 #1 under_score {x} ~ ^ \\")
    latex = (tmp_path / "comparison.tex").read_text()
    header = next(line for line in latex.splitlines() if line.startswith("model &"))
    rows = [line for line in latex.splitlines() if line.endswith("\\\\") and not line.startswith("model &")]
    columns = _unescaped_ampersands(header) + 1
    assert len(rows) == 2 and all(_unescaped_ampersands(line) + 1 == columns for line in rows)  # no stray &
    for escaped in (r"a\&b ACC", r"50\% F1", r"\$\textbackslash x\$", r"c\#\_\{\}", r"\textasciitilde",
                    r"\textasciicircum", r"r\&d\_\{x\}", r"$\pm$", r"$\Delta$w-F1 95\% CI"):
        assert escaped in latex, escaped
    caption = next(line for line in latex.splitlines() if line.startswith("\\caption{"))
    assert caption == ("\\caption{note with 100\\% \\& \\$5 \\#1 under\\_score \\{x\\} \\textasciitilde{} "
                       "\\textasciicircum{} \\textbackslash{}}")
    assert "\\toprule" in latex and "\\bottomrule" in latex and "\\textbf{" in latex  # booktabs, best in bold
    assert latex_escape("a_b & 5%") == r"a\_b \& 5\%"


def test_figures_are_written_as_png_and_pdf_even_with_hostile_names(tmp_path):
    measured, _ = _compared(tmp_path, [0, 1, 2], [0.5, 0.52, 0.51], [0.55, 0.6, 0.56])
    paths = plot_comparison(measured, tmp_path, tsne=[])
    assert sorted(p.name for p in paths) == ["confusion_matrices.pdf", "confusion_matrices.png", "per_class_f1.pdf",
                                             "per_class_f1.png"]
    run_dir = tmp_path / "run"
    written = write_outputs(measured[1].result, run_dir)
    assert {p.name for p in written} >= {"confusion_test.png", "confusion_test.pdf"}
    for path in [*paths, run_dir / "confusion_test.png", run_dir / "confusion_test.pdf"]:
        magic = b"%PDF" if path.suffix == ".pdf" else b"\x89PNG"
        assert path.read_bytes()[:4] == magic and path.stat().st_size > 1000, path.name
    assert json.loads((run_dir / "results.json").read_text())["recipe"] == HOSTILE_RECIPE


def test_confusion_panel_names_both_axes_shows_rates_and_a_colour_bar():
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    confusion_panel(axis, np.array([[3, 1], [0, 0]]), ["joy", "anger"], colorbar=True)
    cells = sorted(text.get_text() for text in axis.texts)
    assert cells == ["0.00", "0.00", "0.25", "0.75"]  # rows normalised over true labels; an empty row stays 0
    assert [t.get_text() for t in axis.get_xticklabels()] == ["joy", "anger"]
    assert [t.get_text() for t in axis.get_yticklabels()] == ["joy", "anger"]
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("predicted label", "true label")
    assert len(figure.axes) == 2  # the matrix and its colour bar
    plt.close(figure)


def test_f1_error_bars_stay_between_0_and_100():
    means, stds = np.array([0.5, 99.8, 50.0, 0.0]), np.array([3.0, 1.0, 10.0, 0.0])
    lower, upper = f1_error_bars(means, stds)
    assert lower.tolist() == [0.5, 1.0, 10.0, 0.0] and upper == pytest.approx([3.0, 0.2, 10.0, 0.0])
    assert (means - lower >= 0).all() and (means + upper <= 100).all()


def _grid_summaries():
    def summary(label, accuracy, f1):
        test = {"accuracy": _metric(accuracy), "weighted_f1": _metric(f1)}
        return {"ablated": label, "recipe": label, "result": {"test": test, "seeds": [0, 1]}}

    return [summary("✓", [0.5, 0.6], [0.4, 0.5]), summary("x_{1}&%", [0.6, 0.6], [0.55, 0.45])]


def test_the_ablation_csv_is_numeric_and_the_pm_is_only_in_the_rendered_tables(tmp_path):
    table = grid_table(_grid_summaries(), ["ablated"])
    write_grid(table, tmp_path, "grid", "caption_1 & 2")
    csv = pd.read_csv(tmp_path / "grid.csv")
    assert list(csv.columns) == ["ablated", "ACC mean", "ACC std", "ΔACC", "w-F1 mean", "w-F1 std", "Δw-F1", "seeds"]
    assert csv["ACC mean"].tolist() == pytest.approx([55.0, 60.0]) and csv["ΔACC"].tolist() == pytest.approx([0, 5])
    assert csv["w-F1 std"].tolist() == pytest.approx([100 * math.sqrt(0.005)] * 2, abs=1e-4)
    assert "±" not in (tmp_path / "grid.csv").read_text()
    shown = display_table(table)
    assert list(shown.columns) == ["ablated", "ACC", "ΔACC", "w-F1", "Δw-F1", "seeds"]
    assert shown["ACC"].tolist() == ["55.00 ± 7.07", "60.00 ± 0.00"] and shown["ΔACC"].tolist() == ["+0.00", "+5.00"]
    assert "| ✓ | 55.00 ± 7.07 | +0.00 |" in (tmp_path / "grid.md").read_text()
    latex = (tmp_path / "grid.tex").read_text()
    assert r"x\_\{1\}\&\%" in latex and r"\checkmark" in latex and r"55.00 $\pm$ 7.07" in latex
    assert r"\caption{caption\_1 \& 2}" in latex
