"""The one run pipeline every command, benchmark and test goes through: resolve → train → write.

* :func:`load_dataset` — the dataset, with its ``--set dataset.*`` options, through the same checks
  for every dataset plugin (:func:`merc_bench.data.validate_corpus`).
* :func:`resolve` — the **only** place where a recipe's defaults, its dataset family's values,
  ``--set`` overrides and command-line flags meet, in that order, and are validated: the run
  configuration, every component's options, the modalities against the data, the device and the
  training memory. ``compare``, ``ablate`` and ``tune`` resolve every configuration they will train
  before the first one trains.
* :func:`train` — every seed (a cached seed reused, a distiller's teacher prepared by
  :mod:`merc_bench.teachers`), emitting :mod:`merc_bench.events` to subscribers (tracking, plugin
  hooks, progress, a pruner); returns a :class:`RunResult`.
* :func:`write` — results.json, the per-class CSV, the confusion matrix, predictions, config.

:func:`execute` is train + write into a staging folder published whole, then ``run_ended``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import numpy as np
import pydantic
import torch

from merc_bench import __version__
from merc_bench.checkpoint import save_checkpoint, with_config
from merc_bench.config import RunConfig, apply_flags, apply_overrides
from merc_bench.data import Corpus, nonfinite_option, validate_corpus
from merc_bench.dataset_config import DEFAULT_DATASET, read_dataset_config
from merc_bench.errors import UserError
from merc_bench.events import Broadcast, RunEnded, RunStarted, SeedEnded, SeedStarted, Subscriber
from merc_bench.model import build_context, build_model, count_parameters
from merc_bench.registry import Registry, describe_validation_error
from merc_bench.report import atomic_write_text, staged_output, summarise, write_outputs
from merc_bench.seed_cache import SeedCache, seed_key
from merc_bench.sizing import check_training_memory
from merc_bench.teachers import needs_teacher, prepare_teacher, teacher_config
from merc_bench.trainer import SeedResult, Trainer, bf16_problem, resolve_device

__all__ = ["Prepared", "RunResult", "summary_frame", "load_dataset", "resolve", "prepare", "train", "train_seed", "write", "execute",
           "check_writable", "default_out_dir", "load_predictions", "teacher_warning", "SLOTS"]

SLOTS = ("encoder", "mixer", "fuser", "distiller")


@dataclass
class Prepared:
    """A resolved configuration and the corpus it was validated against."""

    config: RunConfig
    corpus: Corpus


# -- the dataset ----------------------------------------------------------------------------------
def load_dataset(registry: Registry, dataset: str | None, overrides: Iterable[str] = (),
                 data_dir: Path | None = None, dataset_config: Path | None = None,
                 ) -> tuple[Corpus, dict[str, Any], list[str]]:
    """The loaded corpus, the dataset choice (name and options) and the overrides left for the recipe.

    Dataset options are applied first because the dataset's family picks the recipe defaults that
    the other overrides then change: the options of the corpus config file ``dataset_config``
    (:mod:`merc_bench.dataset_config`), then ``--set dataset.*``. ``dataset`` None: the one the file
    names, else ``synthetic``.
    """
    overrides = list(overrides)
    own = [o for o in overrides if o.split("=", 1)[0].split(".")[0] == "dataset"]
    if dataset_config is not None:
        base = read_dataset_config(dataset_config, registry, dataset)
    else:
        base = {"name": dataset or DEFAULT_DATASET, "config": {}}
    choice = apply_overrides({"dataset": base}, own)["dataset"]
    return load_corpus(registry, choice, data_dir), choice, [o for o in overrides if o not in own]


def load_corpus(registry: Registry, choice: dict[str, Any], data_dir: Path | None) -> Corpus:
    """One dataset choice loaded and checked (every dataset, built-in or third-party, alike)."""
    entry = registry.get("dataset", choice["name"])
    # `dataset.nonfinite` is generic: taken out here unless the dataset declares it (data.nonfinite_option).
    options, nonfinite = nonfinite_option(choice.get("config", {}), entry.config.model_fields if entry.config else ())
    config = entry.make_config(options, where="dataset")
    return validate_corpus(entry.build(config, {"data_dir": data_dir}).load(),
                           nonfinite=getattr(config, "nonfinite", nonfinite))


# -- resolving ------------------------------------------------------------------------------------
def resolve(registry: Registry, recipe: str | dict[str, Any], corpus: Corpus, *, dataset: dict[str, Any],
            overrides: Iterable[str] = (), flags: dict[str, Any] | None = None, label: str = "",
            check_memory: bool = True) -> RunConfig:
    """The validated run configuration of ``recipe`` on ``corpus``.

    ``recipe`` is a registered recipe's name (its defaults for the corpus's family are taken) or
    run-config values already resolved (an ablation row, a sampled trial). Then ``overrides``
    (``--set``), then ``flags`` (command-line options; None values are not set). ``label`` names
    the configuration in errors (default: the recipe). Raises :class:`UserError` on any mistake.
    """
    if isinstance(recipe, str):
        values = registry.get("recipe", recipe).obj.resolve(corpus.info.family)
    else:
        values = copy.deepcopy(recipe)
    values["dataset"] = copy.deepcopy(dataset)
    values = apply_flags(apply_overrides(values, list(overrides)), flags or {})
    try:
        config = RunConfig.model_validate(values)
    except pydantic.ValidationError as error:
        raise UserError(describe_validation_error(error, label or f"recipe {values.get('recipe', recipe)!r}",
                                                  RunConfig)) from None
    for kind in SLOTS:  # a typo in any component's options fails now, not after training started
        choice = getattr(config, kind)
        # One of several configurations (a grid row, a trial) is named in the error; a single run needs no name.
        registry.get(kind, choice.name).make_config(choice.config, where=f"{config.recipe}: {kind}" if label else kind)
    build_context(config, corpus.info)  # modalities and class weights against the dataset
    if needs_teacher(config, registry):  # the teacher's recipe and options too, before anything trains
        teacher_config(config, corpus.info, registry)
    device = resolve_device(config.device)  # a missing GPU is reported before any output is created
    if config.training.precision == "bf16" and (problem := bf16_problem(device)):
        raise UserError(problem)
    if check_memory:  # sizes are checked before anything big is allocated
        check_training_memory(config, corpus, registry, device)
    return config


def prepare(registry: Registry, *, recipe: str, dataset: str | None, overrides: Iterable[str] = (),
            flags: dict[str, Any] | None = None, data_dir: Path | None = None,
            dataset_config: Path | None = None) -> Prepared:
    """Load the dataset and resolve one recipe on it (``merc-bench run``/``validate``)."""
    corpus, choice, rest = load_dataset(registry, dataset, overrides, data_dir, dataset_config)
    return Prepared(resolve(registry, recipe, corpus, dataset=choice, overrides=rest, flags=flags), corpus)


# -- training -------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """A trained run: its configuration, every seed's result and the summary results.json holds."""

    config: RunConfig
    summary: dict[str, Any]
    seeds: list[SeedResult]
    embeddings: np.ndarray | None = None  # the first seed's fused test representations (keep_embeddings)
    out_dir: Path | None = None  # set once written
    paths: list[Path] = field(default_factory=list)

    def to_frame(self) -> Any:
        """One row per seed: recipe, dataset, protocol, seed, selected epoch, seconds, reused and the
        dev/test accuracy, weighted F1 and macro F1 (numeric, 0–1)."""
        return summary_frame(self.summary)


def summary_frame(summary: dict[str, Any]) -> Any:
    """:meth:`RunResult.to_frame` of a results.json's content."""
    import pandas as pd

    rows = []
    for index, run in enumerate(summary["runs"]):
        row = {"recipe": summary["recipe"], "dataset": summary["dataset"], "protocol": summary["protocol"],
               "seed": run["seed"], "selected_epoch": run["selected_epoch"], "seconds": run["seconds"],
               "reused": bool(run.get("reused"))}
        for split in ("dev", "test"):
            for metric in ("accuracy", "weighted_f1", "macro_f1"):
                values = (summary.get(split) or {}).get(metric)
                row[f"{split}_{metric}"] = float(values["per_seed"][index]) if values else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def train(config: RunConfig, corpus: Corpus, *, registry: Registry, subscribers: Iterable[Subscriber] = (),
          cache: SeedCache | None = None, keep_embeddings: bool = False,
          checkpoint_dir: Path | None = None) -> RunResult:
    """Train every seed of ``config`` (reusing cached ones), emitting events; nothing is written
    except checkpoints into ``checkpoint_dir``. On an error, subscribers get ``run_ended`` (FAILED
    or KILLED); on success the caller emits it once the outputs are written (:func:`execute`)."""
    events = subscribers if isinstance(subscribers, Broadcast) else Broadcast(list(subscribers))
    device = resolve_device(config.device)
    seeds = [config.training.seed + i for i in range(config.seeds)]
    events.run_started(RunStarted(config, corpus, seeds, device))
    try:
        return _train_seeds(config, corpus, seeds, device, registry=registry, events=events, cache=cache,
                            keep_embeddings=keep_embeddings, checkpoint_dir=checkpoint_dir)
    except BaseException as error:
        events.run_ended(RunEnded(config, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED",
                                  error=error))
        raise


def _train_seeds(config: RunConfig, corpus: Corpus, seeds: list[int], device: Any, *, registry: Registry,
                 events: Broadcast, cache: SeedCache | None, keep_embeddings: bool,
                 checkpoint_dir: Path | None) -> RunResult:
    from merc_bench.code_fingerprint import code_parts

    code = None
    if cache is not None:  # the code every seed's result depends on, the teacher's included
        teacher = [teacher_config(config, corpus.info, registry)] if needs_teacher(config, registry) else []
        code = code_parts([config] + teacher, registry)
    described = {"recipe": config.recipe, "dataset": corpus.info.name, "protocol": config.protocol}
    results: list[SeedResult] = []
    reused: list[bool] = []
    embeddings, counts = None, None
    for seed in seeds:
        key = seed_key(config, corpus, seed, device.type, code) if cache is not None else None
        cached, why = _cached_seed(cache, key, needs_embeddings=keep_embeddings and not results,
                                   needs_checkpoint=checkpoint_dir is not None and config.training.save_checkpoint)
        events.seed_started(SeedStarted(config, seed, reused=cached is not None, why_not_reused=why or ""))
        if cached is not None:
            result, seed_embeddings = cached
            if result.checkpoint is not None:  # the reused seed's checkpoint, describing this run
                result.checkpoint = _reuse_checkpoint(result.checkpoint, checkpoint_dir, config, seed)
            if result.teacher is not None:  # the teacher came back with its seed; nothing was trained now
                result.teacher = dict(result.teacher, status="reused")
        else:
            trainer = Trainer(config=config, corpus=corpus, registry=registry, device=device,
                              on_epoch=events.epoch_ended, run=described)
            result = train_seed(trainer, seed, checkpoint_dir=checkpoint_dir)
            seed_embeddings = trainer.embed(result.model, "test") if keep_embeddings and not results else None
            if counts is None:  # count once, on the trained model, instead of building it again
                counts = count_parameters(result.model)
            if cache is not None:
                cache.save(key, result, seed_embeddings)
        events.seed_ended(SeedEnded(config, result, reused=cached is not None))
        if embeddings is None and keep_embeddings:
            embeddings = seed_embeddings
        result.model = None  # results keep metrics, not every seed's weights
        results.append(result)
        reused.append(cached is not None)
    if counts is None:  # every seed was reused: build the model once to count it
        counts = count_parameters(build_model(config, corpus.info, registry)[0])
    summary = _summary(config, corpus, seeds, results, reused, counts, device)
    return RunResult(config=config, summary=summary, seeds=results, embeddings=embeddings)


def _cached_seed(cache: SeedCache | None, key: Any, *, needs_embeddings: bool,
                 needs_checkpoint: bool) -> tuple[Any, str]:
    """The cached (result, embeddings) of a seed, or None, and why a stored one was not reused ("")."""
    if cache is None:
        return None, ""
    cached = cache.load(key)
    if cached is None:
        return None, cache.why_not_reused(key) or ""
    if needs_checkpoint and cached[0].checkpoint is None:
        # A run folder holds a checkpoint per seed (to predict with): train again rather than leave a gap.
        return None, "it was cached without its checkpoint"
    if needs_embeddings and cached[1] is None:
        # The t-SNE plot needs the first seed's fused test representations, which only a run that
        # asked for them cached: train the seed again (and cache them) rather than skip the plot.
        return None, "its fused test representations (for the t-SNE plot) were not cached"
    return cached, ""


def _reuse_checkpoint(cached: Path, checkpoint_dir: Path | None, config: RunConfig, seed: int) -> Path | None:
    """The cached checkpoint written into ``checkpoint_dir``, its header naming ``config`` (which may
    differ from the cached run's in what the seed's key leaves out: the display name, the seed count)."""
    if checkpoint_dir is None or not config.training.save_checkpoint:
        return None
    payload = torch.load(cached, map_location="cpu", weights_only=True)
    return save_checkpoint(checkpoint_dir / f"checkpoint-seed{seed}.pt", with_config(payload, config))


def train_seed(trainer: Trainer, seed: int, *, checkpoint_dir: Path | None = None,
               evaluate_test: bool = True) -> SeedResult:
    """One seed of ``trainer``'s configuration, its distiller's teacher prepared first when it needs one
    (trained on the corpus the student sees, standardised or not; its epochs go to the same
    ``on_epoch``). ``evaluate_test=False`` leaves test unread (a study selects on dev only)."""
    config, teacher = trainer.config, None
    if needs_teacher(config, trainer.registry):
        teacher = prepare_teacher(config, trainer.corpus, trainer.registry, seed, trainer.device,
                                  on_epoch=trainer.on_epoch)
    result = trainer.fit(seed, checkpoint_dir=checkpoint_dir, evaluate_test=evaluate_test,
                         setup=teacher.attach if teacher else None)
    if teacher is not None:
        result.teacher, result.seconds = teacher.report(), result.seconds + teacher.seconds
    return result


# -- writing --------------------------------------------------------------------------------------
def write(result: RunResult, out_dir: Path, corpus: Corpus) -> list[Path]:
    """results.json, per_class.csv, confusion_test.png and .pdf, predictions.npz, config.json (and
    test_embeddings.npz when kept) into ``out_dir``; the paths written."""
    paths = write_outputs(result.summary, out_dir)
    paths.append(_write_predictions(out_dir / "predictions.npz", corpus, result.seeds))
    if result.embeddings is not None:
        paths.append(out_dir / "test_embeddings.npz")
        np.savez_compressed(paths[-1], embeddings=result.embeddings.astype(np.float16),
                            labels=result.seeds[0].test_labels)
    paths.append(out_dir / "config.json")
    atomic_write_text(paths[-1], json.dumps(result.config.model_dump(mode="json"), indent=2) + "\n")
    return paths


def execute(config: RunConfig, corpus: Corpus, *, registry: Registry, out_dir: Path,
            subscribers: Iterable[Subscriber] = (), cache: SeedCache | None = None,
            keep_embeddings: bool = False) -> RunResult:
    """Train and write into a staging folder that becomes ``out_dir`` whole (a failed run leaves
    none), then tell the subscribers the run ended with the paths written.

    ``predictions.npz`` holds every seed's test predictions with the labels and each utterance's
    test dialogue (for paired significance tests); with ``keep_embeddings`` ``test_embeddings.npz``
    holds the first seed's fused test representations (for t-SNE). With a ``cache``, a seed
    finished before (same fingerprint, :mod:`merc_bench.seed_cache`) is reused, a new one stored.
    """
    events = Broadcast(list(subscribers))
    with staged_output(out_dir) as staging:
        result = train(config, corpus, registry=registry, subscribers=events, cache=cache,
                       keep_embeddings=keep_embeddings, checkpoint_dir=staging)
        try:
            written = write(result, staging, corpus)
        except BaseException as error:
            events.run_ended(RunEnded(config, "FAILED", error=error))
            raise
    result.out_dir, result.paths = out_dir, [out_dir / p.relative_to(staging) for p in written]
    events.run_ended(RunEnded(config, "FINISHED", summary=result.summary, paths=result.paths))
    return result


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


def _write_predictions(path: Path, corpus: Corpus, results: list[SeedResult]) -> Path:
    """Every seed's test predictions (S, N), the labels (N,) and each utterance's test dialogue index (N,)."""
    dialogue = np.repeat(np.arange(len(corpus.test)), [len(d.labels) for d in corpus.test])
    predictions = np.stack([r.test_predictions for r in results])
    if predictions.shape[1] != len(dialogue):
        raise RuntimeError(f"{predictions.shape[1]} test predictions for {len(dialogue)} test utterances")
    np.savez_compressed(path, seeds=np.array([r.seed for r in results]), labels=results[0].test_labels,
                        predictions=predictions, dialogue=dialogue)
    return path


def load_predictions(path: Path) -> dict[str, np.ndarray]:
    """What :func:`write` wrote into predictions.npz."""
    with np.load(path, allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


# -- the summary (results.json) -------------------------------------------------------------------
def _teacher_summary(config: RunConfig, results: list[SeedResult],
                     classes: tuple[str, ...]) -> dict[str, Any] | None:
    """The teacher's own metrics over seeds (the paper's "Teacher Model" row), if the run had one,
    and ``warning``: one line when the teacher is weaker on dev than the student (else None)."""
    teachers = [r.teacher for r in results if r.teacher is not None]
    if not teachers:
        return None
    return {
        "modalities": teachers[0]["modalities"],
        "status": [t["status"] for t in teachers],
        "checkpoints": [t["path"] for t in teachers],
        "epochs": [t.get("epochs") for t in teachers],  # absent from seeds cached before teachers had schedules
        "selected_epochs": [t.get("selected_epoch") for t in teachers],
        "dev": summarise([t["dev"] for t in teachers], classes),
        "test": summarise([t["test"] for t in teachers], classes),
        "warning": teacher_warning(config, results),
    }


def teacher_warning(config: RunConfig, results: list[SeedResult]) -> str | None:
    """One line when the teacher's dev score is below its student baseline's in any seed, else None.

    The student baseline is the student's own dev score of the same seed (the selection metric):
    a teacher that the student it guides already beats on held-out data has little to teach. Under
    the paper protocol the student trains on dev, so its dev score is no baseline: no warning.
    """
    if config.protocol != "clean":
        return None
    metric = config.training.selection_metric
    pairs = [(r.teacher["dev"][metric], r.dev[metric]) for r in results
             if r.teacher is not None and r.teacher["dev"] and r.dev]
    below = [(teacher, student) for teacher, student in pairs if teacher < student]
    if not below:
        return None
    teacher, student = (100 * float(np.mean(values)) for values in zip(*below))
    return (f"warning: the teacher's dev {metric} is below the student's own (the student baseline) in "
            f"{len(below)} of {len(pairs)} seed(s) ({teacher:.2f} vs {student:.2f}): distilling from it may "
            "hold the student back; give it more epochs (--set distiller.teacher.epochs=N) or another teacher.")


def _summary(config: RunConfig, corpus: Corpus, seeds: list[int], results: list[SeedResult],
             reused: list[bool], counts: tuple[int, int], device: Any) -> dict[str, Any]:
    classes = corpus.info.classes
    if config.protocol == "paper":
        notes = ["paper protocol: trained on train + dev, epoch chosen on test (first epoch reaching the "
                 "best test score); dev metrics are on training data. Not an unbiased estimate."]
    elif config.protocol == "holdout":
        notes = ["holdout protocol: epoch chosen on the first 10 % of train + dev (dev metrics are on those "
                 "dialogues), trained on the rest, test evaluated once per seed."]
    else:
        notes = ["clean protocol: epoch chosen on dev, test evaluated once per seed."]
    teacher = _teacher_summary(config, results, classes)
    if teacher is not None and teacher["warning"]:
        notes.append(teacher["warning"])
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
        "teacher": teacher,
        "runs": [
            {"seed": r.seed, "selected_epoch": r.selected_epoch, "seconds": round(r.seconds, 3),
             # relative to results.json; a reused seed's checkpoint was copied from the cache
             "checkpoint": r.checkpoint.name if r.checkpoint else None, "history": r.history,
             "reused": was_reused}
            for r, was_reused in zip(results, reused)
        ],
        "config": config.model_dump(mode="json"),
        "notes": notes,
        "merc_bench_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
