"""One trial: sample a configuration, validate it like a run, train it, return its validation score.

The objective is the best validation value of ``metric`` (weighted F1 unless ``--metric``), the
same number the trainer selects its epoch with: the study never reads test (``Trainer.fit`` runs
with ``evaluate_test=False``; IKD's teacher, trained and cached by the ordinary trainer path,
computes its own test metrics for later runs, which the study does not use). Every epoch reports
the validation value to Optuna, and the pruner may stop the trial there.

Trial 0 (the enqueued trial whose ``origin`` is :data:`RECIPE_ORIGIN`, and its retries) trains the
base recipe's configuration itself, whatever the space holds; it records as Optuna parameters only
the recipe's values that the space can hold (:class:`~.space.RecipeTrial`).

A trial whose configuration is invalid, or whose training raises (out of memory, a NaN loss, a
component bug), is recorded as FAIL with the error in its ``error`` user attribute and its MLflow
run; the study goes on. Failed trials do not count towards ``--trials`` (a killed worker's trial is
retried), but ``--max-failures`` of them stop the study, so a broken space cannot loop for ever.
"""

from __future__ import annotations

import copy
import os
import socket
import time
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from merc_bench.config import RunConfig
from merc_bench.data import Corpus
from merc_bench.events import EpochEnded
from merc_bench.pipeline import resolve, train_seed
from merc_bench.registry import Registry
from merc_bench.trainer import Trainer
from merc_bench.tracking import environment_tags, run_parameters
from merc_bench.tuning.budget import FINISHED
from merc_bench.tuning.space import SLOTS, RecipeTrial, SearchSpace, sample_config

__all__ = ["Objective", "FINISHED", "RECIPE_ORIGIN"]

#: The ``origin`` user attribute of trial 0, the base recipe's own settings.
RECIPE_ORIGIN = "recipe settings"


class Objective:
    """One trial, tracked as a nested MLflow run; called by the worker loop (:func:`.study.run_worker`)."""

    def __init__(self, *, registry: Registry, corpus: Corpus, space: SearchSpace, base: dict[str, Any],
                 metric: str, max_failures: int, tracker: Any, parent_id: str | None,
                 device: torch.device, label: str, recipe_params: dict[str, Any] | None = None,
                 console: Any = None, trials: int | None = None) -> None:
        self.registry = registry
        self.corpus = corpus
        self.space = space
        self.base = base
        self.metric = metric
        self.recipe_params = recipe_params or {}
        self.max_failures = max_failures
        self.tracker = tracker
        self.parent_id = parent_id
        self.device = device
        self.label = label
        self.console = console
        self.trials = trials  # the study's budget, for "k/N finished" in each trial's line
        self.display: Any = None  # a tuning.progress.StudyProgress while bars are shown (a terminal)
        self.tags = environment_tags(device)

    def __call__(self, trial: optuna.Trial) -> float:
        started = time.perf_counter()
        # A retried trial inherits the killed one's attributes: replace what describes this attempt.
        trial.set_user_attr("mlflow_run_id", None)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            config, problem = self._configure(trial), None
        except Exception as error:  # recorded in the trial's run below, like a training failure
            config, problem = None, error
        params = {name: str(value) for name, value in trial.params.items()}
        if config is not None:
            params |= run_parameters(config.model_dump(mode="json"))  # the same names as trial.params
        outcome: optuna.TrialPruned | None = None
        with self.tracker.inside(self.parent_id), \
                self.tracker.run(f"trial-{trial.number}", params=params, nested=True,
                                 tags=self.tags | {"trial_number": str(trial.number), "study": self.label}) as child:
            run_id = getattr(child, "run_id", None)
            trial.set_user_attr("mlflow_run_id", run_id)
            try:
                if problem is not None:
                    raise problem
                with self.tracker.system_metrics(run_id, self.device):
                    value = self._train(trial, config, child)
                state = "COMPLETE"
            except optuna.TrialPruned as pruned:  # a state, not a failure: the run itself finished
                state, outcome = "PRUNED", pruned
            except Exception as error:
                message = f"{type(error).__name__}: {error}"
                trial.set_user_attr("error", message[:2000])
                child.set_tags({"state": "FAIL", "error": message[:5000],
                                "duration_s": f"{time.perf_counter() - started:.2f}"} | self._gpu_tags())
                raise
            child.set_tags({"state": state, "duration_s": f"{time.perf_counter() - started:.2f}"}
                           | self._gpu_tags())
        if outcome is not None:
            raise outcome
        return value

    # -- steps ------------------------------------------------------------------------------------
    def _configure(self, trial: optuna.Trial) -> RunConfig:
        """The trial's configuration, validated exactly like ``merc-bench run`` validates a recipe."""
        if trial.user_attrs.get("origin") == RECIPE_ORIGIN:
            sample_config(RecipeTrial(trial, self.recipe_params), self.space, self.base, self.registry)
            values = copy.deepcopy(self.base)  # the recipe itself, whatever the sampled values were
        else:
            values = sample_config(trial, self.space, self.base, self.registry)
        values["recipe"] = f"{self.label}#{trial.number}"
        # Validated exactly like a run's configuration; a sampled size too large for this machine fails
        # the trial with the figure, before anything is allocated.
        config = resolve(self.registry, values, self.corpus, dataset=values["dataset"], label=f"trial {trial.number}")
        trial.set_user_attr("config", config.model_dump(mode="json"))
        return config

    def _train(self, trial: optuna.Trial, config: RunConfig, child: Any) -> float:
        key = f"dev_{self.metric}"

        def on_epoch(event: EpochEnded) -> None:  # the study's pruner and tracking, as the trainer's subscriber
            if event.role != "model":
                return
            epoch, metrics = event.epoch, event.metrics
            if self.display is not None:
                self.display.epoch_ended(trial.number, event)
            child.log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step=epoch)
            child.flush()  # one write per epoch: a killed trial keeps its curve
            trial.report(metrics[key], epoch)
            if trial.should_prune():
                trial.set_user_attr("pruned_at_epoch", epoch)
                raise optuna.TrialPruned(f"pruned at epoch {epoch} (dev {self.metric} {metrics[key]:.4f})")

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        trainer = Trainer(config=config, corpus=self.corpus, registry=self.registry, device=self.device,
                          on_epoch=on_epoch)
        result = train_seed(trainer, config.training.seed, evaluate_test=False)
        trial.set_user_attr("selected_epoch", result.selected_epoch)
        child.log_metrics({f"best_dev_{self.metric}": result.dev[self.metric],
                           "selected_epoch": float(result.selected_epoch)})
        return float(result.dev[self.metric])

    def _gpu_tags(self) -> dict[str, str]:
        if self.device.type != "cuda":
            return {}
        return {"gpu_name": torch.cuda.get_device_name(self.device),
                "peak_gpu_memory_mb": f"{torch.cuda.max_memory_allocated(self.device) / 2**20:.0f}"}

    # -- callbacks after each trial -----------------------------------------------------------------
    def announce(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """One console line per finished trial."""
        if self.console is None:
            return
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        config = trial.user_attrs.get("config") or {}
        chosen = "/".join(str((config.get(slot) or {}).get("name", trial.params.get(slot, "?"))) for slot in SLOTS)
        if trial.state == TrialState.COMPLETE:
            what = f"dev {self.metric} {trial.value:.4f} (epoch {trial.user_attrs.get('selected_epoch', '?')})"
        elif trial.state == TrialState.PRUNED:
            what = f"pruned at epoch {trial.user_attrs.get('pruned_at_epoch', '?')}"
        else:
            what = f"failed: {trial.user_attrs.get('error') or trial.user_attrs.get('skipped', 'see the log')}"
        self.console.print(f"trial {trial.number:3d} {trial.state.name:8} {what} · {chosen} · {seconds:.1f} s · "
                           f"{self._standing(study)}", markup=False, highlight=False, soft_wrap=True)

    def _standing(self, study: optuna.Study) -> str:
        """``4/20 finished, best 0.4567 (trial 2)``: the study's progress over every worker."""
        trials = study.get_trials(deepcopy=False)
        finished = sum(1 for t in trials if t.state in FINISHED)
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        best = max(completed, key=lambda t: (t.value, -t.number)) if completed else None
        return (f"{finished}/{self.trials or '?'} finished, "
                + (f"best {best.value:.4f} (trial {best.number})" if best else "none complete yet"))

    def say_when_stopping(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Say that this failure reached ``--max-failures`` (the worker loop then starts no trial)."""
        if trial.state != TrialState.FAIL or not trial.user_attrs.get("error"):
            return
        failures = sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                       if t.user_attrs.get("error"))
        if failures >= self.max_failures and self.console is not None:
            self.console.print(f"stopping: {failures} trials failed (--max-failures {self.max_failures})")
