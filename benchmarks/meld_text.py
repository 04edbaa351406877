"""Real MELD, text only: MiniLM sentence embeddings, context models against context-free references.

1. ``merc-bench data prepare meld`` from ../shared/data/meld (the official CSVs, checksummed) with
   the ``minilm`` text encoder (all-MiniLM-L6-v2, 384-d, unit norm). A second call reuses the
   cached embeddings.
2. Two references computed here on the same features, selected on nothing:
   * majority class — always predict the most frequent training class (neutral);
   * logistic regression on each utterance's frozen embedding alone (no dialogue context,
     scikit-learn ``LogisticRegression``, L2, C = 1, lbfgs, up to 2,000 iterations).
3. Context models trained by ``merc-bench run`` under the clean protocol (select the epoch on dev,
   test once per seed), N seeds, text modality only. A full SDT (H = 1024, lr 5e-6, 50 epochs)
   takes about a minute per epoch on 2 cores, far too long for 5 seeds here, so the script runs SDT
   at a reduced size and schedule (hidden size, lr, batch and epochs are options and are recorded
   with the exact command of every run).
4. MiniLM's vectors have unit norm, so each of the 384 values is about 0.05 in size, while SDT's
   speaker embedding (N(0, 1) at initialisation) and its unscaled sinusoidal position encoding
   (values in [-1, 1]) are added to the projected features: the text signal starts 20× smaller than
   the position and speaker terms. The variant ``standardised`` rescales every feature dimension to
   zero mean and unit variance with the *training* split's statistics (a copy of the prepared
   folder, the same transform applied to dev and test), which puts the text on the same scale.

Appends a block to benchmarks/RESULTS.md: accuracy, weighted F1 and macro F1 on dev and test, and
per-class test F1 (mean ± std over seeds for the trained models), with the commands and the machine.

    python benchmarks/meld_text.py                                   # defaults below
    python benchmarks/meld_text.py --seeds 2 --epochs 3 --no-write   # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from machine import append_results, git_commit, machine_facts  # benchmarks/machine.py, beside this script
import merc_bench
from merc_bench.data import Corpus, DatasetInfo, Dialogue
from merc_bench.feature_store import read_corpus, write_corpus
from merc_bench.metrics import classification_metrics
from merc_bench.prepare import prepare_command

ROOT = Path(__file__).resolve().parents[1]
MELD_DIR = ROOT.parent / "shared" / "data" / "meld"


def flat(corpus: Corpus, split: str) -> tuple[np.ndarray, np.ndarray]:
    dialogues = corpus.split(split)
    return (np.concatenate([d.features["text"] for d in dialogues]), np.concatenate([d.labels for d in dialogues]))


def fit_logistic(corpus: Corpus) -> tuple[Any, float]:
    """The context-free logistic regression on the train split's utterance vectors, and its fit seconds."""
    from sklearn.linear_model import LogisticRegression

    x_train, y_train = flat(corpus, "train")
    model = LogisticRegression(C=1.0, max_iter=2000)
    started = time.perf_counter()
    model.fit(x_train, y_train)
    return model, time.perf_counter() - started


def references(corpus: Corpus, fitted: tuple[Any, float] | None = None) -> dict[str, dict[str, dict]]:
    """Majority class and a context-free logistic regression (``fitted`` by :func:`fit_logistic`, or fitted here)."""
    classes = corpus.info.classes
    _, y_train = flat(corpus, "train")
    majority = int(np.bincount(y_train).argmax())
    model, seconds = fitted if fitted is not None else fit_logistic(corpus)
    out: dict[str, dict[str, dict]] = {"majority class": {}, "logistic regression (no context)": {}}
    for split in ("dev", "test"):
        x, y = flat(corpus, split)
        out["majority class"][split] = classification_metrics(y, np.full_like(y, majority), classes)
        out["logistic regression (no context)"][split] = classification_metrics(y, model.predict(x), classes)
    out["logistic regression (no context)"]["seconds"] = seconds
    return out


def standardised_copy(corpus: Corpus, target: Path) -> Path:
    """The corpus with every text dimension z-scored by the training split's mean and std."""
    x_train, _ = flat(corpus, "train")
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8

    def transform(dialogues: list[Dialogue]) -> list[Dialogue]:
        return [Dialogue(id=d.id, features={"text": ((d.features["text"] - mean) / std).astype(np.float32)},
                         speakers=d.speakers, labels=d.labels) for d in dialogues]

    info = corpus.info
    copy = Corpus(info=DatasetInfo(name=info.name, family=info.family, classes=info.classes,
                                   feature_dims=info.feature_dims, num_speakers=info.num_speakers,
                                   description=info.description + "; standardised with train statistics"),
                  train=transform(corpus.train), dev=transform(corpus.dev), test=transform(corpus.test),
                  provenance={k: v for k, v in corpus.provenance.items() if k != "feature_store"}
                  | {"standardised": "per dimension, train mean and std"})
    write_corpus(copy, target, overwrite=True)
    return target


def train(recipe: str, data_dir: Path, out: Path, *, seeds: int, epochs: int,
          sets: list[str]) -> tuple[dict, str, float]:
    """One recipe through ``merc_bench.run``; its summary, the equivalent command line, the seconds taken."""
    started = time.perf_counter()
    result = merc_bench.run(recipe, dataset="meld", data_dir=data_dir, modalities="text", seeds=seeds,
                            epochs=epochs, overrides=sets, track=False, out=out)
    seconds = time.perf_counter() - started
    command = ["merc-bench", "run", recipe, "--dataset", "meld", "--data-dir", str(data_dir), "--modalities", "text",
               "--seeds", str(seeds), "--epochs", str(epochs), "--no-track", "--out", str(out),
               *[part for item in sets for part in ("--set", item)]]
    return result.summary, shlex.join(command), seconds


def cell(metric: dict) -> str:
    """'mean ± std' (×100) for a trained model's metric, or the single value of a reference."""
    if isinstance(metric, dict):
        return f"{100 * metric['mean']:.2f} ± {100 * metric['std']:.2f}"
    return f"{100 * metric:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "merc-bench-meld-text")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--hidden", type=int, default=256, help="SDT hidden size (published: 1024)")
    parser.add_argument("--lr", type=float, default=3e-4,
                        help="SDT learning rate (published MELD: 5e-6; 3e-4 chosen on dev for 15 epochs)")
    parser.add_argument("--batch", type=int, default=16, help="SDT batch size in dialogues (published MELD: 8)")
    parser.add_argument("--variants", default="raw,standardised", help="feature variants for SDT")
    parser.add_argument("--bigru", action=argparse.BooleanOptionalAction, default=False,
                        help="also train the bigru-concat recipe (raw features)")
    parser.add_argument("--no-write", action="store_true", help="print, do not append to RESULTS.md")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    prepared = args.work / "meld-minilm"
    log = io.StringIO()
    from rich.console import Console

    started = time.perf_counter()
    prepare_command(dataset="meld", target=prepared, source=MELD_DIR, url=None, text_encoder="minilm",
                    console=Console(file=log, width=120))
    prepare_seconds = time.perf_counter() - started
    corpus = read_corpus(prepared)
    embeddings = corpus.provenance["embeddings"]
    print(f"prepared {prepared} in {prepare_seconds:.1f} s (embeddings {embeddings})", flush=True)

    rows: list[tuple[str, str, dict, dict, str, float]] = []  # name, features, dev, test, command, seconds
    for name, result in references(corpus).items():
        rows.append((name, "raw", result["dev"], result["test"], "(in this script)", result.get("seconds", 0.0)))
        print(f"{name}: test w-F1 {result['test']['weighted_f1']:.4f}", flush=True)

    data_dirs = {"raw": prepared}
    if "standardised" in args.variants.split(","):
        data_dirs["standardised"] = standardised_copy(corpus, args.work / "meld-minilm-standardised")
    sdt_sets = [f"model.hidden_size={args.hidden}", f"training.lr={args.lr:g}", f"training.batch_size={args.batch}"]
    runs = [("sdt", variant, sdt_sets) for variant in args.variants.split(",")]
    if args.bigru:
        runs.append(("bigru-concat", "raw", []))
    for recipe, variant, sets in runs:
        result, command, seconds = train(recipe, data_dirs[variant], args.work / f"run-{recipe}-{variant}",
                                         seeds=args.seeds, epochs=args.epochs, sets=sets)
        rows.append((recipe, variant, result["dev"], result["test"], command, seconds))
        print(f"{recipe} ({variant}): test w-F1 {cell(result['test']['weighted_f1'])} in {seconds:.0f} s", flush=True)

    classes = corpus.info.classes
    commit = git_commit()
    lines = [
        f"### MELD text only (MiniLM features): context models vs context-free references — "
        f"{dt.date.today().isoformat()}, commit {commit}",
        f"Machine: {machine_facts()}. Command: "
        f"`python benchmarks/meld_text.py {' '.join(sys.argv[1:])}`. Features: `merc-bench data prepare meld --from "
        f"../shared/data/meld` (minilm, 384-d; prepare {prepare_seconds:.0f} s, embeddings {embeddings['train']}). "
        f"Trained models: clean protocol, {args.seeds} seeds, mean ± std; references are deterministic. "
        "All figures ×100.",
        "",
        "| model | features | dev acc | dev w-F1 | dev macro-F1 | test acc | test w-F1 | test macro-F1 | time s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, variant, dev, test, _, seconds in rows:
        lines.append(f"| {name} | {variant} | {cell(dev['accuracy'])} | {cell(dev['weighted_f1'])} | "
                     f"{cell(dev['macro_f1'])} | {cell(test['accuracy'])} | {cell(test['weighted_f1'])} | "
                     f"{cell(test['macro_f1'])} | {seconds:.0f} |")
    lines += ["", "Per-class test F1:", "", "| model | features | " + " | ".join(classes) + " |",
              "|---|---|" + "---|" * len(classes)]
    for name, variant, _, test, _, _ in rows:
        lines.append(f"| {name} | {variant} | " + " | ".join(cell(test["per_class"][c]["f1"]) for c in classes) + " |")
    lines += ["", "Runs:", ""] + [f"* `{command}`" for _, _, _, _, command, _ in rows if command.startswith("merc")]
    logistic = next(r for r in rows if r[0].startswith("logistic"))[3]["weighted_f1"]
    verdicts = []
    for name, variant, _, test, _, _ in rows[2:]:
        mean, std = test["weighted_f1"]["mean"], test["weighted_f1"]["std"]
        relation = "beats" if mean - std > logistic else ("does not beat" if mean + std < logistic else "ties with")
        verdicts.append(f"{name} ({variant}) {relation} the logistic regression on test w-F1 "
                        f"({100 * mean:.2f} ± {100 * std:.2f} vs {100 * logistic:.2f})")
    lines += ["", "Reading (generated): " + "; ".join(verdicts) + ".", ""]
    block = "\n".join(lines)
    print(block)
    if not args.no_write:
        append_results(block)


if __name__ == "__main__":
    main()
