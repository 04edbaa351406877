"""Seconds per training epoch and peak memory of whole recipes at paper sizes (CPU).

Each recipe runs in its own process (so its peak RSS is its own) on MELD-shaped synthetic data
(1152 train dialogues with MELD's length distribution, or with `--profile paper-meld` the paper profile's 1,038) with the recipe's MELD-family batch size.
After one untimed warm-up batch, the next ``--batches`` are timed and scaled to a full epoch: the
1024-wide SUMMER (``summer-wide``, 466 M parameters, batch 100) takes many minutes per epoch on 2
cores. A distiller with a teacher (SUMMER's IKD) gets an untrained teacher of the right shape
attached, so each timed step includes the teacher's forward pass, as in real training; training the
teacher is not timed.

    python benchmarks/recipe_epoch.py                       # sdt and summer, 3 batches each
    python benchmarks/recipe_epoch.py --recipes summer-small --batches 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from machine import append_results, git_commit, machine_facts  # noqa: E402  benchmarks/machine.py, beside this script

from merc_bench.model import build_model  # noqa: E402
from merc_bench.plugins import get_registry  # noqa: E402
from merc_bench import teachers  # noqa: E402
from merc_bench.pipeline import Prepared, load_dataset, resolve  # noqa: E402
from merc_bench.trainer import Trainer, seed_everything  # noqa: E402


def corpus_overrides(profile: str) -> list[str]:
    """The planted MELD shape at 1152 train dialogues (earlier blocks), or a paper profile's own train split."""
    small = ["dataset.dev_dialogues=1", "dataset.test_dialogues=1"]
    if profile == "planted":
        return ["dataset.shape=meld", "dataset.train_dialogues=1152", *small]
    return [f"dataset.profile={profile}", *small]


def measure(recipe: str, batch_limit: int, profile: str) -> str:
    registry = get_registry()
    # No memory guard: it counts a best-epoch copy of the weights this timing loop never makes, and
    # refuses summer-wide (21.2 GiB estimated) on a 24 GiB machine whose measured peak is lower.
    corpus, choice, rest = load_dataset(registry, "synthetic", corpus_overrides(profile))
    prepared = Prepared(resolve(registry, recipe, corpus, dataset=choice, overrides=rest, flags={"device": "cpu"},
                                check_memory=False), corpus)
    trainer = Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry, device=torch.device("cpu"))
    seed_everything(0)
    model, distiller = trainer.build()
    if callable(getattr(distiller, "attach_teacher", None)):
        teacher_config = teachers.teacher_config(prepared.config, prepared.corpus.info, registry)
        teacher, _ = build_model(teacher_config, prepared.corpus.info, registry)
        distiller.attach_teacher(teacher, teacher_config.model.hidden_size)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=prepared.config.training.lr,
                                 weight_decay=prepared.config.training.weight_decay, fused=True)
    batches = trainer._batches(prepared.corpus.train, np.random.default_rng(0))
    timed = batches[1:batch_limit + 1]
    model.train(), distiller.train()
    # The first batch runs untimed: its allocations made three timed SDT batches read 236 s/epoch
    # where twenty read 50 s. It is the epoch's first batch, so it is still counted in len(batches).
    seconds, utterances = 0.0, 0
    for step, batch in enumerate(batches[:1] + timed):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        total, _, _ = trainer.loss(model, distiller, batch)
        total.backward()
        optimizer.step()
        if step:
            seconds += time.perf_counter() - started
            utterances += int(batch.mask.sum())
    total_parameters = sum(p.numel() for p in model.parameters())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    epoch = seconds * len(batches) / len(timed)
    print(f"{recipe:14} {epoch:8.1f} s/epoch  {utterances / seconds:6.1f} utt/s  peak RSS {peak:.0f} MiB", flush=True)
    return (f"| {recipe} | {total_parameters / 1e6:.1f} M | {prepared.config.training.batch_size} | "
            f"{len(timed)} of {len(batches)} | {epoch:.1f} | {utterances / seconds:.0f} | {peak:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="sdt,summer")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--profile", default="planted", choices=["planted", "paper-meld", "paper-iemocap"],
                        help="synthetic corpus: planted MELD shape with 1152 train dialogues, or a paper profile")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--row-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row_only:
        print("ROW " + measure(args.recipes, args.batches, args.profile))
        return
    rows = []
    for recipe in args.recipes.split(","):
        command = [sys.executable, __file__, "--recipes", recipe, "--batches", str(args.batches), "--profile", args.profile,
                   "--row-only"]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        print(done.stdout.rsplit("ROW ", 1)[0], end="", flush=True)
        rows.append(done.stdout.rsplit("ROW ", 1)[1].strip())
    commit = git_commit()
    block = "\n".join([
        f"\n### Recipe train epoch, CPU, MELD shape ({args.profile}) — {dt.date.today().isoformat()}, commit {commit}",
        f"Machine: {machine_facts()}. Command: `python benchmarks/recipe_epoch.py {' '.join(sys.argv[1:])}` "
        "(timed batches scaled to an epoch; each recipe in its own process).",
        "",
        "| recipe | parameters | batch | batches timed | s/epoch | utt/s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ])
    print(block)
    if not args.no_record:
        append_results(block)


if __name__ == "__main__":
    main()
