"""Community feature files: every layout loads, converts and reads back identically; bad input exits 2.

Fixtures are tiny files written by :mod:`layout_fixtures` with each layout's documented structure and
feature sizes (no real data). The documented MELD sizes and class counts are checked against the
real MELD annotation CSVs in ``shared/data/meld``.
"""

import csv
import hashlib
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from merc_bench.cli import main
from merc_bench.errors import UserError
from merc_bench.feature_store import read_corpus, read_manifest
from merc_bench.plugins import get_registry
from merc_bench.pipeline import prepare
from merc_bench_datasets.checks import FAMILIES, DatasetWarning, documented_differences
from merc_bench_datasets.iemocap import IEMOCAPConfig, IEMOCAPDataset
from merc_bench_datasets.layouts import MULTIEMO_FILES, read_source
from merc_bench_datasets.meld import MELDConfig, MELDDataset

import layout_fixtures as lf

pytestmark = pytest.mark.filterwarnings("ignore::merc_bench_datasets.checks.DatasetWarning")

MELD_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meld"
DATASETS = {"iemocap": IEMOCAPDataset, "meld": MELDDataset}
CONFIGS = {"iemocap": IEMOCAPConfig, "meld": MELDConfig}


def dataset(family, *, data_dir=None, **options):
    """The family's dataset built the way the registry builds it: its config, then the build context."""
    return DATASETS[family](CONFIGS[family](**options), data_dir=data_dir)


def squash(text):
    """Text without any whitespace: robust to the console wrapping (or folding) long lines."""
    return "".join(text.split())


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    return {name: lf.write_layout(name, root / name) for name in lf.LAYOUT_NAMES}


def assert_matches_truth(corpus, truth):
    assert corpus.info.family == truth.family and corpus.info.name == truth.family
    assert corpus.info.feature_dims == truth.dims
    assert corpus.info.classes == FAMILIES[truth.family].classes
    assert corpus.info.num_speakers == {"iemocap": 2, "meld": 9}[truth.family]
    for split in ("train", "dev", "test"):
        dialogues = corpus.split(split)
        assert [d.id for d in dialogues] == [str(raw) for raw in truth.splits[split]], split
        for dialogue, raw in zip(dialogues, truth.splits[split]):
            assert dialogue.labels.dtype == np.int64 and np.array_equal(dialogue.labels, truth.labels[raw])
            assert dialogue.speakers.dtype == np.int64 and np.array_equal(dialogue.speakers, truth.speakers[raw])
            for modality, matrix in dialogue.features.items():
                assert matrix.dtype == np.float32 and matrix.flags.c_contiguous
                assert np.array_equal(matrix, truth.features[modality][raw]), (modality, raw)


# -- every layout ----------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", lf.LAYOUT_NAMES)
def test_every_layout_loads_through_its_dataset(fixtures, layout):
    truth = fixtures[layout]
    corpus = dataset(truth.family, path=str(truth.path)).load()
    assert corpus.provenance["layout"] == layout
    assert_matches_truth(corpus, truth)


def test_python2_era_fixtures_need_latin1(fixtures):
    raw = fixtures["sdt-iemocap"].path.read_bytes()
    assert b"numpy.core.multiarray" in raw
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(raw)


def test_speaker_mapping_and_splits(fixtures):
    corpus = read_source(fixtures["sdt-iemocap"].path)
    raw = pickle.loads(fixtures["sdt-iemocap"].path.read_bytes(), encoding="latin1")
    first = corpus.train[0]
    assert [{"M": 0, "F": 1}[s] for s in raw[1][first.id]] == first.speakers.tolist()
    assert [d.id for d in corpus.dev] == lf.IEMOCAP_VALID  # the 12 carved out of trainVid, in file order
    meld = read_source(fixtures["sdt-meld"].path)
    assert [d.id for d in meld.dev] == ["1039", "1040", "1152"] and [d.id for d in meld.test][-1] == "1432"
    # Splits stored as sets are sorted.
    assert [d.id for d in read_source(fixtures["mmgcn-iemocap"].path).test] == sorted(lf.IEMOCAP_TEST)


@pytest.mark.parametrize("layout", ["sdt-meld", "cosmic-iemocap"])
def test_roberta_layer_choice(fixtures, layout):
    truth = fixtures[layout]
    some = truth.splits["train"][0]
    second = dataset(truth.family, path=str(truth.path), roberta_layer=2).load()
    assert np.array_equal(second.train[0].features["text"], truth.roberta[2][some])
    mean = dataset(truth.family, path=str(truth.path), roberta_layer="mean").load()
    expected = np.mean([truth.roberta[k][some] for k in (1, 2, 3, 4)], axis=0)
    assert np.allclose(mean.train[0].features["text"], expected, atol=1e-6)
    concat = dataset(truth.family, path=str(truth.path), roberta_layer="concat").load()
    assert concat.info.feature_dims["text"] == 4096
    assert np.array_equal(concat.train[0].features["text"][:, 1024:2048], truth.roberta[2][some])


def test_undocumented_sizes_of_a_shared_structure_load_with_a_warning(tmp_path):
    def shrink_text(obj, truth):
        obj[3].update({d: x[:, :50] for d, x in obj[3].items()})
        return obj

    truth = lf.write_layout("dialoguernn-iemocap", tmp_path, mutate=shrink_text)
    with pytest.warns(DatasetWarning, match="match no documented file of this structure"):
        corpus = IEMOCAPDataset(IEMOCAPConfig(path=str(truth.path))).load()
    assert corpus.provenance["layout"] == "iemocap-9-tuple" and corpus.info.feature_dims["text"] == 50


def test_roberta_layer_needs_a_four_layer_file(fixtures):
    with pytest.raises(UserError, match="has one text feature field"):
        MELDDataset(MELDConfig(path=str(fixtures["mmgcn-meld"].path), roberta_layer=3)).load()


@pytest.mark.parametrize("layout", lf.LAYOUT_NAMES)
def test_convert_inspect_and_read_back_identically(fixtures, layout, tmp_path, capsys):
    truth = fixtures[layout]
    out = tmp_path / "converted"
    code, stdout, stderr = run_cli(["data", "convert", truth.path, "--to", out], capsys)
    assert code == 0, stderr
    assert f"layout      {layout}" in stdout and str(out) in stdout
    stored = read_corpus(out)  # verifies every file's sha256
    assert_matches_truth(stored, truth)
    assert stored.fingerprint() == read_source(truth.path).fingerprint()
    provenance = read_manifest(out)["provenance"]
    assert provenance["layout"] == layout
    files = [truth.path / name for name in MULTIEMO_FILES] if truth.path.is_dir() else [truth.path]
    assert [item["name"] for item in provenance["source_files"]] == [path.name for path in files]
    for item, path in zip(provenance["source_files"], files):
        assert item["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert item["bytes"] == path.stat().st_size
    # The dataset reads the converted folder (here found as <data-dir>/<dataset>).
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    out.rename(data_dir / truth.family)
    loaded = dataset(truth.family, data_dir=data_dir).load()
    assert loaded.fingerprint() == stored.fingerprint()
    assert loaded.provenance["feature_store"] == str((data_dir / truth.family).resolve())
    code, stdout, _ = run_cli(["data", "inspect", data_dir / truth.family], capsys)
    assert code == 0
    assert f"layout      {layout}" in stdout and "train.npz ok, dev.npz ok, test.npz ok" in stdout
    for split in ("train", "dev", "test"):
        count = len(truth.splits[split])
        assert any(line.split()[:2] == [split, str(count)] for line in stdout.splitlines())


def test_inspect_a_pickle_writes_nothing(fixtures, tmp_path, capsys):
    source = tmp_path / "src"
    source.mkdir()
    copy = source / "file.pkl"
    copy.write_bytes(fixtures["dialoguernn-meld"].path.read_bytes())
    code, stdout, _ = run_cli(["data", "inspect", copy], capsys)
    assert code == 0
    assert "layout      dialoguernn-meld" in stdout and "features    text 600, audio 300" in stdout
    assert "nothing written" in stdout and [p.name for p in source.iterdir()] == ["file.pkl"]


def test_documented_sizes_are_warnings(fixtures):
    with pytest.warns(DatasetWarning, match="documented 280 / 2610"):
        corpus = MELDDataset(MELDConfig(path=str(fixtures["cosmic-meld"].path))).load()
    assert any("documented 1038 / 9989" in note for note in corpus.provenance["warnings"])


def test_documented_meld_counts_match_the_real_annotations():
    # The official CSVs give exactly the documented per-split sizes and class counts, so a complete
    # feature file loads without a size warning.
    classes = FAMILIES["meld"].classes
    labels = {}
    for split, name in (("train", "train"), ("dev", "dev"), ("test", "test")):
        dialogues: dict[int, list[int]] = {}
        with open(MELD_CSV / f"{name}_sent_emo.csv", newline="", encoding="utf-8") as stream:
            for row in csv.DictReader(stream):
                dialogues.setdefault(int(row["Dialogue_ID"]), []).append(classes.index(row["Emotion"]))
        labels[split] = [np.asarray(v) for v in dialogues.values()]
    assert documented_differences(FAMILIES["meld"], labels) == []
    labels["dev"] = labels["dev"][:-1]
    assert documented_differences(FAMILIES["meld"], labels)[0].startswith("dev has 113 dialogues")


# -- where the datasets look -----------------------------------------------------------------------
def test_resolution_picks_the_right_family_in_a_shared_folder(fixtures, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    for layout in ("sdt-meld", "sdt-iemocap"):
        (shared / fixtures[layout].path.name).write_bytes(fixtures[layout].path.read_bytes())
    assert MELDDataset(MELDConfig(), data_dir=shared).load().provenance["layout"] == "sdt-meld"
    assert IEMOCAPDataset(IEMOCAPConfig(), data_dir=shared).load().provenance["layout"] == "sdt-iemocap"
    monkeypatch.setenv("MERC_BENCH_DATA", str(shared))
    assert MELDDataset(MELDConfig()).load().provenance["layout"] == "sdt-meld"
    # A MultiEMO folder under <data-dir>/MELD.
    multiemo = MELDDataset(MELDConfig(), data_dir=fixtures["multiemo-meld"].path.parent).load()
    assert multiemo.provenance["layout"] == "multiemo-meld"


def test_family_mismatch_is_a_clear_error(fixtures, tmp_path):
    with pytest.raises(UserError, match="holds IEMOCAP data, but the dataset 'meld' was asked for"):
        MELDDataset(MELDConfig(path=str(fixtures["sdt-iemocap"].path))).load()
    store = tmp_path / "store"
    main_args = ["data", "convert", str(fixtures["cosmic-meld"].path), "--to", str(store)]
    with pytest.raises(SystemExit) as stop:
        main(main_args)
    assert stop.value.code == 0
    with pytest.raises(UserError, match="converted folder .* holds MELD data, but the dataset 'iemocap'"):
        IEMOCAPDataset(IEMOCAPConfig(), data_dir=store).load()


@pytest.mark.parametrize("dataset, fragment", [
    ("meld", "merc-bench data prepare meld --to data/meld"),
    ("iemocap", "iemocap_multimodal_features.pkl"),
])
def test_missing_data_says_where_it_looked_and_what_to_do(tmp_path, capsys, dataset, fragment):
    empty = tmp_path / "empty"
    (empty / dataset).mkdir(parents=True)
    (empty / "notes.pkl").write_bytes(pickle.dumps({"not": "features"}))
    code, stdout, stderr = run_cli(["run", "bigru-concat", "--dataset", dataset, "--data-dir", empty, "--no-track",
                                    "--out", tmp_path / "out"], capsys)
    assert code == 2 and "Traceback" not in stderr + stdout
    message = squash(stderr)
    for place in (f"no {dataset.upper()} data found", fragment, f"{empty}/manifest.json",
                  f"{empty}/{dataset}/manifest.json", f"*.pkl in {empty}", "notes.pkl", "--data-dir PATH"):
        assert squash(place) in message, place
    if dataset == "meld":
        assert squash("(from a local copy of the CSVs add `--from PATH`)") in message


# -- end to end ------------------------------------------------------------------------------------
def test_run_end_to_end_on_an_iemocap_file(fixtures, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(
        ["run", "bigru-concat", "--dataset", "iemocap", "--data-dir", fixtures["sdt-iemocap"].path.parent,
         "--epochs", "1", "--no-track", "--out", out, "--set", "model.hidden_size=16"], capsys)
    assert code == 0, stderr
    result = json.loads((out / "results.json").read_text())
    assert result["dataset"] == "iemocap" and result["classes"] == list(FAMILIES["iemocap"].classes)
    assert result["modalities"] == ["text", "audio", "visual"]
    assert result["dataset_fingerprint"] == read_source(fixtures["sdt-iemocap"].path).fingerprint()
    assert "train 4 dialogues / 16 utterances, dev 12 dialogues" in " ".join(stdout.split())


def test_malicious_pickle_is_refused_everywhere(tmp_path, capsys):
    class Attack:
        def __reduce__(self):
            import os

            return os.system, (f"touch {tmp_path / 'PWNED'}",)

    evil = tmp_path / "meld_multimodal_features.pkl"
    evil.write_bytes(pickle.dumps((Attack(),) * 13))
    for argv in (["data", "convert", evil, "--to", tmp_path / "out"], ["data", "inspect", evil],
                 ["validate", "bigru-concat", "--dataset", "meld", "--set", f"dataset.path={evil}"]):
        code, stdout, stderr = run_cli(argv, capsys)
        assert code == 2 and "Traceback" not in stderr
        assert "system" in stderr and squash("refusing to load") in squash(stderr) and evil.name in squash(stderr)
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "out").exists()


# -- bad input -------------------------------------------------------------------------------------
def set_nan(obj, truth):
    obj[7][truth.splits["train"][1]][0][:2] = np.nan  # two audio values of one utterance
    return obj


def drop_label(obj, truth):
    obj[2][truth.splits["dev"][0]].pop()
    return obj


def empty_dialogue(obj, truth):
    dialogue = truth.splits["test"][0]
    for index in range(10):
        obj[index][dialogue] = []
    return obj


def label_out_of_range(obj, truth):
    obj[2][truth.splits["test"][1]][0] = 6
    return obj


def audio_size(obj, truth):
    dialogue = truth.splits["dev"][2]
    obj[7][dialogue] = [row[:-1] for row in obj[7][dialogue]]
    return obj


def missing_entry(obj, truth):
    del obj[8][truth.splits["train"][0]]
    return obj


def in_two_splits(obj, truth):
    obj[11].append(truth.splits["train"][0])
    return obj


def unknown_speaker(obj, truth):
    obj[1][truth.splits["train"][2]][0] = "X"
    return obj


BAD_INPUTS = {
    "wrong tuple length": (lambda obj, truth: obj + ({}, {}), ["a tuple of 14 fields matches no supported layout"]),
    # 12 SDT IEMOCAP fields + 1 has SDT MELD's structure; its 'M'/'F' speakers give it away.
    "extra field": (lambda obj, truth: obj + ({},), ["Ses01F_impro01", "speakers are given as letters ('M'",
                                                     "this layout is a MELD one"]),
    "mismatched lengths": (drop_label, ["Ses01M_impro01", "different utterance counts", "videoLabels",
                                        "videoSpeakers"]),
    "NaN features": (set_nan, ["non-finite feature values", "audio 2 values in 1 dialogue(s)", "Ses02M_impro03",
                               "--nan-policy zero", "dataset.nonfinite=zero"]),
    "empty dialogue": (empty_dialogue, ["Ses05F_impro01", "has no utterances"]),
    "label out of range": (label_out_of_range, ["Ses05M_script01_1", "videoLabels", "label 6 at utterance 0",
                                                "outside 0..5"]),
    "feature size": (audio_size, ["Ses02F_impro02", "videoAudio", "feature size 1581",
                                  "dialogue 'Ses01F_impro01' has 1582"]),
    "missing entry": (missing_entry, ["Ses01F_impro01", "no entry in field videoVisual"]),
    "in two splits": (in_two_splits, ["Ses01F_impro01", "in both the train and the test split"]),
    "unknown speaker": (unknown_speaker, ["Ses04M_script01_1", "videoSpeakers", "'X' is not 'M' or 'F'"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_naming_file_and_dialogue(case, tmp_path, capsys):
    mutate, fragments = BAD_INPUTS[case]
    truth = lf.write_layout("sdt-iemocap", tmp_path / "src", mutate=mutate)
    target = tmp_path / "out" / "converted"
    code, stdout, stderr = run_cli(["data", "convert", truth.path, "--to", target], capsys)
    message = squash(stderr)
    assert code == 2 and "Traceback" not in stderr + stdout
    assert truth.path.name in message
    for fragment in fragments:
        assert squash(fragment) in message, (fragment, stderr)
    # Nothing half-written: no target, no staging folder next to it.
    assert not target.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_truncated_pickle_exits_2(fixtures, tmp_path, capsys):
    data = fixtures["sdt-meld"].path.read_bytes()
    cut = tmp_path / "meld_multimodal_features.pkl"
    cut.write_bytes(data[: len(data) * 2 // 3])
    code, _, stderr = run_cli(["data", "convert", cut, "--to", tmp_path / "out"], capsys)
    assert code == 2 and "truncated" in stderr and cut.name in squash(stderr)
    assert not (tmp_path / "out").exists()


def test_nan_policy_zero_repairs_and_reports(tmp_path, capsys):
    truth = lf.write_layout("sdt-iemocap", tmp_path / "src", mutate=set_nan)
    target = tmp_path / "converted"
    code, stdout, _ = run_cli(["data", "convert", truth.path, "--to", target, "--nan-policy", "zero"], capsys)
    assert code == 0 and "replaced non-finite feature values with 0: audio 2 values" in stdout
    stored = read_corpus(target)
    assert stored.provenance["non_finite_replaced"] == {"audio": 2}
    dialogue = next(d for d in stored.train if d.id == "Ses02M_impro03")
    assert np.array_equal(dialogue.features["audio"][0, :2], [0.0, 0.0])
    assert np.isfinite(dialogue.features["audio"]).all()
    # The same through `--set dataset.nan_policy=zero` on a run's dataset; refused without it.
    registry = get_registry()
    overrides = [f"dataset.path={truth.path}"]
    with pytest.raises(UserError, match="audio 2 values"):
        prepare(registry, recipe="bigru-concat", dataset="iemocap", overrides=overrides)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = prepare(registry, recipe="bigru-concat", dataset="iemocap",
                           overrides=overrides + ["dataset.nan_policy=zero"])
    assert prepared.corpus.provenance["non_finite_replaced"] == {"audio": 2}
    assert any("replaced non-finite" in str(w.message) for w in caught if w.category is DatasetWarning)
