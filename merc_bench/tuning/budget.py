"""Exact trial budgets: ``--trials N`` ends with exactly N finished trials, whatever the workers.

Counting trials and then starting one is a race: two workers both count N − 1 and both start a
trial (a CI run found 7 trials for ``--trials 6``). So the budget is N *slots*, rows of the table
``merc_bench_trial_slots`` in the study's own database (the same SQLAlchemy URL as Optuna's tables,
sqlite or PostgreSQL), and a worker takes a slot **before** it creates a trial, with one statement
the database makes atomic:

* a slot without a row: ``INSERT`` — the primary key (study, slot) lets exactly one insert win;
* a slot whose trial FAILed — it raised, or its worker died and the heartbeat check failed it —:
  ``UPDATE … WHERE trial = <that failed trial>``, so one update changes the row and every other
  finds it changed (a FAIL trial never runs again, so the row cannot come back to it);
* a slot claimed by a worker that died before its trial started (no trial after ``stale_after``
  seconds, ``--grace-period``; measured with each machine's clock, which must agree within it):
  ``UPDATE … WHERE token = <that claim>``.

The worker then creates its trial (Optuna pops a waiting trial first: the recipe's trial 0, or the
retry of a killed trial) and binds it to its slot, ``UPDATE … WHERE token = <its claim>``. A trial
that cannot bind because its claim was taken as stale meanwhile fails before it trains; a trial
already bound to another slot — on sqlite two workers can pop the same waiting trial, since
Optuna's check of its state and its update are not one transaction there — is left to that slot's
worker (a unique constraint on the trial makes the second bind fail) and this worker asks again. So a slot holds at
most one trial that is not FAIL, a FAIL trial never becomes COMPLETE, and a study never has more
than N finished trials; workers return once all N slots hold a finished one. A failed trial frees
its slot for a new trial (until ``--max-failures``), a killed worker's slot comes back when its
trial is found stale, and rerunning the command after a kill finds the same slots and finishes the N.

The table is keyed by the study's unique id (not its name: a study deleted and created again under
the same name starts with no slots), holds one short row per slot, is created when first used and
is reached through the Optuna storage's own engine.
"""

from __future__ import annotations

import enum
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

__all__ = ["TrialBudget", "Claim", "Bind", "Standing", "FINISHED"]

#: Trial states that count towards ``--trials``.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

_METADATA = sqlalchemy.MetaData()
_SLOTS = sqlalchemy.Table(
    "merc_bench_trial_slots", _METADATA,
    sqlalchemy.Column("study", sqlalchemy.String(64), primary_key=True),
    sqlalchemy.Column("slot", sqlalchemy.Integer, primary_key=True, autoincrement=False),
    sqlalchemy.Column("trial_number", sqlalchemy.Integer, nullable=True),  # NULL: claimed, trial not started yet
    sqlalchemy.Column("token", sqlalchemy.String(32), nullable=False),  # who holds the claim
    sqlalchemy.Column("claimed_at", sqlalchemy.Float, nullable=False),  # time.time() of the claim
    sqlalchemy.Column("owner", sqlalchemy.String(255), nullable=False),  # host:pid, for people reading the table
    # One slot per trial: on sqlite two workers can pop the same waiting trial (Optuna's check of its
    # state and the update are not one transaction there); only one of them can bind it.
    sqlalchemy.UniqueConstraint("study", "trial_number", name="merc_bench_trial_slots_one_slot_per_trial"),
)


class Bind(enum.Enum):
    """What :meth:`TrialBudget.bind` found."""

    BOUND = "bound"  # the trial holds the claimed slot: run it
    TRIAL_TAKEN = "trial taken"  # another worker's slot holds this trial (it popped it too): leave it alone
    CLAIM_LOST = "claim lost"  # the claim was taken as stale meanwhile: the trial must not run


@dataclass(frozen=True)
class Claim:
    slot: int
    token: str


@dataclass(frozen=True)
class Standing:
    """The budget as one worker sees it: finished slots, and slots whose trial is running or starting."""

    finished: int
    busy: int


class TrialBudget:
    """The N slots of one study in its database; see the module docstring."""

    def __init__(self, engine: sqlalchemy.engine.Engine, key: str, *, trials: int, stale_after: float) -> None:
        """``engine``: the study storage's own (``RDBStorage.engine``), so the slots live in the same
        database and share its connections; ``key``: the study's unique id."""
        self.key = key
        self.trials = trials
        self.stale_after = stale_after
        self.owner = f"{socket.gethostname()}:{os.getpid()}"[:255]
        self._engine = engine
        try:
            _METADATA.create_all(engine, checkfirst=True)
        except sqlalchemy.exc.DatabaseError:  # another worker created it at the same moment (PostgreSQL)
            if not sqlalchemy.inspect(engine).has_table(_SLOTS.name):
                raise

    # -- reading ------------------------------------------------------------------------------------
    def _rows(self, study: optuna.Study) -> tuple[dict[int, Any], dict[int, TrialState]]:
        """The slot rows, then the trials' states: in this order, every trial a row names is in the states."""
        with self._engine.connect() as connection:
            rows = {row.slot: row for row in connection.execute(
                sqlalchemy.select(_SLOTS).where(_SLOTS.c.study == self.key))}
        states = {trial.number: trial.state for trial in study.get_trials(deepcopy=False)}
        return rows, states

    def standing(self, study: optuna.Study) -> Standing:
        rows, states = self._rows(study)
        finished = busy = 0
        for slot in range(self.trials):
            row = rows.get(slot)
            if row is None:
                continue
            if row.trial_number is None:
                busy += time.time() - row.claimed_at <= self.stale_after
            elif states.get(row.trial_number) in FINISHED:
                finished += 1
            elif states.get(row.trial_number) != TrialState.FAIL:
                busy += 1
        return Standing(finished, busy)

    # -- claiming and binding -----------------------------------------------------------------------
    def claim(self, study: optuna.Study) -> Claim | None:
        """Take a free slot (the lowest), or None when every slot is finished, running or just claimed."""
        rows, states = self._rows(study)
        for slot in range(self.trials):
            row = rows.get(slot)
            token = uuid.uuid4().hex
            values = {"trial_number": None, "token": token, "claimed_at": time.time(), "owner": self.owner}
            if row is None:
                try:
                    with self._engine.begin() as connection:
                        connection.execute(sqlalchemy.insert(_SLOTS).values(study=self.key, slot=slot, **values))
                except sqlalchemy.exc.IntegrityError:  # another worker inserted this slot first
                    continue
                return Claim(slot, token)
            if row.trial_number is None:
                if time.time() - row.claimed_at <= self.stale_after:
                    continue
                unchanged = (_SLOTS.c.trial_number.is_(None)) & (_SLOTS.c.token == row.token)
            elif states.get(row.trial_number) == TrialState.FAIL:
                unchanged = _SLOTS.c.trial_number == row.trial_number
            else:  # running or finished
                continue
            with self._engine.begin() as connection:
                taken = connection.execute(sqlalchemy.update(_SLOTS).where(
                    (_SLOTS.c.study == self.key) & (_SLOTS.c.slot == slot) & unchanged).values(**values)).rowcount
            if taken == 1:
                return Claim(slot, token)
        return None

    def bind(self, claim: Claim, trial_number: int) -> Bind:
        """Record ``trial_number`` as the claim's trial."""
        try:
            with self._engine.begin() as connection:
                bound = connection.execute(sqlalchemy.update(_SLOTS).where(
                    (_SLOTS.c.study == self.key) & (_SLOTS.c.slot == claim.slot) & (_SLOTS.c.token == claim.token)
                    & _SLOTS.c.trial_number.is_(None)).values(trial_number=trial_number)).rowcount == 1
        except sqlalchemy.exc.IntegrityError:  # the unique (study, trial_number): another slot holds it
            return Bind.TRIAL_TAKEN
        return Bind.BOUND if bound else Bind.CLAIM_LOST
