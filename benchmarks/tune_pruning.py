"""A study over the SUMMER-component space with median pruning and without: wall time and best dev w-F1.

The space is ``examples/tune-space.toml`` on the ``summer-small`` recipe: mixer ∈ {sdmoe,
transformer, bigru}, fuser ∈ {hcmf, cross-modal-transformer, concat}, distiller ∈ {ikd,
self-distillation, none}, hidden size 64, plus each component's own options and lr, weight decay,
batch size and head dropout. Both studies use the same sampler seed (so their first, random trials
are the same configurations), the embedded synthetic MELD-shaped corpus, no MLflow, and each its
own teacher cache (IKD's teachers are trained inside the trials that need them, never shared
between the two studies). Each study runs through ``merc_bench.tune`` in its own process, one after
the other.

Besides wall time, "epochs trained" (the sum over trials of the epochs each ran) measures the
work pruning saved independently of how busy the machine was.

    python benchmarks/tune_pruning.py                          # 30 trials each, 10 epochs; appends to RESULTS.md
    python benchmarks/tune_pruning.py --trials 6 --epochs 4 --no-record
    python benchmarks/tune_pruning.py --threads 1 --note "machine shared with other jobs"
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import multiprocessing
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from machine import append_results, git_commit, machine_facts  # noqa: E402  benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "_out" / "tune_pruning"
SPACE = ROOT / "examples" / "tune-space.toml"


def _study_process(pruner: str, trials: int, epochs: int, seed: int, threads: int | None, folder: Path) -> None:
    """The study, through ``merc_bench.tune``, in a fresh process with its own teacher cache."""
    os.environ["MERC_BENCH_CACHE"] = str(folder / "cache")
    if threads:
        import torch

        torch.set_num_threads(threads)
    import merc_bench

    merc_bench.tune("summer-small", space=SPACE, trials=trials, epochs=epochs, pruner=pruner, seed=seed,
                    study=f"pruning-{pruner}", out=folder, no_track=True)


def run_study(pruner: str, trials: int, epochs: int, seed: int, threads: int | None) -> dict:
    """Run one study in its own process; its wall time and what its storage holds afterwards."""
    folder = OUT / pruner
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(
        target=_study_process, args=(pruner, trials, epochs, seed, threads, folder))
    child.start()
    child.join()
    if child.exitcode != 0:
        sys.exit(f"the {pruner} study's process exited with {child.exitcode}")
    seconds = time.perf_counter() - started
    study = optuna.load_study(study_name=f"pruning-{pruner}", storage=f"sqlite:///{folder / 'study.db'}")
    count = {state: sum(1 for t in study.trials if t.state == state) for state in TrialState}
    best = study.best_trial
    chosen = "/".join(best.user_attrs["config"][slot]["name"] for slot in ("mixer", "fuser", "distiller"))
    epochs_run = sum(len(t.intermediate_values) for t in study.trials)
    print(f"{pruner:6} {seconds:7.1f} s  best dev w-F1 {best.value:.4f} (trial {best.number}, {chosen})  "
          f"{count[TrialState.PRUNED]} pruned, {count[TrialState.FAIL]} failed, {epochs_run} epochs", flush=True)
    return {"pruner": pruner, "seconds": seconds, "best": best.value, "trial": best.number, "chosen": chosen,
            "complete": count[TrialState.COMPLETE], "pruned": count[TrialState.PRUNED],
            "failed": count[TrialState.FAIL], "epochs": epochs_run}


def _without_note(argv: list[str]) -> list[str]:
    """The command's arguments without --note (recorded as text of its own)."""
    kept, skip = [], False
    for argument in argv:
        if skip:
            skip = False
        elif argument == "--note":
            skip = True
        elif not argument.startswith("--note="):
            kept.append(argument)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads of each study's process (OMP_NUM_THREADS); "
                        "1 keeps timings stable on a machine other jobs share")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--note", default="", help="a remark recorded with the result (e.g. a busy machine)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results = [run_study(pruner, args.trials, args.epochs, args.seed, args.threads) for pruner in ("none", "median")]
    load_after = os.getloadavg()[0]
    commit = git_commit()
    rows = [f"| {r['pruner']} | {r['complete']} / {r['pruned']} / {r['failed']} | {r['epochs']} | "
            f"{r['seconds']:.0f} | {100 * r['best']:.2f} | {r['trial']}: {r['chosen']} |" for r in results]
    none, median = results
    block = "\n".join([
        f"\n### Tuning: median pruning vs none, SUMMER-component space — {dt.date.today().isoformat()}, "
        f"commit {commit}",
        f"Machine: {machine_facts()}; the studies ran with "
        f"{args.threads or os.environ.get('OMP_NUM_THREADS') or 'torch default'} thread(s). "
        f"Command: `{shlex.join(['python', 'benchmarks/tune_pruning.py', *_without_note(sys.argv[1:])])}` "
        f"({args.trials} trials per study, {args.epochs} epochs per trial, `summer-small` with "
        "`examples/tune-space.toml`, synthetic MELD shape 40/12/24 dialogues, no MLflow; 1-minute load average "
        f"{load_before:.1f} before, {load_after:.1f} after)."
        + (f" {args.note}" if args.note else ""),
        "",
        "| pruner | complete / pruned / failed | epochs trained | wall s | best dev w-F1 "
        "| best trial: mixer/fuser/distiller |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Median pruning ran {median['epochs']} of {none['epochs']} epochs ({median['epochs'] / none['epochs']:.0%}) "
        f"in {median['seconds'] / none['seconds']:.0%} of the wall time; best dev w-F1 "
        f"{100 * median['best']:.2f} vs {100 * none['best']:.2f} without pruning.",
    ])
    print(block)
    if not args.no_record:
        append_results(block)


if __name__ == "__main__":
    main()
