"""The conversation-csv dataset: CSVs with custom columns, labels from the data, .npy features,
text features from a registered encoder (cached), a run end to end, and clear errors on bad input.

Every CSV and .npy file is written by the tests. Text features come from a tiny deterministic
hashing encoder registered in-process (the real MiniLM encoder is exercised in test_meld_raw.py).
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from merc_bench import hookimpl
from merc_bench.cli import main
from merc_bench.errors import UserError
from merc_bench.plugins import get_registry, plugin_manager
from merc_bench.pipeline import load_corpus


class HashConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HashEncoder:
    """6 numbers per text from its sha256: deterministic and instant."""

    name = "csv-test-hash"
    version = "1"
    dimension = 6
    encoded = 0

    def __init__(self, config: HashConfig) -> None:
        pass

    def encode(self, texts: list[str]) -> np.ndarray:
        HashEncoder.encoded += len(texts)
        digests = [hashlib.sha256(text.encode()).digest()[:6] for text in texts]
        return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(texts), 6).astype(np.float32) / 255


class HashPlugin:
    @hookimpl
    def merc_bench_register(self, registry):
        registry.register("text_encoder", HashEncoder.name, HashEncoder, config=HashConfig)


@pytest.fixture(autouse=True)
def hash_encoder(tmp_path, monkeypatch):
    monkeypatch.setenv("MERC_BENCH_CACHE_DIR", str(tmp_path / "embedding-cache"))
    plugin = HashPlugin()
    plugin_manager().register(plugin, name="csv-test-hash")
    get_registry.cache_clear()
    HashEncoder.encoded = 0
    yield HashEncoder
    plugin_manager().unregister(plugin)
    get_registry.cache_clear()


COLUMNS = ["conv", "turn", "who", "emo", "utt"]
MAPPING = {"dialogue_column": "conv", "order_column": "turn", "speaker_column": "who", "label_column": "emo",
           "text_column": "utt", "text_encoder": HashEncoder.name}
EMOTIONS = ["happy", "sad", "angry", "calm"]


def make_rows(split: str, dialogues: int, seed: int) -> list[dict[str, str]]:
    """Rows of ``dialogues`` conversations, written in a shuffled order (turn numbers with gaps)."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(dialogues):
        people = ["Ann", "Bob", "Cy"][: 2 + d % 2]
        for t in range(3 + d % 4):
            rows.append({"conv": f"{split}-{d}", "turn": str(10 * t + 5), "who": people[(t + d) % len(people)],
                         "emo": EMOTIONS[(d + t) % 4], "utt": f"{split} dialogue {d} turn {t}, with a comma"})
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def write_csv(path: Path, rows: list[dict[str, str]], columns=COLUMNS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def corpus_files(tmp_path):
    rows = {"train": make_rows("train", 12, 0), "dev": make_rows("dev", 4, 1), "test": make_rows("test", 5, 2)}
    paths = {split: write_csv(tmp_path / f"{split}.csv", split_rows) for split, split_rows in rows.items()}
    return rows, paths


def load(**config):
    return load_corpus(get_registry(), {"name": "conversation-csv", "config": config}, None)


def test_custom_columns_order_speakers_and_labels_from_the_data(corpus_files):
    rows, paths = corpus_files
    corpus = load(**MAPPING, **{split: str(path) for split, path in paths.items()})
    assert corpus.info.classes == ("angry", "calm", "happy", "sad")  # sorted distinct labels
    assert corpus.info.family == "meld" and corpus.info.feature_dims == {"text": 6}
    assert corpus.info.num_speakers == 3
    assert [len(corpus.split(s)) for s in ("train", "dev", "test")] == [12, 4, 5]
    dialogue = next(d for d in corpus.train if d.id == "train-3")  # 3 people, 6 turns, rows shuffled in the file
    ordered = sorted((r for r in rows["train"] if r["conv"] == "train-3"), key=lambda r: int(r["turn"]))
    assert len(dialogue) == 6
    assert [corpus.info.classes[i] for i in dialogue.labels] == [r["emo"] for r in ordered]
    names = [r["who"] for r in ordered]
    assert list(dialogue.speakers) == [list(dict.fromkeys(names)).index(n) for n in names]
    np.testing.assert_array_equal(dialogue.features["text"], HashEncoder(HashConfig()).encode([r["utt"] for r in ordered]))
    provenance = corpus.provenance
    assert provenance["classes"] == ["angry", "calm", "happy", "sad"]
    assert provenance["class_source"] == "sorted distinct labels in the data"
    assert sum(provenance["class_counts"]["train"]) == len(rows["train"])
    assert provenance["class_counts"]["dev"] == corpus.class_counts("dev").tolist()
    assert provenance["text_encoder"]["name"] == HashEncoder.name
    assert provenance["files"]["test"]["sha256"] == hashlib.sha256(paths["test"].read_bytes()).hexdigest()

    # Given classes fix the order; the second load reuses every cached embedding.
    encoded = HashEncoder.encoded
    again = load(**MAPPING, **{s: str(p) for s, p in paths.items()}, classes=["calm", "happy", "sad", "angry"])
    assert again.info.classes == ("calm", "happy", "sad", "angry")
    assert again.provenance["class_source"] == "dataset.classes"
    assert HashEncoder.encoded == encoded and again.provenance["embeddings"] == {s: "reused" for s in paths}
    first = next(d for d in again.train if d.id == "train-3")
    assert [again.info.classes[i] for i in first.labels] == [r["emo"] for r in ordered]


def test_npy_features_align_with_csv_rows_in_file_order(corpus_files, tmp_path):
    rows, paths = corpus_files
    features = {}
    for split, split_rows in rows.items():
        # Row i of the .npy belongs to row i of the CSV: encode the dialogue and turn in the vector.
        array = np.asarray([[int(r["conv"].split("-")[1]), int(r["turn"]), 1.0] for r in split_rows], np.float64)
        np.save(tmp_path / f"audio-{split}.npy", array)
        features[split] = f"audio-{split}.npy"
    config = {**MAPPING, **{s: p.name for s, p in paths.items()}, "features": {"audio": features},
              "text_encoder": None}
    corpus = load_corpus(get_registry(), {"name": "conversation-csv", "config": config}, tmp_path)  # relative paths
    assert corpus.info.feature_dims == {"audio": 3}
    for dialogue in corpus.train + corpus.test:
        audio = dialogue.features["audio"]
        assert audio.dtype == np.float32
        assert (audio[:, 0] == int(dialogue.id.split("-")[1])).all()
        assert audio[:, 1].tolist() == sorted(audio[:, 1].tolist())  # the turn order, gaps and all
    assert HashEncoder.encoded == 0


def test_one_file_with_a_split_column(tmp_path):
    rows = [dict(r, part=split) for split, n in (("train", 6), ("valid", 2), ("TEST", 3))
            for r in make_rows(split.lower(), n, 3)]
    path = write_csv(tmp_path / "all.csv", rows, COLUMNS + ["part"])
    np.save(tmp_path / "visual.npy", np.arange(len(rows) * 2, dtype=np.float32).reshape(len(rows), 2))
    corpus = load(**MAPPING, file=str(path), split_column="part", features={"visual": {"all": str(tmp_path /
                                                                                                 "visual.npy")}})
    assert [len(corpus.split(s)) for s in ("train", "dev", "test")] == [6, 2, 3]
    assert corpus.info.feature_dims == {"text": 6, "visual": 2}
    dialogue = corpus.dev[0]
    positions = [i for i, r in enumerate(rows) if r["conv"] == dialogue.id]
    positions.sort(key=lambda i: int(rows[i]["turn"]))
    np.testing.assert_array_equal(dialogue.features["visual"][:, 0], [2 * i for i in positions])


def test_run_end_to_end(corpus_files, tmp_path, capsys):
    rows, paths = corpus_files
    for split, split_rows in rows.items():
        np.save(tmp_path / f"a-{split}.npy", np.random.default_rng(0).normal(size=(len(split_rows), 5)))
    sets = [f"dataset.{key}={value}" for key, value in MAPPING.items()]
    sets += [f"dataset.{split}={path}" for split, path in paths.items()]
    sets += [f"dataset.features.audio.{split}={tmp_path / f'a-{split}.npy'}" for split in paths]
    sets += ["model.hidden_size=16"]
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        main(["run", "bigru-concat", "--dataset", "conversation-csv", "--epochs", "1", "--no-track", "--out",
              str(out), *[item for s in sets for item in ("--set", s)]])
    captured = capsys.readouterr()
    assert stop.value.code == 0, captured.err
    result = json.loads((out / "results.json").read_text())
    assert result["dataset"] == "conversation-csv"
    assert result["classes"] == ["angry", "calm", "happy", "sad"]
    assert 0.0 <= result["test"]["weighted_f1"]["mean"] <= 1.0
    assert "12 dialogues" in captured.out


def test_bad_input_is_reported_clearly(corpus_files, tmp_path):
    rows, paths = corpus_files
    splits = {s: str(p) for s, p in paths.items()}
    with pytest.raises(UserError,
                       match=r"train CSV '.*train\.csv' has no column 'speaker' \(dataset\.speaker_column\)"):
        load(**{**MAPPING, "speaker_column": "speaker"}, **splits)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(UserError, match=r"dev CSV '.*empty\.csv' is empty"):
        load(**MAPPING, **{**splits, "dev": str(empty)})
    header_only = write_csv(tmp_path / "header.csv", [])
    with pytest.raises(UserError, match=r"header\.csv' has a header but no rows"):
        load(**MAPPING, **{**splits, "test": str(header_only)})
    np.save(tmp_path / "short.npy", np.zeros((len(rows["dev"]) - 1, 4), np.float32))
    features = {"audio": {"train": str(tmp_path / "short.npy"), "dev": str(tmp_path / "short.npy"),
                          "test": str(tmp_path / "short.npy")}}
    with pytest.raises(UserError, match=rf"short\.npy' \(audio, train\) has {len(rows['dev']) - 1} rows but "
                                        rf"'.*train\.csv' has {len(rows['train'])} rows"):
        load(**MAPPING, **splits, features=features)
    with pytest.raises(UserError, match=r"'happy' in column 'emo' is not one of dataset\.classes"):
        load(**MAPPING, **splits, classes=["sad", "angry", "calm"])
    with pytest.raises(UserError, match=r"needs a CSV per split: set dataset\.test"):
        load(**MAPPING, train=splits["train"], dev=splits["dev"])
    with pytest.raises(UserError, match=r"missing\.csv' does not exist"):
        load(**MAPPING, **{**splits, "train": str(tmp_path / "missing.csv")})
    broken = [dict(r) for r in rows["dev"]]
    broken[0]["turn"] = "first"
    with pytest.raises(UserError, match=r"line 2: 'turn' holds 'first'; expected a number"):
        load(**MAPPING, **{**splits, "dev": str(write_csv(tmp_path / "broken.csv", broken))})
    twice = rows["dev"] + [dict(rows["dev"][0], utt="again")]
    with pytest.raises(UserError, match=r"dialogue '.*' has 'turn' = \d+ twice"):
        load(**MAPPING, **{**splits, "dev": str(write_csv(tmp_path / "twice.csv", twice))})
    with pytest.raises(UserError, match=r"no features"):
        load(**{**MAPPING, "text_encoder": None}, **splits)
    with pytest.raises(UserError, match=r"'colour' is not an option"):
        load(**MAPPING, **splits, colour="red")
    assert HashEncoder.encoded == 0  # every mistake is found before any text is embedded


def test_bad_input_from_the_command_line_exits_2(corpus_files, tmp_path, capsys):
    _, paths = corpus_files
    with pytest.raises(SystemExit) as stop:
        main(["run", "bigru-concat", "--dataset", "conversation-csv", "--no-track", "--out", str(tmp_path / "r"),
              "--set", f"dataset.train={paths['train']}", "--set", f"dataset.dev={paths['dev']}",
              "--set", f"dataset.test={paths['test']}"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert "no column 'dialogue_id'" in " ".join(err.split()) and "conv" in err


# -- dialogue keys of several columns -----------------------------------------------------------------
KEYED = ["season", "episode", "scene", "turn", "who", "emo", "utt"]
KEYED_MAPPING = {**MAPPING, "dialogue_column": ["season", "episode", "scene"]}


def keyed_rows(split: str, keys: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    """Three turns per key, written interleaved (turn 0 of every dialogue, then turn 1, ...)."""
    return [{"season": season, "episode": episode, "scene": scene, "turn": str(turn), "who": ["Ann", "Bob"][turn % 2],
             "emo": EMOTIONS[(turn + len(scene)) % 4], "utt": f"{split} {season} {episode} {scene} {turn}"}
            for turn in range(3) for season, episode, scene in keys]


def keyed_files(tmp_path, train_keys) -> dict[str, str]:
    keys = {"train": train_keys, "dev": [("2", "5", "1")], "test": [("3", "6", "1"), ("3", "7", "2")]}
    return {split: str(write_csv(tmp_path / f"{split}.csv", keyed_rows(split, split_keys), KEYED))
            for split, split_keys in keys.items()}


def test_a_dialogue_key_of_three_columns_groups_rows_and_never_merges_two_keys(tmp_path):
    # ("1", "1/2", "3") and ("1/1", "2", "3") join to the same text unless the '/' in a value is escaped;
    # ("1", "1", "23") and ("1", "12", "3") differ only in where the columns split.
    train = [("1", "1/2", "3"), ("1/1", "2", "3"), ("1", "1", "23"), ("1", "12", "3"), ("1", "1\\", "2")]
    corpus = load(**KEYED_MAPPING, **keyed_files(tmp_path, train))
    ids = sorted(d.id for d in corpus.train)
    assert ids == sorted(["1/1\\/2/3", "1\\/1/2/3", "1/1/23", "1/12/3", "1/1\\\\/2"])
    assert all(len(d) == 3 for d in corpus.train)  # each key's three interleaved rows, nothing merged
    dialogue = next(d for d in corpus.train if d.id == "1\\/1/2/3")
    assert list(dialogue.speakers) == [0, 1, 0]
    assert [corpus.info.classes[i] for i in dialogue.labels] == [EMOTIONS[(t + 1) % 4] for t in range(3)]
    assert "season, episode, scene" in corpus.provenance["dialogue_key"]
    # A one-column key keeps its values as written, '/' and all.
    single = load(**{**KEYED_MAPPING, "dialogue_column": ["episode"]}, **keyed_files(tmp_path, train))
    assert sorted(d.id for d in single.train) == sorted(["1/2", "2", "1", "12", "1\\"])


def test_dialogue_key_mistakes_name_the_file_line_and_columns(tmp_path):
    files = keyed_files(tmp_path, [("1", "1", "1"), ("1", "1", "2")])
    with pytest.raises(UserError, match=r"train CSV '.*train\.csv' has no column 'act' \(dataset\.dialogue_column\), "
                                        r"'part' \(dataset\.dialogue_column\) in its header \(line 1\)"):
        load(**{**KEYED_MAPPING, "dialogue_column": ["season", "act", "part"]}, **files)
    rows = keyed_rows("train", [("1", "1", "1"), ("1", "1", "2")])
    rows[3]["episode"] = " "
    files["train"] = str(write_csv(tmp_path / "holes.csv", rows, KEYED))
    with pytest.raises(UserError, match=r"holes\.csv' line 5: the dialogue column 'episode' \(part of the dialogue key "
                                        r"season, episode, scene\) is empty"):
        load(**KEYED_MAPPING, **files)
    with pytest.raises(UserError, match=r"dialogue_column.*distinct"):
        load(**{**KEYED_MAPPING, "dialogue_column": ["season", "season"]}, **files)
    with pytest.raises(UserError, match=r"dialogue_column"):
        load(**{**KEYED_MAPPING, "dialogue_column": []}, **files)


# -- speaker cells listing several speakers -----------------------------------------------------------
def several_speakers_files(tmp_path) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Dialogue train-3 has the cells Ann / 'Bob, Cy' / Cy / 'Bob & Ann' / Bob / 'Ann;'; other rows one name each."""
    rows = make_rows("train", 12, 0)
    turns = sorted((r for r in rows if r["conv"] == "train-3"), key=lambda r: int(r["turn"]))  # 6 turns
    for row, who in zip(turns, ["Ann", "Bob, Cy", "Cy", "Bob & Ann", "Bob", "Ann;"]):
        row["who"] = who
    return {"train": str(write_csv(tmp_path / "train.csv", rows)),
            "dev": str(write_csv(tmp_path / "dev.csv", make_rows("dev", 4, 1))),
            "test": str(write_csv(tmp_path / "test.csv", make_rows("test", 5, 2)))}, rows


def test_a_cell_listing_several_speakers_is_refused_by_default(tmp_path):
    files, rows = several_speakers_files(tmp_path)
    lines = [i + 2 for i, r in enumerate(rows) if r["who"] in ("Bob, Cy", "Bob & Ann", "Ann;")]
    with pytest.raises(UserError) as error:
        load(**MAPPING, **files)
    message = str(error.value)
    assert "train.csv" in message and "3 speaker cells in column 'who' list several speakers" in message
    for line in lines:
        assert f"line {line}:" in message
    assert "'Bob, Cy'" in message and "'Bob & Ann'" in message
    assert "dataset.speaker_policy=first" in message and "join" in message and "speaker_separators" in message
    assert HashEncoder.encoded == 0  # refused before any text was embedded


@pytest.mark.parametrize("policy, speakers, num_speakers", [
    ("first", [0, 1, 2, 1, 1, 0], 3),  # 'Bob, Cy' -> Bob, 'Bob & Ann' -> Bob, 'Ann;' -> Ann
    ("join", [0, 1, 2, 3, 4, 5], 6),  # every cell as written is a speaker of its own
])
def test_speaker_policies_first_and_join(tmp_path, policy, speakers, num_speakers):
    files, _ = several_speakers_files(tmp_path)
    corpus = load(**MAPPING, **files, speaker_policy=policy)
    dialogue = next(d for d in corpus.train if d.id == "train-3")
    assert list(dialogue.speakers) == speakers
    assert corpus.info.num_speakers == num_speakers
    assert corpus.provenance["speaker_cells_listing_several"] == {
        "policy": policy, "separators": [",", ";", "&"], "cells": {"train": 3, "dev": 0, "test": 0}}


def test_speaker_separators_choose_what_lists_several_speakers(tmp_path):
    files, _ = several_speakers_files(tmp_path)
    with pytest.raises(UserError, match=r"1 speaker cell in column 'who' lists several speakers \(separated by "
                                        r"' & '\): line \d+: 'Bob & Ann'\. An utterance"):
        load(**MAPPING, **files, speaker_separators=[" & "])  # 'Bob, Cy' and 'Ann;' are single names now
    corpus = load(**MAPPING, **files, speaker_separators=[])  # no separator: every cell is one name
    assert corpus.info.num_speakers == 6 and "speaker_cells_listing_several" not in corpus.provenance


# -- the real MELD CSVs through conversation-csv ------------------------------------------------------
MELD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meld"


def test_real_meld_loads_with_the_default_speaker_policy_as_its_own_reader_reads_it():
    """MELD's 14 cells like 'Joey and Chandler' hold none of the default separators (, ; &), so the
    default policy loads MELD unchanged — the same speakers and labels as the built-in MELD reader."""
    from merc_bench_datasets.meld_annotations import MELD_CLASSES, SPLIT_FILES, read_split

    config = {**{split: str(MELD_DIR / name) for split, name in SPLIT_FILES.items()}, "dialogue_column": "Dialogue_ID",
              "order_column": "Utterance_ID", "speaker_column": "Speaker", "label_column": "Emotion",
              "text_column": "Utterance", "text_encoder": HashEncoder.name, "classes": list(MELD_CLASSES)}
    corpus = load(**config)
    assert [len(corpus.split(s)) for s in ("train", "dev", "test")] == [1038, 114, 280]
    assert "speaker_cells_listing_several" not in corpus.provenance
    for split, name in SPLIT_FILES.items():
        ours = {d.id: d for d in corpus.split(split)}
        for dialogue in read_split(MELD_DIR / name, split)[0]:
            mine = ours[f"{split}/{dialogue.dialogue_id}"]  # ids restart in each split, so they carry it
            np.testing.assert_array_equal(mine.speakers, dialogue.speakers)
            np.testing.assert_array_equal(mine.labels, dialogue.labels)
    with pytest.raises(UserError, match=r"train_sent_emo\.csv': 7 speaker cells in column 'Speaker' list several "
                                        r"speakers \(separated by ' and '\): line \d+: 'Joey and Chandler'"):
        load(**{**config, "speaker_separators": [" and "]})
