"""What a study found: top trials, parameter importances, Optuna's plots, the best trial's tags.

Used after every study and by ``merc-bench tune --report STUDY``, which reads the storage only
(no training). Importances are Optuna's default evaluator (PED-ANOVA in Optuna 5) over the
parameters every completed trial shares and that took more than one value — the slot choices and
trainer parameters; a component's own parameters exist only in the trials that chose it, so they
are left out. Below :data:`MIN_TRIALS_FOR_IMPORTANCE` completed trials there are none (the report
says why): from a handful of trials they rank noise. Plots (``optuna.visualization.matplotlib``,
each as PNG and PDF): optimisation history, importances, slice (the six most important
parameters) and contour — restricted to the two most important parameters (one readable panel
instead of a grid of near-empty ones), or, without importances, the first two shared parameters
that vary. A plot that cannot be drawn is named with the reason instead of being written empty.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from merc_bench.report import atomic_write_text
from merc_bench.tuning.space import SLOTS

__all__ = ["importances", "varying_parameters", "print_report", "save_plots", "write_trials_csv", "best_trial",
           "MIN_TRIALS_FOR_IMPORTANCE"]


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(completed, key=lambda t: (t.value, -t.number)) if completed else None


#: Completed trials needed before importances are computed and plotted. Optuna's evaluator needs
#: two; with fewer than five the ranking changes with every new trial, so it is not shown as a finding.
MIN_TRIALS_FOR_IMPORTANCE = 5
#: Parameters in the contour plot: one panel for two; three already make a 3 × 3 grid of small panels.
CONTOUR_PARAMS = 2


def varying_parameters(study: optuna.Study) -> list[str]:
    """The parameters every completed trial has and that took more than one value, in the order
    they first appear."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        return []
    shared = [name for name in completed[0].params if all(name in t.params for t in completed)]
    return [name for name in shared if len({repr(t.params[name]) for t in completed}) > 1]


def importances(study: optuna.Study) -> tuple[dict[str, float], str]:
    """(parameter → importance, summing to 1) and, when there are none, the reason."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(completed) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, (f"parameter importances need at least {MIN_TRIALS_FOR_IMPORTANCE} completed trials (this study "
                    f"has {len(completed)}): not computed, no importance plot")
    varying = varying_parameters(study)
    if not varying:
        return {}, "no parameter shared by the completed trials took more than one value: no importances"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study, params=varying)), ""
    except (ValueError, RuntimeError) as error:  # e.g. too few distinct values for the evaluator
        return {}, f"no importances: {error}"


def _state_counts(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(1 for t in trials if t.state == state) for state in TrialState}
    return f"{len(trials)} trials: " + ", ".join(f"{n} {s.name.lower()}" for s, n in counts.items() if n)


def print_report(study: optuna.Study, console: Any, *, metric: str, top: int = 10) -> None:
    """The top trials by validation score and the parameter importances, as console tables."""
    from rich.table import Table

    console.print(f"study {study.study_name}: {_state_counts(study)}", markup=False, highlight=False)
    completed = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                       key=lambda t: (-t.value, t.number))
    table = Table(title=f"top {min(top, len(completed))} trials by dev {metric} (validation only; test never read)",
                  title_justify="left")
    for column in ("rank", "trial", f"dev {metric}", "epoch", "seconds", *SLOTS, "other parameters"):
        table.add_column(column, justify="right" if column in ("rank", "trial", "epoch", "seconds") else "left")
    for rank, trial in enumerate(completed[:top], start=1):
        config = trial.user_attrs.get("config") or {}
        slots = [str(trial.params.get(slot) or (config.get(slot) or {}).get("name", "")) for slot in SLOTS]
        others = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items() if k not in SLOTS)
        seconds = trial.duration.total_seconds() if trial.duration else float("nan")
        table.add_row(str(rank), str(trial.number), f"{trial.value:.4f}", str(trial.user_attrs.get("selected_epoch", "")),
                      f"{seconds:.1f}", *slots, others)
    console.print(table)
    values, reason = importances(study)
    if not values:
        console.print(reason, markup=False)
        return
    printed = Table(title="parameter importances (Optuna, over completed trials)", title_justify="left")
    for column in ("parameter", "importance", ""):
        printed.add_column(column)
    for name, value in values.items():
        printed.add_row(name, f"{value:.3f}", "█" * max(1, round(30 * value)))
    console.print(printed)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def write_trials_csv(study: optuna.Study, out_dir: Path) -> Path:
    """Every trial: number, state, value, duration, parameters, selected or pruned epoch, error."""
    table = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params"))
    if not table.empty:
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        for column in ("selected_epoch", "pruned_at_epoch", "error", "origin", "worker"):
            table[column] = [trials[n].user_attrs.get(column, "") for n in table["number"]]
        table["retry_of"] = [trials[n].system_attrs.get("failed_trial", "") for n in table["number"]]
    path = out_dir / "trials.csv"
    atomic_write_text(path, table.to_csv(index=False))
    return path


def save_plots(study: optuna.Study, out_dir: Path, *, console: Any = None) -> list[Path]:
    """Optuna's matplotlib plots as PNG and PDF files, the objective labelled with the study's metric
    name; a plot the study cannot support yet is skipped, with the reason printed on ``console``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    from merc_bench.report import save_figure

    values, reason = importances(study)
    ranked = list(values) or varying_parameters(study)
    target = {"target_name": (study.metric_names or ["Objective Value"])[0]}
    wanted: list[tuple[str, Any]] = [("optimization_history", lambda: plots.plot_optimization_history(study, **target))]
    skipped = []
    if values:
        wanted.append(("param_importances", lambda: plots.plot_param_importances(study, params=ranked, **target)))
    else:
        skipped.append(f"param_importances ({reason})")
    if ranked:
        wanted.append(("slice", lambda: plots.plot_slice(study, params=ranked[:6], **target)))
    if len(ranked) >= CONTOUR_PARAMS:
        wanted.append(("contour", lambda: plots.plot_contour(study, params=ranked[:CONTOUR_PARAMS], **target)))
    else:
        skipped.append("contour (it needs two parameters that vary across the completed trials)")
    paths = []
    for name, plot in wanted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the matplotlib plots are marked experimental
            try:
                axes = plot()
            except (ValueError, RuntimeError) as error:  # too few trials for this plot
                plt.close("all")
                skipped.append(f"{name} ({error})")
                continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
        paths += save_figure(figure, out_dir / f"{name}.png", dpi=110)
    if skipped and console is not None:
        console.print(f"not plotted {'; '.join(skipped)}", markup=False, highlight=False, soft_wrap=True)
    return paths
