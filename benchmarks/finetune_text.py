"""Time ``data prepare meld --finetune`` (MiniLM fine-tuned on MELD's train utterances) on this machine.

The budget (issue 15 item 1): the whole fine-tuning of MELD — 9,989 train utterances, the epochs of
the configuration, a dev evaluation per epoch, then extracting all 13,708 utterances — within
30 minutes on 2 CPU cores. By default this script measures instead of running it all: one epoch's
training steps on a random subset of train utterances and the evaluation speed on a subset of dev,
with the very loop ``data prepare`` uses (:func:`merc_bench.text_finetune._fit`, checkpoints
included), and extrapolates linearly to the full corpus (the per-utterance cost does not depend on
the corpus size; random subsets keep the length distribution).

    python benchmarks/finetune_text.py                          # estimate from 800 train utterances
    python benchmarks/finetune_text.py --subset 2000 --set context_turns=2
    python benchmarks/finetune_text.py --full --to /tmp/meld-ft # the real thing, timed (prints dev scores)

``--set KEY=VALUE`` takes any :class:`merc_bench.text_finetune.FinetuneConfig` option. Defaults
must be chosen on dev only: ``--full`` prints the dev w-F1 / accuracy of the selected epoch
(from the manifest), never a test score.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress

from merc_bench.prepare import build_text_encoder, prepare_command
from merc_bench.text_finetune import Examples, _examples, _fit, _predict, finetune_config
from merc_bench_datasets.meld_annotations import SPLIT_FILES, read_split

ROOT = Path(__file__).resolve().parents[1]
MELD_DIR = ROOT.parent / "shared" / "data" / "meld"
MELD_UTTERANCES = {"train": 9989, "dev": 1109, "test": 2610}
BUDGET_S = 30 * 60


def _options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        options[key] = json.loads(value) if value[:1].isdigit() or value[:1] in "-[{" else value
    return options


def _subset(examples: Examples, count: int, seed: int) -> Examples:
    chosen = np.sort(np.random.default_rng(seed).permutation(len(examples.inputs))[:count])
    return Examples(split=examples.split, inputs=[examples.inputs[i] for i in chosen], labels=examples.labels[chosen],
                    utterance_ids=[examples.utterance_ids[i] for i in chosen])


def estimate(config, meld: Path, subset: int, dev_subset: int) -> None:
    splits = {split: read_split(meld / name, split)[0] for split, name in SPLIT_FILES.items() if split != "test"}
    train = _subset(_examples("train", splits["train"], config.context_turns), subset, 1)
    dev = _subset(_examples("dev", splits["dev"], config.context_turns), dev_subset, 2)
    started = time.perf_counter()
    model = build_text_encoder("minilm").trainable(num_classes=7, max_tokens=config.max_tokens, layers=config.layers,
                                                   device=config.device)
    load_s = time.perf_counter() - started
    one_epoch = config.model_copy(update={"epochs": 1})
    with tempfile.TemporaryDirectory() as work, Progress(console=Console(stderr=True)) as progress:
        started = time.perf_counter()
        _fit(model, train, dev, one_epoch, Path(work), progress)  # train steps + dev evaluation + checkpoints
        fit_s = time.perf_counter() - started
    started = time.perf_counter()
    _predict(model, dev, config.batch_size)
    eval_s = time.perf_counter() - started
    eval_per_utt = eval_s / len(dev.inputs)
    train_per_utt = max(0.0, fit_s - eval_s) / len(train.inputs)  # _fit = training + one dev pass (+ saves)
    epoch_s = train_per_utt * MELD_UTTERANCES["train"] + eval_per_utt * MELD_UTTERANCES["dev"]
    extract_s = eval_per_utt * sum(MELD_UTTERANCES.values())
    total_s = load_s + config.epochs * epoch_s + extract_s
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; config {config.model_dump()}")
    print(f"measured: {len(train.inputs)} train utterances in {fit_s - eval_s:.1f} s ({1 / train_per_utt:.1f} utt/s "
          f"training), {len(dev.inputs)} dev utterances in {eval_s:.1f} s ({1 / eval_per_utt:.1f} utt/s evaluation), "
          f"model load {load_s:.1f} s")
    print(f"extrapolated MELD: {epoch_s / 60:.1f} min per epoch (train + dev), {extract_s / 60:.1f} min extraction, "
          f"total {total_s / 60:.1f} min for {config.epochs} epochs (budget {BUDGET_S // 60} min: "
          f"{'within' if total_s <= BUDGET_S else 'OVER'})")


def full(options: dict, meld: Path, target: Path) -> None:
    started = time.perf_counter()
    prepare_command(dataset="meld", target=target, source=meld, url=None, text_encoder="minilm",
                    console=Console(stderr=True), finetune=options)
    seconds = time.perf_counter() - started
    report = json.loads((target / "manifest.json").read_text())["provenance"]["finetune"]
    print(f"full MELD fine-tuning + extraction: {seconds / 60:.1f} min (budget {BUDGET_S // 60} min); "
          f"selected epoch {report['selected_epoch']}, dev w-F1 {report['dev']['weighted_f1']:.4f}, "
          f"dev acc {report['dev']['accuracy']:.4f}")
    for row in report["history"]:
        print(f"  epoch {row['epoch']}: loss {row['train_loss']:.4f}, dev w-F1 {row['dev']['weighted_f1']:.4f}, "
              f"{row['seconds']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--meld", type=Path, default=MELD_DIR, help="folder with MELD's three CSVs")
    parser.add_argument("--subset", type=int, default=800, help="train utterances for the timed epoch")
    parser.add_argument("--dev-subset", type=int, default=300, help="dev utterances for the evaluation speed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a fine-tuning option")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the budget is for 2 cores)")
    parser.add_argument("--full", action="store_true", help="run the whole prepare instead of estimating")
    parser.add_argument("--to", type=Path, help="with --full: the prepared folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = _options(args.set)
    config = finetune_config(options)
    if args.full:
        if args.to is None:
            sys.exit("--full needs --to FOLDER")
        full(options, args.meld, args.to)
    else:
        estimate(config, args.meld, args.subset, args.dev_subset)


if __name__ == "__main__":
    main()
