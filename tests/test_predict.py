"""Self-describing checkpoints and ``merc-bench predict``: a trained model on dialogues it has not seen.

The round trips predict the very utterances a run evaluated and must reproduce the run's own test
predictions: on the synthetic data through a feature folder, and on the real MELD test CSV through
the text path (MELD prepared with a fast hash text encoder, so the text is embedded the same way).
"""

import io
import json

import numpy as np
import pytest
import torch
from rich.console import Console

import merc_bench
from merc_bench.checkpoint import load_checkpoint
from merc_bench.data import Corpus
from merc_bench.errors import UserError
from merc_bench.feature_store import write_corpus
from merc_bench.pipeline import load_dataset
from merc_bench.plugins import get_registry
from merc_bench.prepare import prepare_command
from merc_bench_datasets.meld_annotations import MELD_CLASSES

from test_cli import TINY, run_cli
from test_meld_raw import MELD_DIR, HashEncoder, hash_encoder  # noqa: F401 (a fixture)

SMALL = [*TINY, "--set", "training.standardize_features=true"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One synthetic sdt run (standardised features, a checkpoint) and the same corpus as a feature folder."""
    root = tmp_path_factory.mktemp("predict")
    result = merc_bench.run("sdt", epochs=1, out=root / "run", track=False,
                            overrides=[o for o in SMALL if o != "--set"])
    corpus, _, _ = load_dataset(get_registry(), None, [o for o in TINY if o.startswith("dataset.")])
    write_corpus(corpus, root / "features")
    return result, corpus, root


def test_checkpoint_describes_the_run(trained):
    result, corpus, root = trained
    checkpoint = load_checkpoint(root / "run" / "checkpoint-seed0.pt", get_registry())
    assert checkpoint.config == result.config
    assert checkpoint.info.classes == corpus.info.classes and checkpoint.modalities == ("text", "audio", "visual")
    assert checkpoint.header["dataset"]["fingerprint"] == corpus.fingerprint()
    assert checkpoint.header["selected_epoch"] == result.seeds[0].selected_epoch
    assert checkpoint.header["code"]["merc-bench"]["version"] == merc_bench.__version__
    # The standardisation statistics are the train split's.
    mean, std = checkpoint.scales["audio"]
    train_audio = np.concatenate([d.features["audio"] for d in corpus.train]).astype(np.float64)
    np.testing.assert_allclose(mean, train_audio.mean(axis=0))
    np.testing.assert_allclose(std, np.maximum(train_audio.std(axis=0), 1e-6))


def test_predict_a_feature_folder_reproduces_the_run(trained, tmp_path):
    result, corpus, root = trained
    out = tmp_path / "preds.csv"
    frame = merc_bench.predict(root / "run", root / "features", split="test", out=out, hidden=True)
    saved = np.load(root / "run" / "predictions.npz")
    classes = np.asarray(corpus.info.classes)
    assert list(frame["prediction"]) == list(classes[saved["predictions"][0]])
    assert list(frame["label"]) == list(classes[saved["labels"]])
    probabilities = frame[[f"p_{c}" for c in classes]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert list(classes[probabilities.argmax(axis=1)]) == list(frame["prediction"])
    assert sum(c.startswith("h_") for c in frame.columns) == result.config.model.hidden_size
    assert out.read_text().splitlines()[0].startswith("split,dialogue,utterance,speaker,label,prediction,p_")
    every = merc_bench.predict(root / "run", root / "features")  # all splits
    assert set(every["split"]) == {"train", "dev", "test"} and len(every) == sum(
        len(d) for s in ("train", "dev", "test") for d in corpus.split(s))


def _corpus_with(corpus: Corpus, **changes) -> Corpus:
    info = corpus.info
    return Corpus(type(info)(**{**info.__dict__, **changes}), corpus.train, corpus.dev, corpus.test)


def test_mismatched_inputs_are_refused(trained, tmp_path):
    _, corpus, root = trained
    renamed = tmp_path / "renamed"
    write_corpus(_corpus_with(corpus, classes=tuple(reversed(corpus.info.classes))), renamed)
    with pytest.raises(UserError, match="has the classes .* the model predicts"):
        merc_bench.predict(root / "run", renamed)
    text_only = tmp_path / "text-only"
    write_corpus(Corpus(type(corpus.info)(**{**corpus.info.__dict__, "feature_dims": {"text": 1024}}),
                        *[[type(d)(d.id, {"text": d.features["text"]}, d.speakers, d.labels) for d in corpus.split(s)]
                          for s in ("train", "dev", "test")]), text_only)
    with pytest.raises(UserError, match="reads audio features of size 300; the folder has none"):
        merc_bench.predict(root / "run", text_only)
    with pytest.raises(UserError, match="only text can be embedded"):
        csv = tmp_path / "d.csv"
        csv.write_text("dialogue,speaker,text\n1,a,hello\n")
        merc_bench.predict(root / "run", csv)
    with pytest.raises(UserError, match="no checkpoint of seed 7; seeds with one: 0"):
        merc_bench.predict(root / "run", root / "features", seed=7)


def test_foreign_and_damaged_checkpoints_are_refused(trained, tmp_path):
    _, _, root = trained
    registry = get_registry()
    original = root / "run" / "checkpoint-seed0.pt"
    payload = torch.load(original, weights_only=True)
    bare = tmp_path / "bare.pt"
    torch.save(payload["state"], bare)
    with pytest.raises(UserError, match="bare state_dict"):
        load_checkpoint(bare, registry)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="is not a readable checkpoint"):
        load_checkpoint(garbage, registry)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(original.read_bytes()[:5000])
    with pytest.raises(UserError, match="is not a readable checkpoint"):
        load_checkpoint(truncated, registry)
    header = json.loads(payload["header"])
    misshapen = dict(payload, state={k: (v[:1] if i == 0 else v) for i, (k, v) in enumerate(payload["state"].items())})
    torch.save(misshapen, tmp_path / "misshapen.pt")
    with pytest.raises(UserError, match="does not fit the model .* of another shape"):
        load_checkpoint(tmp_path / "misshapen.pt", registry)
    header["config"]["fuser"]["name"] = "no-such-fuser"
    torch.save(dict(payload, header=json.dumps(header)), tmp_path / "unknown.pt")
    with pytest.raises(UserError, match="no-such-fuser"):
        load_checkpoint(tmp_path / "unknown.pt", registry)
    header = json.loads(payload["header"])
    header["format_version"] = 99
    torch.save(dict(payload, header=json.dumps(header)), tmp_path / "future.pt")
    with pytest.raises(UserError, match="format version 99"):
        load_checkpoint(tmp_path / "future.pt", registry)


def test_a_reused_seed_brings_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("MERC_BENCH_CACHE_DIR", str(tmp_path / "cache"))
    overrides = [o for o in SMALL if o != "--set"]
    merc_bench.compare(["sdt"], seeds=1, epochs=1, out=tmp_path / "first", track=False, overrides=overrides, tsne="none")
    merc_bench.compare(["sdt"], seeds=2, epochs=1, out=tmp_path / "again", track=False, overrides=overrides, tsne="none")
    runs = json.loads(next((tmp_path / "again").rglob("results.json")).read_text())["runs"]
    assert [r["reused"] for r in runs] == [True, False]
    assert [r["checkpoint"] for r in runs] == ["checkpoint-seed0.pt", "checkpoint-seed1.pt"]
    registry = get_registry()
    before = load_checkpoint(next((tmp_path / "first").rglob("checkpoint-seed0.pt")), registry)
    after = load_checkpoint(next((tmp_path / "again").rglob("checkpoint-seed0.pt")), registry)
    assert (before.config.seeds, after.config.seeds) == (1, 2)  # each describes its own run
    assert all(torch.equal(before.state[k], after.state[k]) for k in before.state)


def test_predict_mistakes_exit_2(trained, tmp_path, capsys):
    _, _, root = trained
    for argv, expected in [
        (["predict", str(tmp_path), "--input", str(root / "features")], "neither a checkpoint file nor a run folder"),
        (["predict", str(root / "run"), "--input", str(tmp_path / "none")], "does not exist"),
        (["predict", str(root / "run"), "--input", str(root / "features"), "--split", "val"], "is not a split"),
        (["predict", str(root / "run"), "--input", str(root / "features"), "--column", "text"], "is not ROLE=NAME"),
    ]:
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and expected in " ".join(err.split()) and "Traceback" not in err, (argv, err)


# -- the real MELD test CSV ------------------------------------------------------------------------
@pytest.fixture
def meld_text_run(tmp_path, capsys, hash_encoder):  # noqa: F811 (the fixture)
    target = tmp_path / "meld"
    prepare_command(dataset="meld", target=target, source=MELD_DIR, url=None, text_encoder=HashEncoder.name,
                    console=Console(file=io.StringIO()))
    out = tmp_path / "run"
    code, _, err = run_cli(["run", "bigru-concat", "--dataset", "meld", "--data-dir", str(target), "--modalities",
                            "text", "--epochs", "1", "--no-track", "--out", str(out), "--set", "model.hidden_size=16",
                            "--set", "training.standardize_features=true"], capsys)
    assert code == 0, err
    return target, out


def test_predict_on_the_meld_test_csv_reproduces_the_run(meld_text_run, tmp_path, capsys):
    target, run = meld_text_run
    out = tmp_path / "meld-test.csv"
    code, stdout, err = run_cli(["predict", str(run), "--input", str(MELD_DIR / "test_sent_emo.csv"), "--out",
                                 str(out)], capsys)
    assert code == 0, err
    import pandas as pd

    frame = pd.read_csv(out, keep_default_na=False)
    saved = np.load(run / "predictions.npz")
    classes = np.asarray(MELD_CLASSES)
    assert len(frame) == 2610
    assert list(frame["prediction"]) == list(classes[saved["predictions"][0]])
    assert list(frame["label"]) == list(classes[saved["labels"]])
    assert frame["dialogue"].iloc[0] == 0 and "on the 2610 labelled" in " ".join(stdout.split())
    # The feature folder the run trained on gives the same test predictions.
    assert list(merc_bench.predict(run, target, split="test")["prediction"]) == list(frame["prediction"])
    # A plain CSV of new, unlabelled dialogues goes through the generic reader with a column mapping.
    plain = tmp_path / "new.csv"
    plain.write_text("conv,who,line\nA,Ross,Hi!\nA,Rachel,Oh my God!\nB,Joey,How you doin'?\n")
    code, stdout, err = run_cli(["predict", str(run), "--input", str(plain), "--column", "dialogue=conv",
                                 "--column", "speaker=who", "--column", "text=line"], capsys)
    assert code == 0, err
    assert "predicted 3 utterances in 2 dialogues" in stdout and "labelled" not in stdout
    code, _, err = run_cli(["predict", str(run), "--input", str(plain), "--column", "text=line"], capsys)
    assert code == 2 and "lacks the column(s) dialogue (dialogue), speaker (speaker)" in " ".join(err.split())


def test_csv_labels_must_be_the_models_classes(meld_text_run, tmp_path):
    _, run = meld_text_run
    plain = tmp_path / "new.csv"
    plain.write_text("dialogue,speaker,text,label\n1,a,hi,happy\n")
    with pytest.raises(UserError, match="label 'happy' is not one of the model's classes"):
        merc_bench.predict(run, plain)
