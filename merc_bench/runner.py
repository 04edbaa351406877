"""From a recipe name, a dataset name and overrides to a trained, reported run.

:func:`prepare` resolves the configuration in a fixed order — recipe defaults for the dataset's
family, then ``--set`` overrides, then explicit command-line flags — and validates every
component's options before any training starts. :func:`execute` trains every seed, tracks it and
writes the outputs.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
import pydantic

from merc_bench import __version__
from merc_bench.code_fingerprint import code_parts
from merc_bench.config import RunConfig, apply_flags, apply_overrides
from merc_bench.data import Corpus, nonfinite_option, validate_corpus
from merc_bench.errors import UserError
from merc_bench.model import build_context, build_model, count_parameters
from merc_bench.registry import Registry, describe_validation_error
from merc_bench.seed_cache import SeedCache, seed_key
from merc_bench.sizing import check_training_memory
from merc_bench.report import atomic_write_text, staged_output, summarise, write_outputs
from merc_bench.tracking import Tracker, environment_tags, flatten
from merc_bench.trainer import SeedResult, Trainer, needs_teacher, resolve_device, teacher_config

__all__ = ["Prepared", "prepare", "execute", "check_writable", "load_corpus", "load_predictions"]


@dataclass
class Prepared:
    config: RunConfig
    corpus: Corpus


def load_corpus(registry: Registry, choice: dict[str, Any], data_dir: Path | None) -> Corpus:
    entry = registry.get("dataset", choice["name"])
    # `dataset.nonfinite` is generic: taken out here unless the dataset declares it (data.nonfinite_option).
    options, nonfinite = nonfinite_option(choice.get("config", {}), entry.config.model_fields if entry.config else ())
    config = entry.make_config(options, where="dataset")
    context = {"data_dir": data_dir}
    # Every dataset, built-in or third-party, passes the same checks before anything trains on it.
    return validate_corpus(entry.build(config, context).load(), nonfinite=getattr(config, "nonfinite", nonfinite))


def split_dataset_overrides(dataset: str, overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The dataset choice with its ``--set dataset.*`` overrides applied, and the other overrides.

    Dataset options are applied first because the dataset's family picks the recipe defaults that
    the other overrides then change.
    """
    own = [o for o in overrides if o.split("=", 1)[0].split(".")[0] == "dataset"]
    choice = apply_overrides({"dataset": {"name": dataset, "config": {}}}, own)["dataset"]
    return choice, [o for o in overrides if o not in own]


def prepare(
    registry: Registry,
    *,
    recipe: str,
    dataset: str,
    overrides: list[str] = (),
    flags: dict[str, Any] | None = None,
    data_dir: Path | None = None,
) -> Prepared:
    """Resolve and validate a run's configuration and load its dataset."""
    recipe_entry = registry.get("recipe", recipe)
    dataset_choice, other_overrides = split_dataset_overrides(dataset, overrides)
    corpus = load_corpus(registry, dataset_choice, data_dir)
    values = recipe_entry.obj.resolve(corpus.info.family)
    values["dataset"] = dataset_choice
    values = apply_flags(apply_overrides(values, other_overrides), flags or {})
    try:
        config = RunConfig.model_validate(values)
    except pydantic.ValidationError as error:
        raise UserError(describe_validation_error(error, f"recipe {recipe!r}")) from None
    # Fail on a typo in any component's options now, not after the dataset loads and training starts.
    for kind in ("encoder", "mixer", "fuser", "distiller"):
        choice = getattr(config, kind)
        registry.get(kind, choice.name).make_config(choice.config, where=kind)
    build_context(config, corpus.info)  # validates --modalities against the dataset
    device = resolve_device(config.device)  # a missing GPU is reported before any output is created
    if config.training.precision == "bf16" and device.type != "cuda":
        raise UserError("training.precision=bf16 needs a CUDA device; on the CPU use fp32.")
    check_training_memory(config, corpus, registry, device)  # sizes are checked before anything big is allocated
    return Prepared(config, corpus)


def check_writable(out_dir: Path) -> None:
    """Fail early, with a clear message, if results could not be written to ``out_dir``.

    Folders made for the probe are removed again, so a run that stops on a later mistake leaves no
    empty output folder behind; the run makes them for real when it writes.
    """
    missing = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".merc-bench-write-test"
        probe.write_text("ok")
        probe.unlink()
        for folder in missing:  # deepest first, each empty
            folder.rmdir()
    except OSError as error:
        raise UserError(
            f"cannot write results to --out {str(out_dir)!r}: {error.strerror or error}. "
            "Choose a folder you can write to."
        ) from None


def default_out_dir(config: RunConfig) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.recipe}-{config.dataset.name}-{config.protocol}-{stamp}"


def execute(
    registry: Registry,
    prepared: Prepared,
    *,
    out_dir: Path,
    tracker: Tracker,
    console: Any = None,
    progress: Any = None,
    hook: Any = None,
    cache: SeedCache | None = None,
    keep_embeddings: bool = False,
) -> dict[str, Any]:
    """Train every seed, evaluate, track and write the outputs; return the results dict.

    Besides results.json and the per-class table, ``predictions.npz`` holds every seed's test
    predictions with the labels and each utterance's test dialogue (for paired significance tests);
    with ``keep_embeddings`` ``test_embeddings.npz`` holds the first seed's fused test
    representations (for t-SNE). With a ``cache``, a seed finished before (same fingerprint, see
    :mod:`merc_bench.seed_cache`) is reused instead of trained, and a newly trained one is stored.
    """
    with staged_output(out_dir) as staging:  # a failed run leaves no output folder behind
        summary = _train_and_write(registry, prepared, staging=staging, tracker=tracker, console=console,
                                   progress=progress, hook=hook, cache=cache, keep_embeddings=keep_embeddings)
    if hook is not None:
        hook.merc_bench_after_run(result=summary)
    return summary


def _train_and_write(registry: Registry, prepared: Prepared, *, staging: Path, tracker: Tracker, console: Any,
                     progress: Any, hook: Any, cache: SeedCache | None, keep_embeddings: bool) -> dict[str, Any]:
    """:func:`execute`'s work, writing into the staging folder."""
    config, corpus = prepared.config, prepared.corpus
    device = resolve_device(config.device)
    seeds = [config.training.seed + i for i in range(config.seeds)]
    run_description = {"recipe": config.recipe, "dataset": corpus.info.name, "protocol": config.protocol}
    params = flatten(config.model_dump(mode="json"))
    tags = environment_tags(device) | {
        "recipe": config.recipe,
        "dataset": corpus.info.name,
        "protocol": config.protocol,
        "dataset_fingerprint": corpus.fingerprint(),
    }
    results: list[SeedResult] = []
    reused: list[bool] = []
    embeddings: np.ndarray | None = None
    counts: tuple[int, int] | None = None
    code = None
    if cache is not None:  # the code every seed's result depends on, the teacher's included
        trained = [config] + ([teacher_config(config, corpus.info, registry)] if needs_teacher(config, registry) else [])
        code = code_parts(trained, registry)
    with tracker.run(f"{config.recipe}-{corpus.info.name}-{config.protocol}", params=params, tags=tags):
        for seed in seeds:
            def on_epoch(epoch: int, metrics: dict[str, float], seed: int = seed) -> dict[str, float]:
                extra: dict[str, float] = {}
                if hook is not None:
                    for returned in hook.merc_bench_after_epoch(
                        epoch=epoch, metrics=metrics, run=run_description | {"seed": seed}
                    ):
                        extra.update(returned or {})
                tracker.log_metrics({k: v for k, v in (metrics | extra).items() if k != "epoch"}, step=epoch)
                return extra

            key = seed_key(config, corpus, seed, device.type, code) if cache is not None else None
            cached = cache.load(key) if cache is not None else None
            if cache is not None and cached is None and console is not None:
                reason = cache.why_not_reused(key)
                if reason:
                    console.print(escape(f"seed {seed}: not reused from the seed cache, {reason}"))
            with tracker.run(f"seed-{seed}", params=params | {"seed": str(seed)}, tags=tags | {"seed": str(seed)},
                             nested=True) as child:
                if cached is not None:
                    result, seed_embeddings = cached
                    for row in result.history:  # the reused run's curves, so the tracked run is complete
                        child.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
                else:
                    trainer = Trainer(config=config, corpus=corpus, registry=registry, device=device,
                                      on_epoch=on_epoch, progress=progress)
                    result = trainer.fit(seed, checkpoint_dir=staging)
                    want = keep_embeddings and not results
                    seed_embeddings = trainer.embed(result.model, "test") if want else None
                    if counts is None:  # count once, on the trained model, instead of building it again
                        counts = count_parameters(result.model)
                    if cache is not None:
                        cache.save(key, result, seed_embeddings)
                child.log_metrics(_final_metrics(result))
                child.set_tags({"selected_epoch": str(result.selected_epoch), "reused": str(cached is not None)}
                               | _gpu_tags(device))
            if embeddings is None and keep_embeddings:
                embeddings = seed_embeddings
            result.model = None  # results keep metrics, not every seed's weights
            results.append(result)
            reused.append(cached is not None)
            if console is not None and result.teacher is not None:
                teacher = result.teacher
                console.print(
                    f"teacher ({', '.join(teacher['modalities'])}) {teacher['status']}: test w-F1 "
                    f"{100 * teacher['test']['weighted_f1']:.2f} · {teacher['path']}"
                )
            if console is not None:
                how = "reused from the seed cache" if cached is not None else f"{result.seconds:.1f} s"
                console.print(
                    f"seed {seed}: selected epoch {result.selected_epoch}, test w-F1 "
                    f"{100 * result.test['weighted_f1']:.2f}, {how}"
                )
        if counts is None:  # every seed was reused: build the model once to count it
            model, distiller = build_model(config, corpus.info, registry)
            counts = count_parameters(model)
        summary = _result_dict(config, corpus, seeds, results, reused, counts, device)
        for run, was_reused in zip(summary["runs"], reused):
            run["reused"] = was_reused
        paths = write_outputs(summary, staging)
        paths.append(write_predictions(staging / "predictions.npz", corpus, results))
        if embeddings is not None:
            paths.append(staging / "test_embeddings.npz")
            np.savez_compressed(paths[-1], embeddings=embeddings.astype(np.float16),
                                labels=results[0].test_labels)
        atomic_config = staging / "config.json"
        atomic_write_text(atomic_config, json.dumps(config.model_dump(mode="json"), indent=2) + "\n")
        tracker.log_metrics(
            {f"{split}_{metric}": summary[split][metric]["mean"]
             for split in ("dev", "test") if summary.get(split) for metric in ("accuracy", "weighted_f1", "macro_f1")}
        )
        tracker.log_artifacts(paths + [atomic_config])
    return summary


def write_predictions(path: Path, corpus: Corpus, results: list[SeedResult]) -> Path:
    """Every seed's test predictions (S, N), the labels (N,) and each utterance's test dialogue index (N,)."""
    dialogue = np.repeat(np.arange(len(corpus.test)), [len(d.labels) for d in corpus.test])
    predictions = np.stack([r.test_predictions for r in results])
    if predictions.shape[1] != len(dialogue):
        raise RuntimeError(f"{predictions.shape[1]} test predictions for {len(dialogue)} test utterances")
    np.savez_compressed(path, seeds=np.array([r.seed for r in results]), labels=results[0].test_labels,
                        predictions=predictions, dialogue=dialogue)
    return path


def load_predictions(path: Path) -> dict[str, np.ndarray]:
    """What :func:`write_predictions` wrote."""
    with np.load(path, allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def _teacher_summary(results: list[SeedResult], classes: tuple[str, ...]) -> dict[str, Any] | None:
    """The teacher's own metrics over seeds (the paper's "Teacher Model" row), if the run had one."""
    teachers = [r.teacher for r in results if r.teacher is not None]
    if not teachers:
        return None
    return {
        "modalities": teachers[0]["modalities"],
        "status": [t["status"] for t in teachers],
        "checkpoints": [t["path"] for t in teachers],
        "dev": summarise([t["dev"] for t in teachers], classes),
        "test": summarise([t["test"] for t in teachers], classes),
    }


def _final_metrics(result: SeedResult) -> dict[str, float]:
    metrics = {"selected_epoch": float(result.selected_epoch), "seconds": result.seconds}
    for split, values in (("dev", result.dev), ("test", result.test)):
        for key in ("accuracy", "weighted_f1", "macro_f1"):
            if values:
                metrics[f"final_{split}_{key}"] = values[key]
    return metrics


def _gpu_tags(device: Any) -> dict[str, str]:
    if getattr(device, "type", "") != "cuda":
        return {}
    import torch

    return {"peak_gpu_memory_mb": f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}"}


def _result_dict(config: RunConfig, corpus: Corpus, seeds: list[int], results: list[SeedResult],
                 reused: list[bool], counts: tuple[int, int], device: Any) -> dict[str, Any]:
    classes = corpus.info.classes
    notes = []
    if config.protocol == "paper":
        notes.append("paper protocol: trained on train + dev, epoch chosen on test (first epoch reaching the "
                     "best test score); dev metrics are on training data. Not an unbiased estimate.")
    else:
        notes.append("clean protocol: epoch chosen on dev, test evaluated once per seed.")
    return {
        "recipe": config.recipe,
        "dataset": corpus.info.name,
        "dataset_family": corpus.info.family,
        "dataset_fingerprint": corpus.fingerprint(),
        "protocol": config.protocol,
        "seeds": seeds,
        "modalities": list(build_context(config, corpus.info)["modalities"]),
        "classes": list(classes),
        "parameters": {"total": counts[0], "trainable": counts[1]},
        "device": str(device),
        "dev": summarise([r.dev for r in results], classes),
        "test": summarise([r.test for r in results], classes),
        "teacher": _teacher_summary(results, classes),
        "runs": [
            {"seed": r.seed, "selected_epoch": r.selected_epoch, "seconds": round(r.seconds, 3),
             # relative to results.json; a seed reused from the cache brought no checkpoint along
             "checkpoint": r.checkpoint.name if r.checkpoint and not was_reused else None, "history": r.history}
            for r, was_reused in zip(results, reused)
        ],
        "config": config.model_dump(mode="json"),
        "notes": notes,
        "merc_bench_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
