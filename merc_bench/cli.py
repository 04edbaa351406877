"""The ``merc-bench`` command line.

User mistakes (:class:`~merc_bench.errors.UserError`) print one paragraph on stderr and exit with
code 2, without a traceback. Plugins add commands through the ``merc_bench_cli_commands`` hook of the
light modules in the ``merc_bench.cli`` entry-point group (:func:`_add_plugin_commands`, at every
start-up), so ``--help`` lists them without importing any plugin's components or PyTorch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

# MLflow looks up a telemetry host at import; switch that off before anything imports it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import typer
from rich.markup import escape

from merc_bench.errors import UserError
from merc_bench.terminal import make_console

app = typer.Typer(
    name="merc-bench",
    help="Multimodal emotion recognition in conversations: run, validate and inspect recipes built from "
    "registered components (encoders, mixers, fusers, distillers, datasets).",
    epilog="Examples: merc-bench run summer-small · merc-bench compare summer sdt dialoguernn --seeds 5 · "
    "merc-bench ablate summer-small · merc-bench tune --dataset synthetic --trials 10 · "
    "merc-bench run sdt --set mixer=sdmoe. Each command has --help. Guides: README.md (using it), "
    "CONTRIBUTING.md (writing a plugin).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# The terminal's width on a terminal; a pipe or file gets terminal.PIPE_WIDTH columns (tables stay whole).
console = make_console()
error_console = make_console(stderr=True)

data_app = typer.Typer(help="Prepare, convert and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
config_app = typer.Typer(help="Show resolved run configurations.", no_args_is_help=True)
app.add_typer(config_app, name="config")

KIND_ALIASES = {"text_encoders": "text_encoder", "text-encoder": "text_encoder",
                "audio_encoders": "audio_encoder", "audio-encoder": "audio_encoder",
                "visual_encoders": "visual_encoder", "visual-encoder": "visual_encoder", "encoders": "encoder", "mixers": "mixer", "fusers": "fuser", "distillers": "distiller",
                "datasets": "dataset", "recipes": "recipe"}


#: ``--max-memory`` of every command that trains (see merc_bench.sizing).
MaxMemory = Annotated[Optional[str], typer.Option(
    "--max-memory", metavar="SIZE", help="refuse a configuration whose estimated training memory exceeds SIZE "
    "(e.g. 8G; default: the memory available now; also MERC_BENCH_MAX_MEMORY)")]

#: ``--dataset`` and ``--dataset-config`` of every command that loads a dataset.
DatasetName = Annotated[Optional[str], typer.Option(
    "--dataset", help="dataset name, see `merc-bench list dataset` (default: the one --dataset-config names, else "
    "synthetic)")]
DatasetConfig = Annotated[Optional[Path], typer.Option(
    "--dataset-config", metavar="PATH", help="TOML file of the dataset's options (`merc-bench list dataset NAME` "
    "shows them; relative paths in it are resolved against its folder; --set dataset.* overrides it)")]

#: ``--config`` of every command that trains (merc_bench.run_file).
RunFileOption = Annotated[Optional[Path], typer.Option(
    "--config", metavar="PATH", help="run file (TOML, YAML or JSON; a run folder's config.json too): recipe(s), "
    "dataset, data_dir, seeds, epochs, [set] ...; the command line's flags and --set win")]

_warned = False


def _run_file(path: Optional[Path], recipe: Optional[str], command: str, **given: Any) -> tuple:
    """(recipe, dataset, data_dir, dataset_config, overrides, seeds): the command line's over ``--config``'s."""
    if path is None:
        return recipe, given["dataset"], given["data_dir"], given["dataset_config"], given["overrides"] or [], None
    from merc_bench.run_file import read_run_file

    run_file = read_run_file(path)
    return (run_file.recipe(recipe, command), *run_file.merged(**given), run_file.seeds)


def _need_recipe(recipe: Optional[str], command: str) -> str:
    if recipe is None:
        raise UserError(f"`merc-bench {command}` needs a recipe: name one (merc-bench {command} sdt) or give "
                        "--config FILE that names one.")
    return recipe


def _registry():
    """The registry; the first call warns (stderr) about plugins that failed to load."""
    global _warned
    from merc_bench.plugins import get_registry, plugin_problems

    registry = get_registry()
    if not _warned:
        _warned = True
        for problem in plugin_problems():
            error_console.print(f"warning: {problem.message()}", markup=False, highlight=False)
    return registry


def _print_version(asked: bool) -> None:
    if asked:
        from merc_bench import __version__

        console.print(f"merc-bench {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="print merc-bench's version and exit")] = False,
    trace: Annotated[bool, typer.Option("--trace", help="log every plugin hook call (name, arguments, "
                                                        "results) to stderr")] = False,
    strict_plugins: Annotated[bool, typer.Option("--strict-plugins", help="stop when a plugin fails to load "
                                                                         "instead of warning and going on")] = False,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for PyTorch (default: one per core); give "
                                                        "each of K jobs sharing a machine cores/K — oversubscribed "
                                                        "cores slow recurrent models down by 10× or more", min=1)] = None,
) -> None:
    """Options for every command; they must come before the command name."""
    from merc_bench.plugins import STRICT_VARIABLE, TRACE_VARIABLE, command_problems, reset, strict_message

    if strict_plugins and command_problems():  # found at start-up, before this option was parsed
        raise UserError(strict_message(command_problems()[0]))
    if threads is not None:
        import torch

        torch.set_num_threads(threads)

    if trace or strict_plugins:
        if trace:
            os.environ[TRACE_VARIABLE] = "1"
        if strict_plugins:
            os.environ[STRICT_VARIABLE] = "1"
        reset()  # the plugin manager reads both when it is (re)built


def _modalities(value: Optional[str]) -> Optional[list[str]]:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


@app.command("list")
def list_components(
    kind: Annotated[Optional[str], typer.Argument(help="encoder, mixer, fuser, distiller, dataset, text_encoder, "
                                                       "audio_encoder, visual_encoder or recipe")] = None,
    name: Annotated[Optional[str], typer.Argument(help="one registered name: its options in full (type, default, "
                                                       "description)")] = None,
) -> None:
    """List registered components, all kinds or one; `list dataset` adds every dataset's options."""
    from rich.table import Table

    from merc_bench.errors import unknown_name_message
    from merc_bench.registry import KINDS

    registry = _registry()
    if kind is not None:
        kind = KIND_ALIASES.get(kind, kind)
        if kind not in KINDS:
            raise UserError(unknown_name_message("kind", kind, KINDS))
    if kind is not None and name is not None:
        _print_options(registry.get(kind, name))
        return
    table = Table(show_lines=False)
    for column in ("kind", "name", "plugin", "search space", "description"):
        table.add_column(column)
    for entry in registry.entries(kind):
        table.add_row(entry.kind, entry.name, entry.plugin, "yes" if entry.search_space else "",
                      entry.description)
    console.print(table)
    if kind == "dataset":  # a dataset is used through its options (a corpus config file holds them)
        for entry in registry.entries(kind):
            _print_options(entry)


def _print_options(entry) -> None:
    """One entry's options: name, type, default (as --set takes it) and description."""
    from rich.table import Table

    from merc_bench.registry import config_options

    if entry.config is None:
        more = f"; `merc-bench validate {entry.name}` shows what it resolves to" if entry.kind == "recipe" else ""
        console.print(f"{entry.kind} {entry.name} has no options of its own{more}.", markup=False, highlight=False)
        return
    where = ("--set dataset.OPTION=VALUE, or OPTION = VALUE in a --dataset-config TOML file" if entry.kind == "dataset"
             else f"--set {entry.kind}.OPTION=VALUE" if entry.kind in ("encoder", "mixer", "fuser", "distiller")
             else "")
    table = Table(title=escape(f"{entry.kind} {entry.name}: options" + (f" ({where})" if where else "")),
                  title_justify="left")
    for column in ("option", "type", "default", "description"):
        table.add_column(column, overflow="fold")
    for option in config_options(entry.config):
        table.add_row(*(escape(text) for text in (option.name, option.type, option.default, option.description)))
    console.print(table)


@app.command()
def plugins() -> None:
    """List installed plugins: entry point, distribution, version and what each registered."""
    from rich.table import Table

    from merc_bench.plugins import IN_PROCESS, plugin_distributions, plugin_manager, plugin_problems

    registry = _registry()
    owners = plugin_distributions()
    table = Table()
    for column in ("plugin", "distribution", "version", "registered (kind name)"):
        table.add_column(column)
    failed = {problem.plugin: problem for problem in plugin_problems()}
    for name, plugin in plugin_manager().list_name_plugin():
        if plugin is None or name in failed:
            continue
        distribution, version = owners.get(plugin, (IN_PROCESS, ""))
        registered = [f"{e.kind} {e.name}" for e in registry.entries() if e.source == name]
        table.add_row(name, distribution, version, ", ".join(registered) or "(nothing)")
    for name, problem in sorted(failed.items()):
        table.add_row(name, problem.distribution, problem.version, f"[red]FAILED ({problem.stage}): "
                      f"{escape(problem.error)}[/red]")
    console.print(table)


@app.command()
def validate(
    recipe: Annotated[str, typer.Argument(help="recipe name, see `merc-bench list recipe`")],
    dataset: DatasetName = None,
    dataset_config: DatasetConfig = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="folder holding the dataset's files")] = None,
    modalities: Annotated[Optional[str], typer.Option(help="comma-separated subset, e.g. text,audio")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set training.lr=1e-4")] = None,
    max_memory: MaxMemory = None,
) -> None:
    """Build the model without training; print the component tree, parameter counts and training memory."""
    from merc_bench.model import build_model, count_parameters
    from merc_bench.pipeline import prepare
    from merc_bench.sizing import estimate_training_memory, memory_limit, set_max_memory
    from merc_bench.trainer import resolve_device

    set_max_memory(max_memory)
    registry = _registry()
    prepared = prepare(registry, recipe=recipe, dataset=dataset, overrides=set_ or [],
                       flags={"modalities": _modalities(modalities)}, data_dir=data_dir, dataset_config=dataset_config)
    model, distiller = build_model(prepared.config, prepared.corpus.info, registry)
    config = prepared.config
    console.print(f"recipe {config.recipe} on {prepared.corpus.info.name} (family {prepared.corpus.info.family}); "
                  f"modalities {', '.join(model.modalities)}")
    for kind in ("encoder", "mixer", "fuser", "distiller"):
        choice = getattr(config, kind)
        console.print(f"  {kind:9} {choice.name} {choice.config}")
    console.print(model, distiller, markup=False, highlight=False)
    total, trainable = count_parameters(model, distiller)
    console.print(f"parameters: {total:,} (trainable {trainable:,})")
    device = resolve_device(config.device)
    estimate = estimate_training_memory(config, prepared.corpus, registry, device)  # what prepare checked
    console.print(f"memory: {estimate.describe()}; limit {memory_limit(device)}", markup=False, highlight=False)


@app.command()
def run(
    recipe: Annotated[Optional[str], typer.Argument(help="recipe name, see `merc-bench list recipe` (or in --config)")] = None,
    config: RunFileOption = None,
    dataset: DatasetName = None,
    dataset_config: DatasetConfig = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="folder holding the dataset's files")] = None,
    modalities: Annotated[Optional[str], typer.Option(help="comma-separated subset, e.g. text,audio")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="number of seeds (mean ± std over them)", min=1)] = None,
    epochs: Annotated[Optional[int], typer.Option(help="override the recipe's epochs", min=1)] = None,
    protocol: Annotated[Optional[str], typer.Option(help="clean (select on dev), paper (best test epoch) or holdout (select on the first 10 % of train)")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set training.lr=1e-4")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output folder (default runs/<recipe>-<dataset>-...)")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default ./mlruns sqlite)")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="do not log to MLflow")] = False,
    log_checkpoints: Annotated[bool, typer.Option("--log-checkpoints", help="log the checkpoints to MLflow as artifacts too")] = False,
    max_memory: MaxMemory = None,
) -> None:
    """Train and evaluate a recipe; write results.json, per-class CSV and a confusion matrix."""
    from merc_bench import api
    from merc_bench.report import results_table

    _registry()  # plugin warnings first
    recipe, dataset, data_dir, dataset_config, set_, _ = _run_file(
        config, recipe, "run", dataset=dataset, data_dir=data_dir, dataset_config=dataset_config, overrides=set_)
    result = api.run(_need_recipe(recipe, "run"), dataset=dataset, data_dir=data_dir, dataset_config=dataset_config, overrides=set_ or [],
                     modalities=modalities, seeds=seeds, epochs=epochs, protocol=protocol, device=device, out=out,
                     track=not no_track, tracking_uri=tracking_uri, max_memory=max_memory, console=console,
                     log_checkpoints=log_checkpoints)
    summary = result.summary
    console.print(results_table(summary))
    console.print(f"parameters {summary['parameters']['total']:,} (trainable {summary['parameters']['trainable']:,})")
    console.print(f"results    {result.out_dir / 'results.json'}")


@app.command()
def predict(
    source: Annotated[Path, typer.Argument(help="a run folder (its first seed's checkpoint) or a checkpoint file")],
    input: Annotated[Path, typer.Option("--input", help="a feature folder, or a CSV of dialogues (text models)")],
    out: Annotated[Optional[Path], typer.Option(help="write the predictions here as CSV")] = None,
    split: Annotated[Optional[str], typer.Option(help="only this split of a feature folder (train, dev, test)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="the seed whose checkpoint predicts (default: the first)")] = None,
    column: Annotated[Optional[list[str]], typer.Option(help="a CSV's column for a role: dialogue, order, speaker, "
                                                         "text, label; e.g. --column text=Utterance")] = None,
    hidden: Annotated[bool, typer.Option("--hidden", help="add the fused representation (h_0 ...)")] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
) -> None:
    """Predict each utterance's emotion with a trained model: label, probabilities, optionally the fused vector."""
    from merc_bench import api

    _registry()  # plugin warnings first
    frame = api.predict(source, input, out=out, split=split, seed=seed, columns=column, hidden=hidden, device=device)
    known = frame[frame["label"] != ""]
    line = f"predicted {len(frame)} utterances in {frame['dialogue'].nunique()} dialogues"
    if len(known):
        from sklearn.metrics import f1_score

        accuracy = 100 * float((known["label"] == known["prediction"]).mean())
        weighted = 100 * f1_score(known["label"], known["prediction"], average="weighted", zero_division=0)
        line += f"; on the {len(known)} labelled: accuracy {accuracy:.2f}, weighted F1 {weighted:.2f}"
    console.print(line)
    if out is not None:
        console.print(f"predictions {out}")
    else:
        console.print(frame.drop(columns=[c for c in frame.columns if c.startswith("h_")]).head(20).to_string(index=False))


@app.command()
def ablate(
    recipe: Annotated[Optional[str], typer.Argument(help="the recipe to ablate (default: the grid's own, e.g. "
                                                         "summer)")] = None,
    config: RunFileOption = None,
    grid: Annotated[Optional[str], typer.Option(help="a grid a plugin declares (SUMMER: components = Table IV, "
                                                     "modalities = Table I); default: the first for the recipe")] = None,
    dataset: DatasetName = None,
    dataset_config: DatasetConfig = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="folder holding the dataset's files")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="seeds per row", min=1)] = None,
    epochs: Annotated[Optional[int], typer.Option(help="override every row's epochs", min=1)] = None,
    protocol: Annotated[Optional[str], typer.Option(help="clean, paper or holdout")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda")] = None,
    modalities_grid: Annotated[bool, typer.Option("--modalities-grid",
                                                  help="the same as --grid modalities (Table I)")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override applied to every row")] = None,
    grid_option: Annotated[Optional[list[str]], typer.Option(
        "--grid-option", help="KEY=VALUE: an option of the grid (SUMMER's components: row1=sdt|recipe, "
        "ikd=replace|add; see the docs)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output folder (default runs/ablate-...)")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="do not log to MLflow")] = False,
    jobs: Annotated[int, typer.Option(help="worker processes training the (recipe, seed) pairs, cores shared "
                                           "evenly (merc_bench.parallel)", min=1, max=256)] = 1,
    log_checkpoints: Annotated[bool, typer.Option("--log-checkpoints", help="log the checkpoints to MLflow as artifacts too")] = False,
    max_memory: MaxMemory = None,
) -> None:
    """Run an ablation grid a plugin declares: SUMMER's Table IV (SDMoE × HCMF × IKD vs SDT's parts) or Table I."""
    from rich.table import Table

    from merc_bench import ablation, api

    if modalities_grid:
        if grid not in (None, "modalities"):
            raise UserError(f"--modalities-grid and --grid {grid!r} contradict each other; give one.")
        grid = "modalities"
    _registry()
    recipe, dataset, data_dir, dataset_config, set_, _ = _run_file(
        config, recipe, "ablate", dataset=dataset, data_dir=data_dir, dataset_config=dataset_config, overrides=set_)
    result = api.ablate(recipe, grid=grid, dataset=dataset, data_dir=data_dir, dataset_config=dataset_config,
                        seeds=seeds, epochs=epochs, protocol=protocol, device=device, overrides=set_ or [],
                        grid_options=grid_option or [], out=out, track=not no_track, tracking_uri=tracking_uri,
                        max_memory=max_memory, console=console, log_checkpoints=log_checkpoints, jobs=jobs)
    shown = ablation.display_table(result.table)
    printed = Table(title=result.note, title_justify="left")
    for column in shown.columns:
        printed.add_column(str(column), justify="right")
    for row in shown.itertuples(index=False):
        printed.add_row(*(str(v) for v in row))
    console.print(printed)
    console.print(f"written    {', '.join(str(p) for p in result.paths)}")


@app.command()
def compare(
    recipes: Annotated[Optional[list[str]], typer.Argument(help="recipes to compare, e.g. summer sdt dialoguernn "
                                                                "(or recipes in --config)")] = None,
    config: RunFileOption = None,
    dataset: DatasetName = None,
    dataset_config: DatasetConfig = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="folder holding the dataset's files")] = None,
    modalities: Annotated[Optional[str], typer.Option(help="comma-separated subset for every recipe, e.g. text")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="seeds per recipe (the same seeds for every recipe; default 5)",
                                                 min=1)] = None,
    epochs: Annotated[Optional[int], typer.Option(help="override every recipe's epochs", min=1)] = None,
    protocol: Annotated[Optional[str], typer.Option(help="clean (select on dev), paper (best test epoch) or holdout (select on the first 10 % of train)")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda")] = None,
    reference: Annotated[Optional[str], typer.Option(help="recipe the others are tested against (default: the first)")] = None,
    significance: Annotated[str, typer.Option(help="bootstrap (paired, over test dialogues, seeds pooled) or "
                                                   "wilcoxon (over seeds)")] = "bootstrap",
    tsne: Annotated[Optional[str], typer.Option(help="recipes whose fused test representations get a t-SNE plot: "
                                                     "comma-separated names, all or none (default: the first two)")] = None,
    with_published: Annotated[bool, typer.Option("--with-published",
                                                 help="add the SUMMER paper's reported rows, marked as published")] = False,
    reuse: Annotated[bool, typer.Option(help="reuse seeds finished before with the same fingerprint (resume)")] = True,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override applied to every recipe")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output folder (default runs/compare-...)")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="do not log to MLflow")] = False,
    jobs: Annotated[int, typer.Option(help="worker processes training the (recipe, seed) pairs, cores shared "
                                           "evenly (merc_bench.parallel)", min=1, max=256)] = 1,
    log_checkpoints: Annotated[bool, typer.Option("--log-checkpoints", help="log the checkpoints to MLflow as artifacts too")] = False,
    max_memory: MaxMemory = None,
) -> None:
    """Run recipes on identical data and seeds; write the paper-format table (Markdown, CSV, LaTeX) and plots."""
    from merc_bench import api
    from merc_bench import comparison as comparing

    _registry()
    if config is not None:
        from merc_bench.run_file import read_run_file

        run_file = read_run_file(config)
        recipes = recipes or run_file.recipes
        dataset, data_dir, dataset_config, set_ = run_file.merged(dataset=dataset, data_dir=data_dir,
                                                                  dataset_config=dataset_config, overrides=set_)
        seeds = seeds or run_file.seeds
    if not recipes:
        raise UserError("`merc-bench compare` needs recipes: name them (merc-bench compare sdt mmgcn) or give "
                        "--config FILE with recipes = [...].")
    seeds = seeds or 5
    result = api.compare(recipes, dataset=dataset, data_dir=data_dir, dataset_config=dataset_config,
                         modalities=modalities, seeds=seeds, epochs=epochs, protocol=protocol, device=device,
                         reference=reference, significance=significance, tsne=tsne, with_published=with_published,
                         reuse=reuse,
                         overrides=set_ or [], out=out, track=not no_track, tracking_uri=tracking_uri,
                         max_memory=max_memory, console=console, log_checkpoints=log_checkpoints, jobs=jobs)
    console.print(comparing.render_terminal(result.table, result.note))
    console.print(f"written    {', '.join(str(p) for p in result.paths)}")
    if result.failed:
        failures = " ".join(f"{recipe}: {message}" for recipe, message in result.failed.items())
        raise UserError(f"{len(result.failed)} of {len(recipes)} recipes failed and are left out of the table in "
                        f"{result.out_dir}: {failures}")


@app.command()
def tune(
    recipe: Annotated[Optional[str], typer.Argument(help="recipe whose components stay fixed (default: search every "
                                                         "registered component, sizes from bigru-concat)")] = None,
    config: RunFileOption = None,
    dataset: DatasetName = None,
    dataset_config: DatasetConfig = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="folder holding the dataset's files")] = None,
    modalities: Annotated[Optional[str], typer.Option(help="comma-separated subset, e.g. text,audio")] = None,
    trials: Annotated[int, typer.Option(help="finished (complete or pruned) trials the study should have", min=1)] = 20,
    timeout: Annotated[Optional[float], typer.Option(help="stop starting trials after this many seconds", min=1)] = None,
    study: Annotated[Optional[str], typer.Option(help="study name (default <recipe or components>-<dataset>)")] = None,
    storage: Annotated[Optional[str], typer.Option(help="SQLAlchemy URL, e.g. postgresql+psycopg2://user@host/db "
                                                        "(default sqlite in the study folder)")] = None,
    space: Annotated[Optional[Path], typer.Option(help="TOML/YAML file restricting or widening the search space")] = None,
    workers: Annotated[int, typer.Option(help="local worker processes on this study", min=1)] = 1,
    pruner: Annotated[str, typer.Option(help="median, hyperband or none (per-epoch validation)")] = "median",
    metric: Annotated[str, typer.Option(help="validation objective: weighted_f1, accuracy or macro_f1")] = "weighted_f1",
    final_seeds: Annotated[int, typer.Option(help="after the study: retrain the best configuration on N seeds and "
                                                  "evaluate test once (compare's table)", min=0)] = 0,
    epochs: Annotated[Optional[int], typer.Option(help="override the base recipe's epochs", min=1)] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda (one GPU per worker)")] = None,
    seed: Annotated[int, typer.Option(help="sampler seed (offset by the worker and by the trials already run, "
                                           "so no worker repeats earlier draws)", min=0)] = 0,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override of the base configuration")] = None,
    out: Annotated[Optional[Path], typer.Option(help="study folder (default tunes/<study>)")] = None,
    heartbeat_interval: Annotated[int, typer.Option(help="seconds between a running trial's heartbeats", min=1)] = 10,
    grace_period: Annotated[int, typer.Option(help="seconds without heartbeat after which a trial is failed "
                                                   "and retried", min=1)] = 30,
    max_failures: Annotated[Optional[int], typer.Option(help="stop after this many failed trials (default --trials)",
                                                        min=1)] = None,
    report: Annotated[Optional[str], typer.Option(help="print STUDY's top trials and importances; no training")] = None,
    top: Annotated[int, typer.Option(help="trials shown by --report", min=1)] = 10,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="do not log to MLflow")] = False,
    worker_index: Annotated[int, typer.Option(hidden=True, min=0)] = 0,
    max_memory: MaxMemory = None,
) -> None:
    """Optuna study over components and hyper-parameters on validation only; resumable, distributable."""
    from merc_bench import api, tuning
    from merc_bench.plugins import plugin_manager
    from merc_bench.sizing import set_max_memory

    set_max_memory(max_memory)  # in the environment: tune's worker processes inherit it
    if report is not None:
        tuning.report_study(report, storage=storage, out=out, console=console, top=top)
        return
    api._check("device", device, api.DEVICES)
    recipe, dataset, data_dir, dataset_config, set_, _ = _run_file(
        config, recipe, "tune", dataset=dataset, data_dir=data_dir, dataset_config=dataset_config, overrides=set_)
    request = tuning.TuneRequest(
        recipe=recipe, dataset=dataset, data_dir=data_dir, dataset_config=dataset_config,
        modalities=_modalities(modalities), trials=trials, timeout=timeout, study=study, storage=storage, space=space,
        workers=workers, pruner=pruner, metric=metric,
        final_seeds=final_seeds, epochs=epochs, device=device, seed=seed, overrides=set_ or [], out=out,
        heartbeat_interval=heartbeat_interval, grace_period=grace_period, max_failures=max_failures,
        tracking_uri=tracking_uri, no_track=no_track, worker_index=worker_index,
    )
    outcome = tuning.run_study(request, registry=_registry(), console=console, hook=plugin_manager().hook)
    if outcome.code:
        raise typer.Exit(outcome.code)


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 5000,
    store: Annotated[Path, typer.Option(help="folder of the local MLflow store")] = Path("mlruns"),
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="open the runs table in the browser")] = True,
) -> None:
    """Serve the MLflow UI for the local store on 127.0.0.1 and open its runs table (Ctrl-C stops it)."""
    from merc_bench.tracking import serve_ui

    serve_ui(store=store, port=port, open_browser=open_browser)


@config_app.command("show")
def config_show(
    recipe: Annotated[Optional[str], typer.Argument(help="recipe name (or in --config)")] = None,
    config: RunFileOption = None,
    dataset: DatasetName = None,
    dataset_config: DatasetConfig = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="folder holding the dataset's files")] = None,
    modalities: Annotated[Optional[str], typer.Option(help="comma-separated subset, e.g. text,audio")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="number of seeds", min=1)] = None,
    epochs: Annotated[Optional[int], typer.Option(help="override the recipe's epochs", min=1)] = None,
    protocol: Annotated[Optional[str], typer.Option(help="clean, paper or holdout")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set training.lr=1e-4")] = None,
    format_: Annotated[str, typer.Option("--format", help="toml or json")] = "toml",
) -> None:
    """Print the fully resolved configuration `run` would train (a run file: feed it back with --config)."""
    import json

    from merc_bench.pipeline import prepare
    from merc_bench.run_file import to_toml

    if format_ not in ("toml", "json"):
        raise UserError(f"--format {format_!r} is not known; use toml or json.")
    registry = _registry()
    recipe, dataset, data_dir, dataset_config, set_, _ = _run_file(
        config, recipe, "config show", dataset=dataset, data_dir=data_dir, dataset_config=dataset_config,
        overrides=set_)
    flags = {"modalities": _modalities(modalities), "seeds": seeds, "training.epochs": epochs, "protocol": protocol,
             "device": device}
    resolved = prepare(registry, recipe=_need_recipe(recipe, "config show"), dataset=dataset, overrides=set_,
                       flags=flags, data_dir=data_dir, dataset_config=dataset_config).config.model_dump(mode="json")
    text = json.dumps(resolved, indent=2) + "\n" if format_ == "json" else to_toml(resolved)
    sys.stdout.write(text)


@data_app.command("convert")
def data_convert(
    source: Annotated[Path, typer.Argument(help="a community feature file (pickle) or a folder holding one")],
    to: Annotated[Path, typer.Option("--to", help="folder to write the converted dataset into")],
    nan_policy: Annotated[str, typer.Option(help="refuse (default) or zero: replace NaN/inf and report")] = "refuse",
) -> None:
    """Convert a feature file into merc-bench's safe format (.npz per split + manifest.json)."""
    from merc_bench.convert import convert_command

    convert_command(source=source, target=to, nan_policy=nan_policy, console=console)


@data_app.command("inspect")
def data_inspect(
    path: Annotated[Path, typer.Argument(help="a feature file, a converted folder or a prepared folder")],
) -> None:
    """Print the manifest or a summary of any supported dataset file or folder."""
    from merc_bench.convert import inspect_command

    inspect_command(path=path, console=console)


def _finetune_help(name: str) -> str:
    """An option's help and default from FinetuneConfig, where they are declared (no torch import)."""
    from merc_bench.text_finetune import FinetuneConfig

    field = FinetuneConfig.model_fields[name]
    return f"with --finetune: {field.description} (default {field.default})"


@data_app.command("prepare")
def data_prepare(
    dataset: Annotated[str, typer.Argument(help="dataset to prepare from its raw annotations, one a plugin "
                                                  "declares (built in: meld; csv: a conversation-csv corpus "
                                                  "described by --dataset-config / --set dataset.*)")],
    to: Annotated[Path, typer.Option("--to", help="folder to write the prepared dataset into")],
    from_: Annotated[Optional[Path], typer.Option("--from", help="local copy of the raw files (no download)")] = None,
    url: Annotated[Optional[str], typer.Option(help="base URL to download the raw files from")] = None,
    text_encoder: Annotated[str, typer.Option(help="registered text encoder for the text features")] = "minilm",
    finetune: Annotated[bool, typer.Option("--finetune", help="fine-tune the text encoder for emotion "
                                           "classification on train (epoch selected on dev) before extracting "
                                           "the text features (options: --finetune-*, --device)")] = False,
    finetune_epochs: Annotated[Optional[int], typer.Option(help=_finetune_help("epochs"))] = None,
    finetune_lr: Annotated[Optional[float], typer.Option(help=_finetune_help("lr"))] = None,
    finetune_weight_decay: Annotated[Optional[float], typer.Option(help=_finetune_help("weight_decay"))] = None,
    finetune_batch_size: Annotated[Optional[int], typer.Option(help=_finetune_help("batch_size"))] = None,
    finetune_max_tokens: Annotated[Optional[int], typer.Option(help=_finetune_help("max_tokens"))] = None,
    finetune_context_turns: Annotated[Optional[int], typer.Option(help=_finetune_help("context_turns"))] = None,
    finetune_layers: Annotated[Optional[int], typer.Option(help=_finetune_help("layers"))] = None,
    finetune_seed: Annotated[Optional[int], typer.Option(help=_finetune_help("seed"))] = None,
    device: Annotated[Optional[str], typer.Option(help=_finetune_help("device"))] = None,
    media_dir: Annotated[Optional[Path], typer.Option(help="folder of the dataset's audio/video clips (MELD: the "
                                                           "MELD.Raw layout, see README): adds audio and visual "
                                                           "features, decoded with ffmpeg")] = None,
    audio_encoder: Annotated[Optional[str], typer.Option(help="with --media-dir: registered audio encoder (is10: "
                                                              "1582-d, egemaps: 88-d; both need the `audio` extra), "
                                                              "or none (default is10)")] = None,
    visual_encoder: Annotated[Optional[str], typer.Option(help="with --media-dir: registered visual encoder, or "
                                                               "none (default frame-stats: no face information)")
                              ] = None,
    skip_missing: Annotated[bool, typer.Option("--skip-missing", help="with --media-dir: give utterances whose "
                                               "file is missing or undecodable zero features for that modality and "
                                               "list them in the manifest, instead of refusing")] = False,
    max_media_seconds: Annotated[Optional[float], typer.Option(help="with --media-dir: longest clip decoded, in "
                                                                    "seconds; a longer one is a bad file "
                                                                    "(default 600)")] = None,
    dataset_config: DatasetConfig = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="a dataset option of csv, e.g. --set "
                                                      "dataset.speaker_policy=first (overrides --dataset-config)")] = None,
) -> None:
    """Download (or copy) raw annotations, verify checksums, compute text features, write the dataset.

    `data prepare csv --dataset-config corpus.toml --to DIR [--finetune]` does the same for any corpus the
    conversation-csv dataset reads; `merc-bench run RECIPE --dataset prepared --data-dir DIR` then trains on it.
    """
    from merc_bench.prepare import prepare_command

    media = _media_options(media_dir, audio_encoder=audio_encoder, visual_encoder=visual_encoder,
                           skip_missing=skip_missing, max_media_seconds=max_media_seconds)

    options = _finetune_options(finetune, {
        "epochs": finetune_epochs, "lr": finetune_lr, "weight_decay": finetune_weight_decay,
        "batch_size": finetune_batch_size, "max_tokens": finetune_max_tokens, "context_turns": finetune_context_turns,
        "layers": finetune_layers, "seed": finetune_seed, "device": device})
    prepare_command(dataset=dataset, target=to, source=from_, url=url, text_encoder=text_encoder, console=console,
                    finetune=options if finetune else None, media=media,
                    dataset_config=dataset_config, dataset_overrides=set_ or [])


def _finetune_options(finetune: bool, given: dict[str, Any]) -> dict[str, Any]:
    """The --finetune-* options given (the defaults live in FinetuneConfig alone); without --finetune, a mistake."""
    options = {name: value for name, value in given.items() if value is not None}
    if options and not finetune:
        named = ", ".join("--device" if n == "device" else "--finetune-" + n.replace("_", "-") for n in options)
        raise UserError(f"{named} only apply with --finetune (fine-tuning the text encoder); add --finetune or "
                        "leave them out.")
    return options


def _media_options(media_dir: Optional[Path], *, audio_encoder: Optional[str], visual_encoder: Optional[str],
                   skip_missing: bool, max_media_seconds: Optional[float]) -> Any:
    """``MediaOptions`` for ``--media-dir`` (None without it); its options alone are a mistake."""
    given = {"--audio-encoder": audio_encoder, "--visual-encoder": visual_encoder,
             "--skip-missing": skip_missing or None, "--max-media-seconds": max_media_seconds}
    if media_dir is None:
        named = [name for name, value in given.items() if value is not None]
        if named:
            raise UserError(f"{', '.join(named)} only apply with --media-dir (audio and visual features from the "
                            "dataset's clips); add --media-dir PATH or leave them out.")
        return None
    from merc_bench.media_features import DEFAULT_MAX_SECONDS, MediaOptions

    def chosen(value: Optional[str], default: str) -> Optional[str]:
        return None if value is not None and value.lower() == "none" else (value or default)

    return MediaOptions(media_dir=media_dir, audio_encoder=chosen(audio_encoder, "is10"),
                        visual_encoder=chosen(visual_encoder, "frame-stats"), skip_missing=skip_missing,
                        max_seconds=DEFAULT_MAX_SECONDS if max_media_seconds is None else max_media_seconds)


# -- plugin commands --------------------------------------------------------------------------------

#: The built-in commands and groups, as defined above; plugin commands are added after them per call.
_BUILT_IN = (list(app.registered_commands), list(app.registered_groups))
_warned_commands: set[str] = set()


def _command_name(info: typer.models.CommandInfo | typer.models.TyperInfo) -> str | None:
    """The name a command or group is called by (typer's own rule for commands without one)."""
    if isinstance(info, typer.models.CommandInfo):
        return info.name or typer.main.get_command_name(info.callback.__name__)
    for name in (info.name, info.typer_instance.info.name if info.typer_instance else None):
        if isinstance(name, str):
            return name
    return None


def _plugin_commands(manager, name: str, plugin: object) -> list:
    """What one plugin's ``merc_bench_cli_commands`` adds to a ``typer.Typer`` of its own."""
    own = typer.Typer()
    others = [other for _, other in manager.list_name_plugin() if other is not None and other is not plugin]
    # One call per plugin, so a failure and every command are attributed to the plugin that made them.
    manager.subset_hook_caller("merc_bench_cli_commands", remove_plugins=others)(app=own)
    return [*own.registered_commands, *own.registered_groups]


def _add_plugin_commands() -> None:
    """Put every plugin's commands beside the built-in ones; a plugin that fails or takes a name adds none."""
    from merc_bench.plugins import (PluginProblem, command_distribution, command_plugin_manager, command_problems,
                                    record_command_problem)

    app.registered_commands[:], app.registered_groups[:] = (list(part) for part in _BUILT_IN)
    owners = {_command_name(info): "merc-bench itself" for part in _BUILT_IN for info in part}
    manager = command_plugin_manager()
    for name, plugin in manager.list_name_plugin():
        if plugin is None or not hasattr(plugin, "merc_bench_cli_commands"):
            continue
        distribution, version = command_distribution(plugin)
        try:
            infos = _plugin_commands(manager, name, plugin)
            names = [_command_name(info) for info in infos]
            clash = next((n for n in names if n is None or n in owners or names.count(n) > 1), "")
            if clash != "":
                raise UserError("a command group needs a name (app.add_typer(..., name=...))" if clash is None else
                                f"the command {clash!r} is already taken by {owners[clash]}")
        except Exception as error:  # a third party's mistake must not take the command line down
            record_command_problem(PluginProblem(name, distribution, version, "commands",
                                                 f"{type(error).__name__}: {error}"))
            continue
        for command, info in zip(names, infos):
            owners[command] = f"plugin {name!r}"
            part = app.registered_commands if isinstance(info, typer.models.CommandInfo) else app.registered_groups
            part.append(info)
    for problem in command_problems():
        if problem.message() not in _warned_commands:  # once per process, though main may run many times
            _warned_commands.add(problem.message())
            error_console.print(f"warning: {problem.message()}", markup=False, highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Console entry point; ``argv`` defaults to the process arguments."""
    command = " ".join(["merc-bench", *(sys.argv[1:] if argv is None else argv)])[:500]
    # MLflow's source tag (merc_bench.tracking); the environment refuses NUL, so control characters are replaced.
    os.environ["MERC_BENCH_COMMAND"] = "".join(c if c.isprintable() else "\ufffd" for c in command)
    try:
        _add_plugin_commands()
        app(args=argv, standalone_mode=True)
    except UserError as error:
        error_console.print(f"error: {error}", markup=False, highlight=False)
        sys.exit(2)
    finally:
        sizing = sys.modules.get("merc_bench.sizing")  # imported by every command that takes --max-memory
        if sizing is not None:
            sizing.restore_max_memory()  # the option's limit ends with its command


if __name__ == "__main__":
    main()
