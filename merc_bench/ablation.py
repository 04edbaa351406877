"""``merc-bench ablate``: the SUMMER paper's ablation grids as ordinary, tracked runs.

* Components (Table IV): the 8 combinations of {SDMoE vs SDT's intra-modal transformer} ×
  {HCMF vs SDT's cross-modal fusion} × {IKD vs SDT's self-distillation}, in the paper's row order,
  each reported with ACC and w-F1 and the difference from the all-SDT row.
* Modalities (Table I, ``--modalities-grid``): the 7 non-empty modality subsets through SDT's
  original attention path (recipe ``sdt``).

A swapped-in SDT component takes its options from the ``sdt`` recipe for the dataset's family;
everything else (sizes, training) comes from the recipe being ablated. Self-distillation needs
per-modality heads, so rows with it switch them on. Every row is trained by the same runner as
``merc-bench run`` and tracked under one parent MLflow run.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pydantic
from rich.markup import escape

from merc_bench.config import RunConfig, apply_flags, apply_overrides
from merc_bench.data import Corpus
from merc_bench.errors import TrainingDiverged, UserError
from merc_bench.registry import Registry, describe_validation_error
from merc_bench.report import atomic_write_text
from merc_bench.model import build_context
from merc_bench.runner import Prepared, execute
from merc_bench.sizing import check_training_memory
from merc_bench.trainer import resolve_device

__all__ = ["component_grid", "modality_grid", "run_grid", "grid_table"]

#: Table IV's row order: (SDMoE, HCMF, IKD).
COMPONENT_ROWS = [
    (False, False, False), (True, False, False), (False, True, False), (False, False, True),
    (True, True, False), (False, True, True), (True, False, True), (True, True, True),
]
SUMMER_PARTS = {"mixer": "sdmoe", "fuser": "hcmf", "distiller": "ikd"}


def component_grid(registry: Registry, recipe: str, family: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(row labels, run-config dict without dataset) for each of the 8 component combinations."""
    base = registry.get("recipe", recipe).obj.resolve(family)
    if any(base[slot]["name"] != name for slot, name in SUMMER_PARTS.items()):
        raise UserError(f"recipe {recipe!r} does not use SDMoE, HCMF and IKD; ablate a SUMMER recipe "
                        "(summer or summer-small).")
    sdt = registry.get("recipe", "sdt").obj.resolve(family)
    rows = []
    for flags in COMPONENT_ROWS:
        values = copy.deepcopy(base)
        for (slot, _), use_summer in zip(SUMMER_PARTS.items(), flags):
            if not use_summer:
                values[slot] = copy.deepcopy(sdt[slot])
        values["model"]["modality_heads"] = not flags[2]
        values["recipe"] = f"{recipe}[{'+'.join(n for (s, n), f in zip(SUMMER_PARTS.items(), flags) if f) or 'sdt'}]"
        labels = {"SDMoE": "✓" if flags[0] else "✗", "HCMF": "✓" if flags[1] else "✗", "IKD": "✓" if flags[2] else "✗"}
        rows.append((labels, values))
    return rows


def modality_grid(registry: Registry, family: str, modalities: tuple[str, ...]) -> list[tuple[dict[str, str], dict]]:
    """Table I: every non-empty modality subset through SDT's original attention path."""
    base = registry.get("recipe", "sdt").obj.resolve(family)
    rows = []
    for size in range(1, len(modalities) + 1):
        for subset in itertools.combinations(modalities, size):
            values = copy.deepcopy(base)
            values["modalities"] = list(subset)
            values["recipe"] = f"sdt[{'+'.join(subset)}]"
            rows.append(({"modalities": "+".join(subset)}, values))
    return rows


def run_grid(
    registry: Registry,
    rows: list[tuple[dict[str, str], dict[str, Any]]],
    *,
    corpus: Corpus,
    dataset: dict[str, Any],
    overrides: list[str],
    flags: dict[str, Any],
    out_dir: Path,
    tracker: Any,
    name: str,
    console: Any = None,
    progress: Any = None,
    hook: Any = None,
    cache: Any = None,
    keep_embeddings: list[bool] | None = None,
    record_divergence: bool = False,
) -> list[dict[str, Any]]:
    """Train every row as an ordinary run under one parent run; return one summary dict per row.

    Each row writes into ``out_dir/<NN>-<recipe>``; ``cache`` (a :class:`~merc_bench.seed_cache.SeedCache`)
    reuses seeds finished before; ``keep_embeddings[i]`` keeps row i's fused test representations.
    With ``record_divergence`` a row whose training diverged is recorded — its summary has
    ``result: None`` and ``failed``: the message — and the other rows still train; otherwise the
    :class:`~merc_bench.errors.TrainingDiverged` error stops the grid.
    """
    configs = []
    for labels, values in rows:
        values = apply_flags(apply_overrides(dict(values, dataset=dataset), overrides), flags)
        try:
            configs.append((labels, RunConfig.model_validate(values)))
        except pydantic.ValidationError as error:
            raise UserError(describe_validation_error(error, name)) from None
    # Every row's component options and size are checked before the first row trains.
    for _, config in configs:
        for kind in ("encoder", "mixer", "fuser", "distiller"):
            choice = getattr(config, kind)
            registry.get(kind, choice.name).make_config(choice.config, where=f"{config.recipe}: {kind}")
        build_context(config, corpus.info)  # a modality subset the dataset lacks
        check_training_memory(config, corpus, registry, resolve_device(config.device))
    summaries = []
    with tracker.run(name, tags={"grid": name}):
        for index, (labels, config) in enumerate(configs, start=1):
            if console is not None:
                console.rule(escape(f"row {index}/{len(configs)}: {config.recipe}"))  # names hold [brackets]
            row_dir = out_dir / f"{index:02d}-{_file_name(config.recipe)}"
            try:
                result = execute(registry, Prepared(config, corpus), out_dir=row_dir, tracker=tracker,
                                 console=console, progress=progress, hook=hook, cache=cache,
                                 keep_embeddings=bool(keep_embeddings and keep_embeddings[index - 1]))
            except TrainingDiverged as error:
                if not record_divergence:
                    raise
                if console is not None:
                    console.print(escape(f"{config.recipe} failed: {error}"))
                summaries.append({**labels, "recipe": config.recipe, "result": None, "out_dir": None,
                                  "failed": str(error)})
                continue
            summaries.append({**labels, "recipe": config.recipe, "result": result, "out_dir": row_dir})
    return summaries


def _file_name(recipe: str) -> str:
    """A recipe label as a folder name: ``summer[sdmoe+ikd]`` → ``summer-sdmoe+ikd``; ``dist:name`` → ``dist-name``."""
    return "".join(c if c.isalnum() or c in "+-_." else "-" for c in recipe).strip("-")


def grid_table(summaries: list[dict[str, Any]], label_columns: list[str]) -> "Any":
    """A pandas table: labels, ACC and w-F1 (mean ± std ×100) and their difference from row 1."""
    import pandas as pd

    reference = summaries[0]["result"]["test"]
    rows = []
    for summary in summaries:
        test = summary["result"]["test"]
        row = {column: summary[column] for column in label_columns}
        for metric, title in (("accuracy", "ACC"), ("weighted_f1", "w-F1")):
            mean, std = 100 * test[metric]["mean"], 100 * test[metric]["std"]
            row[title] = f"{mean:.2f} ± {std:.2f}"
            row[f"Δ{title}"] = f"{mean - 100 * reference[metric]['mean']:+.2f}"
        row["seeds"] = len(summary["result"]["seeds"])
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(table: Any) -> str:
    """A pandas DataFrame as a GitHub Markdown table (no extra dependency)."""
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_grid(table: Any, out_dir: Path, stem: str, note: str) -> list[Path]:
    markdown = out_dir / f"{stem}.md"
    csv = out_dir / f"{stem}.csv"
    atomic_write_text(markdown, markdown_table(table) + f"\n\n{note}\n")
    atomic_write_text(csv, table.to_csv(index=False))
    return [markdown, csv]
