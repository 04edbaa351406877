"""Run files (``--config``) and ``merc-bench config show``: a run folder's config.json reproduces the run."""

import json

import pytest

from merc_bench.run_file import read_run_file

from test_cli import TINY, run_cli


def _run(argv, capsys, out):
    code, stdout, err = run_cli(["run", *argv, "--no-track", "--out", str(out)], capsys)
    assert code == 0, err
    return json.loads((out / "config.json").read_text()), json.loads((out / "results.json").read_text())


def test_a_run_folders_config_json_reproduces_the_run(tmp_path, capsys):
    config, results = _run(["sdt", "--epochs", "2", *TINY, "--set", "training.lr=0.0003"], capsys, tmp_path / "a")
    again, results_again = _run(["--config", str(tmp_path / "a" / "config.json")], capsys, tmp_path / "b")
    assert again == config
    assert results_again["test"]["weighted_f1"]["per_seed"] == results["test"]["weighted_f1"]["per_seed"]
    assert results_again["runs"][0]["history"] == results["runs"][0]["history"]


@pytest.mark.parametrize("form", ["toml", "json"])
def test_config_show_prints_what_run_trains_and_reads_back(tmp_path, capsys, form):
    flags = ["--epochs", "1", *TINY, "--set", "mixer.dropout=0.25"]
    code, shown, err = run_cli(["config", "show", "sdt", "--format", form, *flags], capsys)
    assert code == 0, err
    file = tmp_path / f"run.{form}"
    file.write_text(shown)
    direct, _ = _run(["sdt", *flags], capsys, tmp_path / "direct")
    from_file, _ = _run(["--config", str(file)], capsys, tmp_path / "from-file")
    assert from_file == direct and direct["mixer"]["config"]["dropout"] == 0.25


def test_the_command_line_wins_over_the_file(tmp_path, capsys):
    file = tmp_path / "run.yaml"
    file.write_text("recipe: bigru-concat\nepochs: 3\nseeds: 2\nset:\n  training.lr: 0.01\n  model.hidden_size: 16\n"
                    "dataset:\n  name: synthetic\n  config: {train_dialogues: 8, dev_dialogues: 4, test_dialogues: 4}\n")
    config, results = _run(["--config", str(file), "--epochs", "1", "--set", "training.lr=0.02"], capsys,
                           tmp_path / "out")
    assert config["recipe"] == "bigru-concat" and config["training"]["epochs"] == 1  # the flag over the file
    assert config["training"]["lr"] == 0.02 and config["model"]["hidden_size"] == 16  # --set over [set]; kept
    assert config["seeds"] == 2 and results["seeds"] == [0, 1]
    assert config["dataset"] == {"name": "synthetic",
                                 "config": {"train_dialogues": 8, "dev_dialogues": 4, "test_dialogues": 4}}


def test_compare_reads_its_recipes_and_seeds_from_the_file(tmp_path, capsys):
    file = tmp_path / "compare.toml"
    file.write_text('recipes = ["bigru-concat", "early-fusion"]\nseeds = 2\nepochs = 1\n'
                    '[set]\nmodel.hidden_size = 16\ndataset.train_dialogues = 8\ndataset.dev_dialogues = 4\n'
                    'dataset.test_dialogues = 4\n')
    code, stdout, err = run_cli(["compare", "--config", str(file), "--no-track", "--tsne", "none", "--out",
                                 str(tmp_path / "cmp")], capsys)
    assert code == 0, err
    seeds = {json.loads(p.read_text())["recipe"]: json.loads(p.read_text())["seeds"]
             for p in (tmp_path / "cmp").rglob("results.json")}
    assert seeds == {"bigru-concat": [0, 1], "early-fusion": [0, 1]}


def test_paths_in_a_run_file_are_relative_to_it(tmp_path):
    (tmp_path / "configs").mkdir()
    file = tmp_path / "configs" / "run.toml"
    file.write_text('recipe = "sdt"\ndata_dir = "../data/meld"\ndataset_config = "corpus.toml"\n')
    run_file = read_run_file(file)
    assert run_file.data_dir == tmp_path / "configs" / "../data/meld"
    assert run_file.dataset_config == tmp_path / "configs" / "corpus.toml"


@pytest.mark.parametrize("name, text, message", [
    ("a.toml", 'recipe = "sdt"\nepoch = 3\n', "unknown key 'epoch'"),
    ("b.toml", 'recipe = "sdt"\nrecipes = ["sdt"]\n', "has both recipe and recipes"),
    ("c.toml", 'recipe = "sdt"\n[set]\nwhen = 1979-05-27\n', "is not a number, string, boolean or list"),
    ("d.toml", 'recipe = "sdt"\nmixer = "bigru"\n', "must be a table with name and config"),
    ("e.yaml", "base: &b {recipe: sdt}\nother: *b\n", "YAML aliases"),
    ("f.json", "[1, 2]", "not a list"),
    ("g.json", "{not json", "is not valid JSON"),
    ("h.toml", 'dataset = 3\n', "must be a dataset name or a table"),
    ("i.toml", 'recipe = "sdt"\n[set]\ntraining.lrr = 0.1\n', "training"),
])
def test_bad_run_files_exit_2(tmp_path, capsys, name, text, message):
    file = tmp_path / name
    file.write_text(text)
    code, _, err = run_cli(["run", "--config", str(file), "--no-track", "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and message in " ".join(err.split()) and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_run_without_a_recipe_says_how_to_give_one(capsys):
    code, _, err = run_cli(["run", "--no-track"], capsys)
    assert code == 2 and "needs a recipe" in err
