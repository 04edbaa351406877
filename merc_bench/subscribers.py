"""The subscribers merc-bench ships: MLflow tracking, plugin hooks, the console (see :mod:`merc_bench.events`)."""

from __future__ import annotations

import contextlib
from typing import Any

from rich.markup import escape

from merc_bench.events import EpochEnded, RunEnded, RunStarted, SeedEnded, SeedStarted, Subscriber
from merc_bench.terminal import duration

__all__ = ["TrackingSubscriber", "HookSubscriber", "ConsoleSubscriber"]

_SUMMARY_METRICS = ("accuracy", "weighted_f1", "macro_f1")


class TrackingSubscriber(Subscriber):
    """One tracked run per run (parameters: the configuration, named as in a study) with one nested run per seed:
    every epoch's metrics, the seed's final ones, the run's means and its output files."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self._runs = contextlib.ExitStack()
        self._seed: contextlib.ExitStack | None = None
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._device: Any = None

    def run_started(self, event: RunStarted) -> None:
        from merc_bench.tracking import environment_tags, run_parameters

        config, corpus = event.config, event.corpus
        self._device = event.device
        self._params = run_parameters(config.model_dump(mode="json"))
        self._tags = environment_tags(event.device) | {"recipe": config.recipe, "dataset": corpus.info.name,
                                                       "protocol": config.protocol,
                                                       "dataset_fingerprint": corpus.fingerprint()}
        note = (f"merc-bench {config.recipe} on {corpus.info.name} ({corpus.summary()}): {config.protocol} protocol, "
                f"{config.seeds} seed(s); the nested runs are the seeds.")
        self._runs.enter_context(self.tracker.run(f"{config.recipe}-{corpus.info.name}-{config.protocol}",
                                                  params=self._params, tags=self._tags | {"mlflow.note.content": note}))
        provenance = corpus.provenance
        source = next((str(provenance[k]) for k in ("feature_store", "source", "generator") if provenance.get(k)),
                      corpus.info.name)
        self.tracker.log_dataset(name=corpus.info.name, digest=self._tags["dataset_fingerprint"], source=source)

    def seed_started(self, event: SeedStarted) -> None:
        self._seed = contextlib.ExitStack()
        seed = str(event.seed)
        self._seed.enter_context(self.tracker.run(f"seed-{seed}", params=self._params | {"seed": seed},
                                                  tags=self._tags | {"seed": seed}, nested=True))

    def epoch_ended(self, event: EpochEnded) -> None:
        if event.role == "model" and self._seed is not None:
            self.tracker.log_metrics({k: v for k, v in event.metrics.items() if k != "epoch"}, step=event.epoch)

    def seed_ended(self, event: SeedEnded) -> None:
        result = event.result
        if event.reused:  # the reused run's curves, so the tracked run is complete
            for row in result.history:
                self.tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
        metrics = {"selected_epoch": float(result.selected_epoch), "seconds": result.seconds}
        for split, values in (("dev", result.dev), ("test", result.test)):
            metrics.update({f"final_{split}_{key}": values[key] for key in _SUMMARY_METRICS if values})
        if result.teacher is not None:  # the teacher's own scores beside the student's
            for split in ("dev", "test"):
                values = result.teacher[split]
                metrics.update({f"teacher_{split}_{key}": values[key] for key in _SUMMARY_METRICS if values})
            if result.teacher.get("selected_epoch") is not None:
                metrics["teacher_selected_epoch"] = float(result.teacher["selected_epoch"])
        self.tracker.log_metrics(metrics)
        self.tracker.set_tags({"selected_epoch": str(result.selected_epoch), "reused": str(event.reused)}
                              | _gpu_tags(self._device))
        self._close_seed(None)

    def run_ended(self, event: RunEnded) -> None:
        self._close_seed(event.error)
        if event.summary is not None:
            self.tracker.log_metrics({f"{split}_{metric}": event.summary[split][metric]["mean"]
                                      for split in ("dev", "test") if event.summary.get(split)
                                      for metric in _SUMMARY_METRICS})
            teacher = event.summary.get("teacher")
            if teacher:
                self.tracker.log_metrics({f"teacher_{split}_{metric}": teacher[split][metric]["mean"]
                                          for split in ("dev", "test") if teacher.get(split)
                                          for metric in _SUMMARY_METRICS})
                self.tracker.set_tags({"teacher_below_student": str(bool(teacher.get("warning")))})
            self.tracker.log_artifacts(event.paths)
            if self.tracker.log_checkpoints and event.paths:
                self.tracker.log_artifacts(sorted(event.paths[0].parent.glob("checkpoint-seed*.pt")), "checkpoints")
        _close(self._runs, event.error)

    def _close_seed(self, error: BaseException | None) -> None:
        if self._seed is not None:
            seed, self._seed = self._seed, None
            _close(seed, error)


def _close(stack: contextlib.ExitStack, error: BaseException | None) -> None:
    """Leave the stack's runs as FAILED/KILLED when ``error`` stopped the run, else FINISHED."""
    if error is None:
        stack.close()
    else:
        stack.__exit__(type(error), error, error.__traceback__)


def _gpu_tags(device: Any) -> dict[str, str]:
    if getattr(device, "type", "") != "cuda":
        return {}
    import torch

    return {"peak_gpu_memory_mb": f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}"}


class HookSubscriber(Subscriber):
    """The plugin hooks: ``merc_bench_after_epoch`` (its extra metrics join the epoch's row) and
    ``merc_bench_after_run`` once the outputs are written."""

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def epoch_ended(self, event: EpochEnded) -> dict[str, float] | None:
        if event.role != "model":
            return None
        extra: dict[str, float] = {}
        for returned in self.hook.merc_bench_after_epoch(epoch=event.epoch, metrics=dict(event.metrics),
                                                         run=dict(event.run)):
            extra.update(returned or {})
        return extra

    def run_ended(self, event: RunEnded) -> None:
        if event.status == "FINISHED" and event.summary is not None:
            self.hook.merc_bench_after_run(result=event.summary)


class ConsoleSubscriber(Subscriber):
    """What a person watching sees: a progress bar per seed (and per teacher) labelled with the recipe,
    why a cached seed was not reused, and one line per finished seed. Without ``progress`` (output to
    a pipe or a file, see :mod:`merc_bench.terminal`) one plain line per epoch takes the bar's place:
    recipe, seed, epoch k/N, train loss, the selection split's w-F1, elapsed time and ETA."""

    def __init__(self, console: Any, progress: Any = None) -> None:
        self.console = console
        self.progress = progress
        self._tasks: dict[tuple[str, int], Any] = {}
        self._recipe = ""
        self._started: dict[tuple[str, int], float] = {}  # when each (role, seed)'s first epoch began
        self._last = 0.0  # when the previous epoch ended: the next role's epochs start there

    def run_started(self, event: RunStarted) -> None:
        self._recipe = event.config.recipe

    def seed_started(self, event: SeedStarted) -> None:
        import time

        self._last = time.monotonic()
        if event.why_not_reused:
            self.console.print(escape(f"seed {event.seed}: not reused from the seed cache, {event.why_not_reused}"))

    def epoch_ended(self, event: EpochEnded) -> None:
        import time

        key = (event.role, event.seed)
        recipe = self._recipe or event.run.get("recipe", "")
        name = f"{recipe} seed {event.seed}" if event.role == "model" else f"{recipe} {event.role} seed {event.seed}"
        started, now = self._started.setdefault(key, self._last), time.monotonic()
        self._last = now
        scores = (f"loss {event.metrics['train_loss']:.3f} {event.split} w-F1 "
                  f"{event.metrics[f'{event.split}_weighted_f1']:.3f} (best {event.best_score:.3f} @ {event.best_epoch})")
        if self.progress is None:
            elapsed = now - started
            left = elapsed / event.epoch * (event.epochs - event.epoch)
            self.console.print(f"{name} epoch {event.epoch}/{event.epochs}: {scores}, {duration(elapsed)} elapsed, "
                               f"ETA {duration(left)}", markup=False, highlight=False, soft_wrap=True)
            return
        if key not in self._tasks:
            self._tasks[key] = self.progress.add_task(escape(name), total=event.epochs)
        self.progress.update(self._tasks[key], advance=1, description=escape(f"{name} epoch {event.epoch}/"
                                                                             f"{event.epochs} {scores}"))

    def seed_ended(self, event: SeedEnded) -> None:
        result = event.result
        teacher = result.teacher
        if teacher is not None:
            kept = f", epoch {teacher['selected_epoch']}/{teacher['epochs']}" if teacher.get("epochs") else ""
            self.console.print(f"teacher ({', '.join(teacher['modalities'] or [])}) {teacher['status']}{kept}: "
                               f"dev w-F1 {_percent(teacher['dev'])}, test w-F1 {_percent(teacher['test'])} · "
                               f"{teacher['path']}", markup=False, soft_wrap=True)
        how = "reused from the seed cache" if event.reused else f"{result.seconds:.1f} s"
        self.console.print(f"seed {result.seed}: selected epoch {result.selected_epoch}, dev w-F1 "
                           f"{_percent(result.dev)}, test w-F1 {_percent(result.test)}, {how}", markup=False,
                           soft_wrap=True)  # one line each: a wrapped line breaks up what scripts look for

    def run_ended(self, event: RunEnded) -> None:
        teacher = (event.summary or {}).get("teacher") or {}
        if teacher.get("warning"):  # one line, however narrow the terminal
            self.console.print(teacher["warning"], markup=False, soft_wrap=True, style="yellow")


def _percent(metrics: dict[str, Any]) -> str:
    return f"{100 * metrics['weighted_f1']:.2f}" if metrics else "n/a"


def default_subscribers(*, tracker: Any = None, hook: Any = None, console: Any = None,
                        progress: Any = None) -> list[Subscriber]:
    """Hooks first (their extra metrics reach the tracker), then tracking, then the console."""
    subscribers: list[Subscriber] = []
    if hook is not None:
        subscribers.append(HookSubscriber(hook))
    if tracker is not None:
        subscribers.append(TrackingSubscriber(tracker))
    if console is not None:
        subscribers.append(ConsoleSubscriber(console, progress))
    return subscribers


