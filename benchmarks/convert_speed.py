"""Time loading MELD at full size: a community pickle vs merc-bench's converted folder.

Writes an SDT-MELD-layout pickle (``meld_multimodal_features.pkl``: 13-tuple, per-utterance float32
vectors, four RoBERTa layers of 1024 + audio 300 + visual 342) with MELD's split sizes
(1038 / 114 / 280 dialogues, ids numbered as in the real file) and dialogue lengths, speakers and
labels from the synthetic MELD generator, then measures in one process, each step repeated:

* ``pickle.load`` of the file (unsafe; our own file, for reference);
* the safe unpickler alone (:func:`merc_bench.safe_pickle.load_pickle`);
* the ``meld`` dataset reading the pickle: safe unpickle + layout detection + parsing + checks;
* ``merc-bench data convert`` once (parse, sha256 of the source, write the .npz files + manifest);
* the ``meld`` dataset reading the converted folder, including the sha256 check of every file,
  and :func:`merc_bench.feature_store.read_corpus` without that check.

The files are read warm (the first repetition brings them into the page cache; the median is
reported). The ratio pickle / converted is the speed-up of converting once (target ≥ 5×). The
pickle protocol matters to the pickle side: the same data is written at protocols 4 (Python 3.8+'s
default), 3 (Python 3.0-3.7's) and 2 (Python 2 era, like SDT's IEMOCAP file). Appends a Markdown
block to benchmarks/RESULTS.md with the machine facts, and deletes the temporary files.

    python benchmarks/convert_speed.py                      # full size, protocols 4, 3, 2; 3 repetitions
    python benchmarks/convert_speed.py --protocols 4 --repeats 5 --no-record
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import io
import pickle
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from rich.console import Console

from machine import append_results, git_commit, machine_facts  # benchmarks/machine.py, beside this script
from merc_bench.convert import convert_command
from merc_bench.feature_store import read_corpus
from merc_bench.safe_pickle import load_pickle
from merc_bench_datasets.checks import DatasetWarning
from merc_bench_datasets.meld import MELDConfig, MELDDataset
from merc_bench_synthetic.dataset import SyntheticConfig, SyntheticDataset

SPLIT_DIALOGUES = {"train": 1038, "dev": 114, "test": 280}


def meld_ids() -> dict[str, list[int]]:
    """Dialogue ids as the SDT/MMGCN files number them (train 60 does not exist)."""
    train = [i for i in range(1039) if i != 60]
    return {"train": train, "dev": [1039 + i for i in range(114)], "test": [1153 + i for i in range(280)]}


def build_sdt_meld(seed: int = 0) -> tuple[tuple, int]:
    """The 13-tuple of an SDT MELD file at full size; also the number of utterances."""
    corpus = SyntheticDataset(SyntheticConfig(
        shape="meld", seed=seed, train_dialogues=SPLIT_DIALOGUES["train"], dev_dialogues=SPLIT_DIALOGUES["dev"],
        test_dialogues=SPLIT_DIALOGUES["test"])).load()
    rng = np.random.default_rng(seed)
    fields: list[dict] = [{} for _ in range(10)] + [None, None, {}]
    ids = meld_ids()
    eye = np.eye(9, dtype=np.int64)
    utterances = 0
    for split in ("train", "dev", "test"):
        for vid, dialogue in zip(ids[split], corpus.split(split)):
            n = len(dialogue)
            utterances += n
            fields[0][vid] = list(range(n))
            fields[1][vid] = eye[dialogue.speakers].tolist()  # 9-dim one-hot lists, as in the file
            fields[2][vid] = dialogue.labels.tolist()
            fields[3][vid] = list(dialogue.features["text"])  # roberta1: one float32 vector per utterance
            for layer in (4, 5, 6):  # roberta2..4
                fields[layer][vid] = list(rng.standard_normal((n, 1024), dtype=np.float32))
            fields[7][vid] = list(dialogue.features["audio"])
            fields[8][vid] = list(dialogue.features["visual"])
            fields[9][vid] = [f"utterance {i}" for i in range(n)]
            fields[12][vid] = [label % 3 for label in dialogue.labels.tolist()]
    fields[10] = ids["train"] + ids["dev"]
    fields[11] = ids["test"]
    return tuple(fields), utterances


def timed(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        result = None
        gc.collect()
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure(pkl: Path, folder: Path, repeats: int) -> dict[str, float]:
    """Seconds per step (median of ``repeats``) for one pickle file."""

    def plain() -> object:
        with open(pkl, "rb") as stream:
            return pickle.load(stream)

    steps: dict[str, float] = {}
    steps["pickle.load (unsafe, reference)"], _ = timed(plain, repeats)
    steps["safe unpickler alone"], _ = timed(lambda: load_pickle(pkl), repeats)
    steps[PICKLE_STEP], corpus = timed(lambda: MELDDataset(MELDConfig(path=str(pkl))).load(), repeats)
    fingerprint = corpus.fingerprint()
    del corpus
    store = folder / f"converted-{pkl.stem}"
    started = time.perf_counter()
    convert_command(source=pkl, target=store, nan_policy="refuse", console=Console(file=io.StringIO()))
    steps["merc-bench data convert (once)"] = time.perf_counter() - started
    steps[STORE_STEP], corpus = timed(lambda: MELDDataset(MELDConfig(), data_dir=store).load(), repeats)
    if corpus.fingerprint() != fingerprint:
        raise SystemExit("the converted folder differs from the pickle")
    del corpus
    steps["read_corpus without the sha256 check"], _ = timed(lambda: read_corpus(store, verify=False), repeats)
    steps["size MiB: pickle"] = pkl.stat().st_size / 2**20
    steps["size MiB: converted folder"] = sum(p.stat().st_size for p in store.iterdir()) / 2**20
    return steps


PICKLE_STEP = "meld dataset from the pickle (unpickle + parse + checks)"
STORE_STEP = "meld dataset from the converted folder (sha256 checked)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--protocols", default="4,3,2", help="pickle protocols of the generated file (4: Python "
                        "3.8+ default; 3: Python 3.0-3.7 default; 2: Python 2 era, as SDT's IEMOCAP file)")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    protocols = [int(p) for p in args.protocols.split(",")]
    warnings.simplefilter("ignore", DatasetWarning)  # synthetic class counts differ from MELD's
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="merc-bench-convert-speed-") as folder:
        folder = Path(folder)
        started = time.perf_counter()
        obj, utterances = build_sdt_meld()
        print(f"built an SDT MELD 13-tuple: 1432 dialogues, {utterances} utterances ({time.perf_counter() - started:.1f} s)",
              flush=True)
        paths = {}
        for protocol in protocols:
            paths[protocol] = folder / f"meld_multimodal_features_p{protocol}.pkl"
            with open(paths[protocol], "wb") as stream:
                pickle.dump(obj, stream, protocol=protocol)
        del obj
        for protocol in protocols:
            results[protocol] = measure(paths[protocol], folder, args.repeats)
            paths[protocol].unlink()
            for name, value in results[protocol].items():
                print(f"protocol {protocol}  {name:60} {value:7.2f}", flush=True)
            ratio = results[protocol][PICKLE_STEP] / results[protocol][STORE_STEP]
            print(f"protocol {protocol}  speed-up of the converted folder over the pickle: {ratio:.1f}×", flush=True)
    record(results, utterances, args)


def record(results: dict[int, dict[str, float]], utterances: int, args: argparse.Namespace) -> None:
    commit = git_commit()
    protocols = list(results)
    names = list(results[protocols[0]])
    ratios = [results[p][PICKLE_STEP] / results[p][STORE_STEP] for p in protocols]
    block = "\n".join([
        f"\n### Loading MELD features: SDT pickle vs converted folder — {dt.date.today().isoformat()}, "
        f"commit {commit}",
        f"Machine: {machine_facts()}. Command: `python benchmarks/convert_speed.py {' '.join(sys.argv[1:])}`",
        f"Data: SDT-MELD-layout 13-tuple at full size (1432 dialogues, {utterances} utterances; text 1024 × 4 "
        f"RoBERTa layers, audio 300, visual 342, float32 vectors per utterance) pickled at each protocol; warm "
        f"page cache; seconds, median of {args.repeats}.",
        "",
        "| step | " + " | ".join(f"protocol {p}" for p in protocols) + " |",
        "|---|" + "---|" * len(protocols),
        *[f"| {name} | " + " | ".join(f"{results[p][name]:.2f}" if "MiB" not in name else f"{results[p][name]:.0f}"
                                       for p in protocols) + " |" for name in names],
        "| **speed-up, converted folder over pickle** (target ≥ 5×) | "
        + " | ".join(f"**{r:.1f}×**" for r in ratios) + " |",
    ])
    print(block)
    if not args.no_record:
        append_results(block)


if __name__ == "__main__":
    main()
