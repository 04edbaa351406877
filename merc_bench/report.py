"""Run outputs: ``results.json``, the per-class CSV, the confusion matrix (PNG and PDF) and the console table.

Every file is written to a temporary name and renamed into place, so an interrupted run never
leaves a half-written result behind; :func:`staged_output` does the same for a whole output folder
(a run that fails leaves none). Files and folders get the permissions the user's umask gives
(``tempfile`` alone would make them private: 0600 and 0700). Spread over seeds is the sample standard deviation
(ddof = 1; 0 for a single seed).
"""

from __future__ import annotations

import json
import os
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["summarise", "write_outputs", "results_table", "atomic_write", "atomic_write_text", "staged_output",
           "save_figure", "plain_text_figures", "confusion_panel"]

SPLIT_METRICS = ("accuracy", "weighted_f1", "macro_f1")


def _spread(values: list[float]) -> dict[str, Any]:
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "per_seed": [float(v) for v in array],
    }


def summarise(per_seed: list[dict[str, Any]], classes: tuple[str, ...]) -> dict[str, Any]:
    """Mean, std and per-seed values of each metric of one split over seeds."""
    if not per_seed or not per_seed[0]:
        return {}
    summary: dict[str, Any] = {metric: _spread([run[metric] for run in per_seed]) for metric in SPLIT_METRICS}
    summary["per_class"] = {
        name: {
            "accuracy": _spread([run["per_class"][name]["accuracy"] for run in per_seed]),
            "f1": _spread([run["per_class"][name]["f1"] for run in per_seed]),
            "support": per_seed[0]["per_class"][name]["support"],
        }
        for name in classes
    }
    summary["confusion"] = np.sum([run["confusion"] for run in per_seed], axis=0).tolist()
    return summary


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(binary_stream)`` on a temporary file beside ``path``, then rename it into place."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


@contextlib.contextmanager
def staged_output(out_dir: Path) -> Iterator[Path]:
    """Yield a hidden staging folder beside ``out_dir``; publish it there only if the block succeeds.

    Everything a run writes goes into the staging folder. On success it is renamed to ``out_dir``
    in one step (or, when ``out_dir`` already exists, each entry is moved in, replacing files of the
    same name); on any failure — an error, a diverged seed, Ctrl-C — the staging folder and the
    parent folders made for it are removed, so a failed run leaves no partial output behind.
    Paths written into results should be relative to the folder, as the staging name is temporary.
    """
    out_dir = Path(out_dir)
    made = [folder for folder in (out_dir.parent, *out_dir.parent.parents) if not folder.exists()]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".partial"))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        yield staging
        if out_dir.exists():
            for entry in staging.iterdir():
                target = out_dir / entry.name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                os.replace(entry, target)
            staging.rmdir()
        else:
            os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in made:  # deepest first; only if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _per_class_csv(result: dict[str, Any]) -> str:
    import pandas as pd

    rows = []
    for split in ("dev", "test"):
        for name, values in result.get(split, {}).get("per_class", {}).items():
            rows.append(
                {
                    "split": split,
                    "class": name,
                    "support": values["support"],
                    "accuracy_mean": values["accuracy"]["mean"],
                    "accuracy_std": values["accuracy"]["std"],
                    "f1_mean": values["f1"]["mean"],
                    "f1_std": values["f1"]["std"],
                }
            )
    return pd.DataFrame(rows).to_csv(index=False, float_format="%.6f")


def save_figure(figure: Any, png: Path, *, dpi: int = 120) -> list[Path]:
    """Write ``figure`` as ``png`` and as a PDF of the same stem beside it (vector, for a paper), each
    atomically (:func:`atomic_write`); close the figure; return both paths."""
    import matplotlib.pyplot as plt

    paths = [png, png.with_suffix(".pdf")]
    try:
        for path in paths:
            atomic_write(path, lambda stream, form=path.suffix[1:]: figure.savefig(
                stream, format=form, dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(figure)
    return paths


def plain_text_figures() -> Any:
    """Matplotlib settings under which labels are shown as written: a class or recipe name with
    ``$`` would otherwise be parsed as mathtext (and fail, or lose characters)."""
    import matplotlib

    matplotlib.use("Agg")
    return matplotlib.rc_context({"text.parse_math": False})


def confusion_panel(axis: Any, confusion: np.ndarray, classes: list[str], *, colorbar: bool,
                    fontsize: str = "small") -> Any:
    """Draw a confusion matrix (rows = true class) normalised over the true labels — each row sums
    to 1, so a rare class reads as clearly as a frequent one — through sklearn's
    :class:`~sklearn.metrics.ConfusionMatrixDisplay`: class names on both axes, the rate in every
    cell, the colour scale fixed to [0, 1]. Returns the display (its ``im_`` for a shared colour bar)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    confusion = np.asarray(confusion, dtype=np.float64)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    display = ConfusionMatrixDisplay(confusion_matrix=rates, display_labels=list(classes))
    display.plot(ax=axis, cmap="Blues", colorbar=colorbar, values_format=".2f", xticks_rotation=45,
                 im_kw={"vmin": 0.0, "vmax": 1.0}, text_kw={"fontsize": fontsize})
    # sklearn picks the text colour from the matrix's own range, which puts white text on pale cells
    # when no rate is high; the colour scale is fixed to [0, 1], so is the switch.
    for (i, j), text in np.ndenumerate(display.text_):
        text.set_color("white" if rates[i, j] > 0.5 else "black")
    axis.set_xlabel("predicted label")
    axis.set_ylabel("true label")
    return display


def _confusion_figure(result: dict[str, Any], path: Path) -> list[Path]:
    with plain_text_figures():
        import matplotlib.pyplot as plt

        classes = result["classes"]
        size = 2.0 + 0.8 * len(classes)
        figure, axis = plt.subplots(figsize=(size + 1.0, size))
        confusion_panel(axis, np.asarray(result["test"]["confusion"]), classes, colorbar=True)
        seeds = len(result["seeds"])
        axis.set_title(f"{result['recipe']} on {result['dataset']}: test confusion ({result['protocol']} protocol)\n"
                       f"normalised over true labels (rows sum to 1), {seeds} seed(s) summed", fontsize=9)
        return save_figure(figure, path, dpi=110)


def write_outputs(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write results.json, per_class.csv and confusion_test.png (and .pdf) into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "results.json", out_dir / "per_class.csv"]
    atomic_write_text(paths[0], json.dumps(result, indent=2, sort_keys=False) + "\n")
    atomic_write_text(paths[1], _per_class_csv(result))
    return paths + _confusion_figure(result, out_dir / "confusion_test.png")


def _cell(values: dict[str, Any]) -> str:
    return f"{100 * values['mean']:.2f} ±{100 * values['std']:.2f}"  # a narrow terminal wraps it at the space


def results_table(result: dict[str, Any]):
    """A rich table in the paper's layout: per-class ACC and F1, then w-ACC, w-F1 and macro-F1 (×100)."""
    from rich.table import Table

    seeds = len(result["seeds"])
    table = Table(
        title=f"{result['recipe']} on {result['dataset']} · protocol {result['protocol']} · "
        f"{seeds} seed(s), mean ± std (×100)",
        title_justify="left",
    )
    table.add_column("split", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    for name in result["classes"]:
        table.add_column(name, justify="right")
    table.add_column("w-avg", justify="right")
    table.add_column("macro-F1", justify="right")
    rows = [(split, result.get(split)) for split in ("dev", "test")]
    if result.get("teacher"):  # the teacher is always selected on dev (merc_bench.teachers)
        rows += [("teacher dev", result["teacher"]["dev"]), ("teacher test", result["teacher"]["test"])]
    for split, summary in rows:
        if not summary:
            continue
        label = {"paper": "dev (trained on)", "holdout": "dev (holdout)"}.get(result["protocol"], "dev") \
            if split == "dev" else split
        table.add_row(
            label, "ACC", *(_cell(summary["per_class"][c]["accuracy"]) for c in result["classes"]),
            _cell(summary["accuracy"]), "",
        )
        table.add_row(
            "", "F1", *(_cell(summary["per_class"][c]["f1"]) for c in result["classes"]),
            _cell(summary["weighted_f1"]), _cell(summary["macro_f1"]),
        )
    return table
