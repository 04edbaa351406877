"""MLflow tracking: nested runs, batched metrics, artifacts, tags; and the `merc-bench ui` server."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from merc_bench.cli import main

TINY = [
    "--set", "dataset.train_dialogues=10", "--set", "dataset.dev_dialogues=4", "--set", "dataset.test_dialogues=4",
    "--set", "model.hidden_size=16", "--set", "mixer.heads=4", "--set", "fuser.heads=4",
]


@pytest.fixture(scope="module")
def tracked_store(tmp_path_factory):
    """One tracked 2-seed run in a local store under a fresh working directory."""
    root = tmp_path_factory.mktemp("tracked")
    previous = Path.cwd()
    os.chdir(root)
    try:
        with pytest.raises(SystemExit) as stop:
            main(["run", "sdt", "--seeds", "2", "--epochs", "3", "--out", str(root / "out"), *TINY])
        assert stop.value.code == 0
    finally:
        os.chdir(previous)
    return root


def test_runs_are_nested_with_params_metrics_artifacts_and_tags(tracked_store):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tracked_store / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("merc-bench")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert parent.info.status == "FINISHED"
    assert parent.data.params["training.lr"] == "5e-06"
    assert parent.data.params["mixer"] == "transformer"  # named like a study's parameters (test_tune_views)
    assert "git_commit" in parent.data.tags and "plugin.merc-bench" in parent.data.tags
    assert parent.data.tags["device"] == "cpu"
    assert len(parent.data.tags["dataset_fingerprint"]) == 16
    result = json.loads((tracked_store / "out" / "results.json").read_text())
    assert parent.data.metrics["test_weighted_f1"] == pytest.approx(result["test"]["weighted_f1"]["mean"])
    for child in children:
        history = client.get_metric_history(child.info.run_id, "dev_weighted_f1")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3]
        assert child.data.tags["seed"] in {"0", "1"}
        assert "final_test_weighted_f1" in child.data.metrics
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.json", "per_class.csv", "confusion_test.png", "config.json"} <= artifacts
    # MLflow's own user/source/note tags, and the dataset as the run's input (name, fingerprint, source).
    assert parent.data.tags["mlflow.user"] and parent.data.tags["mlflow.source.name"].startswith("merc-bench run sdt")
    assert "sdt on synthetic" in parent.data.tags["mlflow.note.content"]
    inputs = client.get_run(parent.info.run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("synthetic", result["dataset_fingerprint"])]
    assert inputs[0].tags[0].value == "training"


def test_a_compare_parent_run_carries_the_table_plots_metrics_and_checkpoints(tmp_path):
    import mlflow

    import merc_bench

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    table = merc_bench.compare(["bigru-concat", "early-fusion"], seeds=1, epochs=1, tsne="none", tracking_uri=uri,
                               out=tmp_path / "cmp", overrides=[o for o in TINY if o != "--set"][:4],
                               log_checkpoints=True)
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("merc-bench").experiment_id])
    parent = next(r for r in runs if r.info.run_name == "compare-synthetic")
    frame = table.to_frame().set_index("model")
    for recipe in ("bigru-concat", "early-fusion"):
        assert parent.data.metrics[f"test_weighted_f1/{recipe}"] == pytest.approx(frame.loc[recipe, "w-F1 mean"] / 100)
    files = {a.path for a in client.list_artifacts(parent.info.run_id, "table")}
    assert {"table/comparison.md", "table/comparison.csv", "table/comparison.tex"} <= files
    assert any(f.endswith(".png") for f in files) and any(f.endswith(".pdf") for f in files)
    row = next(r for r in runs if r.info.run_name.startswith("bigru-concat"))
    assert {a.path for a in client.list_artifacts(row.info.run_id, "checkpoints")} == {
        "checkpoints/checkpoint-seed0.pt"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ui_serves_the_local_store(tracked_store):
    port = _free_port()
    script = os.path.join(os.path.dirname(sys.executable), "merc-bench")
    server = subprocess.Popen(
        [script, "ui", "--port", str(port), "--store", str(tracked_store / "mlruns"), "--no-open"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        page = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    page = response.read().decode("utf-8", "replace")
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                time.sleep(0.5)
        assert page is not None and "<html" in page.lower()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
            data=json.dumps({"max_results": 10}).encode(), headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            experiments = json.loads(response.read())["experiments"]
        experiment_id = next(e["experiment_id"] for e in experiments if e["name"] == "merc-bench")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": [experiment_id]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            runs = json.loads(response.read())["runs"]
        assert len(runs) == 3
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert server.returncode is not None
    # The printed address opens MLflow's classic runs table of the merc-bench experiment, not the GenAI view.
    assert f"#/experiments/{experiment_id}?workflowType=machine_learning" in server.stdout.read().decode()


def test_ui_without_a_store_is_a_user_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["ui", "--store", str(tmp_path / "nothing")])
    assert stop.value.code == 2
    assert "no MLflow store" in capsys.readouterr().err


def test_missing_mlflow_is_a_user_error_pointing_at_no_track(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what a lean GPU image without MLflow looks like
    with pytest.raises(SystemExit) as stop:
        main(["run", "bigru-concat", "--epochs", "1", "--out", str(tmp_path / "run"),
              "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "tracking needs MLflow" in error and "--no-track" in error and "Traceback" not in error
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_cuda_runs_are_tagged_with_the_gpu_facts(monkeypatch):
    import torch

    from merc_bench.tracking import environment_tags

    class Properties:
        total_memory, major, minor = 80 * 2**30, 9, 0

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: Properties())
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    tags = environment_tags(torch.device("cuda"))
    assert tags["gpu_name"] == "NVIDIA H100 80GB HBM3" and tags["gpu_memory_gib"] == "80.0"
    assert tags["gpu_compute_capability"] == "9.0" and tags["gpu_count"] == "1" and tags["cuda"] == "13.0"
    assert "gpu_name" not in environment_tags(torch.device("cpu"))
