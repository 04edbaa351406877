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
    assert table[0].startswith("SDMoE,HCMF,IKD,ACC mean,ACC std,ΔACC,w-F1 mean,w-F1 std,Δw-F1,seeds")
    assert len(table) == 9
    assert float(table[1].split(",")[5]) == 0.0  # the reference row's delta, a number
    assert "±" in (tmp_path / "grid" / "components.md").read_text()
    assert table[0].endswith(",row1,ikd") and table[1].endswith(",sdt,replace")  # the defaults, named
    assert "row1=sdt" in (tmp_path / "grid" / "components.md").read_text()
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
        assert table[0].startswith("lr,ACC mean,ACC std") and [line.split(",")[0] for line in table[1:]] == ["0.001", "0.01"]
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


def test_a_component_option_goes_to_the_rows_whose_component_has_it():
    """--set distiller.teacher.epochs=2 in a Table IV grid sets IKD's teacher; SDT's rows have none."""
    from merc_bench.ablation import overrides_per_row

    registry = get_registry()
    rows = component_grid(registry, "summer-small", "meld")
    given = ["distiller.teacher.epochs=2", "mixer.heads=2", "training.lr=0.01"]
    per_row = overrides_per_row(registry, rows, given)
    for (_, values), taken in zip(rows, per_row):
        assert "training.lr=0.01" in taken  # not a component option: every row
        assert ("distiller.teacher.epochs=2" in taken) == (values["distiller"]["name"] == "ikd")
        assert ("mixer.heads=2" in taken) == (values["mixer"]["name"] == "transformer")
    # A swap earlier in the list decides which component later options belong to.
    swapped = overrides_per_row(registry, rows, ["mixer=bigru", "mixer.layers=1"])
    assert all("mixer.layers=1" in taken for taken in swapped)
    with pytest.raises(UserError, match="no row's distiller .* has an option 'teachr'"):
        overrides_per_row(registry, rows, ["distiller.teachr.epochs=2"])


# -- one thing per column: row 1's settings and IKD's mode (issue 14, item 6) -------------------------
def _options(**values):
    from merc_bench.ablation import grid_options

    return grid_options(grids()["components"], values)


def test_row1_is_sdt_as_published_by_default_and_the_recipes_settings_on_request():
    registry = get_registry()
    sdt = registry.get("recipe", "sdt").obj.resolve("meld")
    small = registry.get("recipe", "summer-small").obj.resolve("meld")
    info = DatasetInfo("d", "meld", tuple("abcd"), INFO.feature_dims, 3)
    default = grids()["components"].rows(registry, "summer-small", info, _options())[0][1]
    assert default == sdt  # recipe sdt itself: its model and training settings for the family
    row1 = grids()["components"].rows(registry, "summer-small", info, _options(row1="recipe"))[0][1]
    assert (row1["training"], row1["model"]["hidden_size"]) == (small["training"], small["model"]["hidden_size"])
    assert (row1["mixer"], row1["fuser"], row1["distiller"]) == (sdt["mixer"], sdt["fuser"], sdt["distiller"])
    assert row1["model"]["modality_heads"] is True


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_ikd_replaces_or_is_added_to_self_distillation(mode):
    registry = get_registry()
    info = DatasetInfo("d", "meld", tuple("abcd"), INFO.feature_dims, 3)
    rows = grids()["components"].rows(registry, "summer-small", info, _options(ikd=mode))
    for labels, values in rows:
        config = RunConfig.model_validate(dict(values, dataset={"name": "synthetic"},
                                               model=dict(values["model"], hidden_size=16)))
        model, distiller = build_model(config, INFO, registry)
        if labels["IKD"] == "✗":
            assert config.distiller.name == "self-distillation" and model.modality_heads
            continue
        assert config.distiller.name == "ikd"
        keeps_self_distillation = distiller.self_distillation_temperature is not None
        assert keeps_self_distillation == bool(model.modality_heads) == (mode == "add")
        if mode == "add":  # at SDT's own temperature for the family (MELD: 8)
            assert distiller.self_distillation_temperature == 8.0


def test_grid_options_are_checked_and_only_for_grids_that_have_them():
    from merc_bench.ablation import grid_options

    assert _options().model_dump() == {"row1": "sdt", "ikd": "replace"}
    assert grid_options(grids()["components"], ["ikd=add"]).ikd == "add"  # --grid-option KEY=VALUE
    with pytest.raises(UserError, match="ablation grid 'components'.*ikd"):
        _options(ikd="both")
    with pytest.raises(UserError, match="row2"):
        _options(row2="sdt")
    with pytest.raises(UserError, match="grid 'modalities' takes no options"):
        grid_options(grids()["modalities"], ["ikd=add"])


def test_ablate_names_its_options_in_every_written_table(tmp_path, monkeypatch):
    import merc_bench

    monkeypatch.setenv("MERC_BENCH_CACHE", str(tmp_path / "cache"))
    trained = []
    monkeypatch.setattr("merc_bench.ablation.execute", lambda config, *a, **k: trained.append(config) or _Fake())
    result = merc_bench.ablate("summer-small", grid_options={"ikd": "add", "row1": "recipe"}, epochs=1,
                               track=False, out=tmp_path / "grid",
                               overrides=["model.hidden_size=16", "dataset.train_dialogues=4"])
    assert [c.distiller.name for c in trained].count("ikd") == 4 and trained[0].recipe == "summer-small[sdt]"
    caption = "Row 1 (row1=recipe): SDT's components with the ablated recipe's model and training settings. " \
              "IKD rows (ikd=add): IKD is added to SDT's self-distillation and modality heads."
    assert caption in result.note
    assert caption in (tmp_path / "grid" / "components.md").read_text()
    latex = (tmp_path / "grid" / "components.tex").read_text()
    assert "\\caption{" in latex and "ikd=add" in latex and "\\checkmark" in latex
    csv = (tmp_path / "grid" / "components.csv").read_text().splitlines()
    assert csv[0].endswith(",seeds,row1,ikd") and all(line.endswith(",recipe,add") for line in csv[1:])
    frame = result.to_frame()
    assert list(frame.columns[-2:]) == ["row1", "ikd"] and frame["recipe"][0] == "summer-small[sdt]"
    assert list(frame.columns[3:6]) == ["recipe", "ACC mean", "ACC std"] and frame["w-F1 mean"].dtype.kind == "f"


class _Fake:
    """What execute returns, without training: the same scores for every row."""

    metrics = {"accuracy": {"mean": 0.5, "std": 0.0}, "weighted_f1": {"mean": 0.5, "std": 0.0}}
    summary = {"test": metrics, "seeds": [0], "protocol": "clean"}


def test_ablate_takes_grid_options_on_the_command_line(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr("merc_bench.api.ablate", lambda *a, **k: seen.update(k) or (_ for _ in ()).throw(SystemExit(0)))
    with pytest.raises(SystemExit):
        main(["ablate", "summer-small", "--grid-option", "ikd=add", "--grid-option", "row1=recipe", "--no-track"])
    assert seen["grid_options"] == ["ikd=add", "row1=recipe"]
