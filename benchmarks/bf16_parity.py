"""Does bf16 autocast on the CPU learn the same as fp32? (issue 18 item 1)

Trains each recipe on the embedded synthetic data (planted profile, its default size) with
``training.precision=fp32`` and ``bf16``, the same seeds, and compares test weighted F1: the
difference of the means against the seed spread (the larger of the two standard deviations).
Sizes are reduced (``model.hidden_size``) so that both recipes finish in minutes on two cores;
the claim tested is about the arithmetic, not the size. Seconds are recorded too, measured in the
same process one run after the other (noisy on a shared machine: the ratio is indicative only;
``sdt_epoch.py --bf16`` alternates step by step for speed).

    python benchmarks/bf16_parity.py                       # sdt and summer, 3 seeds, 10 epochs
    python benchmarks/bf16_parity.py --recipes sdt --seeds 2 --epochs 3 --no-record
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

import numpy as np

import merc_bench
from machine import append_results, git_commit, machine_facts  # benchmarks/machine.py
from merc_bench.trainer import bf16_problem

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="sdt,summer")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=128, help="model.hidden_size for every recipe")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    problem = bf16_problem(torch.device("cpu"))
    if problem:
        sys.exit(problem)
    rows = []
    for recipe in args.recipes.split(","):
        measured = {}
        for precision in ("fp32", "bf16"):
            started = time.perf_counter()
            result = merc_bench.run(recipe, seeds=args.seeds, epochs=args.epochs, device="cpu", track=False,
                                    out=f"/tmp/merc-bench-bf16-parity/{recipe}-{precision}",
                                    overrides=[f"training.precision={precision}", f"model.hidden_size={args.hidden}",
                                               "training.save_checkpoint=false"])
            scores = 100 * np.asarray(result.summary["test"]["weighted_f1"]["per_seed"])
            measured[precision] = (scores, time.perf_counter() - started)
            print(f"{recipe:8} {precision}: test w-F1 {scores.mean():.2f} ± {scores.std(ddof=1):.2f} "
                  f"(seeds {', '.join(f'{s:.2f}' for s in scores)}), {measured[precision][1]:.0f} s", flush=True)
        (full, full_s), (half, half_s) = measured["fp32"], measured["bf16"]
        spread = max(full.std(ddof=1), half.std(ddof=1))
        delta = half.mean() - full.mean()
        rows.append(f"| {recipe} | {full.mean():.2f} ± {full.std(ddof=1):.2f} | {half.mean():.2f} ± "
                    f"{half.std(ddof=1):.2f} | {delta:+.2f} | {spread:.2f} | "
                    f"{'yes' if abs(delta) <= spread else 'no'} | {full_s:.0f} | {half_s:.0f} |")
    block = "\n".join([
        f"\n### bf16 vs fp32 on the CPU, learning parity — {dt.date.today().isoformat()}, commit {git_commit()}",
        f"Machine: {machine_facts()}. Command: `python benchmarks/bf16_parity.py {' '.join(sys.argv[1:])}` "
        f"(synthetic planted data, {args.seeds} seeds, {args.epochs} epochs, model.hidden_size={args.hidden}).",
        "",
        "| recipe | fp32 test w-F1 | bf16 test w-F1 | Δ (bf16 − fp32) | seed spread (larger std) | within spread |"
        " fp32 s | bf16 s |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ])
    print(block)
    if not args.no_record:
        append_results(block)


if __name__ == "__main__":
    main()
