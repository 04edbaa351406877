"""``compare --jobs K`` / ``ablate --jobs K``: every (row, seed) pair trained in K worker processes.

A comparison trains every seed of every row one after the other in one process; on a machine with
several cores, recurrent baselines use them poorly, and two multi-threaded jobs sharing the cores
slow each other down 10–100× (issue 18). Here the pairs go to K worker processes with
``cores // K`` torch threads each, the slowest first (estimated as trainable parameters × epochs,
doubled for a recipe that trains a teacher), so the longest pair does not start last. Each worker
trains its pair exactly as :func:`merc_bench.pipeline.train` trains one seed — the same seed key,
teacher, checkpoint and fused test representations when the t-SNE plot needs them — and stores it
in the seed cache (:mod:`merc_bench.seed_cache`). The grid then runs as it always does and finds
every finished pair there: one MLflow parent, the rows' runs and seeds as usual (their curves come
from the cache), the same table. A pair that fails (a diverged seed, anything else) is reported
with its error and leaves the others untouched; the grid then trains it again in the main process,
where a divergence is recorded as the row's failure exactly as without ``--jobs``.

Memory: every worker holds its own copy of the dataset and one model in training, so the peak is
about K × (one pair's training memory + the dataset's arrays) plus the main process.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from rich.markup import escape

from merc_bench.config import RunConfig
from merc_bench.data import Corpus

__all__ = ["train_pairs", "threads_per_job"]

_worker: dict[str, Any] = {}


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of ``jobs`` workers: the cores shared evenly, at least one."""
    return max(1, (os.cpu_count() or 1) // jobs)


def train_pairs(configs: list[RunConfig], corpus: Corpus, *, registry: Any, cache_root: Path, jobs: int,
                tsne: list[bool], console: Any = None) -> dict[tuple[int, int], str]:
    """Train every (config, seed) pair into the seed cache at ``cache_root`` with ``jobs`` processes.

    ``tsne[i]``: config i's first seed keeps its fused test representations. Returns the failures,
    (config index, seed) -> message; the successes are in the cache.
    """
    pairs = [(index, config.training.seed + offset) for index, config in enumerate(configs)
             for offset in range(config.seeds)]
    cost = {index: _cost(config, corpus, registry) for index, config in enumerate(configs)}
    pairs.sort(key=lambda pair: -cost[pair[0]])  # slowest first
    failures: dict[tuple[int, int], str] = {}
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools mid-use
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker,
                             initargs=(corpus, str(cache_root), threads_per_job(jobs))) as pool:
        running = {pool.submit(_train_pair, configs[index].model_dump(mode="json"), seed,
                               tsne[index] and seed == configs[index].training.seed): (index, seed)
                   for index, seed in pairs}
        done_count = 0
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index, seed = running.pop(future)
                done_count += 1
                error = future.exception()
                message = f"{type(error).__name__}: {error}" if error is not None else future.result()
                if message:
                    failures[(index, seed)] = message
                if console is not None:
                    state = f"failed: {message}" if message else "done"
                    console.print(escape(f"[jobs {jobs}] {configs[index].recipe} seed {seed} {state} "
                                         f"({done_count}/{len(pairs)}, {time.perf_counter() - started:.0f} s)"))
    return failures


def _cost(config: RunConfig, corpus: Corpus, registry: Any) -> float:
    """Trainable parameters × epochs (× 2 with a teacher), counted on the meta device: no weights allocated."""
    import torch

    from merc_bench.model import build_model
    from merc_bench.teachers import needs_teacher

    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        model, distiller = build_model(config, corpus.info, registry, check_size=False)
    trainable = sum(p.numel() for module in (model, distiller) for p in module.parameters() if p.requires_grad)
    return float(trainable) * config.training.epochs * (2 if needs_teacher(config, registry) else 1)


def _start_worker(corpus: Corpus, cache_root: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _worker.update(corpus=corpus, cache_root=Path(cache_root))


def _train_pair(values: dict[str, Any], seed: int, keep_embeddings: bool) -> str:
    """One seed of one configuration into the cache, as ``train`` does it; "" or the failure's message."""
    from merc_bench.errors import UserError
    from merc_bench.pipeline import train
    from merc_bench.plugins import get_registry
    from merc_bench.seed_cache import SeedCache

    config = RunConfig.model_validate(values)
    config = config.model_copy(update={"seeds": 1, "training": config.training.model_copy(update={"seed": seed})})
    try:
        with tempfile.TemporaryDirectory(prefix="merc-bench-job-") as staging:  # the checkpoint, linked into the cache
            train(config, _worker["corpus"], registry=get_registry(), cache=SeedCache(_worker["cache_root"]),
                  keep_embeddings=keep_embeddings, checkpoint_dir=Path(staging))
    except UserError as error:  # a diverged seed, a bad option: reported, the other pairs go on
        return str(error)
    return ""
