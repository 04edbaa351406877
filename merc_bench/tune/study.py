"""The Optuna side of a study: storage with heartbeats, sampler, pruner, and the worker loop.

Storage: an :class:`optuna.storages.RDBStorage` on any SQLAlchemy URL — by default a sqlite file in
the study's folder (fine for a few local workers: sqlite serialises writers, and the connection
waits up to 60 s for a lock), or PostgreSQL for many workers on many machines. A running trial
writes a heartbeat every ``heartbeat_interval`` seconds; a trial silent for ``grace_period``
seconds (its worker was killed) is marked FAIL and re-queued with the same parameters by
:class:`optuna.storages.RetryHeartbeatStaleTrialCallback` (the retry's ``system_attrs`` name the
original in ``failed_trial``). Completed trials are rows in the database: no kill loses one.

Trial budget: ``--trials N`` counts COMPLETE and PRUNED trials of the whole study, so rerunning the
same command after a kill finishes the N. Workers run in parallel, so a worker also counts trials
that others are running (``MaxTrialsCallback`` over COMPLETE, PRUNED and RUNNING) before starting
one, and the objective refuses a trial that lost that race (:class:`~.objective.BudgetReached`).
A worker whose budget is taken by running trials waits for them: they finish, or their worker
turns out dead and the retry is run here. So every worker returns once the study has its N trials.

Sampler: TPE, multivariate with conditional groups (component parameters exist only when the
component is chosen), seeded, with ``constant_liar`` so parallel workers do not all sample next to
the same running trial. It is seeded with ``--seed`` + 1000 × worker index + the number of trials
already in the study, so a parallel or resumed worker does not repeat the random start-up trials
drawn before (with one seed, a rerun after a kill would sample the killed trial's parameters again).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from merc_bench.errors import UserError
from merc_bench.tune.objective import FINISHED, Objective

__all__ = ["default_storage_url", "open_storage", "open_study", "make_sampler", "make_pruner", "progress",
           "run_worker", "StaleTrials", "PRUNERS", "safe_url"]

PRUNERS = ("median", "hyperband", "none")


def default_storage_url(study_dir: Path) -> str:
    return f"sqlite:///{(study_dir / 'study.db').resolve()}"


def safe_url(url: str) -> str:
    """The storage URL without its password, for logs and MLflow tags."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy understands: open_storage reports it
        return url.split("@")[-1]


class StaleTrials:
    """Called for each trial whose worker stopped sending heartbeats: close its MLflow run, retry it."""

    def __init__(self, max_retry: int = 3) -> None:
        self.tracker: Any = None  # set once MLflow is open; stale trials found before that keep a RUNNING run
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if self.tracker is not None and run_id:
            self.tracker.close_killed(run_id)
        self.retry(study, trial)


def open_storage(url: str, *, heartbeat_interval: int | None, grace_period: int | None,
                 on_stale: StaleTrials | None) -> optuna.storages.RDBStorage:
    # Waiting for a lock beats failing: several local workers share one sqlite file.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                heartbeat_stale_trial_callback=on_stale,
            )
    except ImportError as error:
        raise UserError(f"--storage {safe_url(url)}: the database driver is missing ({error}). For PostgreSQL "
                        "install the postgres extra: pip install 'merc-bench[postgres]'.") from None
    except Exception as error:  # SQLAlchemy's ArgumentError / OperationalError: a wrong or unreachable URL
        raise UserError(f"--storage {safe_url(url)} cannot be opened: {type(error).__name__}: "
                        f"{str(error).splitlines()[0]}") from None


def make_sampler(seed: int) -> optuna.samplers.TPESampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed)


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """median: stop a trial whose validation score is below the median of earlier trials at the same
    epoch, once 5 trials have finished and never in the first quarter of the epochs; hyperband:
    successive halving over epochs 1..epochs; none: never prune."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 4))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 2))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"--pruner {name!r} is not known; use {', '.join(PRUNERS)}.")


def open_study(storage: optuna.storages.RDBStorage, name: str, *, pruner: str, epochs: int) -> optuna.Study:
    """Create the study, or load it when it exists (the first worker to arrive creates it)."""
    return optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                               pruner=make_pruner(pruner, epochs))


def progress(study: optuna.Study) -> tuple[int, int]:
    """(finished trials — COMPLETE or PRUNED —, running trials)."""
    trials = study.get_trials(deepcopy=False)
    return (sum(1 for t in trials if t.state in FINISHED), sum(1 for t in trials if t.state == TrialState.RUNNING))


def fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_worker(study: optuna.Study, objective: Objective, *, trials: int, timeout: float | None,
               poll_seconds: float) -> None:
    """Run trials until the study has ``trials`` finished ones, ``timeout`` passes, or too many fail."""
    started = time.monotonic()
    budget = MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    while True:
        fail_stale_trials(study)
        finished, running = progress(study)
        if finished >= trials or _failures(study) >= objective.max_failures:
            return
        left = None if timeout is None else timeout - (time.monotonic() - started)
        if left is not None and left <= 0:
            return
        if finished + running < trials:
            study.optimize(objective, timeout=left, catch=(Exception,), gc_after_trial=False,
                           callbacks=[objective.announce, budget, objective.stop_after_failures])
        else:  # the rest of the budget is running elsewhere: wait until it finishes or goes stale
            time.sleep(poll_seconds if left is None else min(poll_seconds, left))


def _failures(study: optuna.Study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.user_attrs.get("error"))
