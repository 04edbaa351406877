"""``--final-seeds N``: the best trial's configuration trained on N seeds, test evaluated once per seed.

This is the only place a study touches test. The rows are ordinary runs through
:func:`merc_bench.ablation.run_grid` — the machinery of ``merc-bench compare`` — so the table is
compare's (per-class ACC and F1, w-ACC, w-F1, macro-F1, mean ± std over seeds, paired bootstrap
against a reference). The reference row is the study's first trial, the base recipe's own
settings, trained on the same seeds (when it completed and is not itself the best), so the table
answers "did tuning help, on test?". When the space cannot hold the recipe's settings, the row
says so ("recipe settings, outside the space"): the tuned row was chosen among other settings.
Finished seeds are kept in the seed cache, so rerunning the command reuses them. Everything is
nested under the study's MLflow parent run.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.markup import escape

from merc_bench import ablation
from merc_bench import comparison as comparing
from merc_bench.data import Corpus
from merc_bench.registry import Registry
from merc_bench.seed_cache import SeedCache
from merc_bench.subscribers import default_subscribers
from merc_bench.tuning.objective import RECIPE_ORIGIN
from merc_bench.tuning.report import best_trial

__all__ = ["final_rows", "run_final"]


def final_rows(study: optuna.Study, label: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(row label, run-config dict without dataset) for the best trial and the recipe-settings trial."""
    best = best_trial(study)
    if best is None:
        return []
    rows = [(f"{label} tuned (trial {best.number})", best)]
    origin = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.user_attrs.get("origin") == RECIPE_ORIGIN and t.number != best.number]
    if origin:
        outside = (study.user_attrs.get("merc_bench") or {}).get("recipe_outside_space")
        what = "recipe settings, outside the space" if outside else "recipe settings"
        rows.insert(0, (f"{label} {what} (trial {origin[0].number})", origin[0]))
    out = []
    for name, trial in rows:
        values = copy.deepcopy(trial.user_attrs["config"])
        values.pop("dataset", None)
        values["recipe"] = name
        out.append(({"recipe": name}, values))
    return out


def run_final(registry: Registry, study: optuna.Study, *, label: str, corpus: Corpus, dataset: dict[str, Any],
              seeds: int, device: str | None, out_dir: Path, tracker: Any, parent_id: str | None,
              console: Any, hook: Any = None) -> list[Path]:
    """Train the rows, write compare's table (Markdown, CSV, LaTeX) and plots; the written paths."""
    from rich.table import Table

    from merc_bench.terminal import progress_bars

    rows = final_rows(study, label)
    if not rows:
        console.print("--final-seeds: no completed trial to retrain.")
        return []
    with tracker.inside(parent_id), progress_bars(console) as progress:
        summaries = ablation.run_grid(
            registry, rows, corpus=corpus, dataset=dataset, overrides=[], flags={"seeds": seeds, "device": device},
            out_dir=out_dir, tracker=tracker, name=f"final-{study.study_name}", console=console, cache=SeedCache(),
            subscribers=lambda: default_subscribers(tracker=tracker, hook=hook, console=console, progress=progress),
        )
    measured = [comparing.Measured(s["recipe"], s["result"], s["out_dir"]) for s in summaries]
    reference = measured[0].recipe
    table = comparing.comparison_table(measured, reference=reference)
    used = summaries[0]["result"]["seeds"]
    note = (f"Test results on {corpus.info.name} (×100, mean ± std over {seeds} seed(s): "
            f"{', '.join(str(s) for s in used)}) of study {study.study_name}'s best configuration, chosen on dev "
            f"only, protocol clean. Δw-F1 and p: against {reference}, paired bootstrap over test dialogues "
            f"(2000 resamples, seeds pooled, two-sided); † marks p < 0.05. {comparing.INTERVAL_NOTE}")
    paths = comparing.write_comparison(table, out_dir, note)
    paths += comparing.plot_comparison(measured, out_dir, tsne=[])
    printed = Table(title=note, title_justify="left")
    columns = comparing._display_columns(table)
    shown = [i for i, c in enumerate(columns) if c in ("model", "w-ACC", "w-F1", "macro-F1", "Δw-F1", "p", comparing.INTERVAL)]
    for index in shown:
        printed.add_column(columns[index], justify="left" if columns[index] == "model" else "right")
    for cells in comparing._cells(table, lambda t: f"[bold]{escape(t)}[/bold]", " †"):
        printed.add_row(*(cells[i] if cells[i].startswith("[bold]") else escape(cells[i]) for i in shown))
    console.print(printed)
    return paths
