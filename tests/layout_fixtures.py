"""Tiny feature files in every community layout (reference-models.md §1), with known contents.

Each fixture has the documented field order, field types and feature sizes of its layout, so that
detection by structure and by dimensions is exercised as with the real files, but only a handful of
short dialogues: IEMOCAP fixtures hold COSMIC's 12 validation dialogues among 16 training dialogues
plus 3 Session-5 test dialogues; MELD fixtures use ids in the documented ranges (train < 1039,
dev 1039..1152, test from 1153). Python-2-era layouts (SDT and DialogueRNN IEMOCAP) are written the
way Python 2 pickled them: ``str`` as byte strings (SHORT_BINSTRING/BINSTRING) and numpy under
``numpy.core.multiarray``, so loading them needs the Latin-1 retry. Nothing here is real data.

``write_layout(name, folder)`` writes the file(s) and returns the :class:`Truth` the parser must
reproduce; ``build_object`` + ``write_pickle`` let a test damage a fixture before writing it.
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np

IEMOCAP_VALID = [
    "Ses01M_impro01", "Ses01M_script03_1", "Ses02F_impro02", "Ses02F_impro07", "Ses02M_script01_2",
    "Ses03F_impro01", "Ses03M_impro02", "Ses03M_impro08a", "Ses03M_script02_2", "Ses03M_script03_2",
    "Ses04F_impro07", "Ses04F_script02_1",
]
IEMOCAP_TRAIN = ["Ses01F_impro01", "Ses02M_impro03", "Ses04M_script01_1", "Ses03F_script02_2"]
IEMOCAP_TEST = ["Ses05F_impro01", "Ses05M_script01_1", "Ses05F_script02_2"]
MELD_TRAIN = [0, 1, 2, 59, 61]  # MELD train dialogue 60 does not exist
MELD_DEV = [1039, 1040, 1152]  # 1039 + dev Dialogue_ID
MELD_TEST = [1153, 1154, 1432]  # 1153 + test Dialogue_ID

DIMS = {
    "sdt-iemocap": {"text": 1024, "audio": 1582, "visual": 342},
    "sdt-meld": {"text": 1024, "audio": 300, "visual": 342},
    "dialoguernn-iemocap": {"text": 100, "audio": 100, "visual": 512},
    "mmgcn-iemocap": {"text": 100, "audio": 1582, "visual": 342},
    "mmgcn-meld": {"text": 600, "audio": 300, "visual": 342},
    "dialoguernn-meld": {"text": 600, "audio": 300},
    "cosmic-iemocap": {"text": 1024},
    "cosmic-meld": {"text": 1024},
    "multiemo-iemocap": {"text": 768, "audio": 512, "visual": 1000},
    "multiemo-meld": {"text": 768, "audio": 512, "visual": 1000},
}
FILE_NAMES = {
    "sdt-iemocap": "iemocap_multimodal_features.pkl",
    "sdt-meld": "meld_multimodal_features.pkl",
    "dialoguernn-iemocap": "IEMOCAP_features_raw.pkl",
    "mmgcn-iemocap": "IEMOCAP_features.pkl",
    "mmgcn-meld": "MELD_features_raw1.pkl",
    "dialoguernn-meld": "MELD_features_raw.pkl",
    "cosmic-iemocap": "iemocap_features_roberta.pkl",
    "cosmic-meld": "meld_features_roberta.pkl",
}
LAYOUT_NAMES = tuple(DIMS)
PY2_LAYOUTS = ("sdt-iemocap", "dialoguernn-iemocap")
SET_SPLIT_LAYOUTS = ("mmgcn-iemocap",)  # split lists stored as sets: the parser sorts them
CLASSES = {"iemocap": 6, "meld": 7}


@dataclass
class Truth:
    """What a parser must reproduce from a fixture."""

    layout: str
    family: str
    dims: dict[str, int]
    splits: dict[str, list]  # split -> raw dialogue ids in the expected order
    labels: dict[Any, np.ndarray]
    speakers: dict[Any, np.ndarray]
    features: dict[str, dict[Any, np.ndarray]]  # modality -> id -> (n, D) float32
    roberta: dict[int, dict[Any, np.ndarray]] = field(default_factory=dict)  # layer -> id -> (n, 1024)
    path: Path | None = None

    @property
    def ids(self) -> list:
        return [d for split in ("train", "dev", "test") for d in self.splits[split]]


def family_of(layout: str) -> str:
    return "iemocap" if "iemocap" in layout else "meld"


def make_truth(layout: str, seed: int = 0) -> Truth:
    rng = np.random.default_rng(seed)
    family = family_of(layout)
    if family == "iemocap":
        splits = {"train": list(IEMOCAP_TRAIN), "dev": list(IEMOCAP_VALID), "test": list(IEMOCAP_TEST)}
    else:
        splits = {"train": list(MELD_TRAIN), "dev": list(MELD_DEV), "test": list(MELD_TEST)}
    if layout in SET_SPLIT_LAYOUTS:
        splits = {s: sorted(ids) for s, ids in splits.items()}
    dims = DIMS[layout]
    ids = [d for s in ("train", "dev", "test") for d in splits[s]]
    lengths = {d: int(rng.integers(2, 6)) for d in ids}
    labels = {d: rng.integers(0, CLASSES[family], lengths[d]).astype(np.int64) for d in ids}
    if family == "iemocap":
        speakers = {d: rng.integers(0, 2, lengths[d]).astype(np.int64) for d in ids}
    else:
        speakers = {d: np.minimum(rng.integers(0, 4, lengths[d]), np.arange(lengths[d])).astype(np.int64)
                    for d in ids}
    features = {m: {d: rng.standard_normal((lengths[d], dim), dtype=np.float32) for d in ids} for m, dim in dims.items()}
    roberta = {}
    if layout.startswith(("sdt", "cosmic")):
        roberta[1] = features["text"]
        for layer in (2, 3, 4):
            roberta[layer] = {d: rng.standard_normal((lengths[d], 1024), dtype=np.float32) for d in ids}
    return Truth(layout, family, dict(dims), splits, labels, speakers, features, roberta)


# -- encoding the fields as the original files do --------------------------------------------------
def _speakers_field(truth: Truth, *, as_arrays: bool = False) -> dict:
    if truth.family == "iemocap":
        return {d: ["M" if s == 0 else "F" for s in truth.speakers[d]] for d in truth.ids}
    one_hot = {d: np.eye(9, dtype=np.float32)[truth.speakers[d]] for d in truth.ids}
    return one_hot if as_arrays else {d: [[int(v) for v in row] for row in one_hot[d]] for d in truth.ids}


def _rows(matrices: dict[Any, np.ndarray]) -> dict[Any, list[np.ndarray]]:
    return {d: [row.copy() for row in x] for d, x in matrices.items()}


def _labels(truth: Truth) -> dict:
    return {d: [int(v) for v in truth.labels[d]] for d in truth.ids}


def _text_fields(truth: Truth) -> dict:
    return {d: [f"utterance {i}" for i in range(len(truth.labels[d]))] for d in truth.ids}


def _sentiment(truth: Truth) -> dict:
    return {d: [int(v) % 3 for v in truth.labels[d]] for d in truth.ids}


def _video_ids(truth: Truth) -> dict:
    return {d: [f"{d}_{i:03d}" for i in range(len(truth.labels[d]))] for d in truth.ids}


def _train_list(truth: Truth) -> list:
    """The files' training list: train and dev interleaved (the parser carves dev out)."""
    train, dev = truth.splits["train"], truth.splits["dev"]
    merged = []
    for i in range(max(len(train), len(dev))):
        merged += train[i:i + 1] + dev[i:i + 1]
    return merged


def _split(ids: list, layout: str) -> Any:
    return set(ids) if layout in SET_SPLIT_LAYOUTS else list(ids)


def build_object(layout: str, truth: Truth) -> Any:
    """The unpickled object (tuple or list) of ``layout`` holding ``truth``; a dict of files for MultiEMO."""
    t = truth
    f = t.features
    if layout in ("sdt-iemocap", "sdt-meld"):
        fields = (_video_ids(t), _speakers_field(t), _labels(t), _rows(t.roberta[1]), _rows(t.roberta[2]),
                  _rows(t.roberta[3]), _rows(t.roberta[4]), _rows(f["audio"]), _rows(f["visual"]), _text_fields(t),
                  _train_list(t), list(t.splits["test"]))
        return fields + ((_sentiment(t),) if layout == "sdt-meld" else ())
    if layout in ("dialoguernn-iemocap", "mmgcn-iemocap"):
        # DialogueRNN's file: one 2-D array per dialogue; MMGCN's: lists of rows, splits as sets.
        encode = (lambda x: {d: v.copy() for d, v in x.items()}) if layout == "dialoguernn-iemocap" else _rows
        return (_video_ids(t), _speakers_field(t), _labels(t), encode(f["text"]), encode(f["audio"]),
                encode(f["visual"]), _text_fields(t), _split(_train_list(t), layout), _split(t.splits["test"], layout))
    if layout == "mmgcn-meld":
        return (_video_ids(t), _speakers_field(t, as_arrays=True), _labels(t), _rows(f["text"]), _rows(f["audio"]),
                _rows(f["visual"]), _text_fields(t), _train_list(t), list(t.splits["test"]), _sentiment(t))
    if layout == "dialoguernn-meld":
        # Features as plain Python float lists (what some re-exports hold).
        floats = {m: {d: x.tolist() for d, x in f[m].items()} for m in ("text", "audio")}
        return (_video_ids(t), _speakers_field(t), _labels(t), floats["text"], floats["audio"], _text_fields(t),
                _train_list(t), list(t.splits["test"]), _sentiment(t))
    if layout == "cosmic-iemocap":
        return [_speakers_field(t), _labels(t), *(_rows(t.roberta[k]) for k in (1, 2, 3, 4)), _text_fields(t),
                list(t.splits["train"]), list(t.splits["test"]), list(t.splits["dev"])]
    if layout == "cosmic-meld":
        return [_speakers_field(t), _labels(t), _sentiment(t), *(_rows(t.roberta[k]) for k in (1, 2, 3, 4)),
                _text_fields(t), list(t.splits["train"]), list(t.splits["test"]), list(t.splits["dev"])]
    if layout.startswith("multiemo"):
        # Speakers.pkl is a DialogueRNN/MMGCN-structured file (its own features are not used).
        small = {d: np.zeros((len(t.labels[d]), 4), np.float32) for d in t.ids}
        speakers_file = (_video_ids(t), _speakers_field(t), _labels(t), small, small, small, _text_fields(t),
                         _train_list(t), list(t.splits["test"]))
        if t.family == "meld":
            speakers_file += (_sentiment(t),)
        return {"Speakers.pkl": speakers_file, "TextFeatures.pkl": _rows(f["text"]),
                "AudioFeatures.pkl": _rows(f["audio"]), "VisualFeatures.pkl": _rows(f["visual"])}
    raise KeyError(layout)


# -- writing ---------------------------------------------------------------------------------------
class Py2Pickler(pickle._Pickler):
    """Pickles like Python 2 did: every str/bytes as a byte string (SHORT_BINSTRING / BINSTRING)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: str | bytes) -> None:
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def pickle_bytes(obj: Any, *, py2: bool = False) -> bytes:
    if not py2:
        return pickle.dumps(obj, protocol=4)
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    # numpy 1.x (and Python 2) module path for array reconstruction.
    return buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def write_pickle(obj: Any, path: Path, *, py2: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle_bytes(obj, py2=py2))
    return path


def write_layout(layout: str, folder: Path, *, seed: int = 0,
                 mutate: Callable[[Any, Truth], Any] | None = None) -> Truth:
    """Write ``layout``'s fixture into ``folder`` (a file, or MultiEMO's four) and return its truth."""
    truth = make_truth(layout, seed)
    obj = build_object(layout, truth)
    if mutate is not None:
        obj = mutate(obj, truth)
    if layout.startswith("multiemo"):
        target = folder / ("IEMOCAP" if truth.family == "iemocap" else "MELD")
        for name, value in obj.items():
            write_pickle(value, target / name, py2=truth.family == "iemocap" and name == "Speakers.pkl")
        truth.path = target
    else:
        truth.path = write_pickle(obj, folder / FILE_NAMES[layout], py2=layout in PY2_LAYOUTS)
    return truth
