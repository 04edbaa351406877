"""``merc-bench compare``: several recipes on identical data and seeds, in the SUMMER paper's table format.

Every recipe is an ordinary run (the same pipeline as ``merc-bench run``), all nested under one
MLflow parent run, on one loaded corpus with one seed list. Finished seeds are kept in the seed
cache (:mod:`merc_bench.seed_cache`), so rerunning an interrupted comparison trains only what is
missing. The table follows Tables II/III of the SUMMER paper — per-class ACC (recall) and F1,
then w-ACC (overall accuracy, which is the support-weighted mean of the per-class accuracies) and
w-F1 — as mean ± std over seeds ×100, plus macro-F1, which the paper omits although MELD's rare
classes decide it. Best measured value per column in bold. A paired test against a reference
recipe (the first unless ``--reference``) marks w-F1 differences significant at 0.05 with †; the
method is stated under the table (:mod:`merc_bench.significance`). Beside each p-value, a 95 %
confidence interval of Δw-F1 from the paired per-seed scores ("n/a" with one seed).

The CSV is numeric (a mean and a std column per metric, the interval's two ends in two columns);
"±" and the bold best values exist only in the rendered Markdown, LaTeX and terminal tables. The
LaTeX table is pandas' ``Styler.to_latex`` with every LaTeX special character escaped, so a recipe
or class name with ``& % $ # _ { } ~ ^ \\`` typesets as written.

Plots, each as PNG and PDF: per-class F1 bars per recipe, every recipe's test confusion matrix, and
a t-SNE of the fused test representations (the paper's Fig. 4) of the chosen recipes, coloured by
true class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from merc_bench.report import atomic_write_text, confusion_panel, plain_text_figures, save_figure
from merc_bench.pipeline import load_predictions
from merc_bench.significance import paired_bootstrap, seed_difference_interval, wilcoxon_over_seeds

__all__ = ["Measured", "comparison_table", "table_note", "render_markdown", "render_latex", "render_terminal",
           "write_comparison", "plot_comparison", "latex_escape", "latex_table", "latex_float", "f1_error_bars"]

_METRIC_COLUMNS = (("w-ACC", "accuracy"), ("w-F1", "weighted_f1"), ("macro-F1", "macro_f1"))
SIGNIFICANCE_LEVEL = 0.05
#: the column of the Δw-F1 confidence interval (sub-columns ``low`` and ``high``)
INTERVAL = "Δw-F1 95% CI"


@dataclass
class Measured:
    """One recipe's finished comparison row: its results dict and its run folder."""

    recipe: str
    result: dict[str, Any]
    out_dir: Path


def comparison_table(
    measured: list[Measured],
    *,
    reference: str,
    method: str = "bootstrap",
    published: pd.DataFrame | None = None,
    resamples: int = 2000,
) -> pd.DataFrame:
    """One row per recipe (measured, then published): numeric means/stds ×100 and the paired test.

    Columns: ``model``, ``source``, ``seeds``, then ``<class> ACC``/``<class> F1``, ``w-ACC``,
    ``w-F1``, ``macro-F1`` each with ``mean`` and ``std`` (MultiIndex level 1), then
    ``Δw-F1`` and ``p`` against ``reference`` (NaN for the reference itself and published rows),
    ``Δw-F1 95% CI`` ``low`` and ``high`` (:func:`~merc_bench.significance.seed_difference_interval`
    over the per-seed w-F1 ×100; NaN with one seed, for the reference and for published rows), and
    ``params (M)``, the trainable parameters in millions (NaN for published rows).
    """
    if not measured:
        raise ValueError("nothing to compare")
    classes = measured[0].result["classes"]
    by_recipe = {m.recipe: m for m in measured}
    if reference not in by_recipe:
        raise ValueError(f"reference {reference!r} is not among the compared recipes {list(by_recipe)}")
    reference_predictions = load_predictions(by_recipe[reference].out_dir / "predictions.npz")
    rows = []
    for item in measured:
        test = item.result["test"]
        row: dict[tuple[str, str], Any] = {("model", ""): item.recipe, ("source", ""): "measured",
                                           ("seeds", ""): len(item.result["seeds"])}
        for name in classes:
            for title, key in (("ACC", "accuracy"), ("F1", "f1")):
                row[(f"{name} {title}", "mean")] = 100 * test["per_class"][name][key]["mean"]
                row[(f"{name} {title}", "std")] = 100 * test["per_class"][name][key]["std"]
        for title, key in _METRIC_COLUMNS:
            row[(title, "mean")] = 100 * test[key]["mean"]
            row[(title, "std")] = 100 * test[key]["std"]
        difference, p_value, interval = math.nan, math.nan, None
        if item.recipe != reference:
            outcome = _paired_test(item, by_recipe[reference], reference_predictions, classes, method, resamples)
            difference, p_value = 100 * outcome.difference, outcome.p_value
            interval = seed_difference_interval(100 * np.asarray(test["weighted_f1"]["per_seed"]),
                                                100 * np.asarray(by_recipe[reference].result["test"]["weighted_f1"]
                                                                 ["per_seed"]))
        row[("Δw-F1", "")] = difference
        row[("p", "")] = p_value
        row[(INTERVAL, "low")], row[(INTERVAL, "high")] = interval or (math.nan, math.nan)
        row[("params (M)", "")] = item.result["parameters"]["trainable"] / 1e6
        rows.append(row)
    for model, values in _published_rows(published, classes):
        row = {("model", ""): model, ("source", ""): "published", ("seeds", ""): math.nan,
               ("Δw-F1", ""): math.nan, ("p", ""): math.nan, (INTERVAL, "low"): math.nan,
               (INTERVAL, "high"): math.nan, ("params (M)", ""): math.nan}
        for column, value in values.items():
            row[(column, "mean")] = value
            row[(column, "std")] = math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def table_note(info: Any, first: dict[str, Any], *, seeds: int, reference: str, method: str, published: bool,
               failures: str = "") -> str:
    """The sentence under the table: data, seeds, protocol, how to read the columns, the test used."""
    protocol = first["protocol"]
    method_note = ("paired bootstrap over test dialogues (2000 resamples, every seed's predictions pooled, two-sided)"
                   if method == "bootstrap" else "Wilcoxon signed-rank test over the per-seed w-F1 (two-sided)")
    note = (f"Test results on {info.name} (×100, mean ± std over {seeds} seed(s): "
            f"{', '.join(str(s) for s in first['seeds'])}), protocol {protocol}. "
            f"ACC per class is its recall; w-ACC is overall accuracy. Bold: best measured value per column. "
            f"Δw-F1 and p: against {reference}, {method_note}; † marks p < 0.05. {INTERVAL_NOTE}")
    if protocol == "paper":
        note += (" Paper protocol: trained on train + dev and the epoch chosen on test (as most MERC papers "
                 "report) — not an unbiased estimate.")
    if published:
        note += (" Rows marked 'published' are the SUMMER paper's reported numbers on the real "
                 f"{info.family.upper()} features (their protocol), not measured here.")
    if failures:
        note += f" Not in the table, because training failed: {failures}"
    return note


#: how the interval column is read, for every note under a comparison table
INTERVAL_NOTE = ("Δw-F1 95% CI: paired Student t interval over the per-seed w-F1 differences (training variation "
                 "only; n/a with one seed).")


def _paired_test(candidate: Measured, reference: Measured, reference_predictions: dict[str, np.ndarray],
                 classes: list[str], method: str, resamples: int) -> Any:
    mine = load_predictions(candidate.out_dir / "predictions.npz")
    if list(mine["seeds"]) != list(reference_predictions["seeds"]):
        raise ValueError(f"{candidate.recipe} and {reference.recipe} ran different seeds; a paired test needs the same")
    if method == "wilcoxon":
        return wilcoxon_over_seeds(np.asarray(candidate.result["test"]["weighted_f1"]["per_seed"]),
                                   np.asarray(reference.result["test"]["weighted_f1"]["per_seed"]))
    return paired_bootstrap(reference_predictions["labels"], mine["predictions"], reference_predictions["predictions"],
                            reference_predictions["dialogue"], num_classes=len(classes), resamples=resamples)


def _published_rows(published: pd.DataFrame | None, classes: list[str]) -> list[tuple[str, dict[str, float]]]:
    """(model label, column → value) for each published model, in the columns of our table."""
    if published is None or published.empty:
        return []
    names = {"acc": "w-ACC", "weighted_acc": "w-ACC", "weighted_f1": "w-F1", "macro_f1": "macro-F1"}
    models = {"Student Model": "SUMMER", "Teacher Model": "SUMMER teacher"}
    rows: dict[str, dict[str, float]] = {}
    for record in published.itertuples(index=False):
        if record.table not in ("II", "III"):  # the comparison tables; I and IV are ablations
            continue
        label = f"{models.get(record.model, record.model)} (published)"
        metric = str(record.metric)
        if metric.startswith("class_acc:") and metric.split(":", 1)[1] in classes:
            column = f"{metric.split(':', 1)[1]} ACC"
        elif metric.startswith("class_f1:") and metric.split(":", 1)[1] in classes:
            column = f"{metric.split(':', 1)[1]} F1"
        elif metric in names:
            column = names[metric]
        else:
            continue
        rows.setdefault(label, {})[column] = float(record.value)
    return list(rows.items())


def _display_columns(table: pd.DataFrame) -> list[str]:
    seen: list[str] = []
    for top, _ in table.columns:
        if top not in seen and top not in ("source", "seeds"):
            seen.append(top)
    return seen


def _best(table: pd.DataFrame, column: str) -> float:
    measured = table[table[("source", "")] == "measured"]
    values = measured[(column, "mean")].to_numpy(dtype=float)
    return float(np.nanmax(values)) if np.isfinite(values).any() else math.nan


#: single-value columns and how they are shown ("" when not measured)
_SCALAR_FORMATS = {"Δw-F1": "{:+.2f}", "p": "{:.3f}", "params (M)": "{:.2f}"}  # params: trainable, as validate counts


@dataclass(frozen=True)
class _Cell:
    """One displayed cell: its text, whether it is its column's best measured value, whether it gets †."""

    text: str
    best: bool = False
    dagger: bool = False


def _cell_grid(table: pd.DataFrame) -> list[list[_Cell]]:
    """Every row's displayed cells, in :func:`_display_columns` order."""
    columns = _display_columns(table)
    best = {c: _best(table, c) for c in columns if (c, "mean") in table.columns}
    lines = []
    for _, row in table.iterrows():
        cells = []
        for column in columns:
            if column == "model":
                cells.append(_Cell(str(row[("model", "")])))
            elif column == INTERVAL:
                cells.append(_Cell(_interval_text(row)))
            elif column in _SCALAR_FORMATS:
                value = row[(column, "")]
                cells.append(_Cell("" if math.isnan(value) else _SCALAR_FORMATS[column].format(value)))
            else:
                cells.append(_mean_std_cell(row, column, best[column]))
        lines.append(cells)
    return lines


def _cells(table: pd.DataFrame, bold: Any, dagger: str) -> list[list[str]]:
    """Display strings for every row: mean ± std, best measured value per column wrapped by ``bold``."""
    return [[bold(cell.text + (dagger if cell.dagger else "")) if cell.best
             else cell.text + (dagger if cell.dagger else "") for cell in row] for row in _cell_grid(table)]


def _interval_text(row: pd.Series) -> str:
    """"[low, high]"; "n/a" for a compared row without one (one seed); "" for a row not compared."""
    low, high = row[(INTERVAL, "low")], row[(INTERVAL, "high")]
    if not math.isnan(low):
        return f"[{low:+.2f}, {high:+.2f}]"
    return "" if math.isnan(row[("p", "")]) else "n/a"


def _mean_std_cell(row: pd.Series, column: str, best: float) -> _Cell:
    """"mean ± std" (dagger on a significant w-F1; best when it is the column's best measured value)."""
    mean, std = row[(column, "mean")], row[(column, "std")]
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return _Cell("–")
    text = f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"
    significant = column == "w-F1" and not math.isnan(row[("p", "")]) and row[("p", "")] < SIGNIFICANCE_LEVEL
    # A column where the best is 0 (e.g. a class nobody predicts) has no winner to mark.
    is_best = bool(row[("source", "")] == "measured" and best > 0 and np.isclose(mean, best))
    return _Cell(text, is_best, significant)


def render_markdown(table: pd.DataFrame, note: str) -> str:
    """A GitHub Markdown table with the note (protocol, seeds, test method) under it."""
    columns = _display_columns(table)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in _cells(table, lambda t: f"**{t}**", " †")]
    return "\n".join(lines) + f"\n\n{note}\n"


def render_terminal(table: pd.DataFrame, note: str) -> Any:
    """A rich table of the summary columns (the files hold the per-class ones too)."""
    from rich.markup import escape
    from rich.table import Table

    printed = Table(title=note, title_justify="left")
    columns = _display_columns(table)
    shown = [i for i, c in enumerate(columns)
             if c in ("model", "w-ACC", "w-F1", "macro-F1", "Δw-F1", "p", INTERVAL, "params (M)")]
    for index in shown:
        printed.add_column(columns[index], justify="left" if columns[index] == "model" else "right")
    for cells in _cells(table, lambda t: f"[bold]{escape(t)}[/bold]", " †"):
        printed.add_row(*(cells[i] if cells[i].startswith("[bold]") else escape(cells[i]) for i in shown))
    return printed


def render_latex(table: pd.DataFrame, note: str) -> str:
    """A booktabs tabular (needs \\usepackage{booktabs}) made by pandas' Styler, every cell and
    header escaped; the best measured values in bold; the note becomes the caption."""
    grid = _cell_grid(table)
    texts = pd.DataFrame([[cell.text + (" †" if cell.dagger else "") for cell in row] for row in grid],
                         columns=_display_columns(table))
    bold = [[cell.best for cell in row] for row in grid]
    return latex_float(latex_table(texts, bold=bold), note, resize=True)


#: Unicode in our own labels that pdflatex cannot typeset, and what it becomes (after escaping).
_LATEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "–": "--", "†": r"$^\dagger$", "✓": r"\checkmark",
                  "✗": r"$\times$"}
#: LaTeX's special characters (pandas' ``escape="latex"`` set), replaced in one pass.
_LATEX_SPECIALS = str.maketrans({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                                 "^": r"\textasciicircum{}"})


def _latex_symbols(text: str) -> str:
    for symbol, command in _LATEX_SYMBOLS.items():
        text = text.replace(symbol, command)
    return text


def latex_escape(text: str) -> str:
    """``text`` safe for LaTeX: the ten special characters escaped, then ± Δ – † ✓ ✗ as commands."""
    return _latex_symbols(str(text).translate(_LATEX_SPECIALS))


def latex_table(texts: pd.DataFrame, *, bold: list[list[bool]] | None = None) -> str:
    """A booktabs ``tabular`` of display strings through pandas' ``Styler.to_latex``: every cell and
    header escaped (``& % $ # _ { } ~ ^ \\``), then our symbols (± Δ – † ✓ ✗) turned into commands;
    ``bold[i][j]`` puts cell (i, j) in ``\\textbf``. First column left-aligned, the others right."""
    styler = texts.style.hide(axis="index")
    styler = styler.format(escape="latex", formatter=_latex_symbols, na_rep="")
    styler = styler.format_index(escape="latex", formatter=_latex_symbols, axis="columns")
    if bold is not None:
        marks = pd.DataFrame([["textbf:--rwrap;" if flag else "" for flag in row] for row in bold],
                             index=texts.index, columns=texts.columns)
        styler = styler.apply(lambda _: marks, axis=None)
    return styler.to_latex(hrules=True, column_format="l" + "r" * (len(texts.columns) - 1))


def latex_float(tabular: str, note: str, *, resize: bool = False) -> str:
    """``tabular`` inside a ``table`` float with ``note`` (escaped) as its caption."""
    body = [r"\resizebox{\linewidth}{!}{%", tabular.rstrip("\n") + "}"] if resize else [tabular.rstrip("\n")]
    return "\n".join([r"\begin{table}[t]", r"\centering", *body, f"\\caption{{{latex_escape(note)}}}",
                      r"\end{table}", ""])


def write_comparison(table: pd.DataFrame, out_dir: Path, note: str) -> list[Path]:
    """comparison.md, comparison.csv (numeric: mean and std columns) and comparison.tex."""
    paths = [out_dir / "comparison.md", out_dir / "comparison.csv", out_dir / "comparison.tex"]
    atomic_write_text(paths[0], render_markdown(table, note))
    flat = table.copy()
    flat.columns = [top if not sub else f"{top} {sub}" for top, sub in table.columns]
    atomic_write_text(paths[1], flat.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(paths[2], render_latex(table, note))
    return paths


def f1_error_bars(means: np.ndarray, stds: np.ndarray, *, top: float = 100.0) -> np.ndarray:
    """Error bars (2, C) of ``means ± stds`` cut at the scale's ends: an F1 is never below 0 or
    above ``top`` (1, or 100 ×100), whatever mean ± std would say for a class near either end."""
    means, stds = np.asarray(means, dtype=np.float64), np.nan_to_num(np.asarray(stds, dtype=np.float64))
    return np.stack([np.minimum(stds, means), np.minimum(stds, top - means)]).clip(min=0.0)


def plot_comparison(measured: list[Measured], out_dir: Path, *, tsne: list[str], seed: int = 0) -> list[Path]:
    """per_class_f1, confusion_matrices and tsne_<recipe> for each recipe in ``tsne``, each as PNG
    and PDF (:func:`merc_bench.report.save_figure`); the paths written."""
    with plain_text_figures():
        import matplotlib.pyplot as plt

        classes = measured[0].result["classes"]
        paths = _plot_per_class_f1(measured, classes, out_dir, plt) + _plot_confusions(measured, classes, out_dir, plt)
        for item in measured:
            if item.recipe in tsne and (item.out_dir / "test_embeddings.npz").is_file():
                paths += _plot_tsne(item, classes, out_dir, seed, plt)
    return paths


def _plot_per_class_f1(measured: list[Measured], classes: list[str], out_dir: Path, plt: Any) -> list[Path]:
    """Grouped bars, one group per class, one bar per recipe, the std over seeds as (clipped) error bars."""
    figure, axis = plt.subplots(figsize=(min(16.0, max(6.0, 0.4 * len(classes) * max(1, len(measured)))), 4.4))
    width = 0.8 / len(measured)
    positions = np.arange(len(classes))
    for index, item in enumerate(measured):
        per_class = item.result["test"]["per_class"]
        means = np.array([100 * per_class[c]["f1"]["mean"] for c in classes])
        stds = np.array([100 * per_class[c]["f1"]["std"] for c in classes])
        axis.bar(positions + index * width - 0.4 + width / 2, means, width, yerr=f1_error_bars(means, stds),
                 label=item.recipe, capsize=2)
    axis.set_xticks(positions, classes, rotation=30, ha="right")
    axis.set_ylim(0, 100)
    axis.set_xlabel("true class")
    axis.set_ylabel("test F1 (×100)")
    seeds = len(measured[0].result["seeds"])
    axis.set_title(f"Per-class test F1 on {measured[0].result['dataset']}: mean over {seeds} seed(s), "
                   "error bars ± std (cut at 0 and 100)", fontsize="medium")
    axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside: bars reach 100
    return save_figure(figure, out_dir / "per_class_f1.png")


def _plot_confusions(measured: list[Measured], classes: list[str], out_dir: Path, plt: Any) -> list[Path]:
    """Every recipe's test confusion matrix (seeds summed), one shared colour bar."""
    columns = min(4, len(measured))
    rows = math.ceil(len(measured) / columns)
    side = 1.6 + 0.45 * len(classes)
    figure, axes = plt.subplots(rows, columns, figsize=(side * columns + 1.2, side * rows + 0.8), squeeze=False,
                                layout="constrained")
    display = None
    for axis, item in zip(axes.ravel(), measured):
        display = confusion_panel(axis, np.asarray(item.result["test"]["confusion"]), classes, colorbar=False,
                                  fontsize="x-small")
        axis.set_title(item.recipe, fontsize="small")
        axis.tick_params(labelsize="x-small")
    for axis in axes.ravel()[len(measured):]:
        axis.axis("off")
    if display is not None:
        figure.colorbar(display.im_, ax=axes.ravel().tolist(), shrink=0.8, label="share of the true class")
    seeds = len(measured[0].result["seeds"])
    figure.suptitle(f"Test confusion matrices, normalised over true labels (rows sum to 1), {seeds} seed(s) summed",
                    fontsize="medium")
    return save_figure(figure, out_dir / "confusion_matrices.png")


def _plot_tsne(item: Measured, classes: list[str], out_dir: Path, seed: int, plt: Any) -> list[Path]:
    """t-SNE of the first seed's fused test representations, at most 3000 utterances (sampled)."""
    from sklearn.manifold import TSNE

    with np.load(item.out_dir / "test_embeddings.npz", allow_pickle=False) as arrays:
        embeddings, labels = arrays["embeddings"].astype(np.float32), arrays["labels"]
    rng = np.random.default_rng(seed)
    if len(labels) > 3000:  # t-SNE is quadratic-ish; 3000 points show the clusters as well as 10 000
        keep = np.sort(rng.choice(len(labels), 3000, replace=False))
        embeddings, labels = embeddings[keep], labels[keep]
    perplexity = float(min(30, max(2, len(labels) // 4)))
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(embeddings)
    figure, axis = plt.subplots(figsize=(5, 5))
    for index, name in enumerate(classes):
        chosen = labels == index
        axis.scatter(points[chosen, 0], points[chosen, 1], s=4, label=name)
    axis.set_title(f"t-SNE of fused test representations: {item.recipe}", fontsize="small")
    axis.set_xticks([])
    axis.set_yticks([])
    axis.legend(fontsize="x-small", markerscale=3)
    path = out_dir / f"tsne_{''.join(c if c.isalnum() or c in '-_' else '-' for c in item.recipe)}.png"
    return save_figure(figure, path)
