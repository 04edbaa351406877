"""A corpus without glue code: ``--dataset-config corpus.toml``, ``merc-bench list dataset`` and
``data inspect`` on a CSV.

The corpus is a small Friends-like transcript written by the tests: a dialogue is a (season,
episode, scene) key, rows of different scenes are interleaved, some speaker cells list two
speakers ("Joey, Chandler"), and the text features are ``.npy`` files, so no text encoder runs.
The corpus config file lives beside the CSVs; commands run from another folder.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merc_bench.cli import main
from merc_bench.convert import _text_table_header
from merc_bench.plugins import get_registry
from merc_bench.pipeline import load_dataset
from merc_bench.tuning import TuneRequest

COLUMNS = ["season", "episode", "scene", "line", "who", "emotion"]
#: Each scene's four lines: "Joey, Chandler" is Joey under speaker_policy=first, a speaker of its own under join.
SPEAKERS = ["Ross", "Joey, Chandler", "Rachel", "Joey"]
EMOTIONS = ["joy", "neutral", "anger"]
SCENES = {"train": [("1", "1", "1"), ("1", "1", "2"), ("1", "2", "1"), ("1", "12", "1")],
          "dev": [("2", "1", "1")], "test": [("3", "1", "1"), ("3", "1", "2")]}


def friends_rows(split: str) -> list[dict[str, str]]:
    """Line 0 of every scene, then line 1 of every scene, ...: a scene's rows are not adjacent."""
    return [{"season": season, "episode": episode, "scene": scene, "line": str(line), "who": SPEAKERS[line],
             "emotion": EMOTIONS[(line + int(episode)) % 3]}
            for line in range(4) for season, episode, scene in SCENES[split]]


BASE = """dataset = "conversation-csv"
name = "friends"
dialogue_column = ["season", "episode", "scene"]
order_column = "line"
speaker_column = "who"
label_column = "emotion"
train = "csv/train.csv"
dev = "csv/dev.csv"
test = "csv/test.csv"
"""
FEATURES = """
[features.text]
train = "features/train.npy"
dev = "features/dev.npy"
test = "features/test.npy"
"""


@pytest.fixture
def corpus(tmp_path, monkeypatch) -> Path:
    """The corpus folder (corpus.toml, csv/, features/); the working folder is elsewhere."""
    folder = tmp_path / "friends"
    (folder / "csv").mkdir(parents=True)
    (folder / "features").mkdir()
    for split in SCENES:
        write_split(folder, split, friends_rows(split))
    write_config(folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return folder


def write_split(folder: Path, split: str, rows: list[dict[str, str]]) -> None:
    with open(folder / "csv" / f"{split}.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    # Row i describes CSV row i: its scene's key as a number and its line, to check the alignment.
    np.save(folder / "features" / f"{split}.npy",
            np.asarray([[int(r["season"] + r["episode"] + r["scene"]), int(r["line"])] for r in rows], np.float32))


def write_config(folder: Path, extra: str = "", name: str = "corpus.toml") -> Path:
    path = folder / name
    path.write_text(BASE + extra + FEATURES, encoding="utf-8")
    return path


def cli(argv: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def squash(text: str) -> str:
    """``text`` without whitespace: the console wraps long paths inside words."""
    return "".join(text.split())


def load(config: Path, overrides=(), data_dir=None, dataset=None):
    return load_dataset(get_registry(), dataset, list(overrides), data_dir, config)


# -- the corpus config file -----------------------------------------------------------------------------
def test_validate_a_three_column_corpus_from_its_config_file(corpus, capsys):
    config = corpus / "corpus.toml"
    code, out, err = cli(["validate", "early-fusion", "--dataset", "conversation-csv", "--dataset-config", config,
                          "--set", "dataset.speaker_policy=first", "--set", "model.hidden_size=8"], capsys)
    assert code == 0, err
    assert "recipe early-fusion on friends (family meld); modalities text" in out
    # The default policy refuses the cells listing two speakers, naming the file, the lines and the value.
    code, out, err = cli(["validate", "early-fusion", "--dataset", "conversation-csv", "--dataset-config", config,
                          "--set", "model.hidden_size=8"], capsys)
    message = squash(err)
    assert code == 2 and "Traceback" not in err and message.count("error:") == 1
    assert squash(f"{corpus / 'csv' / 'train.csv'}': 4 speaker cells in column 'who' list several speakers") in message
    assert squash("line 6: 'Joey, Chandler'; line 7: 'Joey, Chandler'; line 8: 'Joey, Chandler'; and 1 more") in message
    assert "dataset.speaker_policy=first" in message and "join" in message


@pytest.mark.parametrize("policy, speakers, num_speakers", [("first", [0, 1, 2, 1], 3), ("join", [0, 1, 2, 3], 4)])
def test_the_corpus_loads_with_each_speaker_policy(corpus, policy, speakers, num_speakers):
    loaded, choice, rest = load(write_config(corpus, f'speaker_policy = "{policy}"\n'), ["model.hidden_size=8"])
    assert rest == ["model.hidden_size=8"] and choice["name"] == "conversation-csv"
    assert loaded.info.name == "friends" and loaded.info.num_speakers == num_speakers
    assert sorted(d.id for d in loaded.train) == ["1/1/1", "1/1/2", "1/12/1", "1/2/1"]
    for dialogue in loaded.train + loaded.dev + loaded.test:
        assert list(dialogue.speakers) == speakers
        features = dialogue.features["text"]
        assert (features[:, 0] == int(dialogue.id.replace("/", ""))).all()  # the scene's own rows ...
        assert features[:, 1].tolist() == [0, 1, 2, 3]  # ... in line order
    assert loaded.provenance["speaker_cells_listing_several"]["cells"] == {"train": 4, "dev": 1, "test": 2}


def test_the_readmes_corpus_toml_works_as_written(corpus, capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("# corpus.toml — beside the CSVs", 1)[1].split("```", 1)[0]
    config = corpus / "readme.toml"
    config.write_text("\n".join(line[2:] for line in block.splitlines()[1:]), encoding="utf-8")  # its indent
    code, out, err = cli(["validate", "early-fusion", "--dataset-config", config, "--set", "model.hidden_size=8"],
                         capsys)
    assert code == 0, err
    assert "recipe early-fusion on friends" in out
    loaded, choice, _ = load(config, ["dataset.speaker_policy=join"])  # the README's second command's override
    assert loaded.info.classes[:3] == ("neutral", "joy", "sadness") and loaded.info.num_speakers == 4
    assert choice["config"]["text_encoder"] is None


def test_relative_paths_resolve_against_the_config_files_folder(corpus, tmp_path):
    # The working folder is tmp/elsewhere, which holds no CSV; the file's paths are relative to tmp/friends.
    loaded, choice, _ = load(corpus / "corpus.toml", ["dataset.speaker_policy=join"])
    assert choice["config"]["train"] == str(corpus / "csv" / "train.csv")
    assert choice["config"]["features"]["text"]["dev"] == str(corpus / "features" / "dev.npy")
    assert loaded.provenance["files"]["test"]["path"] == str((corpus / "csv" / "test.csv").resolve())
    # --data-dir does not move the file's paths; a path given with --set still resolves against it.
    other = tmp_path / "other"
    other.mkdir()
    (other / "spare.csv").write_bytes((corpus / "csv" / "test.csv").read_bytes())
    loaded, choice, _ = load(corpus / "corpus.toml", ["dataset.speaker_policy=join", "dataset.test=spare.csv"],
                             data_dir=other)
    assert choice["config"]["train"] == str(corpus / "csv" / "train.csv") and choice["config"]["test"] == "spare.csv"
    assert loaded.provenance["files"]["test"]["path"] == str((other / "spare.csv").resolve())


def test_every_datasets_path_options_resolve_against_the_file(tmp_path):
    from merc_bench.dataset_config import read_dataset_config

    config = tmp_path / "features" / "meld.toml"
    config.parent.mkdir()
    config.write_text('dataset = "meld"\npath = "sdt/meld.pkl"\nroberta_layer = "mean"\nnonfinite = "zero"\n')
    choice = read_dataset_config(config, get_registry(), None)
    assert choice == {"name": "meld", "config": {"path": str(tmp_path / "features" / "sdt" / "meld.pkl"),
                                                 "roberta_layer": "mean", "nonfinite": "zero"}}
    config.write_text('dataset = "synthetic"\nshape = "iemocap"\n')  # no path options: values as written
    assert read_dataset_config(config, get_registry(), "synthetic") == {"name": "synthetic",
                                                                        "config": {"shape": "iemocap"}}


def test_set_overrides_the_files_values(corpus):
    config = write_config(corpus, 'speaker_policy = "error"\n')  # and name = "friends"
    loaded, choice, _ = load(config, ["dataset.speaker_policy=join", "dataset.name=friends-set",
                                      "dataset.features.text.test=" + str(corpus / "features" / "test.npy")])
    assert loaded.info.name == "friends-set" and choice["config"]["speaker_policy"] == "join"
    assert loaded.info.num_speakers == 4
    # `false` stands for TOML's missing null: order_column = false keeps file order, here lines 3, 2, 1, 0.
    write_split(corpus, "train", friends_rows("train")[::-1])
    unordered = corpus / "unordered.toml"
    unordered.write_text(BASE.replace('order_column = "line"', "order_column = false") + 'speaker_policy = "join"\n'
                         + FEATURES)
    loaded, choice, _ = load(unordered)
    assert choice["config"]["order_column"] is None
    assert all(d.features["text"][:, 1].tolist() == [3, 2, 1, 0] for d in loaded.train)
    loaded, _, _ = load(write_config(corpus, 'speaker_policy = "join"\n'))  # by the line column
    assert all(d.features["text"][:, 1].tolist() == [0, 1, 2, 3] for d in loaded.train)


def test_the_dataset_comes_from_the_file_or_the_flag(corpus, capsys):
    # Without --dataset the file's `dataset` key names it, and `run` trains it end to end.
    config = write_config(corpus, 'speaker_policy = "first"\n')
    out_dir = corpus.parent / "run"
    code, out, err = cli(["run", "bigru-concat", "--dataset-config", config, "--epochs", "1", "--no-track",
                          "--out", out_dir, "--set", "model.hidden_size=8"], capsys)
    assert code == 0, err
    result = json.loads((out_dir / "results.json").read_text())
    assert result["dataset"] == "friends" and result["classes"] == sorted(EMOTIONS)
    assert json.loads((out_dir / "config.json").read_text())["dataset"]["config"]["dialogue_column"] == [
        "season", "episode", "scene"]
    # A file naming no dataset, with no --dataset: the default (synthetic) refuses its options, saying why.
    bare = corpus / "bare.toml"
    bare.write_text(BASE.replace('dataset = "conversation-csv"\n', "") + FEATURES)
    code, _, err = cli(["validate", "early-fusion", "--dataset-config", bare], capsys)
    message = squash(err)
    assert code == 2 and "dataset'synthetic'" in message and squash("the file names no dataset") in message
    code, _, err = cli(["validate", "early-fusion", "--dataset", "meld", "--dataset-config", config], capsys)
    assert code == 2 and squash("names the dataset 'conversation-csv' but --dataset is 'meld'") in squash(err)


HOSTILE = [
    ("missing", None, "cannot read --dataset-config"),
    ("not-toml", b'dialogue_column = ["season",\n', "is not valid TOML"),
    ("binary", b"\x80\x81\x82 = 1\n", "is not UTF-8 text"),
    ("utf16", '\ufeffname = "x"\n'.encode("utf-16-le"), "is UTF-16 text"),
    ("nul", b'name = "x\x00"\n', "contains a NUL byte (line 1)"),
    ("unknown-option", b'dataset = "conversation-csv"\nspeaker_colum = "who"\n',
     "unknown option 'speaker_colum'. Did you mean 'speaker_column'"),
    ("wrong-type", b'dataset = "conversation-csv"\nspeaker_policy = "all"\n',
     "speaker_policy = 'all' is not valid for dataset 'conversation-csv' (named by the file): Input should be "
     "'error', 'first' or 'join'; the option 'speaker_policy' takes error | first | join."),
    ("not-a-table", b'dataset = "conversation-csv"\n[features]\ntext = "x.npy"\n',
     "features.text = 'x.npy' is not valid for dataset 'conversation-csv' (named by the file): Input should be a "
     "valid dictionary; the option 'features' takes dict[str, dict[str, str]]."),
    ("key-item", b'dataset = "conversation-csv"\ndialogue_column = ["season", 3]\n',
     "dialogue_column[1] = 3 is not valid"),
    ("dataset-not-a-name", b"dataset = 3\n", "dataset = 3 is not a name"),
    ("unknown-dataset", b'dataset = "conversation-tsv"\n', "unknown dataset 'conversation-tsv'"),
    ("generic-nonfinite", b'dataset = "conversation-csv"\nnonfinite = "ignore"\n', "nonfinite = 'ignore' is not a policy"),
    ("long-dotted-key", b"a.b.c.d.e.f.g.h.i = 1\n", "a dotted name of more than 8 parts"),
    # Valid TOML (comments) past the bound: refused by its size, before it is read or parsed.
    ("too-big", b"# padding\n" * 110_000, "is 1100000 bytes; a corpus config file may have at most 1048576 bytes"),
]


@pytest.mark.parametrize("name, content, fragment", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_a_hostile_config_file_is_one_paragraph_naming_it(tmp_path, capsys, name, content, fragment):
    path = tmp_path / f"{name}.toml"
    if content is not None:
        path.write_bytes(content)
    code, out, err = cli(["validate", "early-fusion", "--dataset-config", path], capsys)
    message = squash(err)
    assert code == 2 and out == "", err
    assert "Traceback" not in err and message.count("error:") == 1 and "\n\n" not in err.strip()
    assert squash(f"--dataset-config {str(path)!r}") in message
    assert squash(fragment) in message


def test_a_folder_is_not_a_config_file(tmp_path, capsys):
    code, _, err = cli(["validate", "early-fusion", "--dataset-config", tmp_path], capsys)
    assert code == 2 and squash("is a folder; give the TOML file of the dataset's options") in squash(err)


def test_every_dataset_command_takes_the_config_file(corpus, capsys):
    for command in ("run", "validate", "compare", "ablate", "tune"):
        code, out, _ = cli([command, "--help"], capsys)
        assert code == 0 and "--dataset-config" in out, command
    # Extra tune workers rerun the same command: they get the file by its absolute path.
    request = TuneRequest(dataset_config=Path("../friends/corpus.toml"))
    argv = request.worker_argv(study="s", storage="sqlite:///x.db", out=Path("study"), tracking_uri=None)
    assert argv[argv.index("--dataset-config") + 1] == str((corpus / "corpus.toml").resolve())
    assert "--dataset" not in argv  # the file names the dataset; a worker must not add the default
    # compare loads the corpus once through the file, for every recipe.
    config = write_config(corpus, 'speaker_policy = "join"\n')
    code, out, err = cli(["compare", "bigru-concat", "early-fusion", "--dataset-config", config, "--seeds", "1",
                          "--epochs", "1", "--tsne", "none", "--no-track", "--no-reuse", "--out", corpus.parent / "cmp",
                          "--set", "model.hidden_size=8"], capsys)
    assert code == 0, err
    for folder in ("01-bigru-concat", "02-early-fusion"):
        assert json.loads((corpus.parent / "cmp" / folder / "results.json").read_text())["dataset"] == "friends"


# -- merc-bench list dataset ------------------------------------------------------------------------------
def test_list_dataset_shows_every_datasets_options(capsys):
    code, out, _ = cli(["list", "dataset"], capsys)
    assert code == 0
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in out.splitlines() if line.count("│") == 5 and line.split("│")[1].strip()}
    assert rows["speaker_policy"][:2] == ["error | first | join", '"error"']
    assert rows["speaker_policy"][2].startswith("a speaker cell listing several speakers")
    assert rows["dialogue_column"][0] == "str | list[str]" and rows["dialogue_column"][1] == '"dialogue_id"'
    assert rows["speaker_separators"][:2] == ["list[str]", '[",", ";", "&"]']
    assert rows["roberta_layer"][:2] == ["1 | 2 | 3 | 4 | mean | concat", "1"]  # meld's and iemocap's
    assert rows["emotion_persistence"][:2] == ["float | null", "null"]  # synthetic's
    for dataset in ("conversation-csv", "meld", "iemocap", "synthetic"):
        assert f"dataset {dataset}: options" in out
    # One dataset in full; other kinds' lists are unchanged (no options tables).
    code, out, _ = cli(["list", "dataset", "conversation-csv"], capsys)
    assert code == 0 and "dataset conversation-csv: options" in out and "dataset synthetic" not in out
    assert "speaker_separators" in out and "cache_dir" in out
    code, out, _ = cli(["list", "mixer"], capsys)
    assert code == 0 and "options" not in out and "bigru" in out
    code, _, err = cli(["list", "dataset", "conversation-tsv"], capsys)
    assert code == 2 and "unknown dataset 'conversation-tsv'" in err


# -- data inspect on a CSV --------------------------------------------------------------------------------
@pytest.mark.parametrize("name, text", [("train.csv", "season,episode,scene,who\n1,1,1,Ross\n"),
                                        ("train.tsv", "\ufeffseason\tepisode\twho\n1\t1\tRoss\n"),
                                        ("export", ",season,episode\n0,1,1\n")])  # pandas' index column
def test_data_inspect_on_a_csv_points_to_conversation_csv(tmp_path, capsys, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    code, out, err = cli(["data", "inspect", path], capsys)
    message = squash(err)
    assert code == 2 and "Traceback" not in err
    assert squash(f"{str(path)!r} is a CSV file") in message and "notapickle" not in message
    assert squash("--dataset conversation-csv --dataset-config corpus.toml") in message
    code, _, err = cli(["data", "convert", path, "--to", tmp_path / "converted"], capsys)
    assert code == 2 and "isaCSVfile" in squash(err) and not (tmp_path / "converted").exists()


@pytest.mark.parametrize("name, content", [("features", b"\x80\x04\x95" + bytes(20)),  # binary: not text
                                           ("features.json", b'{"train": [1, 2, 3], "dev": [4]}\n'),  # not a header
                                           ("features.pkl", b"season,episode\n1,1\n")])  # .pkl: the pickle reader's
def test_data_inspect_leaves_other_files_to_their_reader(tmp_path, capsys, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = cli(["data", "inspect", path], capsys)
    assert code == 2 and "CSV" not in err and "pickle" in err


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_the_csv_sniffer_answers_any_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("sniff") / "file"
    path.write_bytes(data)
    header = _text_table_header(path)
    assert header is None or (isinstance(header, str) and "\n" not in header and header.strip())
