"""The one check every corpus passes before training (merc_bench.data.validate_corpus), and the
verification of converted folders (merc_bench.feature_store) beyond what the fuzz corpus covers.

A throwaway dataset plugin registered in-process stands for any third-party dataset: whatever it
returns goes through the same checks in ``pipeline.load_corpus``, and the generic option
``--set dataset.nonfinite=zero`` reaches it without the plugin declaring it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from merc_bench import hookimpl
from merc_bench.cli import main
from merc_bench.data import Corpus, DatasetInfo, Dialogue, nonfinite_option, validate_corpus
from merc_bench.errors import UserError, preview
from merc_bench.feature_store import MAX_MANIFEST_BYTES, read_corpus, write_corpus
from merc_bench.plugins import get_registry, plugin_manager
from merc_bench.pipeline import load_corpus, prepare
from merc_bench.safe_arrays import memory_budget, read_npy_file

sys.path.insert(0, str(Path(__file__).resolve().parent / "fuzz"))
import craft  # noqa: E402

VALID_FOLDER = Path(__file__).resolve().parent / "fuzz" / "folders" / "valid"


def dialogue(id_, n=3, *, dims=(4, 2), label=0, speaker=0, features=None):
    feats = features or {m: np.ones((n, d), np.float32) for m, d in zip(("text", "audio"), dims)}
    return Dialogue(id=id_, features=feats, speakers=np.full(n, speaker, np.int64), labels=np.full(n, label, np.int64))


def corpus(train=None, dev=None, test=None, *, classes=("a", "b", "c"), dims=None, speakers=2):
    info = DatasetInfo("toy", "meld", tuple(classes), dims or {"text": 4, "audio": 2}, speakers)
    return Corpus(info, train if train is not None else [dialogue("t1"), dialogue("t2", 2)],
                  dev if dev is not None else [dialogue("d1")], test if test is not None else [dialogue("s1")],
                  {"source": "/data/toy"})


def refused(bad: Corpus, *fragments: str) -> str:
    with pytest.raises(UserError) as caught:
        validate_corpus(bad)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "\n\n" not in message and len(message) < 1500
    return message


def test_a_valid_corpus_passes_unchanged():
    good = corpus()
    assert validate_corpus(good) is good


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_an_empty_split_is_refused(split):
    refused(corpus(**{split: []}), f"the {split} split has no dialogues", "dataset 'toy' ('/data/toy')")


def test_labels_and_speakers_out_of_range_name_dialogue_and_utterance():
    refused(corpus(train=[dialogue("t1"), dialogue("t2", label=3)]), "dialogue 't2' (train split), utterance 0",
            "label 3 is outside 0..2", "3 label(s)")
    refused(corpus(dev=[dialogue("d1", label=-1)]), "'d1' (dev split)", "label -1")
    refused(corpus(test=[dialogue("s1", speaker=2)]), "speaker 2 is outside 0..1", "2 speaker slots")


def test_lengths_types_and_shapes():
    uneven = Dialogue("t1", {"text": np.ones((3, 4), np.float32), "audio": np.ones((2, 2), np.float32)},
                      np.zeros(3, np.int64), np.zeros(3, np.int64))
    refused(corpus(train=[uneven]), "audio features have shape (2, 2); expected (3, 2)")
    short_speakers = Dialogue("t1", dialogue("x").features, np.zeros(2, np.int64), np.zeros(3, np.int64))
    refused(corpus(train=[short_speakers]), "3 labels but 2 speakers")
    float_labels = Dialogue("t1", dialogue("x").features, np.zeros(3, np.int64), np.zeros(3, np.float64))
    refused(corpus(train=[float_labels]), "labels must be a 1-D array of integers")
    letters = Dialogue("t1", dialogue("x").features, np.asarray(["M", "F", "M"]), np.zeros(3, np.int64))
    refused(corpus(train=[letters]), "speakers must be a 1-D array of integers")
    empty = Dialogue("t1", dialogue("x", 0).features, np.zeros(0, np.int64), np.zeros(0, np.int64))
    refused(corpus(train=[empty]), "'t1' (train split) has no utterances")
    refused(corpus(train=[Dialogue(7, dialogue("x").features, np.zeros(3, np.int64), np.zeros(3, np.int64))]),
            "has the id 7 of type int")


@pytest.mark.parametrize("dtype, fragment", [(np.complex64, "complex64"), (bool, "bool"), (object, "object"),
                                             ("U3", "<U3")])
def test_non_real_features_are_refused(dtype, fragment):
    features = {"text": np.ones((3, 4)).astype(dtype), "audio": np.ones((3, 2), np.float32)}
    refused(corpus(train=[dialogue("t1", features=features)]), f"text features are {fragment}",
            "expected real numbers")


def test_modalities_must_match_the_declared_ones():
    refused(corpus(dims={"text": 4, "audio": 0}), "modality 'audio' has feature size 0", "zero-width")
    refused(corpus(dims={"text": 4}), "features hold ['audio', 'text'] but the dataset declares text")
    refused(corpus(classes=("only",)), "at least two distinct")


def test_one_dialogue_in_two_splits_is_refused():
    refused(corpus(test=[dialogue("t2")]), "dialogue 't2' (test split) occurs in the train and the test split")
    refused(corpus(dev=[dialogue("d1"), dialogue("d1")]), "occurs twice in the dev split")


def test_non_finite_features_are_refused_or_zeroed_and_counted():
    features = {"text": np.ones((3, 4), np.float32), "audio": np.ones((3, 2), np.float32)}
    features["audio"][2, 1] = np.nan
    huge = {"text": np.full((1, 4), 1e300), "audio": np.ones((1, 2), np.float32)}  # float64 beyond float32
    bad = corpus(train=[dialogue("t1"), dialogue("t2", features=features)], test=[dialogue("s1", 1, features=huge)])
    refused(bad, "dialogue 't2' (train split), utterance 2: audio feature 1 is nan", "audio 1 values in 1 dialogue(s)",
            "text 4 values in 1 dialogue(s)", "--set dataset.nonfinite=zero")
    fixed = validate_corpus(bad, nonfinite="zero")
    assert fixed.provenance["non_finite_replaced"] == {"audio": 1, "text": 4}
    assert "replaced non-finite feature values with 0" in fixed.provenance["warnings"][-1]
    assert fixed.train[1].features["audio"][2, 1] == 0 and fixed.train[1].features["audio"][0, 0] == 1
    assert (fixed.test[0].features["text"] == 0).all() and fixed.test[0].features["text"].dtype == np.float64
    assert np.isnan(bad.train[1].features["audio"][2, 1])  # the original is not modified
    assert validate_corpus(fixed) is fixed


def test_nonfinite_option_is_generic_unless_declared():
    assert nonfinite_option({"seed": 1, "nonfinite": "zero"}, ["seed"]) == ({"seed": 1}, "zero")
    assert nonfinite_option({"nonfinite": "zero"}, ["nonfinite"]) == ({"nonfinite": "zero"}, "zero")
    assert nonfinite_option({}, []) == ({}, "refuse")
    with pytest.raises(UserError, match="dataset.nonfinite='skip' is not a policy"):
        nonfinite_option({"nonfinite": "skip"}, [])


def test_short_repr_bounds_untrusted_values():
    assert len(preview("x" * 10_000)) <= 80 and preview([1] * 1000).endswith("...]")

    class Hostile:
        def __repr__(self):
            raise RuntimeError("no")

    assert "Hostile" in preview(Hostile())  # a raising __repr__ does not replace the message being built


# -- a third-party dataset goes through the same checks ---------------------------------------------
class ToyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flaw: str = "none"


class ToyDataset:
    def __init__(self, config: ToyConfig) -> None:
        self.flaw = config.flaw

    def load(self) -> Corpus:
        good = corpus()
        if self.flaw == "nan":
            good.train[0].features["text"][1, 2] = np.inf
        elif self.flaw == "label":
            good.test[0].labels[:] = 3  # IndexError: Target 3 is out of bounds, mid-training, before
        elif self.flaw == "empty-train":
            good.train.clear()  # loss 0.000 and a meaningless test score, exit 0, before
        return good


class ToyPlugin:
    @hookimpl
    def merc_bench_register(self, registry):
        registry.register("dataset", "toy-flawed", ToyDataset, config=ToyConfig)


@pytest.fixture
def toy_dataset():
    plugin = ToyPlugin()
    plugin_manager().register(plugin, name="toy-flawed")
    get_registry.cache_clear()
    yield "toy-flawed"
    plugin_manager().unregister(plugin)
    get_registry.cache_clear()


@pytest.mark.parametrize("flaw, fragment", [("nan", "text feature 2 is inf"), ("label", "label 3 is outside 0..2"),
                                            ("empty-train", "the train split has no dialogues")])
def test_a_plugin_dataset_is_validated_by_load_corpus(toy_dataset, flaw, fragment):
    with pytest.raises(UserError, match=fragment):
        load_corpus(get_registry(), {"name": toy_dataset, "config": {"flaw": flaw}}, None)


def test_generic_nonfinite_option_reaches_an_undeclaring_plugin(toy_dataset, tmp_path, capsys):
    repaired = load_corpus(get_registry(), {"name": toy_dataset, "config": {"flaw": "nan", "nonfinite": "zero"}}, None)
    assert repaired.provenance["non_finite_replaced"] == {"text": 1}
    with pytest.raises(UserError, match="'colour' is not an option"):  # other unknown options still fail
        load_corpus(get_registry(), {"name": toy_dataset, "config": {"colour": 1, "nonfinite": "zero"}}, None)
    with pytest.raises(SystemExit) as stop:
        main(["run", "bigru-concat", "--dataset", toy_dataset, "--set", "dataset.flaw=label", "--no-track",
              "--out", str(tmp_path / "out"), "--epochs", "1"])
    assert stop.value.code == 2 and "label 3 is outside" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_pickle_datasets_accept_both_option_names(tmp_path):
    import layout_fixtures as lf

    def set_nan(obj, truth):
        obj[7][truth.splits["train"][1]][0][:2] = np.nan
        return obj

    truth = lf.write_layout("sdt-iemocap", tmp_path / "src", mutate=set_nan)
    registry = get_registry()
    for option in ("nonfinite", "nan_policy"):
        with pytest.warns(UserWarning):
            prepared = prepare(registry, recipe="bigru-concat", dataset="iemocap",
                               overrides=[f"dataset.path={truth.path}", f"dataset.{option}=zero"])
        assert prepared.corpus.provenance["non_finite_replaced"] == {"audio": 2}


# -- converted folders ------------------------------------------------------------------------------
def test_write_corpus_refuses_what_read_corpus_would(tmp_path):
    with pytest.raises(UserError, match="the dev split has no dialogues"):
        write_corpus(corpus(dev=[]), tmp_path / "out")
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(UserError, match=r"dev\.ids\.0 .* at most 1000 characters"):
        write_corpus(corpus(dev=[dialogue("d" * 1001)]), tmp_path / "out")
    good = corpus()
    write_corpus(good, tmp_path / "ok")
    assert read_corpus(tmp_path / "ok").fingerprint() == good.fingerprint()


def test_an_oversized_manifest_is_refused_before_it_is_read(tmp_path):
    folder = tmp_path / "big"
    shutil.copytree(VALID_FOLDER, folder)
    with open(folder / "manifest.json", "r+b") as stream:
        stream.truncate(MAX_MANIFEST_BYTES * 64)  # sparse: 1 GiB claimed, nothing written
    with pytest.raises(UserError, match="a manifest is at most"):
        read_corpus(folder)


def test_the_memory_budget_bounds_a_consistent_but_large_folder(tmp_path, monkeypatch):
    folder = tmp_path / "valid"
    shutil.copytree(VALID_FOLDER, folder)
    assert read_corpus(folder).summary().startswith("train 4 dialogues / 12 utterances")
    monkeypatch.setattr("merc_bench.feature_store.memory_budget", lambda: 500)
    with pytest.raises(UserError, match=r"train\.npz' declares 1,\d{3} bytes of uncompressed arrays, more than the "
                                        r"500 bytes"):
        read_corpus(folder)


def test_memory_budget_follows_the_address_space_limit():
    import resource
    import subprocess

    code = ("import resource; from merc_bench.safe_arrays import memory_budget; "
            "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); print(memory_budget())")
    capped = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0 < capped < 3 << 30
    if resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:
        assert memory_budget() > 0


def test_inspect_verifies_the_folder_before_printing(tmp_path, capsys):
    folder = tmp_path / "valid"
    shutil.copytree(VALID_FOLDER, folder)
    with pytest.raises(SystemExit) as stop:
        main(["data", "inspect", str(folder)])
    out = capsys.readouterr().out
    assert stop.value.code in (0, None) and "train.npz ok, dev.npz ok, test.npz ok" in out and "verified" in out
    document = json.loads((folder / "manifest.json").read_text())
    document["splits"]["train"]["file"] = "../valid/train.npz"
    (folder / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(SystemExit) as stop:
        main(["data", "inspect", str(folder)])
    captured = capsys.readouterr()
    assert stop.value.code == 2 and "splits.train.file" in captured.err and "converted folder" not in captured.out


def test_a_symlink_inside_the_folder_is_followed(tmp_path):
    folder = tmp_path / "valid"
    shutil.copytree(VALID_FOLDER, folder)
    os.replace(folder / "dev.npz", folder / "dev-data.npz")
    os.symlink("dev-data.npz", folder / "dev.npz")
    assert len(read_corpus(folder).dev) == 2


# -- conversation-csv limits ----------------------------------------------------------------------
def test_a_csv_too_large_for_memory_is_refused_before_reading(tmp_path, monkeypatch):
    craft.write_tree(tmp_path, craft.csv_files())
    with open(tmp_path / "dev.csv", "r+b") as stream:
        stream.truncate(50 << 30)  # sparse: 50 GiB claimed
    monkeypatch.setattr("merc_bench_datasets.conversation_csv.memory_budget", lambda: 16 << 30)
    config = {"text_encoder": None, "features": {"audio": {s: str(tmp_path / f"{s}_audio.npy")
                                                           for s in ("train", "dev", "test")}},
              **{s: str(tmp_path / f"{s}.csv") for s in ("train", "dev", "test")}}
    with pytest.raises(UserError, match=r"dev\.csv' is 53,687,091,200 bytes; parsing it needs"):
        load_corpus(get_registry(), {"name": "conversation-csv", "config": config}, None)


def test_read_npy_file_refuses_before_allocating(tmp_path):
    path = tmp_path / "claims.npy"
    path.write_bytes(craft.npy_header("<f8", (10**6, 10**6)))
    with pytest.raises(UserError, match="claims 7450.58 GiB of data"):
        read_npy_file(path, spec=("f", None, (None, None)), budget=1 << 30)
    path.write_bytes(craft.npy_bytes(np.arange(6, dtype=">i4").reshape(3, 2)))
    array = read_npy_file(path, spec=("i", None, (3, 2)))
    assert array.dtype == np.int32 and array.dtype.isnative and array.tolist() == [[0, 1], [2, 3], [4, 5]]
