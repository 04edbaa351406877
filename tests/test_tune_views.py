"""What a study shows in Optuna's and MLflow's views: its metric name, parameter names shared with
runs, importance and contour plots only when the trials support them. No training: trials are added
with made-up values."""

from __future__ import annotations

import io
import warnings

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from rich.console import Console

from merc_bench.config import RunConfig
from merc_bench.model import build_context
from merc_bench.plugins import get_registry
from merc_bench.tracking import run_parameters
from merc_bench.tuning import report
from merc_bench.tuning.space import build_space, read_space_file, sample_config
from merc_bench.tuning.study import open_storage, open_study

DISTRIBUTIONS = {"training.lr": FloatDistribution(1e-5, 1e-2, log=True), "model.head_dropout": FloatDistribution(0, 0.5),
                 "training.batch_size": CategoricalDistribution([8, 16])}


def _study(trials: int, *, vary: tuple[str, ...] = tuple(DISTRIBUTIONS)) -> optuna.Study:
    """An in-memory study with ``trials`` completed trials; parameters outside ``vary`` stay constant."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for number in range(trials):
        params = {"training.lr": 1e-4 * (1 + number) if "training.lr" in vary else 1e-4,
                  "model.head_dropout": 0.05 * (number % 5) if "model.head_dropout" in vary else 0.1,
                  "training.batch_size": (8, 16)[number % 2] if "training.batch_size" in vary else 8}
        value = 0.3 + 0.05 * (number % 5) + (0.1 if params["training.batch_size"] == 16 else 0.0)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=DISTRIBUTIONS, value=value))
    return study


@pytest.fixture
def contour_params(monkeypatch):
    """The parameters and the objective's label of each contour plot drawn."""
    from optuna.visualization import matplotlib as plots

    asked: list[tuple[list[str], str]] = []
    original = plots.plot_contour
    monkeypatch.setattr(plots, "plot_contour",
                        lambda study, params=None, **kwargs: asked.append((params, kwargs.get("target_name")))
                        or original(study, params, **kwargs))
    return asked


def test_few_trials_get_no_importances_and_a_contour_of_the_first_two_varying_parameters(tmp_path, contour_params):
    console = Console(file=io.StringIO(), width=300)
    paths = report.save_plots(_study(3), tmp_path, console=console)
    assert sorted(p.name for p in paths) == ["contour.pdf", "contour.png", "optimization_history.pdf",
                                             "optimization_history.png", "slice.pdf", "slice.png"]
    assert contour_params == [(["training.lr", "model.head_dropout"], "Objective Value")]  # a study without a name
    assert "not plotted param_importances (parameter importances need at least 5 completed trials (this study has 3)" \
        in console.file.getvalue()
    assert report.importances(_study(3))[0] == {}


def test_enough_trials_get_importances_and_a_contour_of_the_two_most_important(tmp_path, contour_params):
    study = _study(8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["dev_weighted_f1"])
    values, reason = report.importances(study)
    assert reason == "" and set(values) == set(DISTRIBUTIONS)
    paths = report.save_plots(study, tmp_path)
    assert {"param_importances.png", "param_importances.pdf", "contour.png"} <= {p.name for p in paths}
    assert contour_params == [(list(values)[:2], "dev_weighted_f1")]  # the objective labelled with the metric


def test_no_contour_and_no_importances_when_only_one_parameter_varies(tmp_path, contour_params):
    console = Console(file=io.StringIO(), width=300)
    study = _study(8, vary=("training.lr",))
    assert report.varying_parameters(study) == ["training.lr"]
    paths = report.save_plots(study, tmp_path, console=console)
    assert not contour_params and not (tmp_path / "contour.png").exists() and (tmp_path / "slice.png").is_file()
    assert "contour (it needs two parameters that vary" in console.file.getvalue()
    assert report.importances(_study(8, vary=()))[1].startswith("no parameter shared by the completed trials")
    assert {p.name for p in paths} >= {"optimization_history.png", "optimization_history.pdf"}


def test_the_study_names_its_metric_as_runs_log_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, heartbeat_interval=None, grace_period=None, on_stale=None)
    open_study(storage, "named", pruner="none", epochs=2, metric="macro_f1")
    assert optuna.load_study(study_name="named", storage=url).metric_names == ["dev_macro_f1"]
    open_study(storage, "named", pruner="none", epochs=2, metric="macro_f1")  # resumed: unchanged
    assert optuna.load_study(study_name="named", storage=url).metric_names == ["dev_macro_f1"]


def test_trial_parameters_are_named_and_valued_like_the_runs_parameters(tmp_path):
    from merc_bench.pipeline import load_corpus

    registry = get_registry()
    corpus = load_corpus(registry, {"name": "synthetic", "config": {"train_dialogues": 4, "dev_dialogues": 2,
                                                                     "test_dialogues": 2}}, None)
    base = registry.get("recipe", "bigru-concat").obj.resolve("meld") | {"dataset": {"name": "synthetic"}}
    base["model"] = dict(base["model"], hidden_size=16)
    path = tmp_path / "space.toml"
    path.write_text('[slots]\nmixer = ["sdmoe", "bigru"]\n')
    space = build_space(registry, base, read_space_file(path), fixed_slots=True, where=str(path),
                        context=build_context(RunConfig.model_validate(base), corpus.info), corpus=corpus)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"mixer": "sdmoe"})
    for _ in range(4):
        trial = study.ask()
        config = RunConfig.model_validate(sample_config(trial, space, base, registry) | {"recipe": "t"})
        params = run_parameters(config.model_dump(mode="json"))
        assert {name: params.get(name) for name in trial.params} == {k: str(v) for k, v in trial.params.items()}
        assert params["mixer"] == config.mixer.name and params["training.lr"] == str(config.training.lr)
        study.tell(trial, 0.5)
    sdmoe = study.trials[0]
    assert "mixer.sdmoe.experts" in sdmoe.params  # the component's own parameter, as a run names it too
