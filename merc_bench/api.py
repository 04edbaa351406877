"""The Python API: what the command line does, callable from a notebook or a script.

    import merc_bench

    result = merc_bench.run("summer-small", epochs=2, seeds=2, track=False)
    result.to_frame()                      # one row per seed, numeric metrics
    table = merc_bench.compare(["sdt", "bigru-concat"], seeds=2, epochs=2, track=False)
    table.to_frame()                       # one row per recipe: means, stds, Δw-F1, p
    merc_bench.load_results(result.out_dir).to_frame()
    merc_bench.predict(result.out_dir, "dialogues.csv")   # per-utterance labels and probabilities

Every function resolves and validates everything it will train before the first epoch (through
:func:`merc_bench.pipeline.resolve`), raises :class:`~merc_bench.errors.UserError` for a mistake,
writes its folder whole or not at all, and returns an object holding the figures, the paths
written and ``to_frame()``. Nothing is printed unless a rich ``console`` is given. ``track``
(default True, like the command line) logs to MLflow (``tracking_uri``, default ``./mlruns``);
``log_checkpoints`` logs the checkpoints as artifacts too.
The ``merc-bench`` commands are thin layers over these functions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Iterator, Sequence

from merc_bench.errors import UserError

__all__ = ["run", "compare", "ablate", "tune", "predict", "load_results", "Comparison", "Ablation", "Study", "LoadedResults"]

PROTOCOLS = ("clean", "paper", "holdout")
DEVICES = ("auto", "cpu", "cuda")


# -- shared ---------------------------------------------------------------------------------------
def _check(name: str, value: str | None, allowed: Sequence[str]) -> None:
    if value is not None and value not in allowed:
        raise UserError(f"--{name} {value!r} is not known; use {' or '.join(allowed)}.")


@contextlib.contextmanager
def _session(max_memory: str | None) -> Iterator[Any]:
    """The registry, with ``--max-memory`` in force until the call returns."""
    from merc_bench.plugins import get_registry
    from merc_bench.sizing import restore_max_memory, set_max_memory

    set_max_memory(max_memory)
    try:
        yield get_registry()
    finally:
        restore_max_memory()


def _tracker(track: bool, tracking_uri: str | None, log_checkpoints: bool = False) -> Any:
    from merc_bench.tracking import MLflowTracker, NullTracker

    return MLflowTracker(tracking_uri, log_checkpoints=log_checkpoints) if track else NullTracker()


def _progress(console: Any) -> Any:
    """Progress bars on a terminal; None for a pipe or file (one line per epoch) or without a console."""
    from merc_bench.terminal import progress_bars

    return progress_bars(console)


def _subscribers(tracker: Any, console: Any, progress: Any, extra: Iterable[Any]) -> list[Any]:
    from merc_bench.plugins import plugin_manager
    from merc_bench.subscribers import default_subscribers

    return default_subscribers(tracker=tracker, hook=plugin_manager().hook, console=console,
                               progress=progress) + list(extra)


def _modalities(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [part.strip() for part in parts if part.strip()]


def _jobs(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256:
        raise UserError(f"--jobs {value!r} must be a whole number from 1 to 256 (worker processes).")
    return value


def _path(value: str | Path | None) -> Path | None:
    return Path(value) if value is not None else None


def _stamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


# -- run ------------------------------------------------------------------------------------------
def run(recipe: str, *, dataset: str | None = None, data_dir: Path | None = None, overrides: Iterable[str] = (),
        dataset_config: str | Path | None = None, modalities: str | Sequence[str] | None = None, seeds: int | None = None, epochs: int | None = None,
        protocol: str | None = None, device: str | None = None, out: Path | None = None, track: bool = True,
        tracking_uri: str | None = None, max_memory: str | None = None, subscribers: Iterable[Any] = (),
        log_checkpoints: bool = False,
        console: Any = None) -> Any:
    """Train and evaluate one recipe (``merc-bench run``); a :class:`~merc_bench.pipeline.RunResult`.

    ``overrides`` are ``--set`` strings (``"training.lr=1e-4"``); ``subscribers`` receive the run's
    events (:mod:`merc_bench.events`) besides tracking and the plugin hooks. ``dataset_config`` is a
    corpus config file (TOML) of the dataset's options (:mod:`merc_bench.dataset_config`), which
    ``overrides`` change; ``dataset`` None is the one that file names, else ``synthetic``.
    """
    from merc_bench.pipeline import check_writable, default_out_dir, execute, prepare

    _check("protocol", protocol, PROTOCOLS)
    _check("device", device, DEVICES)
    if out is not None:
        check_writable(Path(out))
    with _session(max_memory) as registry:
        flags = {"modalities": _modalities(modalities), "seeds": seeds, "training.epochs": epochs,
                 "protocol": protocol, "device": device}
        prepared = prepare(registry, recipe=recipe, dataset=dataset, overrides=overrides, flags=flags,
                           data_dir=data_dir, dataset_config=_path(dataset_config))
        out_dir = Path(out) if out is not None else default_out_dir(prepared.config)
        check_writable(out_dir)
        tracker = _tracker(track, tracking_uri, log_checkpoints)
        if console is not None:
            _announce(console, prepared.config, prepared.corpus, f"tracking   {tracker.location} · output {out_dir}")
        with _progress(console) as progress:
            return execute(prepared.config, prepared.corpus, registry=registry, out_dir=out_dir,
                           subscribers=_subscribers(tracker, console, progress, subscribers))


def _announce(console: Any, config: Any, corpus: Any, where: str) -> None:
    """What ``merc-bench run`` prints before training: data, protocol, settings, where results go."""
    from rich.markup import escape

    console.rule(escape(f"merc-bench run {config.recipe}"))
    console.print(escape(f"dataset    {corpus.info.name} (family {corpus.info.family}): {corpus.summary()}"))
    provenance = corpus.provenance
    source = provenance.get("layout") or provenance.get("prepared_by") or provenance.get("generator")
    if source:
        splits = f" · splits: {provenance['splits']}" if provenance.get("splits") else ""
        console.print(escape(f"source     {source}{splits}"))
    for warning in provenance.get("warnings", []):
        console.print(escape(f"warning    {warning}"))
    if config.protocol == "clean":
        console.print(f"protocol   clean: train on train ({len(corpus.train)} dialogues), select the epoch on dev "
                      f"({len(corpus.dev)}), evaluate test once")
    elif config.protocol == "holdout":
        held = corpus.with_holdout_dev()
        console.print(f"protocol   holdout: train on the rest of train + dev ({len(held.train)} dialogues), select "
                      f"the epoch on the first {len(held.dev)} train dialogues, evaluate test once")
    else:
        console.print(f"protocol   paper: train on train + dev ({len(corpus.train) + len(corpus.dev)} dialogues), "
                      "report the best test epoch (not a clean estimate)")
    modalities = config.modalities or list(corpus.info.modalities)
    console.print(f"modalities {', '.join(modalities)} · seeds {config.seeds} from {config.training.seed} · "
                  f"epochs {config.training.epochs} · batch {config.training.batch_size} · lr {config.training.lr:g}")
    console.print(escape(where))


# -- compare --------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """``merc-bench compare``'s outcome: the table (MultiIndex columns, numbers ×100), its note, every
    recipe's run, the recipes that failed (recipe → message) and what was written."""

    table: Any
    note: str
    runs: dict[str, Any]
    failed: dict[str, str]
    out_dir: Path
    paths: list[Path] = field(default_factory=list)

    def to_frame(self) -> Any:
        """One row per recipe, flat numeric columns (``w-F1 mean``, ``w-F1 std``, ``Δw-F1``, ``p``, …)."""
        flat = self.table.copy()
        flat.columns = [top if not sub else f"{top} {sub}" for top, sub in self.table.columns]
        return flat


def compare(recipes: Sequence[str], *, dataset: str | None = None, data_dir: Path | None = None,
            dataset_config: str | Path | None = None, modalities: str | Sequence[str] | None = None, seeds: int = 5, epochs: int | None = None,
            protocol: str | None = None, device: str | None = None, reference: str | None = None,
            significance: str = "bootstrap", tsne: str | Sequence[str] | None = None, with_published: bool = False,
            reuse: bool = True, overrides: Iterable[str] = (), out: Path | None = None, track: bool = True,
            tracking_uri: str | None = None, max_memory: str | None = None, console: Any = None,
            log_checkpoints: bool = False, jobs: int = 1) -> Comparison:
    """Several recipes on identical data and seeds, in the SUMMER paper's table format (``merc-bench compare``).

    Every recipe is resolved and validated before the first trains. A recipe whose training
    diverges is left out of the table and named in :attr:`Comparison.failed` (the command line then
    exits 2); if the reference fails there is no table and a :class:`UserError` is raised.
    ``tsne``: recipes whose fused test representations get a t-SNE plot (names, "all" or "none";
    default the first two). ``dataset``, ``dataset_config``: as for :func:`run`. ``jobs`` > 1 trains
    the (recipe, seed) pairs in that many worker processes first (:mod:`merc_bench.parallel`).
    """
    from merc_bench.model import select_modalities
    from merc_bench.pipeline import check_writable, load_dataset

    recipes = list(recipes)
    _check_compare_arguments(recipes, protocol, device, significance)
    with _session(max_memory) as registry:
        for recipe in recipes:
            registry.get("recipe", recipe)  # unknown names fail before the dataset loads
        reference = reference or recipes[0]
        if reference not in recipes:
            raise UserError(f"--reference {reference!r} is not one of the compared recipes: {', '.join(recipes)}.")
        tsne_recipes = _tsne_choice(tsne, recipes)
        corpus, choice, rest = load_dataset(registry, dataset, overrides, data_dir, _path(dataset_config))
        select_modalities(corpus.info, _modalities(modalities))  # a bad subset fails before any recipe trains
        published = None
        if with_published:
            from merc_bench.published import published_rows

            published = published_rows(dataset=corpus.info.family)
        out_dir = Path(out) if out is not None else Path("runs") / f"compare-{corpus.info.name}-{_stamp()}"
        check_writable(out_dir)
        flags = {"seeds": seeds, "training.epochs": epochs, "protocol": protocol, "device": device,
                 "modalities": _modalities(modalities)}
        plan = _ComparePlan(recipes, reference, significance, tsne_recipes, published, seeds, _jobs(jobs))
        return _run_comparison(registry, plan, corpus=corpus, dataset=choice, overrides=rest, flags=flags,
                               out_dir=out_dir, tracker=_tracker(track, tracking_uri, log_checkpoints), reuse=reuse, console=console)


def _check_compare_arguments(recipes: list[str], protocol: str | None, device: str | None, significance: str) -> None:
    from merc_bench.significance import METHODS

    _check("protocol", protocol, PROTOCOLS)
    _check("device", device, DEVICES)
    if significance not in METHODS:
        raise UserError(f"--significance {significance!r} is not known; use {' or '.join(METHODS)}.")
    if not recipes:
        raise UserError("compare needs at least one recipe.")
    if len(set(recipes)) != len(recipes):
        raise UserError(f"recipes {', '.join(recipes)}: each recipe may be named once.")


@dataclass
class _ComparePlan:
    """What a comparison trains and how its table is made (checked before anything trains)."""

    recipes: list[str]
    reference: str
    significance: str
    tsne: list[str]
    published: Any
    seeds: int
    jobs: int = 1


def _run_comparison(registry: Any, plan: _ComparePlan, *, corpus: Any, dataset: dict[str, Any],
                    overrides: list[str], flags: dict[str, Any], out_dir: Path, tracker: Any, reuse: bool,
                    console: Any) -> Comparison:
    from merc_bench import ablation
    from merc_bench.report import staged_output
    from merc_bench.seed_cache import SeedCache

    rows = [({"recipe": recipe}, registry.get("recipe", recipe).obj.resolve(corpus.info.family))
            for recipe in plan.recipes]
    # Written into a staging folder that becomes out_dir only when the table is written: a
    # comparison that stops leaves no partial folder (its finished seeds stay in the seed cache).
    with staged_output(out_dir) as staging:
        made: list[Comparison] = []

        def finish(summaries: list[dict[str, Any]]) -> list[Path]:  # inside the parent run: its artifacts
            made.append(_comparison_table(plan, summaries, corpus.info, staging))
            return made[0].paths

        with _progress(console) as progress:
            ablation.run_grid(
                registry, rows, corpus=corpus, dataset=dataset, overrides=overrides, flags=flags, out_dir=staging,
                tracker=tracker, name=f"compare-{corpus.info.name}", console=console,
                subscribers=lambda: _subscribers(tracker, console, progress, ()),
                cache=SeedCache() if reuse else None, keep_embeddings=[r in plan.tsne for r in plan.recipes],
                record_divergence=True, finish=finish, jobs=plan.jobs)
        comparison = made[0]
    for item in comparison.runs.values():  # the rows' folders now live in out_dir
        item.out_dir = out_dir / item.out_dir.relative_to(staging)
        item.paths = [out_dir / p.relative_to(staging) for p in item.paths]
    comparison.out_dir = out_dir
    comparison.paths = [out_dir / p.relative_to(staging) for p in comparison.paths]
    return comparison


def _comparison_table(plan: _ComparePlan, summaries: list[dict[str, Any]], info: Any, staging: Path) -> Comparison:
    """The table, its note and plots from the rows that finished; no table if the reference failed."""
    from merc_bench import comparison as comparing

    failed = {s["recipe"]: s["failed"] for s in summaries if s["result"] is None}
    done = [s for s in summaries if s["result"] is not None]
    failures = " ".join(f"{recipe}: {message}" for recipe, message in failed.items())
    if not done or plan.reference in failed:
        raise UserError(f"the comparison has no table: {'every recipe' if not done else 'the reference'} "
                        f"failed. {failures}")
    measured = [comparing.Measured(s["recipe"], s["result"], s["out_dir"]) for s in done]
    table = comparing.comparison_table(measured, reference=plan.reference, method=plan.significance,
                                       published=plan.published)
    note = comparing.table_note(info, done[0]["result"], seeds=plan.seeds, reference=plan.reference,
                                method=plan.significance, published=plan.published is not None, failures=failures)
    written = comparing.write_comparison(table, staging, note)
    written += comparing.plot_comparison(measured, staging, tsne=[r for r in plan.tsne if r not in failed])
    return Comparison(table=table, note=note, runs={s["recipe"]: s["run"] for s in done}, failed=failed,
                      out_dir=staging, paths=written)


def _tsne_choice(tsne: str | Sequence[str] | None, recipes: list[str]) -> list[str]:
    if tsne is None:
        return recipes[:2]
    names = [t.strip() for t in (tsne.split(",") if isinstance(tsne, str) else tsne) if t.strip()]
    if names == ["all"]:
        return list(recipes)
    if names == ["none"]:
        return []
    unknown = [r for r in names if r not in recipes]
    if unknown:
        raise UserError(f"--tsne names {unknown[0]!r}, which is not compared; choose from {', '.join(recipes)}, "
                        "all or none.")
    return names


# -- ablate ---------------------------------------------------------------------------------------
@dataclass
class Ablation:
    """``merc-bench ablate``'s outcome: the grid's table (numeric: means, stds and Δ ×100;
    :func:`merc_bench.ablation.display_table` renders it), its rows' summaries and runs."""

    grid: str
    recipe: str | None
    table: Any
    note: str
    summaries: list[dict[str, Any]]
    out_dir: Path
    paths: list[Path] = field(default_factory=list)
    label_columns: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # the grid options used (defaults spelled out)

    def to_frame(self) -> Any:
        """One row per grid row: the labels, the recipe, test ACC/w-F1 mean and std ×100, their Δ from
        row 1, seeds, then one column per grid option."""
        frame = self.table.copy()
        frame.insert(len(self.label_columns), "recipe", [summary["recipe"] for summary in self.summaries])
        for key, value in self.options.items():
            frame[key] = value
        return frame


def ablate(recipe: str | None = None, *, grid: str | None = None, dataset: str | None = None,
           data_dir: Path | None = None, dataset_config: str | Path | None = None, seeds: int | None = None, epochs: int | None = None,
           protocol: str | None = None, device: str | None = None, overrides: Iterable[str] = (),
           grid_options: dict[str, Any] | Iterable[str] | None = None, out: Path | None = None, track: bool = True,
           tracking_uri: str | None = None, max_memory: str | None = None, console: Any = None,
           log_checkpoints: bool = False, jobs: int = 1) -> Ablation:
    """Run an ablation grid a plugin declares (``merc-bench ablate``): ``grid`` by name, or the first
    grid that applies to ``recipe`` (the SUMMER plugin declares ``components``, Table IV, and
    ``modalities``, Table I). Every row is validated before the first trains.

    ``grid_options`` are the grid's own options, a dict or ``"KEY=VALUE"`` strings
    (``--grid-option``); SUMMER's components grid takes ``row1`` (``sdt``: row 1 is SDT as
    published, the default; ``recipe``: SDT's parts with the ablated recipe's settings) and ``ikd``
    (``replace``: IKD rows drop self-distillation and modality heads, the default; ``add``: they
    keep both). The written tables name the options chosen (caption; CSV columns). ``dataset``,
    ``dataset_config``: as for :func:`run`."""
    from merc_bench import ablation
    from merc_bench.pipeline import check_writable, load_dataset
    from merc_bench.plugins import plugin_manager
    from merc_bench.report import staged_output

    _check("protocol", protocol, PROTOCOLS)
    _check("device", device, DEVICES)
    with _session(max_memory) as registry:
        chosen, recipe = ablation.find_grid(ablation.declared_grids(plugin_manager().hook), grid, recipe, registry)
        if recipe is not None:
            registry.get("recipe", recipe)
        options = ablation.grid_options(chosen, grid_options)
        corpus, choice, rest = load_dataset(registry, dataset, overrides, data_dir, _path(dataset_config))
        rows = ablation.grid_rows(chosen, registry, recipe, corpus.info, options)
        name = f"{chosen.name}-{recipe or 'grid'}-{corpus.info.name}"
        out_dir = Path(out) if out is not None else Path("runs") / f"ablate-{name}-{_stamp()}"
        check_writable(out_dir)
        tracker = _tracker(track, tracking_uri, log_checkpoints)
        flags = {"seeds": seeds, "training.epochs": epochs, "protocol": protocol, "device": device}
        with staged_output(out_dir) as staging:  # a grid that stops leaves no partial folder
            made: dict[str, Any] = {}

            def finish(summaries: list[dict[str, Any]]) -> list[Path]:  # inside the parent run: its artifacts
                made["table"] = ablation.grid_table(summaries, list(chosen.label_columns))
                made["note"] = " ".join(filter(None, [
                    f"Test ACC and w-F1 (×100, mean ± std over seeds) on {corpus.info.name}, protocol "
                    f"{summaries[0]['result']['protocol']}; Δ against the first row. Grid {chosen.name}: "
                    f"{chosen.description}.", ablation.describe_options(chosen, options)]))
                made["written"] = ablation.write_grid(made["table"], staging, chosen.name, made["note"], options)
                return made["written"]

            with _progress(console) as progress:
                summaries = ablation.run_grid(
                    registry, rows, corpus=corpus, dataset=choice, overrides=rest, flags=flags, out_dir=staging,
                    tracker=tracker, name=name, console=console, route_component_options=True,
                    subscribers=lambda: _subscribers(tracker, console, progress, ()), finish=finish,
                    jobs=_jobs(jobs))
            table, note, written = made["table"], made["note"], made["written"]
    return Ablation(grid=chosen.name, recipe=recipe, table=table, note=note, summaries=summaries, out_dir=out_dir,
                    paths=[out_dir / p.relative_to(staging) for p in written], label_columns=chosen.label_columns,
                    options=options.model_dump(mode="json") if options is not None else {})


# -- tune -----------------------------------------------------------------------------------------
@dataclass
class Study:
    """A finished ``merc-bench tune`` call: the Optuna study, its folder and the exit code the command uses
    (1 when a worker process failed)."""

    study: Any
    out_dir: Path
    code: int

    def to_frame(self) -> Any:
        """Optuna's trial table (number, value, state, params_…, user_attrs_…)."""
        return self.study.trials_dataframe()


def tune(recipe: str | None = None, *, console: Any = None, max_memory: str | None = None,
         **options: Any) -> Study:
    """An Optuna study over components and hyper-parameters on dev only (``merc-bench tune``).

    ``options`` are :class:`merc_bench.tuning.TuneRequest`'s fields (``dataset``, ``trials``,
    ``space``, ``workers``, ``overrides``, ``final_seeds``, ``no_track`` …).
    """
    import optuna
    from rich.console import Console

    from merc_bench import tuning
    from merc_bench.plugins import plugin_manager

    request = tuning.TuneRequest(recipe=recipe, **options)
    _check("device", request.device, DEVICES)
    with _session(max_memory) as registry:
        outcome = tuning.run_study(request, registry=registry, console=console or Console(quiet=True),
                                   hook=plugin_manager().hook)
        storage = tuning.study.open_storage(outcome.url, heartbeat_interval=None, grace_period=None, on_stale=None)
        study = optuna.load_study(study_name=outcome.name, storage=storage)
    return Study(study=study, out_dir=outcome.study_dir, code=outcome.code)


# -- reading results back ---------------------------------------------------------------------------
@dataclass
class LoadedResults:
    """The results.json files of a run folder, or of every row of a compare/ablate folder."""

    summaries: list[dict[str, Any]]
    folders: list[Path]

    def to_frame(self) -> Any:
        """One row per seed of every run (see :meth:`merc_bench.pipeline.RunResult.to_frame`)."""
        import pandas as pd

        from merc_bench.pipeline import summary_frame

        return pd.concat([summary_frame(s) for s in self.summaries], ignore_index=True)


def predict(source: str | Path, input: str | Path, *, out: str | Path | None = None, split: str | None = None,
            seed: int | None = None, columns: dict[str, str] | Sequence[str] | None = None, hidden: bool = False,
            device: str = "cpu") -> Any:
    """Predict the emotions of ``input``'s utterances with a trained model (``merc-bench predict``).

    ``source``: a run folder (its first seed's checkpoint, or ``seed``'s) or a checkpoint file;
    ``input``: a feature folder or a CSV of dialogues (:mod:`merc_bench.prediction`); ``columns``: the
    CSV's column per role, as a dict or ``"role=name"`` strings. Returns a pandas DataFrame, one row
    per utterance; with ``out`` it is also written there as CSV (whole or not at all).
    """
    from merc_bench.prediction import predict as predict_rows
    from merc_bench.report import atomic_write_text

    _check("device", device, DEVICES)
    if out is not None:
        from merc_bench.pipeline import check_writable

        check_writable(Path(out).parent)
    with _session(None) as registry:
        frame = predict_rows(source, input, split=split, seed=seed, columns=_columns(columns), hidden=hidden,
                             device=device, registry=registry)
    if out is not None:
        atomic_write_text(Path(out), frame.to_csv(index=False))
    return frame


def _columns(value: dict[str, str] | Sequence[str] | None) -> dict[str, str]:
    if value is None or isinstance(value, dict):
        return dict(value or {})
    columns = {}
    for item in value:
        role, sep, name = item.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise UserError(f"--column {item!r} is not ROLE=NAME (e.g. --column text=Utterance).")
        columns[role.strip()] = name.strip()
    return columns


def load_results(path: str | Path) -> LoadedResults:
    """Read what ``run``, ``compare`` or ``ablate`` wrote: a run folder (or its results.json), or a
    compare/ablate folder (every row's folder). Checked: a file that is not merc-bench's results is
    refused with the field that is wrong."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif (path / "results.json").is_file():
        files = [path / "results.json"]
    else:
        files = sorted(path.glob("*/results.json"))
    if not files:
        raise UserError(f"no results.json in {str(path)!r} or its sub-folders; give a folder written by "
                        "merc-bench run, compare or ablate.")
    summaries = [_read_summary(file) for file in files]
    return LoadedResults(summaries=summaries, folders=[file.parent for file in files])


_MAX_RESULTS_BYTES = 256 * 2**20  # a results.json holds metrics and curves: far below this


def _read_summary(file: Path) -> dict[str, Any]:
    if file.stat().st_size > _MAX_RESULTS_BYTES:
        raise UserError(f"{str(file)!r} is {file.stat().st_size:,} bytes, more than a results.json can be "
                        f"({_MAX_RESULTS_BYTES:,}); it is not merc-bench's.")
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise UserError(f"{str(file)!r} is not valid JSON ({type(error).__name__}: {error}); expected a "
                        "results.json written by merc-bench.") from None
    problem = _summary_problem(summary)
    if problem:
        raise UserError(f"{str(file)!r} is not a merc-bench results.json: {problem}.")
    return summary


def _summary_problem(summary: Any) -> str:
    """What is wrong with a parsed results.json for :meth:`LoadedResults.to_frame`, or ''."""
    import pydantic

    if not isinstance(summary, dict):
        return f"the top level is {type(summary).__name__}, not an object"
    try:
        _summary_schema().model_validate(summary)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
        return f"field {where!r}: {first['msg']}" if where else first["msg"]
    return ""


@functools.lru_cache(maxsize=1)
def _summary_schema() -> Any:
    """The part of results.json that :meth:`LoadedResults.to_frame` reads (other fields pass)."""
    from typing import Annotated, Optional

    from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

    number = Annotated[float, Field(allow_inf_nan=False)]

    class Lenient(BaseModel):
        model_config = ConfigDict(extra="allow", strict=True)  # strict: no "0" for 0, no true for 1

    class Metric(Lenient):
        per_seed: list[number]

    class Split(Lenient):
        accuracy: Metric
        weighted_f1: Metric
        macro_f1: Metric

    class Run(Lenient):
        seed: number
        selected_epoch: number
        seconds: number

    class Summary(Lenient):
        recipe: str
        dataset: str
        protocol: str
        runs: list[Run]
        dev: Optional[Split] = None
        test: Optional[Split] = None

        @field_validator("dev", "test", mode="before")
        @classmethod
        def _empty_is_absent(cls, value: Any) -> Any:
            return None if value == {} else value

        @model_validator(mode="after")
        def _one_value_per_run(self) -> Summary:
            for split in ("dev", "test"):
                values = getattr(self, split)
                for metric in ("accuracy", "weighted_f1", "macro_f1"):
                    if values is not None and len(getattr(values, metric).per_seed) != len(self.runs):
                        raise ValueError(f"{split}.{metric}.per_seed has {len(getattr(values, metric).per_seed)} "
                                         f"values for {len(self.runs)} runs")
            return self

    return Summary
