"""MLflow for a study: one parent run per study, one nested child run per trial.

The parent is created explicitly when the study is first run and tagged with the study's unique id
(``tune_study_uid``, kept in the study's own attributes). Rerunning the command — after a kill, or
to add trials — finds that parent by the tag and nests the new children under it, so a study is
one parent in the MLflow UI however often it was resumed. Workers started by ``--workers`` find
the parent the first process created; separate machines that share the study's database but start
at the same moment could each create one (the study itself is unaffected).

A child run holds the trial's parameters and resolved configuration, its per-epoch validation
metrics (flushed every epoch, so a killed trial keeps its curve), its state (COMPLETE, PRUNED,
FAIL), duration, error, and on a GPU the device name and peak memory, with MLflow's system
metrics when ``nvidia-ml-py`` is installed. A killed worker's child is closed as KILLED when its
trial is found stale. The best child and the parent carry ``best_trial`` tags.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from merc_bench.tracking import MLflowTracker, NullTracker

__all__ = ["StudyTracker", "NoStudyTracker"]

_STUDY_TAG = "tune_study_uid"


class StudyTracker(MLflowTracker):
    """:class:`~merc_bench.tracking.MLflowTracker` plus the study's parent run and its children."""

    def open_parent(self, *, uid: str, name: str, tags: dict[str, str]) -> str:
        """The study's parent run id: the one tagged with ``uid`` (marked running again), or a new one."""
        found = self._client.search_runs(
            [self.experiment_id], filter_string=f"tags.{_STUDY_TAG} = '{uid}'", max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        if found:
            run_id = found[0].info.run_id
            self._client.update_run(run_id, status="RUNNING")
            return run_id
        return self._client.create_run(self.experiment_id, run_name=name, tags=tags | {_STUDY_TAG: uid}).info.run_id

    def close_parent(self, run_id: str, status: str = "FINISHED") -> None:
        self._client.set_terminated(run_id, status=status)

    @contextmanager
    def inside(self, run_id: str) -> Iterator[StudyTracker]:
        """Make ``run_id`` (created by this or an earlier process) the parent of the runs opened inside."""
        self._run_ids.append(run_id)
        try:
            yield self
        finally:
            self.flush()
            self._run_ids.pop()

    def close_killed(self, run_id: str) -> None:
        """Close the child of a trial whose worker died (its run was left RUNNING)."""
        from mlflow.entities import RunTag

        if self._client.get_run(run_id).info.status == "RUNNING":
            self._client.log_batch(run_id, tags=[RunTag("state", "FAIL"),
                                                 RunTag("error", "worker died (no heartbeat); the trial is retried")])
            self._client.set_terminated(run_id, status="KILLED")

    def tag_best(self, parent_id: str, best_run_id: str | None, previous_run_id: str | None,
                 summary: dict[str, str]) -> None:
        """Tag the best trial's child (untagging the previous best) and summarise it on the parent."""
        from mlflow.entities import RunTag

        if previous_run_id and previous_run_id != best_run_id:
            self._client.set_tag(previous_run_id, "best_trial", "false")
        if best_run_id:
            self._client.set_tag(best_run_id, "best_trial", "true")
        self._client.log_batch(parent_id, tags=[RunTag(k, str(v)) for k, v in summary.items()])

    def log_parent_artifacts(self, parent_id: str, paths: list[Any]) -> None:
        for path in paths:
            if path.is_file():
                self._client.log_artifact(parent_id, str(path))

    def log_parent_metrics(self, parent_id: str, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._client.log_batch(parent_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()])

    @contextmanager
    def system_metrics(self, run_id: str | None, device: Any) -> Iterator[None]:
        """MLflow's CPU/GPU system metrics for one trial on a GPU, when nvidia-ml-py is installed."""
        if run_id is None or getattr(device, "type", "") != "cuda" or importlib.util.find_spec("pynvml") is None:
            yield
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, tracking_uri=self.uri)
        monitor.start()
        try:
            yield
        finally:
            monitor.finish()


class NoStudyTracker(NullTracker):
    """``--no-track``: the same calls, recording nothing."""

    def open_parent(self, *, uid: str, name: str, tags: dict[str, str]) -> None:
        return None

    def close_parent(self, run_id: str | None, status: str = "FINISHED") -> None:
        pass

    @contextmanager
    def inside(self, run_id: str | None) -> Iterator[NoStudyTracker]:
        yield self

    def close_killed(self, run_id: str) -> None:
        pass

    def tag_best(self, parent_id: Any, best_run_id: Any, previous_run_id: Any, summary: dict[str, str]) -> None:
        pass

    def log_parent_artifacts(self, parent_id: Any, paths: list[Any]) -> None:
        pass

    def log_parent_metrics(self, parent_id: Any, metrics: dict[str, float]) -> None:
        pass

    @contextmanager
    def system_metrics(self, run_id: Any, device: Any) -> Iterator[None]:
        yield
