"""``tune``'s progress bars on a terminal: the study's trials (k/N, the best dev score so far, ETA) and
the running trial's epochs. The one line per finished trial (:meth:`Objective.announce`) prints
above them, and is all there is when the output goes to a pipe or a file (no bars there, see
:mod:`merc_bench.terminal`)."""

from __future__ import annotations

from typing import Any

import optuna

from merc_bench.events import EpochEnded
from merc_bench.tuning import study as studies
from merc_bench.tuning.report import best_trial

__all__ = ["StudyProgress"]


class StudyProgress:
    """Two bars on a rich ``progress``: finished trials of ``trials``, and the running trial's epochs."""

    def __init__(self, progress: Any, *, trials: int, metric: str, finished: int) -> None:
        self.progress = progress
        self.metric = metric
        self.trials = trials
        self._study = progress.add_task("trials", total=trials, completed=min(finished, trials))
        self._epochs: Any = None  # the running trial's bar, replaced by the next trial's
        self._trial: int | None = None

    def epoch_ended(self, trial: int, event: EpochEnded) -> None:
        """Called by the objective after each of trial ``trial``'s epochs (before pruning decides)."""
        if self._trial != trial:
            self._drop_epochs()
            self._epochs, self._trial = self.progress.add_task(f"trial {trial}", total=event.epochs), trial
        score = event.metrics.get(f"dev_{self.metric}")
        shown = f" dev {self.metric} {score:.4f}" if score is not None else ""
        self.progress.update(self._epochs, completed=event.epoch,
                             description=f"trial {trial} epoch {event.epoch}/{event.epochs}{shown}")

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """An Optuna-style callback: count the study's finished trials (every worker's) and its best."""
        self._drop_epochs()
        best = best_trial(study)
        described = f"trials · best dev {self.metric} {best.value:.4f} (trial {best.number})" if best else "trials"
        self.progress.update(self._study, completed=min(studies.progress(study)[0], self.trials),
                             description=described)

    def _drop_epochs(self) -> None:
        if self._epochs is not None:
            self.progress.remove_task(self._epochs)
            self._epochs, self._trial = None, None
