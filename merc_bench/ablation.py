"""Ablation grids as ordinary, tracked runs; the grids themselves come from plugins.

A grid is an :class:`AblationGrid` a plugin declares through the ``merc_bench_ablation_grids`` hook
(the SUMMER plugin declares the paper's Table IV component grid and Table I modality grid): a name,
the label columns, and a function from (registry, recipe, dataset info) to rows — (labels,
run-config values) pairs. A grid may declare options (``options``, a pydantic model with
``extra="forbid"``): ``merc-bench ablate --grid-option KEY=VALUE`` / ``merc_bench.ablate(...,
grid_options={...})`` set them, :func:`grid_options` validates them, the rows function receives
them as a fourth argument, and every written table names them (:func:`describe_options`). The core
knows no paper: it runs any declared grid. Every row is resolved
and validated through :func:`merc_bench.pipeline.resolve` before the first row trains, then trained
by :func:`merc_bench.pipeline.execute` like ``merc-bench run``, all under one parent MLflow run.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable, Iterator

import pydantic
from rich.markup import escape

from merc_bench.config import parse_override
from merc_bench.data import Corpus, DatasetInfo
from merc_bench.errors import TrainingDiverged, UserError, unknown_name_message
from merc_bench.events import Subscriber
from merc_bench.pipeline import SLOTS, execute, resolve
from merc_bench.registry import Registry, describe_validation_error
from merc_bench.report import atomic_write_text

__all__ = ["AblationGrid", "Row", "declared_grids", "find_grid", "grid_options", "grid_rows", "describe_options",
           "run_grid", "grid_table", "display_table"]

#: (labels shown in the table, run-config values without the dataset)
Row = tuple[dict[str, str], dict[str, Any]]


@dataclass(frozen=True)
class AblationGrid:
    """A grid of runs a plugin declares for ``merc-bench ablate --grid NAME``."""

    name: str
    description: str
    label_columns: tuple[str, ...]
    #: (registry, recipe or None, dataset info[, options]) → rows; raises UserError for a recipe it
    #: cannot ablate. A grid with ``options`` receives the validated options as the fourth argument.
    rows: Callable[..., list[Row]]
    #: whether this grid ablates a recipe (``ablate RECIPE`` without --grid takes the first that does)
    applies_to: Callable[[Registry, str], bool] = lambda registry, recipe: False
    default_recipe: str | None = None
    paper: str = ""
    #: the grid's options (a pydantic model, ``extra="forbid"``, every field with a default and a
    #: description); None: the grid takes none
    options: type[pydantic.BaseModel] | None = None
    #: a sentence for the table's caption saying what the options chose (default: ``key=value, ...``)
    describe: Callable[[Any], str] | None = None


def grid_options(grid: AblationGrid, given: dict[str, Any] | Iterable[str] | None) -> pydantic.BaseModel | None:
    """The grid's validated options from a dict or ``KEY=VALUE`` strings (``--grid-option``); a
    :class:`UserError` for an option the grid does not have or a value it refuses."""
    if isinstance(given, dict):
        values = dict(given)
    else:
        values = {}
        for text in given or ():
            path, value = parse_override(text)
            values[".".join(path)] = value
    if grid.options is None:
        if values:
            raise UserError(f"ablation grid {grid.name!r} takes no options (got {', '.join(sorted(values))}).")
        return None
    try:
        return grid.options.model_validate(values)
    except pydantic.ValidationError as error:
        raise UserError(describe_validation_error(error, f"ablation grid {grid.name!r}", grid.options)) from None


def grid_rows(grid: AblationGrid, registry: Registry, recipe: str | None, info: DatasetInfo,
              options: pydantic.BaseModel | None) -> list[Row]:
    """The grid's rows, its options passed when it declares some."""
    if grid.options is None:
        return grid.rows(registry, recipe, info)
    return grid.rows(registry, recipe, info, options)


def describe_options(grid: AblationGrid, options: pydantic.BaseModel | None) -> str:
    """What the options chose, for the table's caption ("" for a grid without options)."""
    if options is None:
        return ""
    if grid.describe is not None:
        return grid.describe(options)
    return "Options: " + ", ".join(f"{k}={v}" for k, v in options.model_dump(mode="json").items()) + "."


def declared_grids(hook: Any) -> dict[str, AblationGrid]:
    """Every grid the plugins declare, by name (the first plugin to declare a name keeps it)."""
    grids: dict[str, AblationGrid] = {}
    for declared in hook.merc_bench_ablation_grids():
        for grid in declared or []:
            if not isinstance(grid, AblationGrid):
                raise UserError(f"a plugin's merc_bench_ablation_grids returned {type(grid).__name__}, not an "
                                "AblationGrid.")
            grids.setdefault(grid.name, grid)
    return grids


def find_grid(grids: dict[str, AblationGrid], name: str | None, recipe: str | None,
              registry: Registry) -> tuple[AblationGrid, str | None]:
    """The grid to run and the recipe it ablates: ``--grid`` if given, else the first grid for ``recipe``."""
    if name is not None:
        if name not in grids:
            raise UserError(unknown_name_message("ablation grid", name, list(grids)))
        grid = grids[name]
        return grid, recipe or grid.default_recipe
    if recipe is None:
        recipe = next((g.default_recipe for g in grids.values() if g.default_recipe), None)
        if recipe is None:
            raise UserError("no plugin declares an ablation grid with a default recipe; name a recipe and --grid.")
    for grid in grids.values():
        if grid.applies_to(registry, recipe):
            return grid, recipe
    raise UserError(f"no ablation grid applies to recipe {recipe!r}; choose one with --grid "
                    f"({', '.join(grids) or 'none declared'}).")


def overrides_per_row(registry: Registry, rows: list[Row], overrides: list[str]) -> list[list[str]]:
    """The ``--set`` overrides each row takes.

    An option of a component (``distiller.teacher.epochs=10``, ``mixer.heads=4``) goes to the rows
    whose component in that slot has the option: the rows with SDT's self-distillation have no
    teacher to set. An option that no row's component has is an error (a typo is not skipped
    silently). Every other override (``training.lr``, ``dataset.*``, ``mixer=bigru``) goes to every row.
    """
    chosen = [{slot: values[slot]["name"] for slot in SLOTS} for _, values in rows]
    per_row: list[list[str]] = [[] for _ in rows]
    for text in overrides:
        path, value = parse_override(text)
        if len(path) < 2 or path[0] not in SLOTS:
            for kept, names in zip(per_row, chosen):
                kept.append(text)
                if len(path) == 1 and path[0] in SLOTS and isinstance(value, str):  # a swap: later options follow it
                    names[path[0]] = value
            continue
        takers = [kept for kept, names in zip(per_row, chosen)
                  if path[1] in (registry.get(path[0], names[path[0]]).config or _NoOptions).model_fields]
        if not takers:
            names = sorted({row[path[0]] for row in chosen})
            raise UserError(f"--set {text}: no row's {path[0]} ({', '.join(names)}) has an option {path[1]!r}.")
        for kept in takers:
            kept.append(text)
    return per_row


class _NoOptions(pydantic.BaseModel):
    """A component declared without a configuration model has no options."""


def run_grid(
    registry: Registry,
    rows: list[Row],
    *,
    corpus: Corpus,
    dataset: dict[str, Any],
    overrides: Iterable[str],
    flags: dict[str, Any],
    out_dir: Path,
    tracker: Any,
    name: str,
    subscribers: Callable[[], list[Subscriber]] = list,
    console: Any = None,
    cache: Any = None,
    keep_embeddings: list[bool] | None = None,
    record_divergence: bool = False,
    route_component_options: bool = False,
    finish: Callable[[list[dict[str, Any]]], list[Path]] | None = None,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Train every row as an ordinary run under one parent run; return one summary dict per row.

    Every row is resolved and validated first (options, modalities, memory), so a typo in any row's
    override fails before the first row trains. Each row writes into ``out_dir/<NN>-<recipe>``;
    ``subscribers()`` makes a row's subscribers (tracking and hooks and the console); ``cache``
    (a :class:`~merc_bench.seed_cache.SeedCache`) reuses seeds finished before;
    ``keep_embeddings[i]`` keeps row i's fused test representations. With ``record_divergence`` a
    row whose training diverged is recorded — its summary has ``result: None`` and ``failed``: the
    message — and the other rows still train; otherwise the error stops the grid.
    With ``route_component_options`` (an ablation, whose rows swap components) a component option
    goes only to the rows whose component has it (:func:`overrides_per_row`); otherwise (a
    comparison of recipes) every override must suit every row.

    The parent run gets one summary metric per finished row (``test_weighted_f1/<row>``,
    ``test_accuracy/<row>``: the means over seeds) and, with ``finish``, the files it writes from the
    summaries (the table in its formats, the plots), logged while the parent is still open.

    With ``jobs`` > 1 every (row, seed) pair is first trained in that many worker processes into the
    seed cache (:mod:`merc_bench.parallel`; without a ``cache``, a temporary one for this call), which
    the rows then read.
    """
    overrides = list(overrides)
    routed = overrides_per_row(registry, rows, overrides) if route_component_options else [overrides] * len(rows)
    configs = [(labels, resolve(registry, values, corpus, dataset=dataset, overrides=row_overrides,
                                flags=flags, label=name))
               for (labels, values), row_overrides in zip(rows, routed)]
    keep = [bool(keep_embeddings and keep_embeddings[i]) for i in range(len(configs))]
    with _job_cache(cache, jobs) as cache:
        if jobs > 1:
            from merc_bench.parallel import train_pairs

            train_pairs([config for _, config in configs], corpus, registry=registry, cache_root=cache.root,
                        jobs=jobs, tsne=keep, console=console)
        return _train_rows(configs, registry=registry, corpus=corpus, out_dir=out_dir, tracker=tracker, name=name,
                           subscribers=subscribers, console=console, cache=cache, keep=keep,
                           record_divergence=record_divergence, finish=finish)


@contextlib.contextmanager
def _job_cache(cache: Any, jobs: int) -> Iterator[Any]:
    """``cache``, or for ``jobs`` > 1 without one (``--no-reuse``) a temporary seed cache removed afterwards."""
    if cache is not None or jobs <= 1:
        yield cache
        return
    from merc_bench.seed_cache import SeedCache

    with tempfile.TemporaryDirectory(prefix="merc-bench-jobs-") as folder:
        yield SeedCache(Path(folder))


def _train_rows(configs: list[tuple[dict[str, Any], Any]], *, registry: Registry, corpus: Corpus, out_dir: Path,
                tracker: Any, name: str, subscribers: Callable[[], list[Subscriber]], console: Any, cache: Any,
                keep: list[bool], record_divergence: bool,
                finish: Callable[[list[dict[str, Any]]], list[Path]] | None) -> list[dict[str, Any]]:
    """:func:`run_grid`'s rows, one after the other under the grid's parent run."""
    summaries = []
    with tracker.run(name, tags={"grid": name}):
        for index, (labels, config) in enumerate(configs, start=1):
            if console is not None:
                console.rule(escape(f"row {index}/{len(configs)}: {config.recipe}"))  # names hold [brackets]
            row_dir = out_dir / f"{index:02d}-{_file_name(config.recipe)}"
            try:
                result = execute(config, corpus, registry=registry, out_dir=row_dir, subscribers=subscribers(),
                                 cache=cache, keep_embeddings=keep[index - 1])
            except TrainingDiverged as error:
                if not record_divergence:
                    raise
                summaries.append(_diverged(labels, config.recipe, error, console))
                continue
            summaries.append({**labels, "recipe": config.recipe, "result": result.summary, "out_dir": row_dir,
                              "run": result})
        tracker.log_metrics(_row_metrics(summaries))
        tracker.log_artifacts(finish(summaries) if finish is not None else [], "table")
    return summaries


def _diverged(labels: dict[str, Any], recipe: str, error: TrainingDiverged, console: Any) -> dict[str, Any]:
    """The summary of a row whose training diverged (``record_divergence``)."""
    if console is not None:
        console.print(escape(f"{recipe} failed: {error}"))
    return {**labels, "recipe": recipe, "result": None, "out_dir": None, "failed": str(error), "run": None}


def _row_metrics(summaries: list[dict[str, Any]]) -> dict[str, float]:
    """``test_<metric>/<row>`` per finished row; a row name keeps only the characters MLflow allows."""
    metrics = {}
    for summary in summaries:
        test = (summary["result"] or {}).get("test") or {}
        label = re.sub(r"[^A-Za-z0-9_\-. :/]", "_", summary["recipe"])
        for metric in ("weighted_f1", "accuracy"):
            if metric in test:
                metrics[f"test_{metric}/{label}"] = float(test[metric]["mean"])
    return metrics


def _file_name(recipe: str) -> str:
    """A recipe label as a folder name: ``summer[sdmoe+ikd]`` → ``summer-sdmoe+ikd``; ``dist:name`` → ``dist-name``."""
    return "".join(c if c.isalnum() or c in "+-_." else "-" for c in recipe).strip("-")


def grid_table(summaries: list[dict[str, Any]], label_columns: list[str]) -> Any:
    """A numeric pandas table: the labels, then per metric (ACC, w-F1) its mean and std over seeds
    (×100) and the difference of the mean from row 1, then the seeds. ``±`` exists only in the
    rendered tables (:func:`display_table`)."""
    import pandas as pd

    reference = summaries[0]["result"]["test"]
    rows = []
    for summary in summaries:
        test = summary["result"]["test"]
        row = {column: summary[column] for column in label_columns}
        for metric, title in (("accuracy", "ACC"), ("weighted_f1", "w-F1")):
            row[f"{title} mean"] = 100 * test[metric]["mean"]
            row[f"{title} std"] = 100 * test[metric]["std"]
            row[f"Δ{title}"] = 100 * (test[metric]["mean"] - reference[metric]["mean"])
        row["seeds"] = len(summary["result"]["seeds"])
        rows.append(row)
    return pd.DataFrame(rows)


def display_table(table: Any) -> Any:
    """:func:`grid_table` as display strings: each ``<metric> mean``/``<metric> std`` pair becomes one
    ``<metric>`` column "mean ± std", a Δ column gets its sign, two decimals throughout."""
    import pandas as pd

    shown: dict[str, list[str]] = {}
    for column in table.columns:
        name = str(column)
        if name.endswith(" std") and f"{name[:-4]} mean" in table.columns:
            continue
        if name.endswith(" mean") and f"{name[:-5]} std" in table.columns:
            stds = table[f"{name[:-5]} std"]
            shown[name[:-5]] = [f"{m:.2f} ± {d:.2f}" for m, d in zip(table[column], stds)]
        elif name.startswith("Δ"):
            shown[name] = [f"{v:+.2f}" for v in table[column]]
        else:
            shown[name] = [str(v) for v in table[column]]
    return pd.DataFrame(shown)


def markdown_table(table: Any) -> str:
    """A pandas DataFrame as a GitHub Markdown table (no extra dependency)."""
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def latex_table(table: Any, note: str) -> str:
    """A display table as a LaTeX table (booktabs, through pandas' Styler, everything escaped) with
    ``note`` as its caption; the component grid's ✓ and ✗ become \\checkmark (amssymb) and $\\times$."""
    from merc_bench.comparison import latex_float, latex_table as tabular

    texts = table.astype(str)
    texts.columns = [str(c) for c in table.columns]
    return latex_float(tabular(texts), note)


def write_grid(table: Any, out_dir: Path, stem: str, note: str,
               options: pydantic.BaseModel | None = None) -> list[Path]:
    """``stem``.md and .tex (the table with "mean ± std" cells and ``note`` as its caption) and .csv
    (numeric: means, stds and Δ in their own columns, then one column per grid option, so the
    numbers never travel without the settings that made them)."""
    markdown, csv, latex = out_dir / f"{stem}.md", out_dir / f"{stem}.csv", out_dir / f"{stem}.tex"
    shown = display_table(table)
    atomic_write_text(markdown, markdown_table(shown) + f"\n\n{note}\n")
    atomic_write_text(latex, latex_table(shown, note))
    described = table.copy()
    for key, value in (options.model_dump(mode="json") if options is not None else {}).items():
        described[key] = value
    atomic_write_text(csv, described.to_csv(index=False, float_format="%.4f"))
    return [markdown, csv, latex]
