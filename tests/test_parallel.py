"""``compare --jobs``: (recipe, seed) pairs in worker processes give the table a single process gives."""

import json

import numpy as np
import pytest
import torch

import merc_bench
from merc_bench.parallel import train_pairs
from merc_bench.pipeline import load_dataset, resolve, train
from merc_bench.plugins import get_registry
from merc_bench.seed_cache import SeedCache

TINY = ["dataset.train_dialogues=10", "dataset.dev_dialogues=4", "dataset.test_dialogues=4", "model.hidden_size=16"]


@pytest.fixture
def one_thread():
    """Workers get cores // jobs threads (1 on the CI's 2 cores): the single process too, for equal sums."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_jobs_give_the_same_table_as_one_process(tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr("merc_bench.parallel.threads_per_job", lambda jobs: 1)
    runs = {}
    for jobs in (1, 2):
        monkeypatch.setenv("MERC_BENCH_CACHE", str(tmp_path / f"cache-{jobs}"))
        runs[jobs] = merc_bench.compare(["bigru-concat", "early-fusion"], seeds=2, epochs=2, jobs=jobs, track=False,
                                        tsne="early-fusion", overrides=TINY, out=tmp_path / f"jobs-{jobs}")
    columns = ["w-ACC mean", "w-F1 mean", "w-F1 std", "macro-F1 mean", "Δw-F1", "p"]
    one, two = (runs[j].to_frame().set_index("model")[columns] for j in (1, 2))
    assert one.equals(two), (one, two)
    for recipe in ("bigru-concat", "early-fusion"):
        single, parallel = (json.loads(next((tmp_path / f"jobs-{j}").glob(f"*{recipe}/results.json")).read_text())
                            for j in (1, 2))
        assert [r["history"] for r in single["runs"]] == [r["history"] for r in parallel["runs"]]
        assert all(r["reused"] for r in parallel["runs"]) and all(r["checkpoint"] for r in parallel["runs"])
    # The t-SNE plot's fused representations came through the cache from the worker that trained seed 0.
    assert (tmp_path / "jobs-2" / "tsne_early-fusion.png").is_file()


def test_a_failing_pair_is_reported_and_the_others_are_kept(tmp_path, one_thread):
    registry = get_registry()
    corpus, choice, rest = load_dataset(registry, None, TINY)
    good = resolve(registry, "bigru-concat", corpus, dataset=choice, overrides=rest, flags={"training.epochs": 1})
    # All-zero class weights make the weighted cross-entropy 0/0: the seed diverges at its first step.
    bad = resolve(registry, "early-fusion", corpus, dataset=choice, flags={"training.epochs": 1},
                  overrides=[*rest, "training.class_weights=[0,0,0,0,0,0,0]"])
    failures = train_pairs([good, bad], corpus, registry=registry, cache_root=tmp_path / "seeds", jobs=2,
                           tsne=[False, False])
    assert list(failures) == [(1, 0)] and "training diverged in seed 0, epoch 1, step 1" in failures[(1, 0)]
    stored = sorted(p.suffix for p in (tmp_path / "seeds").glob("*.*"))
    assert stored == [".json", ".npz", ".pt"]  # the good pair: metrics, predictions, checkpoint
    # Stored under the key a run of the same configuration looks for: it is reused, not trained again.
    again = train(good, corpus, registry=registry, cache=SeedCache(tmp_path / "seeds"))
    assert again.summary["runs"][0]["reused"] and np.isfinite(again.summary["test"]["weighted_f1"]["mean"])


def test_jobs_must_be_a_positive_count(tmp_path):
    with pytest.raises(merc_bench.UserError, match="--jobs 0 must be a whole number from 1 to 256"):
        merc_bench.compare(["bigru-concat"], seeds=1, epochs=1, jobs=0, track=False, overrides=TINY,
                           out=tmp_path / "x")
