"""What a run tells the world while it trains: events, and the subscribers that receive them.

The pipeline (:mod:`merc_bench.pipeline`) and the trainer emit; they hold no user interface and no
tracking. Subscribers turn events into what people see and keep: the MLflow tracker, the plugin
hooks, the progress display (:mod:`merc_bench.subscribers`), the Optuna pruner (``tune``). A
subscriber implements any of the methods of :class:`Subscriber`; the others do nothing.

Order for one run: ``run_started``; per seed ``seed_started``, ``epoch_ended`` per epoch (a
teacher's epochs first, with ``role="teacher"``), ``seed_ended``; then ``run_ended`` once the
outputs are written (``status`` FINISHED), or as soon as training stops on an error (FAILED or
KILLED), so a tracker can close what it opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from merc_bench.config import RunConfig
    from merc_bench.data import Corpus
    from merc_bench.trainer import SeedResult

__all__ = ["RunStarted", "SeedStarted", "EpochEnded", "SeedEnded", "RunEnded", "Subscriber", "Broadcast"]


@dataclass(frozen=True)
class RunStarted:
    config: RunConfig
    corpus: Corpus
    seeds: list[int]
    device: Any  # torch.device


@dataclass(frozen=True)
class SeedStarted:
    config: RunConfig
    seed: int
    reused: bool  # found in the seed cache: no epochs follow
    why_not_reused: str = ""  # with a cache, why a stored result did not fit (empty: none stored)


@dataclass(frozen=True)
class EpochEnded:
    seed: int
    epoch: int  # from 1
    epochs: int
    metrics: dict[str, float]  # train_loss, <split>_accuracy, <split>_weighted_f1, ... of this epoch
    split: str  # the split the epoch is selected on: dev (clean) or test (paper)
    best_score: float  # the best selection metric so far
    best_epoch: int
    role: str = "model"  # "teacher" for a distiller's teacher
    run: dict[str, Any] = field(default_factory=dict)  # recipe, dataset, protocol, seed


@dataclass(frozen=True)
class SeedEnded:
    config: RunConfig
    result: SeedResult
    reused: bool


@dataclass(frozen=True)
class RunEnded:
    config: RunConfig
    status: str  # FINISHED, FAILED or KILLED
    summary: dict[str, Any] | None = None  # results.json's content (FINISHED)
    paths: list[Path] = field(default_factory=list)  # the files written (FINISHED)
    error: BaseException | None = None


class Subscriber:
    """Receives a run's events; every method is optional."""

    def run_started(self, event: RunStarted) -> None:
        pass

    def seed_started(self, event: SeedStarted) -> None:
        pass

    def epoch_ended(self, event: EpochEnded) -> dict[str, float] | None:
        """Extra metrics to record with this epoch (plugin hooks add some), or None."""
        return None

    def seed_ended(self, event: SeedEnded) -> None:
        pass

    def run_ended(self, event: RunEnded) -> None:
        pass


class Broadcast(Subscriber):
    """Several subscribers as one, called in order; ``run_ended`` in reverse (nested like context managers)."""

    def __init__(self, subscribers: list[Subscriber] | tuple[Subscriber, ...] = ()) -> None:
        self.subscribers = list(subscribers)

    def run_started(self, event: RunStarted) -> None:
        for subscriber in self.subscribers:
            subscriber.run_started(event)

    def seed_started(self, event: SeedStarted) -> None:
        for subscriber in self.subscribers:
            subscriber.seed_started(event)

    def epoch_ended(self, event: EpochEnded) -> dict[str, float]:
        """Each subscriber sees the metrics the earlier ones added (hooks first, then the tracker)."""
        extra: dict[str, float] = {}
        for subscriber in self.subscribers:
            added = subscriber.epoch_ended(replace(event, metrics=event.metrics | extra) if extra else event)
            extra.update(added or {})
        return extra

    def seed_ended(self, event: SeedEnded) -> None:
        for subscriber in self.subscribers:
            subscriber.seed_ended(event)

    def run_ended(self, event: RunEnded) -> None:
        for subscriber in reversed(self.subscribers):
            subscriber.run_ended(event)
