"""What a person sees: plain lines per epoch when stdout is a pipe or a file, tables that fit a
120-column terminal, consoles that take the terminal's width."""

import io
import re

import pytest
from rich.console import Console

from merc_bench import cli, hookimpl
from merc_bench.ablation import AblationGrid
from merc_bench.cli import main
from merc_bench.terminal import PIPE_WIDTH, duration, make_console

TINY = ["--set", "dataset.train_dialogues=4", "--set", "dataset.dev_dialogues=2", "--set", "dataset.test_dialogues=3",
        "--set", "model.hidden_size=8", "--no-track"]

#: One epoch's plain line: label, seed, epoch k/N, train loss, dev w-F1, elapsed and ETA.
EPOCH_LINE = re.compile(r"^(?P<label>\S+) seed (?P<seed>\d+) epoch (?P<epoch>\d+)/(?P<epochs>\d+): loss \d+\.\d{3} "
                        r"dev w-F1 \d\.\d{3} \(best \d\.\d{3} @ \d+\), \S+ s elapsed, ETA \S+ s$")


def _exit_code(argv):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code


def _epoch_lines(text):
    return [match.groupdict() for match in map(EPOCH_LINE.match, text.splitlines()) if match]


def test_piped_run_prints_one_plain_line_per_epoch(capsys):
    assert _exit_code(["run", "bigru-concat", "--epochs", "2", "--seeds", "2", *TINY]) == 0
    out = capsys.readouterr().out  # captured: not a terminal, as in `merc-bench run ... | tee log`
    assert [(e["label"], e["seed"], e["epoch"], e["epochs"]) for e in _epoch_lines(out)] == [
        ("bigru-concat", "0", "1", "2"), ("bigru-concat", "0", "2", "2"),
        ("bigru-concat", "1", "1", "2"), ("bigru-concat", "1", "2", "2")]
    assert "\x1b[" not in out and "\r" not in out  # no cursor movement, no colours: a log stays readable


class _TwoRates:
    """A throwaway two-row ablation grid (SUMMER's components grid trains eight rows and a teacher)."""

    @hookimpl
    def merc_bench_ablation_grids(self):
        def rows(registry, recipe, info):
            base = registry.get("recipe", recipe).obj.resolve(info.family)
            return [({"lr": f"{lr:g}"}, dict(base, recipe=f"{recipe}[lr={lr:g}]", training=dict(base["training"], lr=lr)))
                    for lr in (1e-3, 1e-2)]

        return [AblationGrid(name="two-rates", description="two learning rates", label_columns=("lr",), rows=rows,
                             applies_to=lambda registry, recipe: recipe == "early-fusion")]


def test_compare_and_ablate_fit_a_120_column_terminal(tmp_path, monkeypatch):
    from merc_bench import plugins

    narrow = Console(file=io.StringIO(), width=120)  # what rich measures in a 120-column window
    monkeypatch.setattr(cli, "console", narrow)
    assert _exit_code(["compare", "bigru-concat", "early-fusion", "--seeds", "1", "--epochs", "2", "--out",
                       str(tmp_path / "c"), *TINY]) == 0
    plugins.plugin_manager().register(_TwoRates(), name="two-rates")
    try:
        assert _exit_code(["ablate", "early-fusion", "--grid", "two-rates", "--epochs", "1", "--out",
                           str(tmp_path / "a"), *TINY]) == 0
    finally:
        plugins.plugin_manager().unregister(name="two-rates")
    text = narrow.file.getvalue()
    too_wide = [line for line in text.splitlines() if len(line) > 120]
    assert not too_wide, too_wide
    assert "…" not in text  # folded, never cut: every figure is shown whole
    # Every recipe and grid row labels its epochs; the tables came out (compare's and the grid's).
    labels = [e["label"] for e in _epoch_lines(text)]
    assert labels == ["bigru-concat"] * 2 + ["early-fusion"] * 2 + ["early-fusion[lr=0.001]", "early-fusion[lr=0.01]"]
    assert "Δw-F1" in text and "ΔACC" in text


def test_consoles_take_the_terminals_width_and_a_wide_one_in_a_pipe(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert make_console().width == PIPE_WIDTH  # stdout is captured here: a pipe has no width of its own
    monkeypatch.setenv("COLUMNS", "97")
    assert make_console().width == 97  # rich reads COLUMNS, as on a terminal


def test_duration_reads_like_a_clock():
    assert [duration(s) for s in (4.21, 59.9, 187, 3723)] == ["4.2 s", "59.9 s", "3:07", "1:02:03"]


def test_tune_says_trial_k_of_n_and_the_best_so_far(capsys):
    assert _exit_code(["tune", "bigru-concat", "--trials", "2", "--epochs", "1", "--pruner", "none",
                       *TINY]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("trial ")
             and "COMPLETE" in line]
    assert len(lines) == 2
    assert re.search(r"· 1/2 finished, best \d\.\d{4} \(trial 0\)$", lines[0]), lines[0]
    assert re.search(r"· 2/2 finished, best \d\.\d{4} \(trial [01]\)$", lines[1]), lines[1]


def test_tune_progress_bars_count_trials_and_show_the_best_and_the_running_epochs():
    import optuna
    from rich.progress import Progress

    from merc_bench.events import EpochEnded
    from merc_bench.tuning.progress import StudyProgress

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    progress = Progress(console=Console(file=io.StringIO(), force_terminal=True, width=120))
    shown = StudyProgress(progress, trials=3, metric="weighted_f1", finished=0)
    trial = study.ask()
    shown.epoch_ended(trial.number, EpochEnded(seed=0, epoch=1, epochs=4, metrics={"dev_weighted_f1": 0.25},
                                               split="dev", best_score=0.25, best_epoch=1))
    study_bar, epoch_bar = progress.tasks
    assert (epoch_bar.completed, epoch_bar.total) == (1, 4)
    assert epoch_bar.description == "trial 0 epoch 1/4 dev weighted_f1 0.2500"
    shown.trial_finished(study, study.tell(trial, 0.5))
    (study_bar,) = progress.tasks  # the finished trial's epoch bar is gone
    assert (study_bar.completed, study_bar.total) == (1, 3)
    assert study_bar.description == "trials · best dev weighted_f1 0.5000 (trial 0)"
