"""`merc-bench ablate`: grids declared by plugins — SUMMER's component grid (Table IV) and modality
grid (Table I), and a third party's."""

import pytest

from merc_bench import hookimpl
from merc_bench.ablation import AblationGrid, declared_grids, find_grid
from merc_bench.cli import main
from merc_bench.config import RunConfig
from merc_bench.data import DatasetInfo
from merc_bench.errors import UserError
from merc_bench.model import build_model
from merc_bench.plugins import get_registry

INFO = DatasetInfo("small", "meld", tuple("abcd"), {"text": 12, "audio": 10, "visual": 8}, 3)


def grids():
    from merc_bench.plugins import plugin_manager

    return declared_grids(plugin_manager().hook)


def component_grid(registry, recipe, family):
    return grids()["components"].rows(registry, recipe, DatasetInfo("d", family, tuple("abcd"), INFO.feature_dims, 3))


def modality_grid(registry, family, modalities):
    dims = {m: 8 for m in modalities}
    return grids()["modalities"].rows(registry, None, DatasetInfo("d", family, tuple("abcd"), dims, 3))


def test_the_grid_is_chosen_by_name_or_by_recipe():
    registry = get_registry()
    declared = grids()
    assert find_grid(declared, None, "summer-small", registry)[0].name == "components"
    assert find_grid(declared, "modalities", None, registry) == (declared["modalities"], "sdt")
    assert find_grid(declared, None, None, registry) == (declared["components"], "summer")
    with pytest.raises(UserError, match="no ablation grid applies to recipe 'bigru-concat'"):
        find_grid(declared, None, "bigru-concat", registry)
    with pytest.raises(UserError, match="ablation grid"):
        find_grid(declared, "nope", None, registry)


def test_component_grid_builds_all_eight_combinations():
    registry = get_registry()
    rows = component_grid(registry, "summer-small", "meld")
    combos = [(values["mixer"]["name"], values["fuser"]["name"], values["distiller"]["name"]) for _, values in rows]
    assert len(set(combos)) == 8
    assert combos[0] == ("transformer", "cross-modal-transformer", "self-distillation")  # the all-SDT row first
    assert combos[-1] == ("sdmoe", "hcmf", "ikd")
    for _, values in rows:
        values = dict(values, dataset={"name": "synthetic"})
        values["model"] = dict(values["model"], hidden_size=16)
        config = RunConfig.model_validate(values)
        model, distiller = build_model(config, INFO, registry)
        assert bool(model.modality_heads) == (config.distiller.name == "self-distillation")
    with pytest.raises(UserError, match="does not use SDMoE"):
        component_grid(registry, "sdt", "meld")


def test_modality_grid_has_the_seven_subsets():
    rows = modality_grid(get_registry(), "meld", ("text", "audio", "visual"))
    assert [labels["modalities"] for labels, _ in rows] == [
        "text", "audio", "visual", "text+audio", "text+visual", "audio+visual", "text+audio+visual"]


def test_ablate_prints_and_writes_the_grid(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MERC_BENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as stop:
        main(["ablate", "summer-small", "--epochs", "1", "--no-track", "--out", str(tmp_path / "grid"),
              "--set", "dataset.train_dialogues=8", "--set", "dataset.dev_dialogues=3",
              "--set", "dataset.test_dialogues=3", "--set", "model.hidden_size=16"])
    assert stop.value.code == 0
    table = (tmp_path / "grid" / "components.csv").read_text().splitlines()
    assert table[0].startswith("SDMoE,HCMF,IKD,ACC,ΔACC,w-F1,Δw-F1")
    assert len(table) == 9
    assert table[1].split(",")[4] == "+0.00"  # the reference row's delta
    assert "teacher (text) trained" in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "teachers").glob("*.pt"))) == 1  # four IKD rows, one teacher


class _LearningRateGrid:
    """A third party's grid: the core runs it like SUMMER's."""

    @hookimpl
    def merc_bench_ablation_grids(self):
        def rows(registry, recipe, info):
            base = registry.get("recipe", recipe).obj.resolve(info.family)
            out = []
            for lr in (1e-3, 1e-2):
                values = dict(base, recipe=f"{recipe}[lr={lr:g}]", training=dict(base["training"], lr=lr))
                out.append(({"lr": f"{lr:g}"}, values))
            return out

        return [AblationGrid(name="learning-rates", description="two learning rates", label_columns=("lr",),
                             rows=rows, applies_to=lambda registry, recipe: recipe == "bigru-concat")]


def test_a_plugins_grid_runs_through_ablate(tmp_path, monkeypatch):
    from merc_bench import plugins

    monkeypatch.setenv("MERC_BENCH_CACHE", str(tmp_path / "cache"))
    plugins.plugin_manager().register(_LearningRateGrid(), name="lr-grid")
    try:
        with pytest.raises(SystemExit) as stop:
            main(["ablate", "bigru-concat", "--epochs", "1", "--no-track", "--out", str(tmp_path / "grid"),
                  "--set", "dataset.train_dialogues=4", "--set", "dataset.dev_dialogues=2",
                  "--set", "dataset.test_dialogues=2", "--set", "model.hidden_size=8"])
        assert stop.value.code == 0
        table = (tmp_path / "grid" / "learning-rates.csv").read_text().splitlines()
        assert table[0].startswith("lr,ACC") and [line.split(",")[0] for line in table[1:]] == ["0.001", "0.01"]
        results = sorted((tmp_path / "grid").glob("*/results.json"))
        assert [p.parent.name for p in results] == ["01-bigru-concat-lr-0.001", "02-bigru-concat-lr-0.01"]
    finally:
        plugins.plugin_manager().unregister(name="lr-grid")


def test_a_typo_in_any_row_fails_before_the_first_row_trains(tmp_path, monkeypatch):
    """--set mixer.heads=2 suits SDT's transformer rows but not SDMoE's: refused before any training."""
    trained = []
    monkeypatch.setattr("merc_bench.trainer.Trainer.fit", lambda *a, **k: trained.append(1))
    with pytest.raises(SystemExit) as stop:
        main(["compare", "sdt", "bigru-concat", "--no-track", "--out", str(tmp_path / "c"),
              "--set", "mixer.heads=2"])
    assert stop.value.code == 2 and not trained and not (tmp_path / "c").exists()
