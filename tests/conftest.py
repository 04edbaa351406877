import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


@pytest.fixture(autouse=True)
def _work_in_a_temporary_folder(tmp_path, monkeypatch):
    """Runs write ./runs and ./mlruns, teachers and seeds go to the cache: keep them all per test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MERC_BENCH_CACHE", str(tmp_path / "cache"))
