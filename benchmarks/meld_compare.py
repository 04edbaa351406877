"""Real MELD, text only: every recipe side by side through ``merc_bench.compare`` (clean protocol).

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
   the next (recipe, seed) pair — slowest recipes first — as ``merc_bench.compare([RECIPE],
   seeds=1, overrides=[..., "training.seed=S"])``; the comparison then reads every seed from the cache.
   On 2 cores two one-thread jobs beat one two-thread process: the recurrent models barely use a
   second thread.

5. With ``--features DIR`` the features are that prepared folder instead (e.g. the output of
   ``merc-bench data prepare meld --finetune``): the block then also gives the context-free
   references on the same features — the majority class, a logistic regression on the utterance
   vectors (as ``meld_text.py``), and, for fine-tuned features, the fine-tuned classifier's own
   utterance-level scores from the manifest — and a paired bootstrap of every recipe against the
   logistic regression (its deterministic predictions repeated for each seed).

Appends the comparison table with the machine facts and the exact command to benchmarks/RESULTS.md.

    python benchmarks/meld_compare.py --jobs 2             # all recipes, 5 seeds
    python benchmarks/meld_compare.py --recipes sdt,early-fusion --seeds 2 --no-write
    python benchmarks/meld_compare.py --features /tmp/meld-ft --work /tmp/merc-bench-meld-ft --jobs 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import io
import multiprocessing
import shlex
import time
from pathlib import Path

import numpy as np

from machine import append_results, git_commit, machine_facts  # benchmarks/machine.py, beside this script
from meld_text import fit_logistic, flat, references  # benchmarks/meld_text.py: the context-free references

import merc_bench
from merc_bench.feature_store import read_corpus, read_manifest
from merc_bench.pipeline import load_predictions
from merc_bench.prepare import prepare_command
from merc_bench.significance import paired_bootstrap

ROOT = Path(__file__).resolve().parents[1]
MELD_DIR = ROOT.parent / "shared" / "data" / "meld"
ALL = "sdt,summer,dialoguernn,dialoguegcn,mmgcn,multiemo,early-fusion,late-fusion"
# Seconds per seed measured at this setting with one thread (RESULTS.md): the order jobs take them in.
SLOWEST_FIRST = ["dialoguegcn", "summer", "multiemo", "dialoguernn", "mmgcn", "sdt", "late-fusion", "early-fusion"]


def _train_one(recipe: str, seed: int, common: dict, out: Path) -> str:
    """One (recipe, seed) into the seed cache, in a one-thread worker process."""
    import torch

    torch.set_num_threads(1)
    merc_bench.compare([recipe], seeds=1, tsne="none", out=out,
                       **dict(common, overrides=[*common["overrides"], f"training.seed={seed}"]))
    return f"filled {recipe} seed {seed}"


def fill_cache(recipes: list[str], seeds: int, jobs: int, common: dict, work: Path) -> float:
    """Train every (recipe, seed) into the seed cache with ``jobs`` one-thread processes; returns seconds."""
    order = sorted(recipes, key=lambda r: SLOWEST_FIRST.index(r) if r in SLOWEST_FIRST else -1)
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: its own torch thread pool
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(_train_one, recipe, seed, common, work / "fill" / f"{recipe}-{seed}")
                   for recipe in order for seed in range(seeds)]
        for future in futures:
            print(future.result(), flush=True)  # raises the first failure
    return time.perf_counter() - started


def _features_line(prepared: Path, given: bool) -> str:
    if not given:
        return "features: `merc-bench data prepare meld --from ../shared/data/meld` (minilm, 384-d)."
    provenance = read_manifest(prepared)["provenance"]
    encoder, finetune = provenance["text_encoder"], provenance.get("finetune")
    line = f"features: the prepared folder `{prepared}` ({encoder['name']}, {encoder['dimension']}-d"
    if finetune is None:
        return line + ", frozen)."
    options = " ".join(f"{key}={value}" for key, value in finetune["config"].items())
    return (line + f", fine-tuned on train: {options}; epoch {finetune['selected_epoch']} selected on dev, "
            f"dev w-F1 {100 * finetune['dev']['weighted_f1']:.2f}; {finetune['epoch_seconds_total'] / 60:.1f} min "
            "of fine-tuning).")


def reference_block(prepared: Path, comparison: merc_bench.Comparison, recipes: list[str]) -> str:
    """Context-free references on the same features, and every recipe against the logistic regression."""
    corpus = read_corpus(prepared)
    fitted = fit_logistic(corpus)  # once: its scores in the reference table, its predictions in the paired tests
    rows = references(corpus, fitted)
    finetune = read_manifest(prepared)["provenance"].get("finetune")
    lines = ["| reference (context-free, deterministic) | dev w-F1 | test w-F1 | test acc | test macro-F1 |",
             "|---|---|---|---|---|"]
    for name, by_split in rows.items():
        dev, test = by_split["dev"], by_split["test"]
        lines.append(f"| {name} | {100 * dev['weighted_f1']:.2f} | {100 * test['weighted_f1']:.2f} | "
                     f"{100 * test['accuracy']:.2f} | {100 * test['macro_f1']:.2f} |")
    if finetune is not None and "head_scores" in finetune:
        head = finetune["head_scores"]
        lines.append(f"| the fine-tuned classifier itself (its head, measured after selection) | "
                     f"{100 * head['dev']['weighted_f1']:.2f} | {100 * head['test']['weighted_f1']:.2f} | "
                     f"{100 * head['test']['accuracy']:.2f} | — |")
    test_x, test_y = flat(corpus, "test")  # the utterance order the runs wrote their predictions in
    logistic = fitted[0].predict(test_x)
    lines += ["", "| recipe | Δw-F1 vs logistic regression | p (paired bootstrap over test dialogues) |", "|---|---|---|"]
    for recipe in recipes:
        if recipe not in comparison.runs:
            continue
        saved = load_predictions(comparison.runs[recipe].out_dir / "predictions.npz")
        if not np.array_equal(saved["labels"], test_y):
            raise SystemExit(f"{recipe}: its test predictions are not in the corpus' utterance order")
        repeated = np.broadcast_to(logistic, saved["predictions"].shape)
        test = paired_bootstrap(saved["labels"], saved["predictions"], repeated, saved["dialogue"],
                                num_classes=len(corpus.info.classes))
        lines.append(f"| {recipe} | {100 * test.difference:+.2f} | {test.p_value:.3f}{' †' if test.p_value < 0.05 else ''} |")
    return "\n".join(lines)


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
    parser.add_argument("--features", type=Path, help="a prepared MELD folder to use instead of frozen MiniLM")
    args = parser.parse_args()

    from rich.console import Console

    prepared = args.features if args.features is not None else args.work / "meld-minilm"
    if args.features is None:
        prepare_command(dataset="meld", target=prepared, source=MELD_DIR, url=None, text_encoder="minilm",
                        console=Console(file=io.StringIO(), width=120))
    recipes = args.recipes.split(",")
    reference = "sdt" if "sdt" in recipes else recipes[0]
    out = args.work / "compare"
    common = {"dataset": "meld", "data_dir": prepared, "modalities": "text", "epochs": args.epochs, "track": False,
              "overrides": [f"model.hidden_size={args.hidden}", f"training.lr={args.lr:g}",
                            f"training.batch_size={args.batch}", "training.standardize_features=true"]}
    filled = fill_cache(recipes, args.seeds, args.jobs, common, args.work) if args.jobs > 1 else None
    started = time.perf_counter()
    comparison = merc_bench.compare(recipes, seeds=args.seeds, reference=reference, tsne=recipes[0], out=out,
                                    console=Console(), **common)
    seconds = time.perf_counter() - started
    # The same run from the command line, for the record.
    command = ["merc-bench", "compare", *recipes, "--dataset", "meld", "--data-dir", str(prepared), "--modalities",
               "text", "--epochs", str(args.epochs), "--no-track",
               *[part for value in common["overrides"] for part in ("--set", value)],
               "--seeds", str(args.seeds), "--reference", reference, "--tsne", recipes[0], "--out", str(out)]
    table = (comparison.out_dir / "comparison.md").read_text()
    block = "\n".join([
        f"### MELD text only: every recipe through `merc-bench compare` — {dt.date.today().isoformat()}, "
        f"commit {git_commit()}",
        f"Machine: {machine_facts()}. Wall time {seconds / 60:.1f} min for {len(recipes)} recipes × {args.seeds} seeds"
        + (f", after {filled / 60:.1f} min filling the seed cache with {args.jobs} one-thread jobs "
           f"(`--jobs {args.jobs}`)." if filled is not None else "."),
        f"Command (`merc_bench.compare` from Python; the same as): `{shlex.join(command)}`; "
        + _features_line(prepared, args.features is not None),
        "",
        table.strip(),
        "",
        *([reference_block(prepared, comparison, recipes), ""] if args.features is not None else []),
    ])
    print(block)
    if not args.no_write:
        append_results(block)


if __name__ == "__main__":
    main()
