"""``merc-bench tune``: Optuna studies over component combinations and hyper-parameters.

One study = one Optuna study in a database (``tunes/<study>/study.db`` unless ``--storage``), one
MLflow parent run, and a folder ``tunes/<study>/`` with the plots, ``trials.csv`` and, with
``--final-seeds``, the test table. The parts:

* :mod:`.space_file`, :mod:`.space` — the ``--space`` file read and checked; what is searched (slots ×
  components' own spaces × trainer ranges);
* :mod:`.objective` — one trial: configure, validate, train, report validation per epoch;
* :mod:`.study`, :mod:`.budget` — storage with heartbeats, sampler, pruner, the worker loop; the
  exact trial budget (slots taken atomically in the study's database);
* :mod:`.workers` — ``--workers K`` local processes;
* :mod:`.tracking` — the MLflow parent and children;
* :mod:`.report`, :mod:`.final` — top trials, importances, plots; the best configuration on test.

Base configuration: the recipe named on the command line, whose components are then fixed unless
the space file lists alternatives; without a recipe every slot ranges over all registered
components and sizes and training settings come from ``bigru-concat`` (hidden 256, 20 epochs).
``--set`` and ``--epochs`` change the base like they change a run. The base recipe's own settings
are enqueued as trial 0, which trains them exactly even where the space cannot hold them (then
the output and the ``--final-seeds`` reference row say "outside the space"). The search space,
base configuration and command are frozen in the study when it is created; rerunning with
different ones is refused (start another ``--study``).

Order of the checks: the ``--space`` file is read and checked against the registry and the
configurations before the study's folder or storage is touched, so a bad file leaves nothing
behind. A study none of whose trials finished because every one failed exits with a
:class:`~merc_bench.errors.UserError` (exit code 2) naming the first trial's error.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch

from merc_bench.config import RunConfig
from merc_bench.data import Corpus
from merc_bench.errors import UserError
from merc_bench.model import build_context
from merc_bench.pipeline import check_writable, load_dataset, resolve
from merc_bench.registry import Registry
from merc_bench.trainer import resolve_device
from merc_bench.tuning import report, study as studies
from merc_bench.tuning.budget import TrialBudget
from merc_bench.tuning.final import run_final
from merc_bench.tuning.objective import RECIPE_ORIGIN, Objective
from merc_bench.tuning.space import SearchSpace, build_space, canonical, recipe_in_space, read_space_file
from merc_bench.tuning.space_file import clip
from merc_bench.tuning.tracking import NoStudyTracker, StudyTracker
from merc_bench.tuning.workers import share_cores, spawn_workers, stop_workers, wait_for_workers

__all__ = ["TuneRequest", "StudyOutcome", "run_study", "report_study", "DEFAULT_BASE"]

#: The recipe whose sizes and training settings a study without a recipe starts from.
DEFAULT_BASE = "bigru-concat"
METRICS = ("weighted_f1", "accuracy", "macro_f1")


@dataclass
class TuneRequest:
    """The options of one ``merc-bench tune`` command."""

    recipe: str | None = None
    dataset: str | None = None  # None: the one dataset_config names, else synthetic
    data_dir: Path | None = None
    dataset_config: Path | None = None
    modalities: list[str] | None = None
    trials: int = 20
    timeout: float | None = None
    study: str | None = None
    storage: str | None = None
    space: Path | None = None
    workers: int = 1
    pruner: str = "median"
    metric: str = "weighted_f1"
    final_seeds: int = 0
    epochs: int | None = None
    device: str | None = None
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    out: Path | None = None
    heartbeat_interval: int = 10
    grace_period: int = 30
    max_failures: int | None = None
    tracking_uri: str | None = None
    no_track: bool = False
    worker_index: int = 0

    def worker_argv(self, *, study: str, storage: str, out: Path, tracking_uri: str | None) -> list[str]:
        """The options an extra worker runs with: this command's, with the resolved names and places."""
        argv = [self.recipe] if self.recipe else []
        argv += ["--trials", str(self.trials), "--study", study, "--storage", storage,
                 "--out", str(out.resolve()), "--pruner", self.pruner, "--metric", self.metric, "--seed", str(self.seed),
                 "--heartbeat-interval", str(self.heartbeat_interval), "--grace-period", str(self.grace_period)]
        for flag, value in (("--dataset", self.dataset), ("--data-dir", self.data_dir),
                            ("--dataset-config", self.dataset_config and Path(self.dataset_config).resolve()),
                            ("--timeout", self.timeout), ("--epochs", self.epochs),
                            ("--device", self.device), ("--max-failures", self.max_failures),
                            ("--space", self.space and self.space.resolve()), ("--tracking-uri", tracking_uri),
                            ("--modalities", self.modalities and ",".join(self.modalities))):
            if value is not None:
                argv += [flag, str(value)]
        for override in self.overrides:
            argv += ["--set", override]
        return argv + (["--no-track"] if self.no_track else [])


def _base_values(registry: Registry, request: TuneRequest, corpus: Corpus, dataset: dict[str, Any],
                 overrides: list[str]) -> dict[str, Any]:
    """The base run configuration (resolved and validated like a run's, every default spelled out)
    every trial starts from."""
    recipe = request.recipe or DEFAULT_BASE
    flags = {"modalities": request.modalities, "training.epochs": request.epochs, "device": request.device,
             "training.selection_metric": request.metric, "seeds": 1}
    # Memory is checked per trial (its sampled sizes), not for the base.
    config = resolve(registry, recipe, corpus, dataset=dataset, overrides=overrides, flags=flags, check_memory=False)
    if config.protocol != "clean":
        raise UserError("a study selects on dev only; protocol=paper selects on test, so it cannot be tuned.")
    return config.model_dump(mode="json")


def _definition(study: optuna.Study, registry: Registry, request: TuneRequest, key: dict[str, Any],
                base: dict[str, Any], space: SearchSpace) -> dict[str, Any]:
    """The study's frozen definition: created (with trial 0 enqueued) on first use, else checked."""
    stored = study.user_attrs.get("merc_bench")
    if stored is not None:
        changed = [f"{name} (study: {stored['request'].get(name)!r}, now: {value!r})"
                   for name, value in key.items() if canonical(stored["request"].get(name)) != canonical(value)]
        if changed:
            raise UserError(f"study {study.study_name!r} was created with other settings: {'; '.join(changed)}. "
                            "Rerun it with its own settings, or start a new study with --study NAME.")
        SearchSpace.from_json(stored["space"]).check_registered(registry, study.study_name)
        return stored
    params, outside = recipe_in_space(space, base, registry)
    stored = {"request": key, "base": base, "space": space.to_json(), "uid": uuid.uuid4().hex,
              "recipe_params": params, "recipe_outside_space": outside,
              "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    study.set_user_attr("merc_bench", stored)
    study.enqueue_trial(params, user_attrs={"origin": RECIPE_ORIGIN}, skip_if_exists=True)
    return stored


@dataclass(frozen=True)
class StudyOutcome:
    """Where a study lives and the exit code of the command that ran it (1: a worker process failed)."""

    name: str
    url: str
    study_dir: Path
    code: int


def run_study(request: TuneRequest, *, registry: Registry, console: Any, hook: Any = None) -> StudyOutcome:
    """Create or resume the study, run this process's worker (and ``--workers``), report."""
    _check_request(request)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from the objective
    file_values = json.loads(canonical(read_space_file(request.space))) if request.space else {}
    corpus, dataset, overrides = load_dataset(registry, request.dataset, request.overrides, request.data_dir,
                                              request.dataset_config and Path(request.dataset_config))
    name = request.study or f"{request.recipe or 'components'}-{corpus.info.name}"
    study_dir = request.out or Path("tunes") / name
    key = {"recipe": request.recipe, "dataset": dataset, "modalities": request.modalities, "overrides": overrides,
           "space": file_values, "metric": request.metric, "epochs": request.epochs}
    base = _base_values(registry, request, corpus, dataset, overrides)
    # Checked before anything is written: a space no trial could train is one error, not a folder of failures.
    space = build_space(registry, base, file_values, fixed_slots=request.recipe is not None, where=str(request.space),
                        context=build_context(RunConfig.model_validate(base), corpus.info), corpus=corpus)
    check_writable(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)  # the default sqlite storage lives in it
    url = request.storage or studies.default_storage_url(study_dir)
    device = resolve_device(base["device"])
    on_stale = studies.StaleTrials()
    storage = studies.open_storage(url, heartbeat_interval=request.heartbeat_interval,
                                   grace_period=request.grace_period, on_stale=on_stale)
    study = studies.open_study(storage, name, pruner=request.pruner, epochs=base["training"]["epochs"],
                               metric=request.metric)
    # A resumed or parallel worker must not repeat earlier draws: the seed adds its index and the trials so far.
    study.sampler = studies.make_sampler(request.seed + 1000 * request.worker_index + len(study.trials))
    definition = _definition(study, registry, request, key, base, space)
    # The frozen base decides what is trained; this process's --device decides where (machines may differ).
    space, base = SearchSpace.from_json(definition["space"]), dict(definition["base"], device=base["device"])
    recipe_params = definition.get("recipe_params")
    if recipe_params is None:  # a study created before trial 0's parameters were frozen with it
        recipe_params = recipe_in_space(space, base, registry)[0]
    tracker = NoStudyTracker() if request.no_track else StudyTracker(request.tracking_uri)
    on_stale.tracker = tracker
    parent_id = tracker.open_parent(uid=definition["uid"], name=f"tune-{name}", tags={
        "study": name, "storage": studies.safe_url(url), "recipe": request.recipe or f"(components, base {DEFAULT_BASE})",
        "dataset": corpus.info.name, "objective": f"dev {request.metric}", "pruner": request.pruner})
    max_failures = request.max_failures or request.trials
    objective = Objective(registry=registry, corpus=corpus, space=space, base=base, metric=request.metric,
                          max_failures=max_failures, tracker=tracker, parent_id=parent_id, device=device, label=name,
                          recipe_params=recipe_params, console=console, trials=request.trials)
    if request.worker_index == 0:
        _announce(console, request, study, name=name, url=url, space=space, definition=definition,
                  tracker=tracker, study_dir=study_dir)
    budget = TrialBudget(storage.engine, definition["uid"], trials=request.trials, stale_after=request.grace_period)
    failed = _run_workers(request, study, objective, storage=storage, budget=budget, max_failures=max_failures,
                          name=name, url=url, tracker=tracker, parent_id=parent_id, study_dir=study_dir,
                          console=console)
    first_failure = _every_trial_failed(study)
    if request.worker_index == 0:
        _finish(study, request, tracker=tracker, parent_id=parent_id, study_dir=study_dir, console=console,
                registry=registry, corpus=corpus, dataset=dataset, hook=hook,
                status="FAILED" if first_failure else "FINISHED")
    if first_failure is not None:
        error = clip(first_failure.user_attrs.get("error", ""), 500)
        raise UserError(f"every trial of study {name!r} failed, none finished; the first, trial "
                        f"{first_failure.number}: {error} Fix the cause, then start a new study (--study NAME) or "
                        f"rerun with a higher --max-failures; every trial's error is in "
                        f"{str(study_dir / 'trials.csv')!r}.")
    return StudyOutcome(name=name, url=url, study_dir=study_dir, code=1 if failed else 0)


def _check_request(request: TuneRequest) -> None:
    """What can be refused before the dataset loads."""
    if request.metric not in METRICS:
        raise UserError(f"--metric {request.metric!r} is not known; use {', '.join(METRICS)}.")
    studies.make_pruner(request.pruner, 1)  # raises for an unknown pruner
    if request.grace_period <= request.heartbeat_interval:
        raise UserError(f"--grace-period ({request.grace_period} s) must be longer than --heartbeat-interval "
                        f"({request.heartbeat_interval} s), or live trials would be failed as dead.")


def _announce(console: Any, request: TuneRequest, study: optuna.Study, *, name: str, url: str, space: SearchSpace,
              definition: dict[str, Any], tracker: Any, study_dir: Path) -> None:
    """The study's four header lines: where it is, what it searches, what trial 0 is, where it is tracked."""
    finished, running = studies.progress(study)
    searched = ", ".join(f"{slot} ∈ {{{', '.join(names)}}}" for slot, names in space.slots.items())
    outside = definition.get("recipe_outside_space") or []
    recipe = f"{request.recipe or DEFAULT_BASE}'s own settings"
    more = f"; and {len(outside) - 5} more" if len(outside) > 5 else ""
    where = f"outside the space: {'; '.join(outside[:5])}{more}" if outside else "inside the space"
    for line in (f"study      {name} · {studies.safe_url(url)} · {finished} finished, {running} running of "
                 f"{request.trials}",
                 f"space      {searched}; {len(space.params)} trainer/override parameters; objective dev "
                 f"{request.metric} (test is never read); pruner {request.pruner}",
                 f"trial 0    {recipe}, {where}",
                 f"tracking   {tracker.location} · folder {study_dir}"):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _run_workers(request: TuneRequest, study: optuna.Study, objective: Objective, *, storage: Any,
                 budget: TrialBudget, max_failures: int, name: str, url: str, tracker: Any, parent_id: str | None,
                 study_dir: Path, console: Any) -> bool:
    """This process's worker loop and the ``--workers`` it spawns; True when a spawned worker failed."""
    workers = []
    if request.workers > 1:
        for threads in share_cores(request.workers).values():
            torch.set_num_threads(int(threads))
        argv = request.worker_argv(study=name, storage=url, out=study_dir,
                                   tracking_uri=None if request.no_track else tracker.location)
        workers = spawn_workers(argv, request.workers - 1, study_dir=study_dir, device=request.device)
    status = "FAILED"
    try:
        _work(request, study, objective, storage=storage, budget=budget, max_failures=max_failures, console=console)
        failed = wait_for_workers(workers, console)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        stop_workers(workers)
        if request.worker_index == 0 and status != "FINISHED":
            tracker.close_parent(parent_id, status)
    return bool(failed)


def _work(request: TuneRequest, study: optuna.Study, objective: Objective, *, storage: Any, budget: TrialBudget,
          max_failures: int, console: Any) -> None:
    """This process's trials, with progress bars (trials k/N, best so far; the trial's epochs) on a terminal."""
    from merc_bench.terminal import progress_bars
    from merc_bench.tuning.progress import StudyProgress

    with progress_bars(console) as bars:
        callbacks = [objective.announce, objective.say_when_stopping]
        if bars is not None:
            objective.display = StudyProgress(bars, trials=request.trials, metric=request.metric,
                                              finished=studies.progress(study)[0])
            callbacks.append(objective.display.trial_finished)
        try:
            studies.run_worker(study, objective, storage=storage, budget=budget, timeout=request.timeout,
                               poll_seconds=min(request.heartbeat_interval, 5), max_failures=max_failures,
                               callbacks=callbacks)
        finally:
            objective.display = None


def _every_trial_failed(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The first failed trial when trials failed and none finished; else None."""
    if studies.progress(study)[0]:
        return None
    failed = studies.failures(study)
    return min(failed, key=lambda t: t.number) if failed else None


def _finish(study: optuna.Study, request: TuneRequest, *, tracker: Any, parent_id: str | None, study_dir: Path,
            console: Any, registry: Registry, corpus: Corpus, dataset: dict[str, Any], hook: Any,
            status: str = "FINISHED") -> None:
    """Tag the best trial, save plots and the trial table, report, and run ``--final-seeds``."""
    best = report.best_trial(study)
    paths = [report.write_trials_csv(study, study_dir), *report.save_plots(study, study_dir, console=console)]
    if best is not None:
        previous = study.user_attrs.get("merc_bench_best_run_id")
        run_id = best.user_attrs.get("mlflow_run_id")
        tracker.tag_best(parent_id, run_id, previous, {"best_trial": best.number, "best_value": f"{best.value:.6f}"})
        tracker.log_parent_metrics(parent_id, {f"best_dev_{request.metric}": best.value,
                                               "finished_trials": studies.progress(study)[0]})
        study.set_user_attr("merc_bench_best_run_id", run_id)
    tracker.log_parent_artifacts(parent_id, paths)
    report.print_report(study, console, metric=request.metric, top=5)
    console.print(f"written    {', '.join(str(p) for p in paths)}", markup=False, highlight=False, soft_wrap=True)
    if request.final_seeds and best is not None:
        label = request.recipe or "components"
        paths = run_final(registry, study, label=label, corpus=corpus, dataset=dataset, seeds=request.final_seeds,
                          device=request.device, out_dir=study_dir / "final", tracker=tracker, parent_id=parent_id,
                          console=console, hook=hook)
        tracker.log_parent_artifacts(parent_id, paths)
        console.print(f"written    {', '.join(str(p) for p in paths)}", markup=False, highlight=False, soft_wrap=True)
    tracker.close_parent(parent_id, status)


def report_study(name: str, *, storage: str | None, out: Path | None, console: Any, top: int = 10) -> None:
    """``--report``: print a stored study's top trials and importances; nothing is trained."""
    study_dir = out or Path("tunes") / name
    if storage is None and not (study_dir / "study.db").is_file():
        raise UserError(f"no study database at {str(study_dir / 'study.db')!r}; pass --storage URL (or --out "
                        "the study's folder) to report a study stored elsewhere.")
    url = storage or studies.default_storage_url(study_dir)
    stored = studies.open_storage(url, heartbeat_interval=None, grace_period=None, on_stale=None)
    try:
        study = optuna.load_study(study_name=name, storage=stored)
    except KeyError:
        known = optuna.get_all_study_names(storage=stored)
        raise UserError(f"no study {name!r} in {studies.safe_url(url)}; it holds: "
                        f"{', '.join(known) if known else '(no studies)'}.") from None
    metric = (study.user_attrs.get("merc_bench") or {}).get("request", {}).get("metric", "weighted_f1")
    report.print_report(study, console, metric=metric, top=top)
