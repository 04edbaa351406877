"""`merc-bench ablate`: the component grid (Table IV) and the modality grid (Table I)."""

import pytest

from merc_bench.ablation import component_grid, modality_grid
from merc_bench.cli import main
from merc_bench.config import RunConfig
from merc_bench.data import DatasetInfo
from merc_bench.errors import UserError
from merc_bench.model import build_model
from merc_bench.plugins import get_registry

INFO = DatasetInfo("small", "meld", tuple("abcd"), {"text": 12, "audio": 10, "visual": 8}, 3)


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
    table = (tmp_path / "grid" / "ablation.csv").read_text().splitlines()
    assert table[0].startswith("SDMoE,HCMF,IKD,ACC,ΔACC,w-F1,Δw-F1")
    assert len(table) == 9
    assert table[1].split(",")[4] == "+0.00"  # the reference row's delta
    assert "teacher (text) trained" in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "teachers").glob("*.pt"))) == 1  # four IKD rows, one teacher
