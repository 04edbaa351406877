"""Data sources come from plugins (issue 13, "the core knows no paper"): a third party adds a
``data prepare`` dataset and a ``data convert`` / ``data inspect`` format through the
``merc_bench_data_sources`` hook, and the command line uses them exactly as it uses the built-ins.

The plugin below is registered in process, the way a test registers any throwaway plugin.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from merc_bench import hookimpl
from merc_bench.cli import main
from merc_bench.data import Corpus, DatasetInfo, Dialogue
from merc_bench.data_sources import FeatureFormat, PreparableDataset, PrepareRequest, RawCorpus, data_sources
from merc_bench.errors import UserError
from merc_bench.feature_store import read_corpus, read_manifest
from merc_bench.plugins import get_registry, plugin_manager

CLASSES = ("calm", "upset")


# -- a tiny third-party plugin ---------------------------------------------------------------------

class ToyDialogue:
    """A parsed dialogue of the toy corpus: what :class:`merc_bench.data_sources.TextDialogue` asks for."""

    def __init__(self, id: str, rows: list[list[str]]) -> None:
        self.id = id
        self.texts = [text for _, _, text in rows]
        self.speakers = np.asarray([int(speaker) for speaker, _, _ in rows], dtype=np.int64)
        self.labels = np.asarray([CLASSES.index(label) for _, label, _ in rows], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.texts)


def check_toy(request: PrepareRequest) -> None:
    if request.url is not None:
        raise UserError(f"toy-corpus reads only a local folder: --url {request.url!r} cannot be used; give --from.")
    if request.source is None:
        raise UserError("toy-corpus needs --from, the folder holding toy.json.")


def read_toy(request: PrepareRequest, raw: Path) -> RawCorpus:
    shutil.copyfile(request.source / "toy.json", raw / "toy.json")
    data = (raw / "toy.json").read_bytes()
    splits = {split: [ToyDialogue(id, rows) for id, rows in dialogues.items()]
              for split, dialogues in json.loads(data).items()}
    request.console.print("toy.json: parsed", markup=False, highlight=False)
    digest = hashlib.sha256(data).hexdigest()
    return RawCorpus(name="toy", family="toy", classes=CLASSES, num_speakers=2, description="a toy corpus",
                     splits=splits, source_sha256={split: digest for split in splits},
                     provenance={"source": str(request.source), "toy_sha256": digest},
                     warnings=["toy counts are not published"], next_step="merc-bench run bigru-concat --dataset "
                     "toy --data-dir {target}")


def read_toy_features(path: Path, *, nan_policy: str) -> Corpus:
    """A ``.toyfeat`` file: JSON {split: {dialogue: [[speaker, label, [features...]], ...]}}."""
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise UserError(f"{str(path)!r} is not a toy feature file: {error}.") from None
    splits = {}
    for split, dialogues in data.items():
        splits[split] = [Dialogue(id=id, features={"text": np.asarray([r[2] for r in rows], dtype=np.float32)},
                                  speakers=np.asarray([r[0] for r in rows], dtype=np.int64),
                                  labels=np.asarray([r[1] for r in rows], dtype=np.int64))
                         for id, rows in dialogues.items()]
    info = DatasetInfo(name="toy", family="toy", classes=CLASSES, feature_dims={"text": 3}, num_speakers=2)
    return Corpus(info=info, provenance={"layout": "toy-features", "layout_description": "a toy feature file",
                                         "nan_policy": nan_policy, "warnings": []}, **splits)


class HashConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToyHashEncoder:
    name, version, dimension = "toy-hash", "1", 4

    def __init__(self, config: HashConfig) -> None:
        self.config = config

    def encode(self, texts: list[str]) -> np.ndarray:
        digests = [hashlib.sha256(text.encode()).digest()[:4] for text in texts]
        return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(texts), 4).astype(np.float32) / 255


class ToyPlugin:
    @hookimpl
    def merc_bench_register(self, registry):
        registry.register("text_encoder", ToyHashEncoder.name, ToyHashEncoder, config=HashConfig)

    @hookimpl
    def merc_bench_data_sources(self):
        return [PreparableDataset(name="toy-corpus", description="a toy corpus", check=check_toy, read=read_toy),
                FeatureFormat(name="toy-features", description="a toy feature file", read=read_toy_features,
                              suffixes=(".toyfeat",))]


@pytest.fixture
def toy_plugin():
    plugin = ToyPlugin()
    plugin_manager().register(plugin, name="toy-data-sources")
    get_registry.cache_clear()
    yield plugin
    plugin_manager().unregister(plugin)
    get_registry.cache_clear()


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def one_paragraph(text: str) -> str:
    return " ".join(text.split())


TOY_CORPUS = {
    "train": {"t1": [["0", "calm", "hello there"], ["1", "upset", "go away"]], "t2": [["0", "calm", "fine"]]},
    "dev": {"d1": [["1", "upset", "no"], ["0", "calm", "yes"]]},
    "test": {"s1": [["0", "calm", "maybe"]]},
}
TOY_FEATURES = {
    "train": {"a": [[0, 0, [1, 2, 3]], [1, 1, [4, 5, 6]]], "b": [[0, 1, [0, 0, 1]]]},
    "dev": {"c": [[0, 0, [1, 1, 1]]]},
    "test": {"d": [[1, 1, [2, 2, 2]], [0, 0, [3, 3, 3]]]},
}


# -- data prepare ------------------------------------------------------------------------------------

def test_the_built_in_sources_come_through_the_same_hook(toy_plugin):
    sources = data_sources()
    assert {"meld", "toy-corpus"} <= set(sources.preparable)
    assert {"feature-pickle", "multiemo-folder", "toy-features"} <= {f.name for f in sources.formats}
    # Routing by name: the longest ending wins, and the built-in pickle reader takes any other file.
    assert sources.format_of_file(Path("x.toyfeat")).name == "toy-features"
    assert sources.format_of_file(Path("x.pkl")).name == "feature-pickle"
    assert sources.format_of_file(Path("x.bin")).name == "feature-pickle"


def test_a_third_party_dataset_is_prepared_by_the_command_line(toy_plugin, tmp_path, capsys):
    source = tmp_path / "src"
    source.mkdir()
    (source / "toy.json").write_text(json.dumps(TOY_CORPUS))
    target = tmp_path / "prepared"
    code, out, err = run_cli(["data", "prepare", "toy-corpus", "--to", target, "--from", source,
                              "--text-encoder", "toy-hash"], capsys)
    assert code == 0, err
    assert "toy.json: parsed" in out and "warning: toy counts are not published" in one_paragraph(out)
    assert f"next: merc-bench run bigru-concat --dataset toy --data-dir {target}" in one_paragraph(out)
    corpus = read_corpus(target)
    assert corpus.info.name == "toy" and corpus.info.classes == CLASSES
    assert corpus.info.description == "a toy corpus; text features: toy-hash"
    assert [d.id for d in corpus.train] == ["t1", "t2"] and corpus.train[0].labels.tolist() == [0, 1]
    np.testing.assert_array_equal(corpus.train[0].features["text"], ToyHashEncoder(HashConfig()).encode(["hello there", "go away"]))
    provenance = read_manifest(target)["provenance"]
    assert provenance["prepared_by"] == "merc-bench data prepare toy-corpus"
    assert list(provenance)[:3] == ["prepared_by", "source", "toy_sha256"]  # the source's facts after prepared_by
    assert provenance["count_warnings"] == ["toy counts are not published"]
    assert (target / "raw" / "toy.json").read_text() == json.dumps(TOY_CORPUS)

    # The source's own check refuses its options in one paragraph, before anything is written.
    code, _, err = run_cli(["data", "prepare", "toy-corpus", "--to", tmp_path / "other", "--url",
                            "https://example.org/", "--text-encoder", "toy-hash"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "toy-corpus reads only a local folder" in one_paragraph(err) and not (tmp_path / "other").exists()


def test_an_unknown_dataset_lists_every_declared_one(toy_plugin, tmp_path, capsys):
    code, _, err = run_cli(["data", "prepare", "toy-corpsu", "--to", tmp_path / "x"], capsys)
    assert code == 2
    message = one_paragraph(err)
    assert "cannot prepare 'toy-corpsu'" in message and "toy-corpus" in message and "meld" in message


# -- data convert and data inspect -------------------------------------------------------------------

def test_a_third_party_format_is_converted_and_inspected(toy_plugin, tmp_path, capsys):
    folder = tmp_path / "features"
    folder.mkdir()
    path = folder / "corpus.toyfeat"
    path.write_text(json.dumps(TOY_FEATURES))
    target = tmp_path / "converted"
    # A folder holding one file of a declared format: that file is converted.
    code, out, err = run_cli(["data", "convert", folder, "--to", target], capsys)
    assert code == 0, err
    assert "layout      toy-features — a toy feature file" in out
    stored = read_corpus(target)
    assert stored.fingerprint() == read_toy_features(path, nan_policy="refuse").fingerprint()
    files = read_manifest(target)["provenance"]["source_files"]
    assert files == [{"name": "corpus.toyfeat", "bytes": path.stat().st_size,
                      "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}]

    code, out, _ = run_cli(["data", "inspect", path], capsys)
    assert code == 0 and "layout      toy-features" in out and "nothing written" in out

    # The format's own refusal is the command's: one paragraph, exit 2, no folder left.
    path.write_text("{not json")
    code, _, err = run_cli(["data", "convert", path, "--to", tmp_path / "broken"], capsys)
    assert code == 2 and "is not a toy feature file" in one_paragraph(err)
    assert not (tmp_path / "broken").exists()


def test_without_the_plugin_the_format_is_not_known(tmp_path, capsys):
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / "corpus.toyfeat").write_text(json.dumps(TOY_FEATURES))
    code, _, err = run_cli(["data", "inspect", folder], capsys)
    assert code == 2
    assert "no .pkl file and not a MultiEMO folder" in one_paragraph(err)


def test_with_no_format_declared_the_commands_say_why(tmp_path, capsys, monkeypatch):
    from merc_bench.plugins import reset

    monkeypatch.setenv("MERC_BENCH_DISABLE_PLUGIN_AUTOLOAD", "1")  # not even the datasets plugin
    reset()
    try:
        (tmp_path / "features.pkl").write_bytes(b"\x80\x04N.")
        code, _, err = run_cli(["data", "convert", tmp_path / "features.pkl", "--to", tmp_path / "out"], capsys)
        assert code == 2 and "knows no feature-file format" in one_paragraph(err)
        assert "MERC_BENCH_DISABLE_PLUGIN_AUTOLOAD" in one_paragraph(err) and not (tmp_path / "out").exists()
        code, _, err = run_cli(["data", "prepare", "meld", "--to", tmp_path / "prepared"], capsys)
        assert code == 2 and "cannot prepare 'meld'" in one_paragraph(err)
    finally:
        monkeypatch.delenv("MERC_BENCH_DISABLE_PLUGIN_AUTOLOAD")
        reset()
