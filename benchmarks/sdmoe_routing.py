"""SDMoE's two readings, chosen on dev of a paper profile (issue 14, item 4).

``mixer.routing`` (two-sided | lower) × ``mixer.gate`` (token | dialogue), the rest of ``summer``
unchanged, at the same reduced size as the Table IV block (hidden 128, 2 fusion layers, lr 5e-4, a
reduced text teacher), N seeds each on ``dataset.profile``. The table is sorted by **dev** w-F1, the
only number a default may be chosen on; test is shown for the record. The teacher is the same for
all four variants (one per seed, cached after the first).

    python benchmarks/sdmoe_routing.py --profile paper-iemocap --seeds 3 --epochs 10 --batch 8
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import tempfile
import time
from pathlib import Path

from machine import append_results, git_commit, machine_facts  # benchmarks/machine.py, beside this script


def overrides(profile: str, batch: int) -> list[str]:
    return [f"dataset.profile={profile}", "model.hidden_size=128", "fuser.layers=2", "training.lr=5e-4",
            f"training.batch_size={batch}", "distiller.teacher.hidden_size=128", "distiller.teacher.lr=5e-4",
            "distiller.teacher.epochs=10", f"distiller.teacher.batch_size={batch}"]


def main() -> int:
    import merc_bench

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="paper-iemocap", choices=["paper-meld", "paper-iemocap"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    for routing, gate in itertools.product(("two-sided", "lower"), ("token", "dialogue")):
        with tempfile.TemporaryDirectory() as out:
            result = merc_bench.run("summer", dataset="synthetic", seeds=args.seeds, epochs=args.epochs, track=False,
                                    overrides=overrides(args.profile, args.batch)
                                    + [f"mixer.routing={routing}", f"mixer.gate={gate}"], out=Path(out) / "run")
        frame = result.to_frame()
        dev, test = 100 * frame["dev_weighted_f1"], 100 * frame["test_weighted_f1"]
        rows.append((float(dev.mean()), f"| {routing} | {gate} | {dev.mean():.2f} ± {dev.std(ddof=0):.2f} | "
                                        f"{test.mean():.2f} ± {test.std(ddof=0):.2f} |"))
        print(rows[-1][1], flush=True)
    rows.sort(key=lambda row: -row[0])
    command = "python benchmarks/" + " ".join(shlex.quote(a) for a in [Path(__file__).name, *sys.argv[1:]])
    block = "\n".join([
        f"## SDMoE routing × gate on {args.profile} (issue 14, item 4), chosen on dev",
        "",
        f"Commit {git_commit()}; `{command}`; {machine_facts()}; {time.perf_counter() - started:.0f} s. "
        f"summer at {' '.join(overrides(args.profile, args.batch)[1:])}, {args.epochs} epochs, "
        f"{args.seeds} seeds, clean protocol; sorted by dev w-F1.",
        "",
        "| routing | gate | dev w-F1 | test w-F1 |",
        "|---|---|---|---|",
        *(text for _, text in rows),
    ])
    print(block)
    if not args.no_write:
        append_results(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
