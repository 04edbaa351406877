"""Real MELD, text only: every recipe side by side through ``merc-bench compare`` (clean protocol).

1. ``merc-bench data prepare meld`` from ../shared/data/meld with the ``minilm`` text encoder
   (all-MiniLM-L6-v2, 384-d); a second call reuses the cached embeddings.
2. ``merc-bench compare`` of all recipes on the text modality, the same 5 seeds for every recipe,
   validation-selected epochs, test once per seed, a paired bootstrap over test dialogues against
   ``sdt``. Real MELD ships no audio/visual features here (reference-models.md §1), so every
   multimodal fuser runs with its single-modality path: the table compares context modelling and
   training recipes on identical text features, not multimodal fusion.
3. Published schedules do not fit 2 CPU cores (paper-size SUMMER: ~11 min per epoch on MELD), so
   every recipe runs with one reduced setting, recorded with the command: hidden size 256, lr 3e-4,
   batch 16 dialogues, 15 epochs, features standardised with the training split's statistics
   (``training.standardize_features``; see meld_text.py for why raw unit-norm MiniLM vectors are
   drowned by SDT's speaker/position embeddings). A common setting is a choice: published
   learning rates range over 5e-6 (SDT, MELD) to 1e-3 (MMGCN, MELD) for 50–150 epochs.

4. With ``--jobs K`` (K > 1) the seed cache is filled first by K one-thread processes, each taking
   the next (recipe, seed) pair — slowest recipes first — as ``merc-bench --threads 1 compare RECIPE
   --set training.seed=S --seeds 1``; the comparison command then reads every seed from the cache.
   On 2 cores two one-thread jobs beat one two-thread process: the recurrent models barely use a
   second thread.

Appends the comparison table with the machine facts and the exact command to benchmarks/RESULTS.md.

    python benchmarks/meld_compare.py --jobs 2             # all recipes, 5 seeds
    python benchmarks/meld_compare.py --recipes sdt,early-fusion --seeds 2 --no-write
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import io
import shlex
import subprocess
import sys
import time
from pathlib import Path

from machine import append_results, git_commit, machine_facts  # noqa: E402  benchmarks/machine.py, beside this script

from merc_bench.prepare import prepare_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MELD_DIR = ROOT.parent / "shared" / "data" / "meld"
ALL = "sdt,summer,dialoguernn,dialoguegcn,mmgcn,multiemo,early-fusion,late-fusion"
# Seconds per seed measured at this setting with one thread (RESULTS.md): the order jobs take them in.
SLOWEST_FIRST = ["dialoguegcn", "summer", "multiemo", "dialoguernn", "mmgcn", "sdt", "late-fusion", "early-fusion"]


def fill_cache(recipes: list[str], seeds: int, jobs: int, options: list[str], work: Path) -> float:
    """Train every (recipe, seed) into the seed cache with ``jobs`` one-thread processes; returns seconds."""
    order = sorted(recipes, key=lambda r: SLOWEST_FIRST.index(r) if r in SLOWEST_FIRST else -1)
    pairs = [(recipe, seed) for recipe in order for seed in range(seeds)]

    def train(pair: tuple[str, int]) -> None:
        recipe, seed = pair
        command = [sys.executable, "-m", "merc_bench.cli", "--threads", "1", "compare", recipe, *options,
                   "--set", f"training.seed={seed}", "--seeds", "1", "--tsne", "none",
                   "--out", str(work / "fill" / f"{recipe}-{seed}")]
        completed = subprocess.run(command, cwd=work, text=True, capture_output=True)
        if completed.returncode != 0:
            raise RuntimeError(f"{recipe} seed {seed} failed:\n{completed.stderr[-3000:]}")
        print(f"filled {recipe} seed {seed}", flush=True)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(train, pairs))  # raises the first failure
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/merc-bench-meld-text"))
    parser.add_argument("--recipes", default=ALL)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--no-write", action="store_true", help="print, do not append to RESULTS.md")
    parser.add_argument("--jobs", type=int, default=1, help="fill the seed cache with this many 1-thread processes")
    args = parser.parse_args()

    from rich.console import Console

    prepared = args.work / "meld-minilm"
    prepare_command(dataset="meld", target=prepared, source=MELD_DIR, url=None, text_encoder="minilm",
                    console=Console(file=io.StringIO(), width=120))
    recipes = args.recipes.split(",")
    out = args.work / "compare"
    options = [
        "--dataset", "meld", "--data-dir", str(prepared), "--modalities", "text", "--epochs", str(args.epochs),
        "--no-track", "--set", f"model.hidden_size={args.hidden}", "--set", f"training.lr={args.lr:g}",
        "--set", f"training.batch_size={args.batch}", "--set", "training.standardize_features=true",
    ]
    command = [
        sys.executable, "-m", "merc_bench.cli", "compare", *recipes, *options, "--seeds", str(args.seeds),
        "--reference", "sdt" if "sdt" in recipes else recipes[0], "--tsne", recipes[0], "--out", str(out),
    ]
    filled = fill_cache(recipes, args.seeds, args.jobs, options, args.work) if args.jobs > 1 else None
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=args.work, text=True, capture_output=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"compare failed ({completed.returncode}):\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}")
    print(completed.stdout[-3000:])
    table = (out / "comparison.md").read_text()
    commit = git_commit()
    shown = " ".join(shlex.quote(part) for part in ["merc-bench", *command[3:]])
    block = "\n".join([
        f"### MELD text only: every recipe through `merc-bench compare` — {dt.date.today().isoformat()}, "
        f"commit {commit}",
        f"Machine: {machine_facts()}. Wall time {seconds / 60:.1f} min for {len(recipes)} recipes × {args.seeds} seeds"
        + (f", after {filled / 60:.1f} min filling the seed cache with {args.jobs} one-thread jobs "
           f"(`--jobs {args.jobs}`)." if filled is not None else "."),
        f"Command (from `{args.work}`): `{shown}`; features: `merc-bench data prepare meld --from ../shared/data/meld`"
        " (minilm, 384-d).",
        "",
        table.strip(),
        "",
    ])
    print(block)
    if not args.no_write:
        append_results(block)


if __name__ == "__main__":
    main()
