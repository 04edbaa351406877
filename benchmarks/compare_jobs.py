"""Wall clock of ``merc-bench compare ... --jobs 1`` against ``--jobs K``, same numbers (issue 18 item 2).

Runs the same comparison twice in this process, each with its own empty seed cache (so everything
trains), first with one process, then with K worker processes, and checks that the tables are
identical. The ratio of the two wall clocks is the speed-up; the machine's other tenants hit the
two runs at different times, so run it on quiet cores and read one ratio with care.

    python benchmarks/compare_jobs.py                                  # synthetic MELD shape
    python benchmarks/compare_jobs.py --dataset meld --data-dir /tmp/meld-ft --modalities text \\
        --set training.standardize_features=true
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time

import merc_bench
from machine import append_results, git_commit, machine_facts  # benchmarks/machine.py

SYNTHETIC = ["dataset.shape=meld", "dataset.train_dialogues=300", "dataset.dev_dialogues=50",
             "dataset.test_dialogues=100"]
COMMON = ["model.hidden_size=256", "training.lr=0.0003", "training.batch_size=16"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="sdt,early-fusion,late-fusion,mmgcn")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--modalities", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    overrides = [*(SYNTHETIC if args.dataset is None else []), *COMMON, *args.overrides]
    recipes = args.recipes.split(",")
    seconds, tables = {}, {}
    for jobs in (1, args.jobs):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["MERC_BENCH_CACHE"] = cache
            started = time.perf_counter()
            result = merc_bench.compare(recipes, dataset=args.dataset, data_dir=args.data_dir, seeds=args.seeds,
                                        epochs=args.epochs, modalities=args.modalities, overrides=overrides,
                                        jobs=jobs, track=False, tsne="none", out=f"{cache}/out")
            seconds[jobs] = time.perf_counter() - started
            tables[jobs] = result.to_frame().set_index("model")[["w-F1 mean", "w-F1 std", "Δw-F1", "p"]]
            print(f"--jobs {jobs}: {seconds[jobs]:.1f} s\n{tables[jobs].to_string()}", flush=True)
    same = tables[1].equals(tables[args.jobs])
    block = "\n".join([
        f"\n### compare --jobs {args.jobs} vs --jobs 1 — {dt.date.today().isoformat()}, commit {git_commit()}",
        f"Machine: {machine_facts()}. Command: `python benchmarks/compare_jobs.py {' '.join(sys.argv[1:])}` "
        f"(recipes {', '.join(recipes)}; {args.seeds} seeds, {args.epochs} epochs; settings {' '.join(overrides)}).",
        "",
        f"| --jobs 1 wall s | --jobs {args.jobs} wall s | speed-up | same table |",
        "|---|---|---|---|",
        f"| {seconds[1]:.1f} | {seconds[args.jobs]:.1f} | {seconds[1] / seconds[args.jobs]:.2f}× | "
        f"{'yes' if same else 'NO'} |",
    ])
    print(block)
    if not args.no_record:
        append_results(block)


if __name__ == "__main__":
    main()
