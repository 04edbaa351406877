"""What the per-step divergence check costs: paper-size SDT epochs with and without it, one process.

The trainer checks after every optimiser step that the loss, every gradient and every updated weight
are finite (one fused ``torch._foreach_norm`` over gradients and weights, read once per epoch, so
no host sync per step). Its cost grows with the parameter count, not with the batch, so the
paper-size SDT (78 M parameters) at its MELD batch size (8 dialogues) is the worst realistic case.
Variants alternate within one process (check on, check off, on, off, …) and the ratio is taken over
the sums, since the machine is shared and noisy.

    python benchmarks/divergence_check.py                 # 3 rounds of 12 steps each
    python benchmarks/divergence_check.py --rounds 5 --dialogues 160
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import torch

from machine import append_results, git_commit, machine_facts  # noqa: E402  benchmarks/machine.py, beside this script

import merc_bench.trainer as trainer_module  # noqa: E402
from merc_bench.plugins import get_registry  # noqa: E402
from merc_bench.pipeline import prepare  # noqa: E402
from merc_bench.trainer import Trainer  # noqa: E402


def _no_check(gradients, weights):
    true = torch.ones((), dtype=torch.bool)
    return true, true


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dialogues", type=int, default=96, help="training dialogues (batch 8: dialogues/8 steps)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    registry = get_registry()
    prepared = prepare(registry, recipe="sdt", dataset="synthetic",
                       overrides=["dataset.shape=meld", f"dataset.train_dialogues={args.dialogues}",
                                  "dataset.dev_dialogues=1", "dataset.test_dialogues=1", "training.epochs=1",
                                  "training.save_checkpoint=false"], flags={"device": "cpu"})
    checked = trainer_module._finite
    seconds = {"checked": [], "unchecked": []}
    Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry).fit(0)  # warm-up
    for _ in range(args.rounds):
        for variant, function in (("checked", checked), ("unchecked", _no_check)):
            trainer_module._finite = function
            trainer = Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry)
            started = time.perf_counter()
            trainer.fit(0)
            seconds[variant].append(time.perf_counter() - started)
    trainer_module._finite = checked
    steps = -(-args.dialogues // prepared.config.training.batch_size)
    ratio = sum(seconds["checked"]) / sum(seconds["unchecked"])
    rows = "\n".join(f"| {name} | {', '.join(f'{s:.2f}' for s in values)} | {sum(values) / len(values) / steps:.3f} |"
                     for name, values in seconds.items())
    block = f"""### Divergence check per step: cost on paper-size SDT — {dt.date.today().isoformat()}
Machine: {machine_facts()}. Commit {git_commit()}. Command: `python benchmarks/divergence_check.py --rounds {args.rounds} --dialogues {args.dialogues}`
(paper-size `sdt`, MELD-shaped synthetic data, {args.dialogues} training dialogues = {steps} steps of batch 8 per
epoch; one epoch per measurement, variants alternated in one process, after a warm-up epoch).

| variant | seconds per epoch (each round) | seconds per step |
|---|---|---|
{rows}

Ratio checked / unchecked: **{ratio:.3f}** (sums over rounds).
"""
    print(block)
    if not args.no_record:
        append_results(block)


if __name__ == "__main__":
    main()
