"""``merc-bench compare``: several recipes on identical data and seeds, in the SUMMER paper's table format.

Every recipe is an ordinary run (the same pipeline as ``merc-bench run``), all nested under one
MLflow parent run, on one loaded corpus with one seed list. Finished seeds are kept in the seed
cache (:mod:`merc_bench.seed_cache`), so rerunning an interrupted comparison trains only what is
missing. The table follows Tables II/III of the SUMMER paper — per-class ACC (recall) and F1,
then w-ACC (overall accuracy, which is the support-weighted mean of the per-class accuracies) and
w-F1 — as mean ± std over seeds ×100, plus macro-F1, which the paper omits although MELD's rare
classes decide it. Best measured value per column in bold. A paired test against a reference
recipe (the first unless ``--reference``) marks w-F1 differences significant at 0.05 with †; the
method is stated under the table (:mod:`merc_bench.significance`).

Plots: per-class F1 bars per recipe, every recipe's test confusion matrix, and a t-SNE of the
fused test representations (the paper's Fig. 4) of the chosen recipes, coloured by true class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from merc_bench.report import atomic_write_text
from merc_bench.pipeline import load_predictions
from merc_bench.significance import paired_bootstrap, wilcoxon_over_seeds

__all__ = ["Measured", "comparison_table", "table_note", "render_markdown", "render_latex", "render_terminal", "write_comparison", "plot_comparison"]

_METRIC_COLUMNS = (("w-ACC", "accuracy"), ("w-F1", "weighted_f1"), ("macro-F1", "macro_f1"))
SIGNIFICANCE_LEVEL = 0.05


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
    ``Δw-F1`` and ``p`` against ``reference`` (NaN for the reference itself and published rows), and
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
        difference, p_value = math.nan, math.nan
        if item.recipe != reference:
            outcome = _paired_test(item, by_recipe[reference], reference_predictions, classes, method, resamples)
            difference, p_value = 100 * outcome.difference, outcome.p_value
        row[("Δw-F1", "")] = difference
        row[("p", "")] = p_value
        row[("params (M)", "")] = item.result["parameters"]["trainable"] / 1e6
        rows.append(row)
    for model, values in _published_rows(published, classes):
        row = {("model", ""): model, ("source", ""): "published", ("seeds", ""): math.nan,
               ("Δw-F1", ""): math.nan, ("p", ""): math.nan, ("params (M)", ""): math.nan}
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
            f"Δw-F1 and p: against {reference}, {method_note}; † marks p < 0.05.")
    if protocol == "paper":
        note += (" Paper protocol: trained on train + dev and the epoch chosen on test (as most MERC papers "
                 "report) — not an unbiased estimate.")
    if published:
        note += (" Rows marked 'published' are the SUMMER paper's reported numbers on the real "
                 f"{info.family.upper()} features (their protocol), not measured here.")
    if failures:
        note += f" Not in the table, because training failed: {failures}"
    return note


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


def _cells(table: pd.DataFrame, bold: Any, dagger: str) -> list[list[str]]:
    """Display strings for every row: mean ± std, best measured value per column wrapped by ``bold``."""
    columns = _display_columns(table)
    best = {c: _best(table, c) for c in columns if (c, "mean") in table.columns}
    lines = []
    for _, row in table.iterrows():
        cells = []
        for column in columns:
            if column == "model":
                cells.append(str(row[("model", "")]))
            elif column in _SCALAR_FORMATS:
                value = row[(column, "")]
                cells.append("" if math.isnan(value) else _SCALAR_FORMATS[column].format(value))
            else:
                cells.append(_mean_std_cell(row, column, best[column], bold, dagger))
        lines.append(cells)
    return lines


def _mean_std_cell(row: pd.Series, column: str, best: float, bold: Any, dagger: str) -> str:
    """"mean ± std" (dagger on a significant w-F1; bold on the column's best measured value)."""
    mean, std = row[(column, "mean")], row[(column, "std")]
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    text = f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"
    if column == "w-F1" and not math.isnan(row[("p", "")]) and row[("p", "")] < SIGNIFICANCE_LEVEL:
        text += dagger
    # A column where the best is 0 (e.g. a class nobody predicts) has no winner to mark.
    is_best = row[("source", "")] == "measured" and best > 0 and np.isclose(mean, best)
    return bold(text) if is_best else text


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
    shown = [i for i, c in enumerate(columns) if c in ("model", "w-ACC", "w-F1", "macro-F1", "Δw-F1", "p", "params (M)")]
    for index in shown:
        printed.add_column(columns[index], justify="left" if columns[index] == "model" else "right")
    for cells in _cells(table, lambda t: f"[bold]{escape(t)}[/bold]", " †"):
        printed.add_row(*(cells[i] if cells[i].startswith("[bold]") else escape(cells[i]) for i in shown))
    return printed


def render_latex(table: pd.DataFrame, note: str) -> str:
    """A booktabs tabular (needs \\usepackage{booktabs}); the note becomes a comment and a caption."""
    columns = _display_columns(table)
    cells = _cells(table, lambda t: "\\textbf{" + latex_escape(t) + "}", "$^\\dagger$")
    body = [" & ".join(c if c.startswith("\\textbf") else latex_escape(c) for c in row) + r" \\" for row in cells]
    header = " & ".join(latex_escape(c) for c in columns) + r" \\"
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\resizebox{\linewidth}{!}{%",
        r"\begin{tabular}{l" + "r" * (len(columns) - 1) + "}", r"\toprule", header, r"\midrule", *body,
        r"\bottomrule", r"\end{tabular}}", f"\\caption{{{latex_escape(note)}}}", r"\end{table}", "",
    ])


def latex_escape(text: str) -> str:
    text = text.replace("±", "$\\pm$").replace("Δ", "$\\Delta$").replace("–", "--")
    for char in "&%#_":
        text = text.replace(char, "\\" + char)
    return text


def write_comparison(table: pd.DataFrame, out_dir: Path, note: str) -> list[Path]:
    """comparison.md, comparison.csv (numeric: mean and std columns) and comparison.tex."""
    paths = [out_dir / "comparison.md", out_dir / "comparison.csv", out_dir / "comparison.tex"]
    atomic_write_text(paths[0], render_markdown(table, note))
    flat = table.copy()
    flat.columns = [top if not sub else f"{top} {sub}" for top, sub in table.columns]
    atomic_write_text(paths[1], flat.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(paths[2], render_latex(table, note))
    return paths


def plot_comparison(measured: list[Measured], out_dir: Path, *, tsne: list[str], seed: int = 0) -> list[Path]:
    """per_class_f1.png, confusion_matrices.png and tsne_<recipe>.png for each recipe in ``tsne``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = measured[0].result["classes"]
    paths = []
    # Per-class F1: grouped bars, one group per class, one bar per recipe, std as error bars.
    figure, axis = plt.subplots(figsize=(min(16.0, max(6.0, 0.4 * len(classes) * max(1, len(measured)))), 4))
    width = 0.8 / len(measured)
    positions = np.arange(len(classes))
    for index, item in enumerate(measured):
        per_class = item.result["test"]["per_class"]
        means = [100 * per_class[c]["f1"]["mean"] for c in classes]
        stds = [100 * per_class[c]["f1"]["std"] for c in classes]
        axis.bar(positions + index * width - 0.4 + width / 2, means, width, yerr=stds, label=item.recipe, capsize=2)
    axis.set_xticks(positions, classes, rotation=30, ha="right")
    axis.set_ylabel("test F1 (×100, mean ± std over seeds)")
    axis.legend(fontsize="small", ncols=min(4, len(measured)))
    figure.tight_layout()
    paths.append(out_dir / "per_class_f1.png")
    figure.savefig(paths[-1], dpi=120)
    plt.close(figure)
    # Confusion matrices, rows normalised to the true class (seeds summed).
    columns = min(4, len(measured))
    rows = math.ceil(len(measured) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.2 * rows), squeeze=False)
    for axis, item in zip(axes.ravel(), measured):
        confusion = np.asarray(item.result["test"]["confusion"], dtype=float)
        normalised = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
        axis.imshow(normalised, vmin=0, vmax=1, cmap="Blues")
        axis.set_title(item.recipe, fontsize="small")
        axis.set_xticks(range(len(classes)), classes, rotation=90, fontsize="x-small")
        axis.set_yticks(range(len(classes)), classes, fontsize="x-small")
    for axis in axes.ravel()[len(measured):]:
        axis.axis("off")
    figure.tight_layout()
    paths.append(out_dir / "confusion_matrices.png")
    figure.savefig(paths[-1], dpi=120)
    plt.close(figure)
    for item in measured:
        if item.recipe in tsne and (item.out_dir / "test_embeddings.npz").is_file():
            paths.append(_plot_tsne(item, classes, out_dir, seed, plt))
    return paths


def _plot_tsne(item: Measured, classes: list[str], out_dir: Path, seed: int, plt: Any) -> Path:
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
    figure.tight_layout()
    path = out_dir / f"tsne_{''.join(c if c.isalnum() or c in '-_' else '-' for c in item.recipe)}.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
