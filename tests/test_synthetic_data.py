"""Data-level properties of the embedded ``synthetic`` dataset (plugins/merc_bench_synthetic).

Contract (shapes, dtypes, classes, speakers, lengths), determinism, class frequencies, and the
planted structure measured with linear probes: text is the strongest single modality, all three
modalities beat text, and dialogue context beats isolated utterances.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydantic
import pytest
import threadpoolctl

try:
    import merc_bench_synthetic  # noqa: F401  (installed with merc-bench)
except ImportError:  # running from a source checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from merc_bench.registry import Registry
from merc_bench_synthetic import merc_bench_register
from merc_bench_synthetic.dataset import SHAPES, SyntheticConfig, SyntheticDataset

MELD_CLASSES = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
IEMOCAP_CLASSES = ("hap", "sad", "neu", "ang", "exc", "fru")


def load(**options):
    return SyntheticDataset(SyntheticConfig(**options)).load()


def all_dialogues(corpus):
    return corpus.train + corpus.dev + corpus.test


def total_variation(counts: np.ndarray, target: np.ndarray) -> float:
    return 0.5 * float(np.abs(counts / counts.sum() - target).sum())


# -- registration and configuration -------------------------------------------------------------


def test_registers_as_a_dataset_that_builds_from_its_config():
    registry = Registry()
    merc_bench_register(registry=registry.scoped("merc-bench"))
    entry = registry.get("dataset", "synthetic")
    dataset = entry.build(entry.make_config({"shape": "iemocap", "train_dialogues": 3}), {"data_dir": None})
    corpus = dataset.load()
    assert corpus.info.name == "synthetic" and corpus.info.family == "iemocap"
    assert len(corpus.train) == 3


def test_config_rejects_unknown_options_and_shapes():
    with pytest.raises(pydantic.ValidationError):
        SyntheticConfig(shape="dailydialog")
    with pytest.raises(pydantic.ValidationError):
        SyntheticConfig(size=10)
    with pytest.raises(pydantic.ValidationError):
        SyntheticConfig(train_dialogues=0)


@pytest.mark.parametrize(("shape", "sizes"), [("meld", (40, 12, 24)), ("iemocap", (24, 6, 8))])
def test_default_split_sizes_follow_the_shape(shape, sizes):
    corpus = load(shape=shape)
    assert (len(corpus.train), len(corpus.dev), len(corpus.test)) == sizes
    assert corpus.provenance["generator"] == "merc_bench_synthetic"
    assert corpus.provenance["seed"] == 0
    assert corpus.provenance["config"]["shape"] == shape
    assert "version" in corpus.provenance


# -- determinism --------------------------------------------------------------------------------


def test_same_config_gives_an_identical_corpus():
    first, second = load(seed=3), load(seed=3)
    assert first.fingerprint() == second.fingerprint()
    for one, other in zip(all_dialogues(first), all_dialogues(second)):
        assert one.id == other.id
        np.testing.assert_array_equal(one.labels, other.labels)
        np.testing.assert_array_equal(one.speakers, other.speakers)
        for modality in one.features:
            np.testing.assert_array_equal(one.features[modality], other.features[modality])


def test_different_seed_gives_a_different_corpus():
    first, second = load(seed=0), load(seed=1)
    assert first.fingerprint() != second.fingerprint()
    assert not np.array_equal(first.train[0].features["text"][:1], second.train[0].features["text"][:1])


def test_split_sizes_do_not_change_the_other_splits():
    small, large = load(train_dialogues=10), load(train_dialogues=40)
    assert [d.id for d in small.test] == [d.id for d in large.test]
    for one, other in zip(small.test, large.test):
        np.testing.assert_array_equal(one.labels, other.labels)
        np.testing.assert_array_equal(one.features["audio"], other.features["audio"])


# -- shapes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "classes", "dims", "num_speakers"),
    [
        ("meld", MELD_CLASSES, {"text": 1024, "audio": 300, "visual": 342}, 9),
        ("iemocap", IEMOCAP_CLASSES, {"text": 1024, "audio": 1582, "visual": 342}, 2),
    ],
)
def test_contract(shape, classes, dims, num_speakers):
    corpus = load(shape=shape)
    info = corpus.info
    assert info.name == "synthetic" and info.family == shape
    assert info.classes == classes
    assert info.feature_dims == dims and list(info.feature_dims) == ["text", "audio", "visual"]
    assert info.num_speakers == num_speakers
    assert "synthetic" in info.description.lower() and shape in info.description.lower()
    ids = [d.id for d in all_dialogues(corpus)]
    assert len(set(ids)) == len(ids)
    for dialogue in all_dialogues(corpus):
        n = len(dialogue)
        assert n >= 1
        assert dialogue.labels.dtype == np.int64 and dialogue.labels.shape == (n,)
        assert dialogue.speakers.dtype == np.int64 and dialogue.speakers.shape == (n,)
        assert dialogue.labels.min() >= 0 and dialogue.labels.max() < len(classes)
        assert dialogue.speakers.min() >= 0 and dialogue.speakers.max() < num_speakers
        # Speaker indices are numbered in order of first appearance.
        first_seen = list(dict.fromkeys(dialogue.speakers.tolist()))
        assert first_seen == list(range(len(first_seen)))
        assert set(dialogue.features) == set(dims)
        for modality, dim in dims.items():
            features = dialogue.features[modality]
            assert features.shape == (n, dim)
            assert features.dtype == np.float32 and features.flags.c_contiguous
            assert np.isfinite(features).all()


def test_features_have_about_unit_variance():
    corpus = load(shape="meld", train_dialogues=100)
    for modality in ("text", "audio", "visual"):
        stacked = np.concatenate([d.features[modality] for d in corpus.train])
        assert abs(float(stacked.var(axis=0).mean()) - 1.0) < 0.2
        assert abs(float(stacked.mean())) < 0.05


def test_meld_lengths_and_speakers_follow_meld():
    corpus = load(shape="meld", train_dialogues=400)
    lengths = np.array([len(d) for d in corpus.train])
    assert lengths.min() >= 1 and lengths.max() <= 33
    assert abs(lengths.mean() - 9.6) < 2.0
    distinct = np.array([len(np.unique(d.speakers)) for d in corpus.train])
    assert distinct.max() <= 9
    assert 2.0 < distinct.mean() < 3.5  # MELD train: 2.7 distinct speakers per dialogue
    assert (distinct == 2).mean() > 0.3  # two-speaker dialogues are the most common


def test_iemocap_lengths_and_turns_follow_iemocap():
    corpus = load(shape="iemocap", train_dialogues=100)
    lengths = np.array([len(d) for d in corpus.train])
    assert lengths.min() >= 8 and lengths.max() <= 110
    assert 40 < lengths.mean() < 58
    changes = np.mean([np.mean(d.speakers[1:] != d.speakers[:-1]) for d in corpus.train])
    assert 0.7 < changes < 0.95  # roughly alternating turns


@pytest.mark.parametrize(("shape", "dialogues"), [("meld", 500), ("iemocap", 100)])
def test_class_frequencies_match_the_target(shape, dialogues):
    corpus = load(shape=shape, train_dialogues=dialogues)
    assert total_variation(corpus.class_counts("train"), SHAPES[shape].class_frequencies) < 0.08


def test_emotions_persist_per_speaker_and_spread_between_speakers():
    corpus = load(shape="meld", train_dialogues=300)
    frequencies = SHAPES["meld"].class_frequencies
    chance = float(frequencies @ frequencies)  # two independent draws agree this often (about 0.29)
    same_speaker, previous_utterance = [], []
    for dialogue in corpus.train:
        last: dict[int, int] = {}
        for position, (speaker, label) in enumerate(zip(dialogue.speakers.tolist(), dialogue.labels.tolist())):
            if speaker in last:
                same_speaker.append(label == last[speaker])
            if position > 0 and dialogue.speakers[position - 1] != speaker:
                previous_utterance.append(label == dialogue.labels[position - 1])
            last[speaker] = label
    assert np.mean(same_speaker) > chance + 0.4
    assert np.mean(previous_utterance) > chance + 0.15


# -- planted structure, measured with linear probes ----------------------------------------------


def probe_scores(shape: str, seed: int, dialogues: int) -> dict[str, float]:
    """Weighted F1 on test of logistic-regression probes: per modality, all modalities, with context.

    Each modality is reduced to 16 principal components (fit on train) and standardised. The
    context probe adds, for every utterance, the class probabilities that the all-modality probe
    gives the previous utterance and the speaker's previous utterance (out-of-fold on train,
    grouped by dialogue), plus "has none" flags. Context read this way, rather than as raw
    neighbour features, keeps a linear probe from overfitting a few thousand utterances.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.preprocessing import StandardScaler

    corpus = load(shape=shape, seed=seed, train_dialogues=dialogues, test_dialogues=dialogues)
    train_labels = np.concatenate([d.labels for d in corpus.train])
    test_labels = np.concatenate([d.labels for d in corpus.test])
    groups = np.repeat(np.arange(len(corpus.train)), [len(d) for d in corpus.train])

    reduced = {}
    for modality in ("text", "audio", "visual"):
        train = np.concatenate([d.features[modality] for d in corpus.train])
        test = np.concatenate([d.features[modality] for d in corpus.test])
        pca = PCA(16, svd_solver="covariance_eigh").fit(train)
        scaler = StandardScaler().fit(pca.transform(train))
        reduced[modality] = (scaler.transform(pca.transform(train)), scaler.transform(pca.transform(test)))

    def probe() -> LogisticRegression:
        return LogisticRegression(max_iter=2000)

    def score(train: np.ndarray, test: np.ndarray) -> float:
        predictions = probe().fit(train, train_labels).predict(test)
        return float(f1_score(test_labels, predictions, average="weighted"))

    scores = {modality: score(*reduced[modality]) for modality in reduced}
    all_train = np.concatenate([reduced[m][0] for m in reduced], axis=1)
    all_test = np.concatenate([reduced[m][1] for m in reduced], axis=1)
    scores["all"] = score(all_train, all_test)

    train_probabilities = cross_val_predict(
        probe(), all_train, train_labels, cv=GroupKFold(4), groups=groups, method="predict_proba"
    )
    test_probabilities = probe().fit(all_train, train_labels).predict_proba(all_test)
    scores["context"] = score(
        np.concatenate([all_train, context_features(corpus.train, train_probabilities)], axis=1),
        np.concatenate([all_test, context_features(corpus.test, test_probabilities)], axis=1),
    )
    return scores


def context_features(dialogues, probabilities: np.ndarray) -> np.ndarray:
    """(N, 2C + 2): probabilities of the previous utterance and of the speaker's previous one, + flags."""
    num_classes = probabilities.shape[1]
    rows, start = [], 0
    for dialogue in dialogues:
        n = len(dialogue)
        own = probabilities[start : start + n]
        start += n
        features = np.zeros((n, 2 * num_classes + 2))
        last: dict[int, int] = {}
        for position, speaker in enumerate(dialogue.speakers.tolist()):
            if position > 0:
                features[position, :num_classes] = own[position - 1]
            else:
                features[position, 2 * num_classes] = 1.0
            if speaker in last:
                features[position, num_classes : 2 * num_classes] = own[last[speaker]]
            else:
                features[position, 2 * num_classes + 1] = 1.0
            last[speaker] = position
        rows.append(features)
    return np.concatenate(rows)


@pytest.mark.parametrize(("shape", "seed", "dialogues"), [("meld", 0, 300), ("meld", 1, 300), ("iemocap", 0, 60)])
def test_planted_structure_separates_the_probes(shape, seed, dialogues):
    # One BLAS thread: the probes are small, and BLAS threads competing for busy cores crawl.
    with threadpoolctl.threadpool_limits(1):
        scores = probe_scores(shape, seed, dialogues)
    print(shape, seed, {name: round(value, 3) for name, value in scores.items()})
    assert 0.45 < scores["text"] < 0.75  # informative but far from perfect
    assert scores["text"] > scores["audio"] and scores["text"] > scores["visual"]
    assert scores["all"] >= scores["text"] + 0.02
    assert scores["context"] >= scores["all"] + 0.02


# -- paper-shaped profiles ----------------------------------------------------------------------


def test_paper_profiles_have_the_real_split_sizes_and_shapes():
    from merc_bench_synthetic.paper_profiles import PROFILES

    expected = {"paper-meld": ("meld", (1038, 114, 280)), "paper-iemocap": ("iemocap", (108, 12, 31))}
    for name, (family, sizes) in expected.items():
        dataset = SyntheticDataset(SyntheticConfig(profile=name))
        assert dataset.info().family == family and PROFILES[name].shape == family
        assert tuple(dataset.split_sizes().values()) == sizes
        assert name in dataset.info().description
    # A split size can still be overridden (tests and quick looks use smaller corpora).
    assert SyntheticDataset(SyntheticConfig(profile="paper-meld", train_dialogues=7)).split_sizes()["train"] == 7


def test_paper_profile_options_are_checked():
    with pytest.raises(pydantic.ValidationError, match="only apply to a paper profile"):
        SyntheticConfig(text_signal=2.0)  # the planted corpus has no such knob
    with pytest.raises(pydantic.ValidationError, match="contradicts"):
        SyntheticConfig(profile="paper-iemocap", shape="meld")
    assert SyntheticConfig(profile="paper-iemocap", shape="iemocap").shape_name == "iemocap"
    with pytest.raises(pydantic.ValidationError):
        SyntheticConfig(profile="paper-meld", ambiguity=1.5)


def test_paper_profile_is_deterministic_and_follows_the_class_frequencies():
    options = {"profile": "paper-meld", "train_dialogues": 400, "dev_dialogues": 5, "test_dialogues": 5}
    one, other = load(**options), load(**options)
    np.testing.assert_array_equal(one.train[3].features["visual"], other.train[3].features["visual"])
    labels = np.concatenate([d.labels for d in one.train])
    counts = np.bincount(labels, minlength=len(MELD_CLASSES)).astype(np.float64)
    assert total_variation(counts, SHAPES["meld"].class_frequencies) < 0.03
    assert SyntheticConfig().profile == "planted"  # the profiles are opt-in (golden tests pin the planted corpus)


def _paper_probes(**options) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    corpus = load(profile="paper-meld", train_dialogues=300, dev_dialogues=2, test_dialogues=200, **options)

    def flat(split, modalities):
        dialogues = corpus.split(split)
        features = np.concatenate([np.concatenate([d.features[m] for d in dialogues]) for m in modalities], axis=1)
        return features, np.concatenate([d.labels for d in dialogues])

    scores = {}
    for name, modalities in {"text": ["text"], "audio+visual": ["audio", "visual"],
                             "all": ["text", "audio", "visual"]}.items():
        x_train, y_train = flat("train", modalities)
        x_test, y_test = flat("test", modalities)
        model = LogisticRegression(C=0.05, max_iter=500).fit(x_train, y_train)
        scores[name] = f1_score(y_test, model.predict(x_test), average="weighted")
    return scores


def test_paper_profile_knobs_move_the_probes_the_way_they_say():
    # Shared ambiguity caps every combination; without it and with a strong text signal, text is easy.
    with threadpoolctl.threadpool_limits(1):
        fitted = _paper_probes()
        clear = _paper_probes(ambiguity=0.0, text_signal=3.0)
        no_nonverbal = _paper_probes(audio_signal=0.0, visual_signal=0.0)
    print({"fitted": fitted, "clear": clear, "no_nonverbal": no_nonverbal})
    assert clear["text"] > fitted["text"] + 0.1
    assert no_nonverbal["audio+visual"] < fitted["audio+visual"] - 0.05  # nothing left to read
    # The paper's premise: text is the strongest single source and close to all three.
    assert fitted["text"] > fitted["audio+visual"]
    assert fitted["all"] - fitted["text"] < 0.05


def test_sample_seed_draws_another_corpus_from_the_same_world():
    options = {"profile": "paper-iemocap", "train_dialogues": 4, "dev_dialogues": 2, "test_dialogues": 2}
    shipped, same, other = load(**options), load(**options, sample_seed=0), load(**options, sample_seed=5)
    np.testing.assert_array_equal(shipped.test[0].features["text"], same.test[0].features["text"])
    assert [len(d) for d in shipped.train] != [len(d) for d in other.train]
    assert other.provenance["config"]["sample_seed"] == 5
    # The world is seed's: both draws' text features lie in the same 16-dimensional latent subspace.
    stacked = np.concatenate([np.concatenate([d.features["text"] for d in c.train]) for c in (shipped, other)])
    singular = np.linalg.svd(stacked - stacked.mean(0), compute_uv=False)
    assert singular[15] > 5 * singular[16]  # 16 signal directions shared, then only the ambient noise
