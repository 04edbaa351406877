"""Hook specifications: the only ways a plugin talks to merc-bench.

A plugin is a module (or object) with functions decorated by :data:`merc_bench.hookimpl`, exposed
through the ``merc_bench`` entry-point group of its distribution::

    [project.entry-points.merc_bench]
    my_plugin = "my_package.plugin"

The built-in components (SDT, the synthetic dataset, the basic mixers and fusers) are plugins of
exactly this kind, registered by merc-bench's own ``pyproject.toml``. Hooks are always called with
keyword arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from merc_bench.registry import ScopedRegistry

PROJECT = "merc_bench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def merc_bench_register(registry: ScopedRegistry) -> None:
    """Register this plugin's components.

    Called once per plugin when the registry is first built (lazily, on the first command that
    needs components). ``registry`` is a :class:`~merc_bench.registry.ScopedRegistry`:
    ``registry.register(kind, name, cls, config=..., search_space=..., description=..., paper=...)``
    adds one entry; ``kind`` is one of encoder, mixer, fuser, distiller, dataset, text_encoder,
    audio_encoder, visual_encoder, recipe. A third-party ``name`` is stored as ``<distribution>:<name>`` and also found by its
    bare name while unambiguous. Raising here (or breaking a registry rule) rolls back what this
    plugin registered and reports it with its distribution; the other plugins still load.
    """


@hookspec
def merc_bench_after_epoch(epoch: int, metrics: dict[str, float], run: dict[str, Any]) -> dict[str, float] | None:
    """Called by the trainer after every epoch's evaluation.

    ``epoch`` counts from 1; ``metrics`` holds that epoch's metrics (``train_loss``,
    ``dev_weighted_f1``, ...); ``run`` describes the run (``recipe``, ``dataset``, ``seed``,
    ``protocol``). Return a dict of extra metrics to log for this epoch, or None.
    """


@hookspec
def merc_bench_after_run(result: dict[str, Any]) -> None:
    """Called once after a whole run (all seeds) has written its outputs.

    ``result`` is the content of ``results.json`` (recipe, dataset, protocol, seeds, dev/test
    metrics with per-seed values, per-seed history, resolved config). Use it to export results or
    notify; the return value is ignored.
    """


@hookspec
def merc_bench_ablation_grids() -> list[Any] | None:
    """Ablation grids this plugin declares for ``merc-bench ablate --grid NAME``.

    Return a list of :class:`merc_bench.ablation.AblationGrid` (name, description, label columns,
    and a function from (registry, recipe, dataset info) to rows of run-config values), or None.
    The core runs any declared grid and knows none itself; the SUMMER plugin declares the paper's
    Table IV (``components``) and Table I (``modalities``) grids this way. Called when
    ``ablate`` (command or :func:`merc_bench.ablate`) looks for a grid, before anything trains.
    """


@hookspec
def merc_bench_data_sources() -> list[Any] | None:
    """Data sources this plugin declares for ``merc-bench data prepare``, ``data convert`` and ``data inspect``.

    Called (no arguments) when one of those commands, or :func:`merc_bench.prepare.prepare_command`,
    looks for its sources, before anything is read or written. Return a list of
    :class:`merc_bench.data_sources.PreparableDataset` (a name, what ``data prepare NAME`` checks,
    fetches and parses into a :class:`~merc_bench.data_sources.RawCorpus`; the core adds the text
    features and writes the folder atomically) and :class:`merc_bench.data_sources.FeatureFormat`
    (the file-name endings or the files of a folder that make one source, and a reader returning a
    checked Corpus that ``data convert`` writes and ``data inspect`` summarises), or None. The first
    plugin to declare a name keeps it. The core knows no corpus: the datasets plugin declares MELD's
    raw-annotation preparation and the community feature pickles and MultiEMO folders this way.
    """


@hookspec
def merc_bench_cli_commands(app: Any) -> None:
    """Add commands to the ``merc-bench`` command line.

    Called once per process at start-up, before the arguments are parsed, for the plugins of the
    ``merc_bench.cli`` entry-point group (a separate group from ``merc_bench``) and for plugin objects
    registered with :func:`merc_bench.plugins.command_plugin_manager`. ``app`` is a ``typer.Typer`` of
    this plugin's own: every command (``@app.command()``) or group (``app.add_typer``) added to it
    becomes a top-level command of ``merc-bench``; a name a built-in command or another plugin already
    has is skipped with a warning. Design choice, so that ``merc-bench --help`` stays fast: the
    command modules are loaded without the plugins' components (loading those imports PyTorch, about
    1.5 s), so a command module must be light and import heavy modules inside its command functions.
    A command reports a user mistake by raising :class:`merc_bench.UserError`: one paragraph on
    stderr, exit code 2, like every built-in command.
    """
