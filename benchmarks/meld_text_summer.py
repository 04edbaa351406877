"""SUMMER, SDT and SUMMER's text teacher on real MELD text, seeds paired (issue 14, evidence block c).

Real MELD ships no audio or visual features here, so every recipe runs on the text of
``merc-bench data prepare meld`` (MiniLM, 384-d) and its single-modality path: HCMF's cross-modal
stages attend text to itself and IKD's teacher sees the student's own input. The question this
block answers is narrower than the paper's Table III: does the SUMMER we ship (the MultiEMO
reading, routing ``lower``, the teacher on its own schedule) still lose to SDT on real text, as
the 1024-wide SUMMER did (56.43 vs 57.91, RESULTS.md, 2026-11-27)?

Every recipe runs the one common reduced setting of that earlier block (hidden 256, lr 3e-4, batch
16, 15 epochs, standardised features; clean protocol), and so does the teacher (SDT's text path:
``distiller.teacher.hidden_size=256 … epochs=15``), because SDT's published text schedule (1024
wide, 50 epochs) costs about 50 CPU minutes per seed here. Each (recipe, seed) trains in its own
process with one thread; the table pairs the seeds: mean ± std over seeds, and a paired bootstrap
over test dialogues (every seed's predictions pooled) against SDT.

    python benchmarks/meld_text_summer.py --data-dir /tmp/meld-minilm --seeds 5 --jobs 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import append_results, git_commit, machine_facts  # benchmarks/machine.py, beside this script

COMMON = ["model.hidden_size=256", "training.lr=3e-4", "training.batch_size=16", "training.standardize_features=true"]
#: The teacher's schedule; its epochs are the student's (--epochs).
TEACHER = ["distiller.teacher.hidden_size=256", "distiller.teacher.lr=3e-4", "distiller.teacher.batch_size=16"]


def _train(job: tuple[str, int, str, int]) -> dict:
    import torch

    import merc_bench
    from merc_bench.pipeline import load_predictions

    recipe, seed, data_dir, epochs = job
    torch.set_num_threads(1)
    overrides = COMMON + [f"training.epochs={epochs}", f"training.seed={seed}"]
    overrides += [*TEACHER, f"distiller.teacher.epochs={epochs}"] if recipe.startswith("summer") else []
    with tempfile.TemporaryDirectory() as out:
        result = merc_bench.run(recipe, dataset="meld", data_dir=Path(data_dir), overrides=overrides,
                                modalities="text", seeds=1, track=False, out=Path(out) / "run")
        predictions = load_predictions(Path(out) / "run" / "predictions.npz")
    run = result.seeds[0]
    teacher = run.teacher or {}
    return {"recipe": recipe, "seed": seed, "dev": run.dev["weighted_f1"], "test": run.test["weighted_f1"],
            "parameters": result.summary["parameters"]["total"], "seconds": run.seconds,
            "teacher_dev": teacher.get("dev", {}).get("weighted_f1"),
            "teacher_test": teacher.get("test", {}).get("weighted_f1"),
            "predictions": predictions}


def table(runs: list[dict], reference: str) -> str:
    from merc_bench.significance import paired_bootstrap

    by_recipe: dict[str, list[dict]] = {}
    for run in sorted(runs, key=lambda r: r["seed"]):
        by_recipe.setdefault(run["recipe"], []).append(run)
    ref = by_recipe[reference]
    labels, dialogue = ref[0]["predictions"]["labels"], ref[0]["predictions"]["dialogue"]
    ref_predictions = np.concatenate([r["predictions"]["predictions"] for r in ref])  # (S, N)
    classes = int(labels.max()) + 1

    def cell(values: list[float]) -> str:
        return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"

    lines = ["| model | parameters | dev w-F1 | test w-F1 | Δ test w-F1 | p | s / seed |", "|---|---|---|---|---|---|---|"]
    for recipe, seeds in by_recipe.items():
        delta, p = "", ""
        if recipe != reference:
            candidate = np.concatenate([r["predictions"]["predictions"] for r in seeds])
            test = paired_bootstrap(labels, candidate, ref_predictions, dialogue, num_classes=classes)
            delta, p = f"{100 * test.difference:+.2f}", f"{test.p_value:.3f}"
        lines.append(f"| {recipe} | {seeds[0]['parameters']:,} | {cell([r['dev'] for r in seeds])} | "
                     f"{cell([r['test'] for r in seeds])} | {delta} | {p} | {np.mean([r['seconds'] for r in seeds]):.0f} |")
        teachers = [r for r in seeds if r["teacher_dev"] is not None]
        if teachers:
            below = sum(r["teacher_dev"] < r["dev"] for r in teachers)
            lines.append(f"| {recipe}'s teacher (SDT text path) | | {cell([r['teacher_dev'] for r in teachers])} | "
                         f"{cell([r['teacher_test'] for r in teachers])} | | | below the student on dev in "
                         f"{below} of {len(teachers)} seeds |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="output of merc-bench data prepare meld")
    parser.add_argument("--recipes", default="sdt,summer", help="comma-separated; the first is the reference")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15, help="student's and teacher's (15: the earlier block's)")
    parser.add_argument("--jobs", type=int, default=2, help="processes (one thread each)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    recipes = args.recipes.split(",")
    started = time.perf_counter()
    work = [(recipe, seed, str(args.data_dir), args.epochs) for recipe in recipes for seed in range(args.seeds)]
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(_train, work))
    text = table(runs, recipes[0])
    print(text, flush=True)
    command = "python benchmarks/" + " ".join(shlex.quote(a) for a in [Path(__file__).name, *sys.argv[1:]])
    block = (f"## Real MELD text: {', '.join(recipes)} and SUMMER's teacher, {args.seeds} seeds\n\n"
             f"Commit {git_commit()}; `{command}`; {machine_facts()}; {time.perf_counter() - started:.0f} s. "
             f"Every recipe: {' '.join(COMMON)} training.epochs={args.epochs}; the teacher: {' '.join(TEACHER)} distiller.teacher.epochs={args.epochs}; text only, clean protocol; "
             f"test ×100, mean ± std over seeds; Δ and p against {recipes[0]}: paired bootstrap over test "
             f"dialogues (2000 resamples, seeds pooled).\n\n{text}\n")
    if not args.no_write:
        append_results(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
