"""The Optuna side of a study: storage with heartbeats, sampler, pruner, and the worker loop.

Storage: an :class:`optuna.storages.RDBStorage` on any SQLAlchemy URL — by default a sqlite file in
the study's folder (fine for a few local workers: sqlite serialises writers, and the connection
waits up to 60 s for a lock), or PostgreSQL for many workers on many machines. A running trial
writes a heartbeat every ``heartbeat_interval`` seconds; a trial silent for ``grace_period``
seconds (its worker was killed) is marked FAIL and re-queued with the same parameters by
:class:`optuna.storages.RetryHeartbeatStaleTrialCallback` (the retry's ``system_attrs`` name the
original in ``failed_trial``). Completed trials are rows in the database: no kill loses one.

Trial budget (:mod:`.budget`): ``--trials N`` counts COMPLETE and PRUNED trials of the whole study,
so rerunning the same command after a kill finishes the N. Counting and then starting a trial is a
race between workers, so a worker first takes one of the study's N budget slots — atomically, in
the study's own database — and only then creates its trial; a slot whose trial fails (an error, or
a dead worker's trial failed by the heartbeat check) is free again. A worker whose free slots are
all taken by running trials waits for them: they finish, or their worker turns out dead and the
retry is run here. So every worker returns once the study has exactly its N finished trials.

The study's objective is named after the validation metric as runs log it (``dev_weighted_f1``,
:func:`objective_name`), so Optuna Dashboard and ``study.metric_names`` show it instead of
"Objective 0".

Sampler: TPE, multivariate with conditional groups (component parameters exist only when the
component is chosen), seeded, with ``constant_liar`` so parallel workers do not all sample next to
the same running trial. It is seeded with ``--seed`` + 1000 × worker index + the number of trials
already in the study, so a parallel or resumed worker does not repeat the random start-up trials
drawn before (with one seed, a rerun after a kill would sample the killed trial's parameters again).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread  # the one study.optimize uses; no public name
from optuna.trial import TrialState

from merc_bench.errors import UserError
from merc_bench.tuning.budget import FINISHED, Bind, Claim, TrialBudget

__all__ = ["default_storage_url", "engine_kwargs", "open_storage", "open_study", "objective_name", "make_sampler",
           "make_pruner",
           "progress", "failures", "run_worker", "StaleTrials", "PRUNERS", "safe_url"]

PRUNERS = ("median", "hyperband", "none")
_logger = logging.getLogger(__name__)


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


def engine_kwargs(url: str) -> dict[str, Any]:
    # Waiting for a lock beats failing: several local workers share one sqlite file.
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}


def open_storage(url: str, *, heartbeat_interval: int | None, grace_period: int | None,
                 on_stale: StaleTrials | None) -> optuna.storages.RDBStorage:
    engine = engine_kwargs(url)
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


def objective_name(metric: str) -> str:
    """The study's metric name: the validation metric's name as every run logs it (``dev_weighted_f1``)."""
    return f"dev_{metric}"


def open_study(storage: optuna.storages.RDBStorage, name: str, *, pruner: str, epochs: int,
               metric: str) -> optuna.Study:
    """Create the study, or load it when it exists (the first worker to arrive creates it), with its
    objective named after the metric (Optuna Dashboard shows that name instead of "Objective 0")."""
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                pruner=make_pruner(pruner, epochs))
    if study.metric_names != [objective_name(metric)]:  # a study from before metric names, or a new one
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([objective_name(metric)])
    return study


def progress(study: optuna.Study) -> tuple[int, int]:
    """(finished trials — COMPLETE or PRUNED —, running trials)."""
    trials = study.get_trials(deepcopy=False)
    return (sum(1 for t in trials if t.state in FINISHED), sum(1 for t in trials if t.state == TrialState.RUNNING))


def fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_worker(study: optuna.Study, objective: Callable[[optuna.Trial], float], *,
               storage: optuna.storages.RDBStorage, budget: TrialBudget, timeout: float | None, poll_seconds: float,
               max_failures: int,
               callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = ()) -> None:
    """Run trials until the study's ``budget.trials`` slots hold finished trials, ``timeout`` passes,
    or ``max_failures`` trials have failed; ``callbacks`` see each trial this worker finished."""
    started = time.monotonic()
    while True:
        fail_stale_trials(study)
        if budget.standing(study).finished >= budget.trials or len(failures(study)) >= max_failures:
            return
        left = None if timeout is None else timeout - (time.monotonic() - started)
        if left is not None and left <= 0:
            return
        claim = budget.claim(study)
        if claim is None:  # the free slots are running elsewhere: wait until they finish or go stale
            time.sleep(poll_seconds if left is None else min(poll_seconds, left))
            continue
        frozen = _run_trial(study, objective, storage, budget, claim)
        for callback in callbacks:
            callback(study, frozen)


def _run_trial(study: optuna.Study, objective: Callable[[optuna.Trial], float],
               storage: optuna.storages.RDBStorage, budget: TrialBudget, claim: Claim) -> optuna.trial.FrozenTrial:
    """Ask for a trial, bind it to the claimed slot, run it with heartbeats, tell its state.

    Ask and tell rather than ``study.optimize``, because the trial must hold its slot before it runs
    and a trial popped by two workers (sqlite) must be left to the other one, untouched.
    """
    heartbeats = storage.get_heartbeat_interval() is not None
    trial = _ask(study)
    while True:
        if heartbeats:  # before the trial can hold a slot: a trial without any heartbeat is never found stale
            storage.record_heartbeat(trial._trial_id)
        bound = budget.bind(claim, trial.number)
        if bound is Bind.BOUND:
            break
        if bound is Bind.TRIAL_TAKEN:  # another worker popped this waiting trial too and runs it: ask again
            trial = _ask(study)
            continue
        # Bind.CLAIM_LOST (this worker was slower than --grace-period): the trial may take another free slot.
        claim = budget.claim(study)
        if claim is None:
            trial.set_user_attr("skipped", "its budget slot was taken as stale before it started")
            return study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    value, state = None, TrialState.COMPLETE
    # Optuna's own heartbeat thread (what study.optimize starts): the trial is failed as stale if it stops.
    with get_heartbeat_thread(trial._trial_id, storage):
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except KeyboardInterrupt:
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        except Exception as error:  # recorded by the objective; the study goes on
            state = TrialState.FAIL
            if not isinstance(error, UserError):  # a bug in a component or in merc-bench: show where
                _logger.warning(f"trial {trial.number} failed", exc_info=True)
    if state is TrialState.COMPLETE and (value is None or not math.isfinite(value)):
        state, value = TrialState.FAIL, None
    return study.tell(trial, value if state is TrialState.COMPLETE else None,
                      state=None if state is TrialState.COMPLETE else state, skip_if_finished=True)


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():  # "heartbeat is supposed to be used with Study.optimize": see _run_trial
        warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
        return study.ask()


def failures(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that failed with an error (not the ones failed as stale, which are retried)."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.user_attrs.get("error")]
