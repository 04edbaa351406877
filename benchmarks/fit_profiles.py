"""Fit the paper-shaped synthetic profiles to SUMMER's Table I, selecting on dev only.

``dataset.profile=paper-meld|paper-iemocap`` (plugins/merc_bench_synthetic/paper_profiles.py) has
five generator parameters per profile: the shared ambiguity q, the audio-visual ambiguity r and the
three modality signals. This script chooses them so that SDT's original attention path, trained
on every modality subset, scores the paper's Table I w-F1 — **on dev**; test is read only by the
final check, which records the fit table (paper, dev, test, Δ test) in benchmarks/RESULTS.md.

How (each round costs 7 SDT runs per profile):

1. **Proxy.** The Bayes-optimal per-utterance classifier of the generator (it knows the
   prototypes; no context, no learning) has a w-F1 per modality subset that is cheap to compute by
   Monte Carlo. Nelder–Mead fits the five parameters so the proxy matches the targets.
2. **Offsets.** SDT differs from the proxy (it learns from finite data, reads dialogue context and
   is selected on dev). One seed of SDT per subset at the fitted parameters gives the offset per
   cell (SDT − proxy), and the proxy is refitted to ``paper − offset``; two rounds are the default.
   SDT's epoch is selected on the profile's own dev split and scored on the other dialogues of an
   enlarged dev split (:data:`FIT_DEV_DIALOGUES`), which is how the check's test score arises. The
   history is in RESULTS.md: offsets read on the 12/114 dialogues the epoch was selected on missed
   test by up to 3.5 w-F1 (luck and selection bias); read on all 600/60 enlarged dev dialogues,
   MELD visual missed by −2.4; selected on 300 and scored on the other 300, audio by −2.1.
3. **Check** (``--check``, or after the rounds): 3 seeds per subset with the committed (or fitted)
   parameters, each seed on its own draw of the corpus from the same world
   (``dataset.sample_seed``); dev and test w-F1 beside the paper's Table I. The first checks used
   one draw for all seeds and are kept in RESULTS.md: on IEMOCAP's 31 test dialogues that draw's
   luck alone moved cells by about 2 w-F1.

SDT runs at a reduced size and schedule (hidden 128, 4 heads, lr 5e-4; MELD batch 16 for 10 epochs,
IEMOCAP batch 8 for 20 epochs; SDT's dropout, gates, temperatures and class weights per family), the
"documented reduced size" the issue allows: a paper-size SDT epoch on MELD takes about a minute
on 2 cores, and 42 runs of 50 epochs do not fit a session.

    python benchmarks/fit_profiles.py --profile paper-meld --rounds 2        # fit, print constants
    python benchmarks/fit_profiles.py --check --seeds 3                      # record the fit table
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import append_results, git_commit, machine_facts  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
MODALITIES = ("text", "audio", "visual")
SUBSETS = ["+".join(s) for k in range(1, 4) for s in itertools.combinations(MODALITIES, k)]
PARAMETERS = ("ambiguity", "nonverbal_ambiguity", "text_signal", "audio_signal", "visual_signal")
#: SDT at the reduced size used for the fit (the rest is the ``sdt`` recipe's, per family).
REDUCED_SDT = {
    "common": ["model.hidden_size=128", "mixer.heads=4", "fuser.heads=4", "training.lr=5e-4"],
    "paper-meld": ["training.batch_size=16", "training.epochs=10"],
    "paper-iemocap": ["training.batch_size=8", "training.epochs=20"],
}
#: Dev dialogues while fitting: far more than the profile's dev split (the first ones are that split:
#: changing a split's size leaves the others and its own first dialogues unchanged), so the offsets
#: estimate SDT's expected score rather than the luck of 12 IEMOCAP dialogues. Test is never read.
FIT_DEV_DIALOGUES = {"paper-meld": 600, "paper-iemocap": 60}


# -- the proxy ------------------------------------------------------------------------------------
def proxy_scores(profile: str, params: dict[str, float], samples: int = 60_000) -> dict[str, float]:
    """w-F1 (%) per modality subset of the generator's Bayes-optimal per-utterance classifier.

    p(y | x) ∝ π_y [(1 − q) G_y + q Σ_e π_e G_e], G_e = L_text(e) [(1 − r) L_av(e) + r Σ_e' π_e' L_av(e')],
    with L_m(e) the Gaussian likelihood of modality m's latent around its prototype of emotion e.
    """
    from sklearn.metrics import f1_score

    from merc_bench_synthetic.dataset import SHAPES, _build_paper_world
    from merc_bench_synthetic.paper_profiles import PROFILES, paper_latents

    shape = SHAPES[PROFILES[profile].shape]
    prior = shape.class_frequencies  # (C,)
    signal = {m: params[f"{m}_signal"] for m in MODALITIES}
    q, r = params["ambiguity"], params["nonverbal_ambiguity"]
    prototypes = _build_paper_world(shape, 0, q, r, signal, 1.0).prototypes  # the world of dataset.seed=0
    rng = np.random.default_rng([0, 99])
    labels = rng.choice(len(prior), size=samples, p=prior)  # (N,)
    latents = paper_latents(rng, labels, prototypes, prior, q, r, signal, 1.0)
    log_likelihood = {m: -0.5 * ((latents[m][:, None, :] - signal[m] * prototypes[m][None]) ** 2).sum(-1)
                      for m in MODALITIES}  # modality -> (N, C)
    scores = {}
    for subset in SUBSETS:
        parts = subset.split("+")
        text = log_likelihood["text"] if "text" in parts else np.zeros((samples, len(prior)))
        nonverbal = sum((log_likelihood[m] for m in parts if m != "text"), np.zeros((samples, len(prior))))
        text = np.exp(text - text.max(1, keepdims=True))
        nonverbal = np.exp(nonverbal - nonverbal.max(1, keepdims=True))
        expressed = text * ((1 - r) * nonverbal + r * (nonverbal @ prior)[:, None])  # (N, C)
        posterior = prior * ((1 - q) * expressed + q * (expressed @ prior)[:, None])
        scores[subset] = 100 * f1_score(labels, posterior.argmax(1), average="weighted")
    return scores


def fit_proxy(profile: str, targets: dict[str, float], start: dict[str, float]) -> dict[str, float]:
    """Nelder–Mead on the largest squared miss over the seven cells, ties broken by their sum.

    The criterion is every cell within ±2, so the worst cell is what the fit minimises; a plain
    sum of squares (the first three fits) let the weakest modality sit 0.8 below its target on dev
    while the others were within 0.4, and the dev-to-test step took that cell past −2.
    """
    from scipy.optimize import minimize

    def loss(x: np.ndarray) -> float:
        params = dict(zip(PARAMETERS, x))
        if not (0 <= x[0] < 0.95 and 0 <= x[1] < 0.95 and min(x[2:]) > 0):
            return 1e6
        scores = proxy_scores(profile, params, samples=20_000)
        misses = [(scores[k] - targets[k]) ** 2 for k in SUBSETS]
        return max(misses) + 0.1 * sum(misses)

    result = minimize(loss, [start[p] for p in PARAMETERS], method="Nelder-Mead",
                      options={"maxiter": 200, "xatol": 1e-3, "fatol": 0.01})
    return {p: round(float(v), 4) for p, v in zip(PARAMETERS, result.x)}


# -- SDT ------------------------------------------------------------------------------------------
def sdt_overrides(profile: str, params: dict[str, float] | None, fitting: bool) -> list[str]:
    given = [f"dataset.{p}={v}" for p, v in (params or {}).items()]
    if fitting:
        given.append(f"dataset.dev_dialogues={FIT_DEV_DIALOGUES[profile]}")
    return [f"dataset.profile={profile}", *given, *REDUCED_SDT["common"], *REDUCED_SDT[profile]]


def _train(job: tuple[str, dict[str, float] | None, str, int, bool]) -> tuple[str, float, float]:
    """(subset, dev w-F1, test w-F1) of one SDT seed; while fitting, (subset, selection w-F1, held-out w-F1).

    While fitting, the epoch is selected on the profile's own dev split (the first dialogues of the
    enlarged one, 114 MELD / 12 IEMOCAP) and scored on the enlarged split's other dialogues, which
    is how the check's test score arises: a model chosen on a small, noisy dev split, scored on
    dialogues it was not chosen on. Scoring on the dialogues it was selected on (the first three
    fits) or selecting on a larger split (a fourth, alternate halves of 600: every MELD cell then
    scored 0.5–1.5 lower on test than on its held-out half, audio missing by −2.14) measures a
    better-selected model than the check's. Test is never read.
    """
    import dataclasses

    import torch

    import merc_bench
    from merc_bench.pipeline import prepare, train_seed
    from merc_bench.plugins import get_registry
    from merc_bench.trainer import Trainer
    from merc_bench_synthetic.paper_profiles import PROFILES

    profile, params, subset, seed, fitting = job
    torch.set_num_threads(1)
    overrides = sdt_overrides(profile, params, fitting) + [f"training.seed={seed}"]
    if not fitting and seed:  # the check: each seed draws its own corpus (the same world, seed 0's)
        overrides.append(f"dataset.sample_seed={seed}")
    if fitting:
        registry = get_registry()
        prepared = prepare(registry, recipe="sdt", dataset="synthetic", overrides=overrides,
                           flags={"modalities": subset.split("+"), "seeds": 1})
        dev, own = prepared.corpus.dev, PROFILES[profile].dialogues[1]
        held_out = dataclasses.replace(prepared.corpus, dev=dev[:own], test=dev[own:])  # "test": held-out dev
        result = train_seed(Trainer(config=prepared.config, corpus=held_out, registry=registry), seed)
        return subset, float(100 * result.dev["weighted_f1"]), float(100 * result.test["weighted_f1"])
    with tempfile.TemporaryDirectory() as out:
        result = merc_bench.run("sdt", dataset="synthetic", overrides=overrides,
                                modalities=subset.replace("+", ","), seeds=1, track=False, out=Path(out) / "run")
    frame = result.to_frame()
    return subset, float(100 * frame["dev_weighted_f1"][0]), float(100 * frame["test_weighted_f1"][0])


def sdt_scores(profile: str, params: dict[str, float] | None, seeds: int, jobs: int,
               fitting: bool = False) -> dict[str, tuple[list, list]]:
    """subset -> (dev w-F1 per seed, test w-F1 per seed), %, SDT's reduced path (test unused when fitting).

    In the check, seed i trains with seed i on the corpus drawn with ``dataset.sample_seed=i`` (seed 0:
    the profile as shipped): the profile is a generator, and one IEMOCAP-sized test split (31
    dialogues of persistent emotions) moves w-F1 by about ±2 from draw to draw (measured: the
    profile's 12 dev dialogues and the fit's 60 differed by up to 2 w-F1 at the same parameters).
    """
    work = [(profile, params, subset, seed, fitting) for subset in SUBSETS for seed in range(seeds)]
    scores: dict[str, tuple[list, list]] = {subset: ([], []) for subset in SUBSETS}
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        for subset, dev, test in pool.map(_train, work):
            scores[subset][0].append(dev)
            scores[subset][1].append(test)
    return scores


# -- fitting and the table ------------------------------------------------------------------------
def fit(profile: str, rounds: int, jobs: int) -> dict[str, float]:
    from merc_bench_synthetic.paper_profiles import PAPER_TABLE_I, PROFILES

    committed = PROFILES[profile]
    params = {"ambiguity": committed.ambiguity, "nonverbal_ambiguity": committed.nonverbal_ambiguity,
              **{f"{m}_signal": committed.signal[m] for m in MODALITIES}}
    paper = PAPER_TABLE_I[profile]
    offsets = dict.fromkeys(SUBSETS, 0.0)
    for round_ in range(rounds + 1):
        params = fit_proxy(profile, {k: paper[k] - offsets[k] for k in SUBSETS}, params)
        if round_ == rounds:
            break
        proxy = proxy_scores(profile, params)
        measured = sdt_scores(profile, params, seeds=1, jobs=jobs, fitting=True)
        offsets = {k: float(np.mean(measured[k][1])) - proxy[k] for k in SUBSETS}  # the held-out half
        print(json.dumps({"round": round_, "params": params,
                          "dev (own, selected on)": {k: round(float(np.mean(measured[k][0])), 2) for k in SUBSETS},
                          "dev (the rest, held out)": {k: round(float(np.mean(measured[k][1])), 2) for k in SUBSETS},
                          "offsets": {k: round(v, 2) for k, v in offsets.items()}}), flush=True)
    return params


def fit_table(profile: str, scores: dict[str, tuple[list, list]]) -> tuple[str, bool]:
    from merc_bench_synthetic.paper_profiles import PAPER_TABLE_I

    paper = PAPER_TABLE_I[profile]
    lines = ["| modalities | paper test w-F1 | dev w-F1 | test w-F1 | Δ test | within ±2 |", "|---|---|---|---|---|---|"]
    fits = True
    for subset in SUBSETS:
        dev, test = scores[subset]
        delta = float(np.mean(test)) - paper[subset]
        fits &= abs(delta) <= 2.0
        lines.append(f"| {subset} | {paper[subset]:.2f} | {np.mean(dev):.2f} ± {np.std(dev):.2f} | "
                     f"{np.mean(test):.2f} ± {np.std(test):.2f} | {delta:+.2f} | {'yes' if abs(delta) <= 2 else 'NO'} |")
    return "\n".join(lines), fits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["paper-meld", "paper-iemocap"], action="append")
    parser.add_argument("--rounds", type=int, default=2, help="offset rounds of the fit (7 SDT runs each)")
    parser.add_argument("--check", action="store_true", help="only the check of the committed constants")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per subset in the check")
    parser.add_argument("--jobs", type=int, default=2, help="processes (one thread each)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "plugins"))
    from merc_bench_synthetic.paper_profiles import PROFILES

    for profile in args.profile or ["paper-meld", "paper-iemocap"]:
        started = time.perf_counter()
        params = None
        if not args.check:
            params = fit(profile, args.rounds, args.jobs)
            print(f"{profile}: fitted {json.dumps(params)} (commit these into PROFILES)", flush=True)
        scores = sdt_scores(profile, params, seeds=args.seeds, jobs=args.jobs)
        table, fits = fit_table(profile, scores)
        used = params or PROFILES[profile]
        print(table, flush=True)
        command = "python benchmarks/" + " ".join(shlex.quote(a) for a in [Path(__file__).name, *sys.argv[1:]])
        block = (f"## Paper profile {profile}: SDT (reduced) against SUMMER's Table I — "
                 f"{'fits' if fits else 'DOES NOT fit'} ±2 on every cell\n\n"
                 f"Commit {git_commit()}; `{command}`; {machine_facts()}; {time.perf_counter() - started:.0f} s.\n"
                 f"Parameters: {used}. SDT reduced: {' '.join(REDUCED_SDT['common'] + REDUCED_SDT[profile])}; "
                 f"clean protocol (epoch selected on dev), {args.seeds} seeds, seed i on corpus draw "
                 f"dataset.sample_seed=i, mean ± std.\n\n{table}\n")
        if not args.no_write:
            append_results(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
