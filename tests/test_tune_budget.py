"""Exact trial budgets under contention: ``--trials N`` ends with exactly N finished trials.

A CI run once found 7 trials for ``--trials 6``: two workers counted the study's trials at the same
moment and both started one. Here 4 worker processes run the real worker loop and budget
(:func:`merc_bench.tuning.study.run_worker`, :class:`merc_bench.tuning.budget.TrialBudget`) on one
study while another process spins on a core, so the workers are descheduled at random points. The
objective is trivial (a few milliseconds of sleep, no training), so a repetition takes about a
second; it is repeated 10 times on sqlite and, when ``MERC_BENCH_TEST_POSTGRES_URL`` is set
(always in CI, see ``.ci/run``), 10 times on PostgreSQL.

Each repetition also exercises what frees a slot: one trial in five raises (a failure frees its slot
for a new trial), trial 0 is enqueued first (as ``tune`` enqueues the recipe's settings), and in
every third repetition one worker dies in the middle of a trial (``os._exit``, like ``kill -9``):
its trial is failed by the heartbeat check after the grace period, retried with the same
parameters, and the study still ends with exactly N.

The workers are forked from a ``forkserver`` started once with Optuna and the tune package
imported, so a worker costs a fork instead of four seconds of imports.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import subprocess
import sys
import time
import uuid

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from merc_bench.errors import UserError
from merc_bench.tuning.budget import Bind, Standing, TrialBudget
from merc_bench.tuning.study import StaleTrials, engine_kwargs, run_worker

TRIALS = 12
WORKERS = 4
REPETITIONS = 10
GRACE = 2  # seconds without heartbeat before a trial is failed as dead (heartbeat every second)
VARIABLE = "MERC_BENCH_TEST_POSTGRES_URL"


class _Trivial:
    """Sleeps a few milliseconds; one trial in five raises; ``die_at``: the first worker to run a trial
    numbered at least that exits in it (its heartbeat stops, like a killed worker's). Which worker
    that is depends on scheduling, so the workers race for ``marker`` (created once) to decide."""

    def __init__(self, seed: str, die_at: int | None, marker: str) -> None:
        self.random = random.Random(seed)
        self.die_at = die_at
        self.marker = marker

    def __call__(self, trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        time.sleep(self.random.uniform(0.002, 0.03))
        if self.die_at is not None and trial.number >= self.die_at and self._first_to_die():
            os._exit(9)
        if self.random.random() < 0.2:
            trial.set_user_attr("error", "planned failure")
            raise UserError("planned failure")  # a UserError: the worker logs no traceback for it
        return x

    def _first_to_die(self) -> bool:
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return False
        return True


def _serve(url: str, index: int, jobs: multiprocessing.Queue, done: multiprocessing.Queue) -> None:
    """A worker process: for each job (a study), the real worker loop and budget on a trivial objective.

    It serves every repetition, so the storage is opened once: its first queries cost a second or
    two per process on a loaded machine (SQLAlchemy compiles each statement once per engine).
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # open_storage's storage, less the schema check the test made (it re-executes Optuna's ten alembic
    # revision files, about a second per process on a loaded machine).
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url), heartbeat_interval=1,
                                         grace_period=GRACE, heartbeat_stale_trial_callback=StaleTrials(),
                                         skip_compatibility_check=True, skip_table_creation=True)
    while (job := jobs.get()) is not None:
        name, key, die_at, marker = job
        started = time.monotonic()
        try:
            study = optuna.load_study(study_name=name, storage=storage,
                                      sampler=optuna.samplers.RandomSampler(seed=index))
            budget = TrialBudget(storage.engine, key, trials=TRIALS, stale_after=GRACE)
            # No timeout: the loop must end by the budget alone, however slow a loaded machine makes it.
            run_worker(study, _Trivial(f"{key}-{index}", die_at, marker), storage=storage, budget=budget, timeout=None,
                       poll_seconds=0.05, max_failures=10**6)
            how = f"returned after {time.monotonic() - started:.1f} s with {budget.standing(study)}"
        except Exception:  # noqa: BLE001 - reported to the test: a forkserver child's stderr is not captured
            import traceback

            how = f"raised after {time.monotonic() - started:.1f} s: {traceback.format_exc()}"
        done.put((index, how))


class _Pool:
    """``WORKERS`` long-lived worker processes on one storage; a dead one is replaced before the next job."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.storage = optuna.storages.RDBStorage(url)  # the test's own; creates Optuna's tables once
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(["merc_bench.tuning.study", __name__])
        self.done = self.context.Queue()
        self.workers: list[tuple[multiprocessing.Process, multiprocessing.Queue] | None] = [None] * WORKERS

    def run(self, name: str, key: str, die_at: int | None, marker: str,
            timeout: float = 400) -> tuple[list[int | None], list[str]]:
        """Give every worker the study; each worker's exit code once all returned (None: still alive),
        and how each returned worker's loop ended."""
        for index, worker in enumerate(self.workers):
            if worker is None or not worker[0].is_alive():
                jobs = self.context.Queue()
                process = self.context.Process(target=_serve, args=(self.url, index, jobs, self.done), daemon=True)
                process.start()
                self.workers[index] = (process, jobs)
        for _, jobs in self.workers:
            jobs.put((name, key, die_at, marker))
        waiting, deadline, reports = set(range(WORKERS)), time.monotonic() + timeout, []
        while waiting and time.monotonic() < deadline:
            try:
                index, how = self.done.get(timeout=0.1)
                waiting.discard(index)
                reports.append(f"worker {index} {how}")
            except queue.Empty:
                waiting -= {i for i in waiting if not self.workers[i][0].is_alive()}
        assert not waiting, f"workers {sorted(waiting)} did not return within {timeout} s: {reports}"
        return [process.exitcode for process, _ in self.workers], reports

    def close(self) -> None:
        for process, jobs in filter(None, self.workers):
            if process.is_alive():
                jobs.put(None)
        for process, _ in filter(None, self.workers):
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


@pytest.fixture(scope="module")
def cpu_burner():
    """Another process competing for the cores for the whole module."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield process
    process.kill()
    process.wait()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def pool(request, tmp_path_factory, cpu_burner):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('budget') / 'studies.db'}"
    else:
        url = os.environ.get(VARIABLE)
        if not url:
            message = f"{VARIABLE} is not set (.ci/run starts a PostgreSQL server and sets it)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    workers = _Pool(url)
    yield workers
    workers.close()
    workers.storage.engine.dispose()


@pytest.mark.parametrize("repetition", range(REPETITIONS))
def test_four_workers_end_with_exactly_n_finished_trials(pool, repetition, tmp_path):
    storage = pool.storage
    name, key = f"budget-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.enqueue_trial({"x": 0.5}, user_attrs={"origin": "recipe settings"})
    die_at = 3 if repetition % 3 == 0 else None  # one worker dies in the first trial numbered 3 or more
    started = time.monotonic()
    codes, reports = pool.run(name, key, die_at, str(tmp_path / "died"))
    seconds = time.monotonic() - started
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) == TRIALS, (f"{len(finished)} finished trials for a budget of {TRIALS} after "
                                         f"{seconds:.1f} s: {[(t.number, t.state.name) for t in trials]}; {reports}")
        assert not [r for r in reports if " raised after " in r], reports
        # No trial was created beyond the budget: each one finished, failed by plan, or was killed and retried.
        planned = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get("error")]
        # A worker slower than the grace period between claiming a slot and binding its new trial loses
        # the claim; with no other slot free, that trial is failed as "skipped" before it runs (the
        # designed recovery, seen in CI on 2 cores): it must not have run, and it is not a killed trial.
        skipped = [t for t in trials if t.user_attrs.get("skipped")]
        assert all(t.state == TrialState.FAIL and not t.params and t.value is None for t in skipped), skipped
        killed = [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get("error")
                  and not t.user_attrs.get("skipped")]
        # Optuna's retry names the *original* trial in failed_trial and every earlier attempt in
        # retry_history: a retry that itself went stale (its worker slower than the grace period under
        # load) and was retried again appears only in the later retry's history (seen in CI: 3 → 14 → 17).
        retried = {number for t in trials for number in t.system_attrs.get("retry_history", [])}
        assert all(t.number in retried for t in killed), (
            "a trial failed without an error and was not retried: "
            f"{[(t.number, t.state.name, t.user_attrs, t.system_attrs) for t in trials]}; {reports}")
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        assert len(trials) == TRIALS + len(planned) + len(killed) + len(skipped) + len(waiting)
        # A loaded machine can also starve a live worker's heartbeat past the grace period: its trial is
        # then failed and retried like a dead one's, which must not change the count either.
        for trial in killed:
            retry = [t for t in trials if trial.number in t.system_attrs.get("retry_history", [])]
            assert retry and all(t.params == trial.params for t in retry)
        if die_at is not None:
            assert sorted(codes, key=str) == [9] + [None] * (WORKERS - 1) and killed, (codes, reports)
        else:
            assert codes == [None] * WORKERS, (codes, reports)  # alive, waiting for the next study
        assert trials[0].user_attrs.get("origin") == "recipe settings" and trials[0].params == {"x": 0.5}
        assert not [t for t in trials if t.state == TrialState.RUNNING]
        budget = TrialBudget(storage.engine, key, trials=TRIALS, stale_after=GRACE)
        assert budget.standing(study).finished == TRIALS
    finally:
        optuna.delete_study(study_name=name, storage=storage)
        with storage.engine.begin() as connection:
            connection.execute(sqlalchemy.text("DELETE FROM merc_bench_trial_slots WHERE study = :key"), {"key": key})


def test_a_slot_is_taken_once_and_comes_back_when_its_trial_fails_or_its_claim_goes_stale(tmp_path):
    """The budget's rules one step at a time, two workers in one process."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, direction="maximize")
    one, two = (TrialBudget(storage.engine, "study-key", trials=2, stale_after=0.5) for _ in range(2))
    first, second = one.claim(study), two.claim(study)
    assert (first.slot, second.slot) == (0, 1) and one.claim(study) is None and two.claim(study) is None

    trial = study.ask()
    assert one.bind(first, trial.number) is Bind.BOUND
    assert two.bind(second, trial.number) is Bind.TRIAL_TAKEN  # a trial popped twice (sqlite) holds one slot
    assert one.bind(first, trial.number) is Bind.CLAIM_LOST  # a claim binds once
    study.tell(trial, state=TrialState.FAIL)
    assert one.standing(study).finished == 0
    again = two.claim(study)  # the failed trial's slot is free again
    assert again.slot == 0 and one.claim(study) is None
    retried = study.ask()
    assert two.bind(again, retried.number) is Bind.BOUND

    time.sleep(0.6)  # the claim of slot 1 never started a trial: stale, taken by the other worker
    taken = one.claim(study)
    assert taken.slot == 1 and two.bind(second, study.ask().number) is Bind.CLAIM_LOST
    late = study.ask()
    assert one.bind(taken, late.number) is Bind.BOUND
    assert one.standing(study) == Standing(finished=0, busy=2) and one.claim(study) is None  # running: not free
    study.tell(retried, 1.0)
    study.tell(late, state=TrialState.PRUNED)
    assert one.standing(study) == Standing(finished=2, busy=0) and one.claim(study) is None
    other_study = TrialBudget(storage.engine, "another-key", trials=2, stale_after=0.5)
    assert other_study.claim(study).slot == 0  # slots belong to one study's key
