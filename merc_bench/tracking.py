"""MLflow tracking: one parent run per ``merc-bench run`` invocation, one nested run per seed.

Default store: sqlite at ``./mlruns/mlflow.db`` with artifacts in ``./mlruns/artifacts`` (the old
file store is deprecated in MLflow 3). Telemetry is switched off before mlflow is imported.
Per-epoch metrics are buffered and written with one ``log_batch`` call per seed, because every
``log_metric`` call costs a database round trip (~5 ms on sqlite, ~56 ms over HTTP).
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from merc_bench.errors import UserError

__all__ = ["Tracker", "NullTracker", "MLflowTracker", "default_tracking_uri", "flatten", "run_parameters",
           "environment_tags"]

EXPERIMENT = "merc-bench"


def disable_telemetry() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")


def default_store(root: Path | None = None) -> Path:
    return (root or Path.cwd()) / "mlruns"


def default_tracking_uri(root: Path | None = None) -> str:
    return f"sqlite:///{(default_store(root) / 'mlflow.db').resolve()}"


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"training": {"lr": 1e-4}} → {"training.lr": "0.0001"} (MLflow params are strings)."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:6000]
    return flat


def run_parameters(config: dict[str, Any]) -> dict[str, str]:
    """A run configuration (``RunConfig.model_dump(mode="json")``) as MLflow parameters, named the
    way a study names its Optuna parameters, so a trial and a run that set the same option show it
    under one name: a component slot is ``<slot>`` = the component's name and its options are
    ``<slot>.<name>.<option>`` (``mixer`` = ``sdmoe``, ``mixer.sdmoe.experts``); everything else is
    its path (``training.lr``, ``model.head_dropout``). Naming an option after its component also keeps
    two components' options of the same name apart in MLflow's run comparison."""
    from merc_bench.config import COMPONENT_SLOTS

    flat: dict[str, str] = {}
    for key, value in config.items():
        if key in COMPONENT_SLOTS and isinstance(value, dict) and "name" in value:
            flat[key] = str(value["name"])
            flat.update(flatten(value.get("config") or {}, f"{key}.{value['name']}."))
        else:
            flat.update(flatten({key: value}))
    return flat


def _git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def environment_tags(device: Any) -> dict[str, str]:
    """git commit, plugin versions, device name; on CUDA the GPU's name, memory, capability, count, CUDA version."""
    import torch

    from merc_bench.plugins import plugin_distributions

    tags = {
        # MLflow's own tags (what its UI shows as user and source), which the client API does not set itself.
        "mlflow.user": _user(),
        # The command (set by merc_bench.cli.main; tune's worker processes inherit it), else the script.
        "mlflow.source.name": os.environ.get("MERC_BENCH_COMMAND") or " ".join(sys.argv)[:500] or "python",
        "mlflow.source.type": "LOCAL",
        "git_commit": _git_commit(),
        "device": str(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "host_cpu": platform.processor() or platform.machine(),
    }
    for name, version in sorted(set(plugin_distributions().values())):
        tags[f"plugin.{name}"] = version
    if getattr(device, "type", "") == "cuda":
        properties = torch.cuda.get_device_properties(device)
        tags |= {
            "gpu_name": torch.cuda.get_device_name(device),
            "gpu_memory_gib": f"{properties.total_memory / 2**30:.1f}",
            "gpu_compute_capability": f"{properties.major}.{properties.minor}",
            "gpu_count": str(torch.cuda.device_count()),
            "cuda": str(torch.version.cuda),
        }
    return tags


class Tracker:
    """The tracking interface the pipeline uses. The base class records nothing."""

    @contextmanager
    def run(self, name: str, *, params: dict[str, str] | None = None, tags: dict[str, str] | None = None,
            nested: bool = False) -> Iterator[Tracker]:
        yield self

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Buffered; written by :meth:`flush` or at the end of the run."""

    def flush(self) -> None:
        pass

    #: ``--log-checkpoints``: the runs' checkpoint files are logged as artifacts too.
    log_checkpoints = False

    def log_artifacts(self, paths: list[Path], folder: str | None = None) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_dataset(self, *, name: str, digest: str, source: str, context: str = "training") -> None:
        """The run's dataset as an MLflow input (name, content fingerprint, where it came from)."""

    @property
    def location(self) -> str:
        return "(not tracked)"


class NullTracker(Tracker):
    """--no-track."""


class MLflowTracker(Tracker):
    """MLflow-backed tracker; ``uri`` None means the local sqlite store."""

    def __init__(self, uri: str | None = None, *, experiment: str = EXPERIMENT, log_checkpoints: bool = False) -> None:
        disable_telemetry()
        self.log_checkpoints = log_checkpoints
        import logging

        try:
            import mlflow
        except ImportError as error:  # a lean environment, e.g. a GPU image without MLflow
            raise UserError(
                f"tracking needs MLflow, which cannot be imported here ({error}); install it "
                "(pip install 'mlflow==3.17.2') or pass --no-track to run without tracking."
            ) from None

        # MLflow announces its database migrations at INFO; a run's console is for the run.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)

        self._mlflow = mlflow
        self.uri = uri or default_tracking_uri()
        if uri is None:
            default_store().mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.uri)
        artifact_location = None
        if self.uri.startswith("sqlite:///"):
            artifact_location = (Path(self.uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
        client = mlflow.MlflowClient()
        existing = client.get_experiment_by_name(experiment)
        self.experiment_id = (
            existing.experiment_id
            if existing is not None
            else client.create_experiment(experiment, artifact_location=artifact_location)
        )
        self._client = client
        self._pending: list[Any] = []
        self._run_ids: list[str] = []

    @contextmanager
    def run(self, name: str, *, params: dict[str, str] | None = None, tags: dict[str, str] | None = None,
            nested: bool = False) -> Iterator[Tracker]:
        from mlflow.entities import Param

        run_tags = dict(tags or {})
        if self._run_ids:
            run_tags["mlflow.parentRunId"] = self._run_ids[-1]
        run = self._client.create_run(self.experiment_id, run_name=name, tags=run_tags)
        self._run_ids.append(run.info.run_id)
        status = "FAILED"
        try:
            if params:
                items = [Param(k, v) for k, v in params.items()]
                for start in range(0, len(items), 100):  # MLflow accepts 100 params per batch
                    self._client.log_batch(run.info.run_id, params=items[start : start + 100])
            yield self
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self.flush()
            self._client.set_terminated(run.info.run_id, status=status)
            self._run_ids.pop()

    @property
    def run_id(self) -> str:
        return self._run_ids[-1]

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        for key, value in metrics.items():
            self._pending.append(Metric(key, float(value), timestamp, step or 0))

    def flush(self) -> None:
        if not self._pending or not self._run_ids:
            return
        for start in range(0, len(self._pending), 1000):  # MLflow's batch limit
            self._client.log_batch(self.run_id, metrics=self._pending[start : start + 1000])
        self._pending = []

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, paths: list[Path], folder: str | None = None) -> None:
        for path in paths:
            if path.is_file():
                self._client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def log_dataset(self, *, name: str, digest: str, source: str, context: str = "training") -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(name=name, digest=digest, source_type="local", source=json.dumps({"uri": source}))
        self._client.log_inputs(self.run_id, datasets=[
            DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])])

    @property
    def location(self) -> str:
        return self.uri


def serve_ui(*, store: Path, port: int, host: str = "127.0.0.1", open_browser: bool = True) -> None:
    """Run ``mlflow server`` for the local store in the foreground until interrupted.

    One worker and no job execution: on 2 cores that starts in seconds instead of ~20 s.
    """
    import sys

    from merc_bench.errors import UserError

    database = store / "mlflow.db"
    if not database.exists():
        raise UserError(f"no MLflow store at {str(database)!r}: run `merc-bench run ...` first, or pass --store.")
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{database.resolve()}",
        "--default-artifact-root", (store / "artifacts").resolve().as_uri(),
        "--host", host, "--port", str(port), "--workers", "1",
    ]
    environment = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    disable_telemetry()
    url = runs_view_url(database, host=host, port=port)
    print(f"MLflow UI on http://{host}:{port}; the runs table: {url} (Ctrl-C stops it)", flush=True)
    with suppress(KeyboardInterrupt):
        server = subprocess.Popen(command, env=environment)
        if open_browser:
            _open_when_up(url, host, port, server)
        server.wait()


def runs_view_url(database: Path, *, host: str, port: int) -> str:
    """The URL of the merc-bench experiment's runs table in MLflow 3's classic ("machine learning") view,
    not the GenAI/Traces view MLflow opens on by default."""
    experiment = None
    with suppress(Exception):  # an unreadable store: the URL without the experiment still opens the UI
        import mlflow

        found = mlflow.MlflowClient(tracking_uri=f"sqlite:///{database.resolve()}").get_experiment_by_name(EXPERIMENT)
        experiment = found.experiment_id if found is not None else None
    page = f"experiments/{experiment}" if experiment is not None else "experiments"
    return f"http://{host}:{port}/#/{page}?workflowType=machine_learning"


def _open_when_up(url: str, host: str, port: int, server: subprocess.Popen) -> None:
    """Open ``url`` in the default browser once the server answers (give up after 60 s or if it exited)."""
    import socket
    import webbrowser

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        with suppress(OSError), socket.create_connection((host, port), timeout=1):
            webbrowser.open(url)
            return
        time.sleep(0.5)
