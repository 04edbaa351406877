"""``--workers K``: K-1 more processes of the same command on the same study, and waiting for them.

Each extra worker is ``python -m merc_bench.cli tune ... --workers 1 --worker-index k`` with the
same options, started after the first process has created the study (so its search space, first
trial and MLflow parent exist exactly once). Its output goes to ``worker-<k>.log`` in the study's
folder. With ``--device cuda`` worker k sees one GPU, ``k mod (number of GPUs)``, through
``CUDA_VISIBLE_DEVICES``; the first process uses the first GPU. Workers on other machines are the
same command run there with ``--storage`` pointing at the shared database.

CPU threads: K workers on one machine would each start one torch thread per core, and
oversubscribed threads spin against each other (measured on 2 busy cores: a small GRU step took
1 s with 2 threads per process instead of 9 ms with 1). Unless ``OMP_NUM_THREADS`` is set, each
worker gets cores / K threads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Worker", "spawn_workers", "wait_for_workers", "stop_workers", "share_cores"]


@dataclass
class Worker:
    index: int
    process: subprocess.Popen
    log: Path


def share_cores(workers: int) -> dict[str, str]:
    """The thread setting for one of ``workers`` processes on this machine (empty if the user set one)."""
    if "OMP_NUM_THREADS" in os.environ or workers <= 1:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}


def _gpu_environment(index: int, device: str | None) -> dict[str, str]:
    if device != "cuda":
        return {}
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = ([d for d in visible.split(",") if d.strip()] if visible
               else [str(i) for i in range(torch.cuda.device_count())])
    return {"CUDA_VISIBLE_DEVICES": devices[index % len(devices)]} if devices else {}


def spawn_workers(argv: list[str], count: int, *, study_dir: Path, device: str | None) -> list[Worker]:
    """Start workers 1..count; ``argv`` is the command's own options (without ``--workers``)."""
    workers = []
    for index in range(1, count + 1):
        log = study_dir / f"worker-{index}.log"
        command = [sys.executable, "-m", "merc_bench.cli", "tune", *argv, "--workers", "1", "--worker-index", str(index)]
        environment = os.environ | share_cores(count + 1) | _gpu_environment(index, device)
        with open(log, "w") as stream:  # the child keeps its own descriptor
            process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, env=environment)
        workers.append(Worker(index, process, log))
    return workers


def wait_for_workers(workers: list[Worker], console: Any = None) -> list[Worker]:
    """Wait for every worker; the ones that exited with an error."""
    failed = []
    for worker in workers:
        code = worker.process.wait()
        if code != 0:
            failed.append(worker)
            if console is not None:
                console.print(f"worker {worker.index} exited with code {code}; see {worker.log}", markup=False)
    return failed


def stop_workers(workers: list[Worker]) -> None:
    """Stop workers still running (the first process was interrupted); their trials are retried later."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.terminate()
    for worker in workers:
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.process.kill()
