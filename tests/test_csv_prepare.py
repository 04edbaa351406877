"""``data prepare csv``: a conversation-csv corpus → a verified feature-store folder (frozen or fine-tuned
text features, .npy audio/visual carried along) → ``run --dataset prepared --data-dir DIR``.

The corpus is test_corpus_config's Friends transcript (a dialogue is a (season, episode, scene) key,
scenes interleaved, "Joey, Chandler" cells listing two speakers) plus a text column and .npy audio
and visual features. The text encoder is the real MiniLM; fine-tuning runs 1 epoch with 16 word
pieces per input on 16 training utterances, so each prepare takes seconds on a CPU.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from test_corpus_config import BASE, COLUMNS, SCENES, friends_rows

import merc_bench.text_finetune as text_finetune
from merc_bench import hookimpl
from merc_bench.cli import main
from merc_bench.data_sources import PreparableDataset, RawCorpus
from merc_bench.feature_store import read_corpus, read_manifest
from merc_bench.pipeline import load_dataset
from merc_bench.plugins import get_registry, plugin_manager
from merc_bench.prepare import prepare_command

TEXT_COLUMNS = [*COLUMNS, "text"]
#: speaker_policy "first": "Joey, Chandler" is Joey, so a scene's four lines have three speakers.
CONFIG = BASE + 'text_column = "text"\nspeaker_policy = "first"\n'
NPY = """
[features.audio]
train = "npy/audio_train.npy"
dev = "npy/audio_dev.npy"
test = "npy/audio_test.npy"
[features.visual]
train = "npy/visual_train.npy"
dev = "npy/visual_dev.npy"
test = "npy/visual_test.npy"
"""
SMALL = ["--finetune", "--finetune-epochs", "1", "--finetune-max-tokens", "16", "--finetune-batch-size", "8"]


def text_rows(split: str) -> list[dict[str, str]]:
    """The Friends rows plus a text that names its split's season, so no test text occurs in train or dev."""
    return [{**row, "text": f"{row['who']} says line {row['line']} of scene {row['scene']}, episode {row['episode']}, "
                            f"season {row['season']}"} for row in friends_rows(split)]


def write_friends(folder: Path, config: str = CONFIG) -> Path:
    """The corpus folder (corpus.toml, csv/, npy/); returns the corpus config file.

    Row i of each .npy describes CSV row i in file order: audio (scene key as a number, line), visual 3 columns.
    """
    (folder / "csv").mkdir(parents=True, exist_ok=True)
    (folder / "npy").mkdir(exist_ok=True)
    for split in SCENES:
        rows = text_rows(split)
        with open(folder / "csv" / f"{split}.csv", "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=TEXT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        keys = [[int(r["season"] + r["episode"] + r["scene"]), int(r["line"])] for r in rows]
        np.save(folder / "npy" / f"audio_{split}.npy", np.asarray(keys, np.float32))
        np.save(folder / "npy" / f"visual_{split}.npy", np.asarray([[k, -k, 0.5] for k, _ in keys], np.float32))
    path = folder / "corpus.toml"
    path.write_text(config + NPY, encoding="utf-8")
    return path


def prepare_csv(config: Path, target: Path, finetune: dict | None, overrides=(), output: io.StringIO | None = None):
    return prepare_command(dataset="csv", target=target, source=None, url=None, text_encoder="minilm",
                           console=Console(file=output or io.StringIO(), width=200), finetune=finetune,
                           dataset_config=config, dataset_overrides=list(overrides))


def cli(argv: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def squash(text: str) -> str:
    return " ".join(text.split())


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.fixture
def friends(tmp_path) -> Path:
    return write_friends(tmp_path / "friends")


def test_a_keyed_corpus_is_finetuned_prepared_and_trained_from_the_command_line(friends, tmp_path, capsys):
    target = tmp_path / "prepared"
    code, out, err = cli(["data", "prepare", "csv", "--dataset-config", friends, "--to", target, *SMALL], capsys)
    assert code == 0, err
    assert "fine-tuning epoch 1/1" in out and f"next: merc-bench run sdt --dataset prepared --data-dir {target}" \
        in squash(out)
    corpus = read_corpus(target)  # verified: schema, sha256, arrays
    assert corpus.info.name == "friends" and corpus.info.classes == ("anger", "joy", "neutral")
    assert corpus.info.feature_dims == {"text": 384, "audio": 2, "visual": 3} and corpus.info.num_speakers == 3
    assert sorted(d.id for d in corpus.train) == ["1/1/1", "1/1/2", "1/12/1", "1/2/1"]
    scene = next(d for d in corpus.train if d.id == "1/12/1")
    assert scene.speakers.tolist() == [0, 1, 2, 1]  # Ross, "Joey, Chandler" → Joey, Rachel, Joey
    assert [corpus.info.classes[i] for i in scene.labels] == ["joy", "neutral", "anger", "joy"]
    np.testing.assert_array_equal(scene.features["audio"], [[1121, 0], [1121, 1], [1121, 2], [1121, 3]])

    provenance = read_manifest(target)["provenance"]
    assert provenance["prepared_by"] == "merc-bench data prepare csv"
    for split in SCENES:
        csv_bytes = (friends.parent / "csv" / f"{split}.csv").read_bytes()
        assert provenance["files"][split]["sha256"] == hashlib.sha256(csv_bytes).hexdigest()
        assert (target / "raw" / f"{split}.csv").read_bytes() == csv_bytes
    npy = friends.parent / "npy" / "audio_dev.npy"
    assert provenance["npy_files"]["audio"]["dev"] == {"path": str(npy), "sha256": hashlib.sha256(npy.read_bytes()).hexdigest()}
    assert provenance["corpus_config"]["dialogue_column"] == ["season", "episode", "scene"]
    assert provenance["corpus_config"]["speaker_policy"] == "first" and provenance["classes"] == list(corpus.info.classes)
    assert provenance["text_encoder"]["name"] == "minilm" and provenance["text_encoder"]["finetuned"] is True
    report = provenance["finetune"]
    assert report["config"]["epochs"] == 1 and report["config"]["max_tokens"] == 16 and report["selected_epoch"] == 1
    assert 0 <= report["dev"]["weighted_f1"] <= 1 and len(report["cache_key"]) == 16 and report["seconds"] > 0
    assert hidden(tmp_path) == []  # no staging folder, no checkpoints left

    code, _, err = cli(["run", "sdt", "--dataset", "prepared", "--data-dir", target, "--epochs", "1", "--no-track",
                        "--out", tmp_path / "run", "--set", "model.hidden_size=16", "--set", "mixer.heads=2",
                        "--set", "fuser.heads=2"], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["dataset_fingerprint"] == corpus.fingerprint()


def test_frozen_features_are_what_the_conversation_csv_dataset_loads(friends, tmp_path):
    """Same parser: the prepared folder holds exactly the corpus `--dataset-config corpus.toml` loads."""
    target = tmp_path / "frozen"
    prepare_csv(friends, target, None)
    prepared = read_corpus(target)
    assert "finetune" not in read_manifest(target)["provenance"]
    loaded = load_dataset(get_registry(), None, [], None, friends)[0]
    assert prepared.info.classes == loaded.info.classes and prepared.info.feature_dims == loaded.info.feature_dims
    for split in SCENES:
        for mine, theirs in zip(prepared.split(split), loaded.split(split), strict=True):
            assert mine.id == theirs.id
            np.testing.assert_array_equal(mine.speakers, theirs.speakers)
            np.testing.assert_array_equal(mine.labels, theirs.labels)
            np.testing.assert_array_equal(mine.features["visual"], theirs.features["visual"])
            np.testing.assert_allclose(mine.features["text"], theirs.features["text"], atol=1e-5)


def test_the_cache_is_keyed_by_the_corpus_configuration(friends, tmp_path, monkeypatch):
    options = {"epochs": 1, "max_tokens": 16, "batch_size": 8}
    target = tmp_path / "prepared"
    prepare_csv(friends, target, options)
    calls = []
    real = text_finetune.finetune_and_extract
    monkeypatch.setattr(text_finetune, "finetune_and_extract", lambda *a, **k: calls.append(1) or real(*a, **k))
    prepare_csv(friends, target, options)
    assert calls == [] and set(read_manifest(target)["provenance"]["embeddings"].values()) == {"reused"}
    # Another reading of the same bytes ("Joey, Chandler" a speaker of its own) is another corpus.
    prepare_csv(friends, target, options, ["dataset.speaker_policy=join"])
    provenance = read_manifest(target)["provenance"]
    assert calls == [1] and set(provenance["embeddings"].values()) == {"computed"}
    assert provenance["corpus_config"]["speaker_policy"] == "join" and read_corpus(target).info.num_speakers == 4


def rewritten(friends: Path, old: str, new: str) -> Path:
    path = friends.parent / "changed.toml"
    path.write_text(friends.read_text().replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: ["--to", "{target}"], "needs the corpus described"),
    (lambda f: ["--dataset-config", rewritten(f, 'dev = "csv/dev.csv"\n', ""), "--to", "{target}", *SMALL],
     "conversation-csv needs a CSV per split: set dataset.dev"),
    (lambda f: ["--dataset-config", f, "--to", "{target}", "--set", "dataset.speaker_policy=error"],
     "list several speakers"),
    (lambda f: ["--dataset-config", rewritten(f, 'label_column = "emotion"\n',
                                              'label_column = "emotion"\nclasses = ["joy", "neutral"]\n'),
                "--to", "{target}"], "label 'anger' in column 'emotion' is not one of dataset.classes"),
    (lambda f: ["--dataset-config", rewritten(f, "[features.audio]", '[features.text]\ntrain = "npy/audio_train.npy"\n'
                                              'dev = "npy/audio_dev.npy"\ntest = "npy/audio_test.npy"\n[features.audio]'),
                "--to", "{target}"], "no .npy text features"),
    (lambda f: ["--dataset-config", rewritten(f, 'name = "friends"\n', 'name = "friends"\ntext_encoder = "other"\n'),
                "--to", "{target}"], "give the same encoder in both"),
    (lambda f: ["--dataset-config", f, "--to", "{target}", "--set", "training.lr=0.1"], "takes only dataset options"),
    (lambda f: ["--dataset-config", f, "--to", "{target}", "--set", "dataset.dialogue_colum=scene"], "dialogue_colum"),
    (lambda f: ["--dataset-config", f, "--to", "{target}", "--from", f.parent], "--from/--url do not apply"),
    (lambda f: ["--dataset-config", rewritten(f, 'dataset = "conversation-csv"', 'dataset = "meld"'), "--to",
                "{target}"], "names the dataset 'meld', but `data prepare csv` reads conversation-csv corpora"),
    (lambda f: ["--dataset-config", f, "--to", "{target}", "--set", "dataset=meld"],
     "`data prepare csv` reads a conversation-csv corpus"),
])
def test_bad_input_exits_2_in_one_paragraph_and_writes_nothing(friends, tmp_path, capsys, change, message):
    target = tmp_path / "out"
    arguments = [str(target) if a == "{target}" else a for a in change(friends)]
    code, _, err = cli(["data", "prepare", "csv", *arguments], capsys)
    assert code == 2 and message in squash(err), err
    assert "Traceback" not in err and not target.exists() and hidden(tmp_path) == []


def test_an_empty_dev_split_is_refused(friends, tmp_path, capsys):
    (friends.parent / "csv" / "dev.csv").write_text(",".join(TEXT_COLUMNS) + "\n", encoding="utf-8")
    for extra in ([], SMALL):
        code, _, err = cli(["data", "prepare", "csv", "--dataset-config", friends, "--to", tmp_path / "out", *extra],
                           capsys)
        assert code == 2 and "dev CSV" in squash(err) and "has a header but no rows" in squash(err), err
    assert not (tmp_path / "out").exists() and hidden(tmp_path) == []


def test_meld_takes_no_dataset_options(friends, tmp_path, capsys):
    code, _, err = cli(["data", "prepare", "meld", "--to", tmp_path / "out", "--dataset-config", friends], capsys)
    assert code == 2 and "`data prepare meld` takes no dataset options" in squash(err)


class _NoDev:
    """A source whose parse has no dev dialogues (conversation-csv refuses that itself, a third party may not)."""

    @hookimpl
    def merc_bench_data_sources(self):
        def read(request, raw):
            dialogue = type("D", (), {"id": "a", "texts": ["hi", "bye"], "speakers": np.zeros(2, np.int64),
                                      "labels": np.asarray([0, 1])})()
            return RawCorpus(name="no-dev", family="meld", classes=("x", "y"), num_speakers=1, description="no dev",
                             splits={"train": [dialogue], "dev": [], "test": [dialogue]},
                             source_sha256=dict.fromkeys(("train", "dev", "test"), "0" * 64))

        return [PreparableDataset(name="no-dev", description="no dev split", check=lambda request: None, read=read)]


def test_finetuning_without_dev_dialogues_is_a_clear_error(tmp_path, capsys):
    plugin = _NoDev()
    plugin_manager().register(plugin, name="no-dev")
    try:
        code, _, err = cli(["data", "prepare", "no-dev", "--to", tmp_path / "out", "--finetune"], capsys)
    finally:
        plugin_manager().unregister(plugin)
    assert code == 2 and "no-dev has no dev dialogues; fine-tuning trains on the train split and selects its epoch " \
        "on the dev split" in squash(err), err
    assert not (tmp_path / "out").exists() and hidden(tmp_path) == []


def test_the_prepared_dataset_names_what_it_needs(tmp_path, capsys):
    code, _, err = cli(["validate", "sdt", "--dataset", "prepared", "--data-dir", tmp_path], capsys)
    assert code == 2 and f"--data-dir '{tmp_path}' has no manifest.json" in squash(err)
    assert "merc-bench data prepare csv --dataset-config corpus.toml --to DIR" in squash(err)


def test_nonfinite_npy_features_are_refused_or_zeroed_as_the_dataset_does(friends, tmp_path, capsys):
    audio = friends.parent / "npy" / "audio_test.npy"
    values = np.load(audio)
    values[5, 1] = np.nan
    np.save(audio, values)
    code, _, err = cli(["data", "prepare", "csv", "--dataset-config", friends, "--to", tmp_path / "out"], capsys)
    # Row 5 of the test CSV (file order) is line 2 of scene 3/1/2.
    assert code == 2 and "dialogue '3/1/2' (test split), utterance 2: audio feature 1 is nan" in squash(err), err
    assert "nonfinite=zero" in err
    assert not (tmp_path / "out").exists() and hidden(tmp_path) == []
    code, _, err = cli(["data", "prepare", "csv", "--dataset-config", friends, "--to", tmp_path / "out",
                        "--set", "dataset.nonfinite=zero"], capsys)
    assert code == 0, err
    corpus = read_corpus(tmp_path / "out")  # the folder holds no NaN: it was replaced, and the count recorded
    assert all(np.isfinite(d.features["audio"]).all() for d in corpus.test)
    assert read_manifest(tmp_path / "out")["provenance"]["non_finite_replaced"] == {"audio": 1}


def test_one_file_with_a_split_column_given_by_set_options_alone(tmp_path, monkeypatch, capsys):
    rows = [{**row, "part": {"dev": "validation"}.get(split, split)} for split in SCENES for row in text_rows(split)]
    monkeypatch.chdir(tmp_path)  # relative --set paths are read from the working folder, as conversation-csv reads them
    with open("all.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=[*TEXT_COLUMNS, "part"])
        writer.writeheader()
        writer.writerows(rows)
    options = ["file=all.csv", "split_column=part", 'dialogue_column=["season","episode","scene"]', "order_column=line",
               "speaker_column=who", "speaker_policy=join", "label_column=emotion", "name=friends-one-file"]
    code, out, err = cli(["data", "prepare", "conversation-csv", "--to", "out",
                          *[a for o in options for a in ("--set", f"dataset.{o}")]], capsys)
    assert code == 0, err
    corpus = read_corpus(tmp_path / "out")
    assert corpus.info.name == "friends-one-file" and corpus.info.num_speakers == 4  # "Joey, Chandler" is one name
    assert [len(corpus.split(s)) for s in SCENES] == [4, 1, 2] and corpus.info.feature_dims == {"text": 384}
    assert sorted((tmp_path / "out" / "raw").iterdir()) == [tmp_path / "out" / "raw" / "all.csv"]
    provenance = read_manifest(tmp_path / "out")["provenance"]
    assert provenance["prepared_by"] == "merc-bench data prepare conversation-csv"
    assert provenance["raw_files"] == dict.fromkeys(SCENES, "all.csv")
    assert provenance["files"]["dev"]["sha256"] == hashlib.sha256((tmp_path / "all.csv").read_bytes()).hexdigest()
