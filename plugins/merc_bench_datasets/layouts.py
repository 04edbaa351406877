"""The community's MERC feature files: detect the layout by structure, parse it into a Corpus.

Layouts (``shared/docs/reference-models.md`` §1; the field orders are those the reference loaders
unpack, e.g. ``butterfliesss/SDT:dataloader.py``, COSMIC's ``dataloader.py`` and its RoBERTa
extraction script, ``TaoShi1998/MultiEMO:Dataset/*.py``):

========================  =======  ======================================================  ==============
layout                    fields   order                                                   text/audio/vis
========================  =======  ======================================================  ==============
``sdt-iemocap``           12       ids, speakers, labels, text(roberta1), roberta2..4,     1024/1582/342
                                   audio, visual, sentences, trainVid, testVid
``sdt-meld``              13       the same 12, then sentiment                             1024/300/342
``dialoguernn-iemocap``   9        ids, speakers, labels, text, audio, visual, sentences,  100/100/512
                                   trainVid, testVid
``mmgcn-iemocap``         9        as dialoguernn-iemocap (told apart by feature sizes)    100/1582/342
``mmgcn-meld``            10       as the 9-tuple, then one trailing field (sentiment)     600/300/342
``dialoguernn-meld``      9        ids, speakers, labels, text, audio, sentences,          600/300/—
                                   trainVid, testVid, sentiment
``cosmic-iemocap``        10       speakers, labels, roberta1..4, sentences, trainIds,     1024/—/—
                                   testIds, validIds
``cosmic-meld``           11       speakers, emotion, sentiment, roberta1..4, sentences,   1024/—/—
                                   trainIds, testIds, validIds
``multiemo-{iemocap,meld}`` folder ``Speakers.pkl`` (a 9-/10-tuple above: speakers,       768/512/1000
                                   labels, splits) + Text/Audio/VisualFeatures.pkl
========================  =======  ======================================================  ==============

Detection looks only at structure — the number of fields, which are dicts and which are lists of
dialogue ids — never at file names (except MultiEMO's folder, whose four names *are* the layout).
Two layouts share a structure (DialogueRNN and MMGCN IEMOCAP); their feature sizes tell them apart,
and a file matching the structure with other sizes loads as ``iemocap-9-tuple`` with a warning.
The family (IEMOCAP or MELD) follows from the structure; the labels and speakers are then checked
against it.

Choices where the sources leave room:

* **Text layer.** SDT and COSMIC files carry four RoBERTa-large ``<s>`` vectors per utterance:
  ``roberta1`` is the last layer, ``roberta2`` the one before, and so on (COSMIC's extraction script
  takes layers -1..-4; SDT's file names the first one ``videoText``). SDT trains on ``roberta1``
  only; COSMIC's model can average, concatenate or pick them. ``roberta_layer`` chooses: 1 (the
  default: SDT's input and the documented provenance, last layer), 2, 3, 4, ``mean`` of the four or
  ``concat`` (4096 features).
* **Splits.** SDT/MMGCN/DialogueRNN files carry train and test only. The clean validation split is
  carved out of their training list: IEMOCAP's 12 COSMIC validation dialogues; MELD's official dev
  set, ids 1039..1152. COSMIC files carry ``validIds`` and are used as given. The paper protocol
  trains on train + dev, i.e. on the files' whole training list.
* **Order.** Dialogues are kept in the order of the split lists; a split stored as a set (whose
  order is arbitrary) is sorted (integers numerically, strings alphabetically).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from merc_bench.data import Corpus, DatasetInfo, Dialogue
from merc_bench.errors import UserError
from merc_bench.safe_pickle import load_pickle
from merc_bench_datasets.checks import (
    FAMILIES, IEMOCAP_VALIDATION_IDS, MELD_DEV_IDS, documented_differences, feature_matrix, label_array,
    speaker_indices,
)

__all__ = ["Layout", "LAYOUTS", "ROBERTA_LAYERS", "MULTIEMO_FILES", "is_multiemo_folder", "source_files",
           "read_source", "parse_object"]

ROBERTA_LAYERS = (1, 2, 3, 4, "mean", "concat")
MULTIEMO_FILES = ("Speakers.pkl", "TextFeatures.pkl", "AudioFeatures.pkl", "VisualFeatures.pkl")


@dataclass(frozen=True)
class Layout:
    """One file layout: its fields in order and which field plays which role."""

    name: str
    family: str
    description: str
    fields: tuple[str, ...]
    speakers: str
    labels: str
    text: tuple[str, ...]  # one field, or the four RoBERTa layers, last layer first
    audio: str | None
    visual: str | None
    train: str
    test: str
    valid: str | None = None
    trailing: tuple[str, ...] = ()  # fields of unpinned type (sentiment, probably): anything but an id list
    dims: dict[str, int] = field(default_factory=dict)  # documented feature sizes
    group: str = ""  # layouts sharing one structure, told apart by dims

    @property
    def id_fields(self) -> tuple[str, ...]:
        return tuple(f for f in (self.train, self.test, self.valid) if f)

    @property
    def dict_fields(self) -> tuple[str, ...]:
        return tuple(f for f in self.fields if f not in self.id_fields and f not in self.trailing)


_SDT = ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "roberta2", "roberta3", "roberta4", "videoAudio",
        "videoVisual", "videoSentence", "trainVid", "testVid")
_NINE = ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio", "videoVisual", "videoSentence",
         "trainVid", "testVid")
_ROLES = dict(speakers="videoSpeakers", labels="videoLabels", audio="videoAudio", train="trainVid", test="testVid")
_SDT_TEXT = ("videoText", "roberta2", "roberta3", "roberta4")
_COSMIC_TEXT = ("roberta1", "roberta2", "roberta3", "roberta4")

LAYOUTS = (
    Layout("sdt-iemocap", "iemocap", "SDT IEMOCAP file (iemocap_multimodal_features.pkl, 12-tuple)", _SDT,
           text=_SDT_TEXT, visual="videoVisual", dims={"text": 1024, "audio": 1582, "visual": 342}, **_ROLES),
    Layout("sdt-meld", "meld", "SDT MELD file (meld_multimodal_features.pkl, 13-tuple)", _SDT + ("videoSentiment",),
           text=_SDT_TEXT, visual="videoVisual", trailing=("videoSentiment",),
           dims={"text": 1024, "audio": 300, "visual": 342}, **_ROLES),
    Layout("dialoguernn-iemocap", "iemocap", "DialogueRNN IEMOCAP file (IEMOCAP_features_raw.pkl, 9-tuple)", _NINE,
           text=("videoText",), visual="videoVisual", dims={"text": 100, "audio": 100, "visual": 512},
           group="iemocap-9-tuple", **_ROLES),
    Layout("mmgcn-iemocap", "iemocap", "MMGCN IEMOCAP file (IEMOCAP_features.pkl, 9-tuple)", _NINE,
           text=("videoText",), visual="videoVisual", dims={"text": 100, "audio": 1582, "visual": 342},
           group="iemocap-9-tuple", **_ROLES),
    Layout("mmgcn-meld", "meld", "MMGCN MELD file (MELD_features_raw1.pkl, 10-tuple)", _NINE + ("trailing",),
           text=("videoText",), visual="videoVisual", trailing=("trailing",),
           dims={"text": 600, "audio": 300, "visual": 342}, **_ROLES),
    Layout("dialoguernn-meld", "meld", "DialogueRNN MELD file (MELD_features_raw.pkl, 9-tuple, text and audio)",
           ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio", "videoSentence", "trainVid",
            "testVid", "videoLabelsSentiment"),
           text=("videoText",), visual=None, trailing=("videoLabelsSentiment",), dims={"text": 600, "audio": 300},
           **_ROLES),
    Layout("cosmic-iemocap", "iemocap", "COSMIC IEMOCAP file (iemocap_features_roberta.pkl, 10 fields, text only)",
           ("speakers", "labels", *_COSMIC_TEXT, "sentences", "trainIds", "testIds", "validIds"),
           speakers="speakers", labels="labels", text=_COSMIC_TEXT, audio=None, visual=None, train="trainIds",
           test="testIds", valid="validIds", dims={"text": 1024}),
    Layout("cosmic-meld", "meld", "COSMIC MELD file (meld_features_roberta.pkl, 11 fields, text only)",
           ("speakers", "emotion_labels", "sentiment_labels", *_COSMIC_TEXT, "sentences", "trainIds", "testIds",
            "validIds"),
           speakers="speakers", labels="emotion_labels", text=_COSMIC_TEXT, audio=None, visual=None,
           train="trainIds", test="testIds", valid="validIds", dims={"text": 1024}),
)
_MULTIEMO_DIMS = {"text": 768, "audio": 512, "visual": 1000}


# -- structure -------------------------------------------------------------------------------------
def _is_id_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset)) and all(
        isinstance(item, (str, bytes, int, np.integer)) and not isinstance(item, bool) for item in value
    )


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "dict"
    if _is_id_list(value):
        return "id list"
    return type(value).__name__


def _matches(layout: Layout, obj: tuple | list) -> bool:
    if len(obj) != len(layout.fields):
        return False
    values = dict(zip(layout.fields, obj))
    return (all(isinstance(values[f], dict) for f in layout.dict_fields)
            and all(_is_id_list(values[f]) for f in layout.id_fields)
            and not any(_is_id_list(values[f]) for f in layout.trailing))


def detect(obj: Any, source: str) -> list[Layout]:
    """The layouts whose structure ``obj`` has (several only for a shared structure)."""
    if isinstance(obj, dict):
        first = next(iter(obj.values()), None)
        hint = (" It looks like one of MultiEMO's per-modality files (dialogue -> feature vectors); point at the "
                "folder holding " + ", ".join(MULTIEMO_FILES) + "." if isinstance(first, (list, np.ndarray)) else "")
        raise UserError(f"{source}: holds a dict of {len(obj)} entries, not one of the supported feature-file "
                        f"layouts (a tuple or list of 9 to 13 fields).{hint}")
    if not isinstance(obj, (tuple, list)):
        raise UserError(f"{source}: holds a {type(obj).__name__}, not one of the supported feature-file layouts "
                        "(a tuple or list of 9 to 13 fields).")
    matches = [layout for layout in LAYOUTS if _matches(layout, obj)]
    if matches:
        return matches
    same_length = [layout for layout in LAYOUTS if len(layout.fields) == len(obj)]
    found = ", ".join(_kind(value) for value in obj)
    if not same_length:
        lengths = ", ".join(f"{layout.name} {len(layout.fields)}" for layout in LAYOUTS)
        raise UserError(f"{source}: a {type(obj).__name__} of {len(obj)} fields matches no supported layout "
                        f"(field counts: {lengths}). Its fields are: {found}.")
    expected = "; ".join(
        f"{layout.name}: " + ", ".join("id list" if f in layout.id_fields else "any" if f in layout.trailing
                                       else "dict" for f in layout.fields)
        for layout in same_length
    )
    raise UserError(f"{source}: a {len(obj)}-field {type(obj).__name__} whose field types ({found}) match none of "
                    f"the {len(obj)}-field layouts ({expected}).")


def _first_dim(values: dict, name: str, source: str) -> int | None:
    for dialogue, value in values.items():
        return feature_matrix(value, source=source, dialogue=dialogue, field=name).shape[1]
    return None


def _choose(candidates: list[Layout], fields: dict[str, Any], source: str) -> tuple[Layout, list[str]]:
    if len(candidates) == 1:
        return candidates[0], []
    found = {m: _first_dim(fields[f], f, source) for m, f in _modality_fields(candidates[0]).items()}
    for layout in candidates:
        if all(found[m] == d for m, d in layout.dims.items()):
            return layout, []
    group = candidates[0].group
    sizes = "/".join(str(found[m]) for m in found)
    known = "; ".join(f"{c.name} {'/'.join(str(d) for d in c.dims.values())}" for c in candidates)
    layout = dataclasses.replace(candidates[0], name=group, dims={},
                                 description=f"{group} structure with feature sizes {sizes}")
    return layout, [f"feature sizes {sizes} match no documented file of this structure ({known}); loaded as given"]


def _modality_fields(layout: Layout) -> dict[str, str]:
    fields = {"text": layout.text[0]}
    if layout.audio:
        fields["audio"] = layout.audio
    if layout.visual:
        fields["visual"] = layout.visual
    return fields


# -- splits ----------------------------------------------------------------------------------------
def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, int(value)) if isinstance(value, (int, np.integer)) else (1, str(value))


def _ordered(values: Any, name: str, source: str) -> list:
    if isinstance(values, (set, frozenset)):
        return sorted(values, key=_sort_key)
    values = list(values)
    seen: set = set()
    for value in values:
        if value in seen:
            raise UserError(f"{source}: dialogue {value!r} is listed twice in {name}.")
        seen.add(value)
    return values


def _as_text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _as_int(value: Any) -> int | None:
    if isinstance(value, (int, np.integer)):
        return int(value)
    text = _as_text(value)
    return int(text) if text.isdigit() else None


def _carve_iemocap_dev(layout: Layout, train: list, source: str) -> tuple[list, list, str, list[str], str]:
    """IEMOCAP files without a dev list: COSMIC's 12 validation dialogues come out of train."""
    wanted = set(IEMOCAP_VALIDATION_IDS)
    dev = [v for v in train if _as_text(v) in wanted]
    train = [v for v in train if _as_text(v) not in wanted]
    missing = sorted(wanted - {_as_text(v) for v in dev})
    note = (f"dev = the 12 COSMIC validation dialogues carved out of {layout.train}; train = the rest; "
            f"test = {layout.test}")
    empty_dev = (f"{source}: none of the 12 documented IEMOCAP validation dialogues (COSMIC's split, e.g. "
                 f"{IEMOCAP_VALIDATION_IDS[0]}) is in {layout.train}, so the dev split would be empty")
    warnings = []
    if missing and dev:
        warnings.append(f"{len(missing)} of the 12 documented IEMOCAP validation dialogues are not in "
                        f"{layout.train} ({', '.join(missing)})")
    return train, dev, note, warnings, empty_dev


def _carve_meld_dev(layout: Layout, train: list, source: str) -> tuple[list, list, str, list[str], str]:
    """MELD files without a dev list: the official dev ids come out of train."""
    dev = [v for v in train if _as_int(v) in MELD_DEV_IDS]
    train = [v for v in train if _as_int(v) not in MELD_DEV_IDS]
    note = (f"dev = MELD's official dev set, ids {MELD_DEV_IDS.start}..{MELD_DEV_IDS.stop - 1} in "
            f"{layout.train}; train = the rest; test = {layout.test}")
    empty_dev = (f"{source}: no dialogue ids in {MELD_DEV_IDS.start}..{MELD_DEV_IDS.stop - 1} (MELD's "
                 f"official dev set) in {layout.train}, so the dev split would be empty")
    return train, dev, note, [], empty_dev


def _check_split_ids(layout: Layout, splits: dict[str, list], source: str) -> None:
    """Train and test list dialogues, and no dialogue is in two splits."""
    for split in ("train", "test"):
        if not splits[split]:
            raise UserError(f"{source}: the {split} split ({getattr(layout, split)}) lists no dialogues.")
    owner: dict[Any, str] = {}
    for split, ids in splits.items():
        for value in ids:
            if value in owner:
                raise UserError(f"{source}: dialogue {value!r} is in both the {owner[value]} and the {split} split.")
            owner[value] = split


def _splits(layout: Layout, fields: dict[str, Any], source: str) -> tuple[dict[str, list], str, list[str], str]:
    """The split id lists, a note on where they came from, warnings, and why dev is empty ("" if it is not).

    An empty dev split is reported by the caller after the dialogues are parsed, so a file of the
    wrong family fails on its speakers or labels first, which says more.
    """
    train = _ordered(fields[layout.train], layout.train, source)
    test = _ordered(fields[layout.test], layout.test, source)
    if layout.valid:
        dev = _ordered(fields[layout.valid], layout.valid, source)
        note = f"train = {layout.train}, dev = {layout.valid}, test = {layout.test}, as given in the file"
        warnings: list[str] = []
        empty_dev = f"{source}: the dev split ({layout.valid}) lists no dialogues"
    else:
        carve = _carve_iemocap_dev if layout.family == "iemocap" else _carve_meld_dev
        train, dev, note, warnings, empty_dev = carve(layout, train, source)
    splits = {"train": train, "dev": dev, "test": test}
    _check_split_ids(layout, splits, source)
    return splits, note, warnings, "" if dev else empty_dev


# -- assembly --------------------------------------------------------------------------------------
_LAYER_NAMES = {1: "last", 2: "second-to-last", 3: "third-to-last", 4: "fourth-to-last"}


def _text_reader(layout: Layout, roberta_layer: int | str, source: str) -> tuple[Callable, str, str]:
    """A function (fields, dialogue) -> text matrix, the field name it reads, and a description."""
    if len(layout.text) == 1:
        if roberta_layer != 1:
            raise UserError(
                f"{source} ({layout.name}) has one text feature field; roberta_layer={roberta_layer!r} applies only "
                "to SDT and COSMIC files, which carry four RoBERTa layers. Leave dataset.roberta_layer at 1."
            )
        name = layout.text[0]
        return (lambda fields, d: feature_matrix(fields[name][d], source=source, dialogue=d, field=name)), name, name
    if roberta_layer not in ROBERTA_LAYERS:
        raise UserError(f"roberta_layer {roberta_layer!r} is not one of {', '.join(map(str, ROBERTA_LAYERS))}.")
    if isinstance(roberta_layer, int):
        name = layout.text[roberta_layer - 1]
        return ((lambda fields, d: feature_matrix(fields[name][d], source=source, dialogue=d, field=name)), name,
                f"{name} (RoBERTa-large <s>, {_LAYER_NAMES[roberta_layer]} layer)")

    def combined(fields: dict[str, Any], d: Any) -> np.ndarray:
        layers = [feature_matrix(fields[n][d], source=source, dialogue=d, field=n) for n in layout.text]
        if len({x.shape for x in layers}) != 1:
            raise UserError(f"{source}: dialogue {d!r}: the four RoBERTa layers have different shapes "
                            f"({', '.join(str(x.shape) for x in layers)}).")
        return np.mean(layers, axis=0, dtype=np.float32) if roberta_layer == "mean" else np.hstack(layers)

    label = "+".join(layout.text)
    return combined, label, f"{roberta_layer} of {', '.join(layout.text)} (RoBERTa-large <s>, last four layers)"


def _entry(fields: dict[str, Any], name: str, dialogue: Any, split: str, source: str) -> Any:
    try:
        return fields[name][dialogue]
    except KeyError:
        raise UserError(f"{source}: dialogue {dialogue!r} (in the {split} split) has no entry in field {name}.") \
            from None


@dataclass
class _Assembly:
    """One file's dialogues being built: the fields, their readers, and what was seen so far."""

    layout: Layout
    fields: dict[str, Any]
    source: str
    where: dict[str, str]  # field name -> the file it came from
    family: Any
    readers: dict[str, Callable]  # modality -> (fields, dialogue) -> feature matrix
    names: dict[str, str | None]  # modality -> the field it reads (for messages)
    nan_policy: str
    dims: dict[str, tuple[int, Any]] = field(default_factory=dict)  # modality -> (size, first dialogue)
    non_finite: dict[str, int] = field(default_factory=dict)
    non_finite_dialogues: dict[str, list[str]] = field(default_factory=dict)
    not_one_hot: int = 0

    def __post_init__(self) -> None:
        self.non_finite = {m: 0 for m in self.readers}
        self.non_finite_dialogues = {m: [] for m in self.readers}

    def dialogue(self, split: str, d: Any) -> Dialogue:
        """Dialogue ``d`` of ``split``, every field checked against the others."""
        layout, where = self.layout, self.where
        for name in (layout.labels, layout.speakers, *(n for n in (layout.audio, layout.visual) if n), *layout.text):
            _entry(self.fields, name, d, split, where[name])
        labels = label_array(self.fields[layout.labels][d], source=where[layout.labels], dialogue=d,
                             field=layout.labels, classes=self.family.classes)
        if not len(labels):
            raise UserError(f"{where[layout.labels]}: dialogue {d!r} ({split} split) has no utterances "
                            f"({layout.labels} is empty); remove it from {getattr(layout, split, 'its split list')}.")
        speakers, odd = speaker_indices(self.fields[layout.speakers][d], source=where[layout.speakers], dialogue=d,
                                        field=layout.speakers, num_speakers=self.family.num_speakers,
                                        letters=self.family.name == "iemocap")
        self.not_one_hot += odd
        features = {m: read(self.fields, d) for m, read in self.readers.items()}
        self._check_lengths(split, d, {layout.labels: len(labels), layout.speakers: len(speakers)} | {
            self.names[m]: len(x) for m, x in features.items()})
        features = {m: self._checked(m, d, x) for m, x in features.items()}
        return Dialogue(id=_as_text(d), features=features, speakers=speakers, labels=labels)

    def _check_lengths(self, split: str, d: Any, lengths: dict[str, int]) -> None:
        if len(set(lengths.values())) != 1:
            listed = ", ".join(f"{n} {k}" for n, k in lengths.items())
            raise UserError(f"{self.source}: dialogue {d!r} ({split} split) has different utterance counts per field "
                            f"({listed}); every field needs one entry per utterance.")

    def _checked(self, m: str, d: Any, x: np.ndarray) -> np.ndarray:
        """``x`` with one size per modality across the file; non-finite values counted (and zeroed if asked)."""
        if m not in self.dims:
            self.dims[m] = (x.shape[1], d)
        elif x.shape[1] != self.dims[m][0]:
            raise UserError(f"{self.where.get(self.names[m], self.source)}: dialogue {d!r}, field {self.names[m]}: "
                            f"feature size {x.shape[1]}, but dialogue {self.dims[m][1]!r} has {self.dims[m][0]}; "
                            f"every {m} vector in a file must have the same size.")
        bad = x.size - int(np.count_nonzero(np.isfinite(x)))
        if bad:
            self.non_finite[m] += bad
            self.non_finite_dialogues[m].append(_as_text(d))
            if self.nan_policy == "zero":
                x = np.nan_to_num(x, copy=True, nan=0.0, posinf=0.0, neginf=0.0)
        return x

    def notes(self, provenance: dict[str, Any]) -> list[str]:
        """Warnings on what was repaired; non-finite values refused unless the policy is zero."""
        warnings = []
        if any(self.non_finite.values()):
            counts = ", ".join(f"{m} {n} values in {len(self.non_finite_dialogues[m])} dialogue(s) (first: "
                               f"{self.non_finite_dialogues[m][0]!r})" for m, n in self.non_finite.items() if n)
            if self.nan_policy == "refuse":
                raise UserError(f"{self.source}: non-finite feature values (NaN or inf): {counts}. Refusing to load "
                                "them. Repair the file, or replace them with 0 and record the count: `--nan-policy "
                                "zero` for `merc-bench data convert`, `--set dataset.nonfinite=zero` for "
                                "`merc-bench run`.")
            provenance["non_finite_replaced"] = {m: n for m, n in self.non_finite.items() if n}
            warnings.append(f"replaced non-finite feature values with 0: {counts}")
        if self.not_one_hot:
            warnings.append(f"{self.not_one_hot} speaker vectors were not exactly one-hot; their largest entry was "
                            "used")
        return warnings


def _readers(layout: Layout, text: Callable, where: dict[str, str]) -> dict[str, Callable]:
    """Modality -> a function (fields, dialogue) -> feature matrix, for the modalities the layout has."""
    readers: dict[str, Callable] = {"text": text}
    for modality, name in (("audio", layout.audio), ("visual", layout.visual)):
        if name:
            readers[modality] = (lambda fields, d, name=name: feature_matrix(
                fields[name][d], source=where[name], dialogue=d, field=name))
    return readers


def assemble(layout: Layout, fields: dict[str, Any], *, source: str, nan_policy: str = "refuse",
             roberta_layer: int | str = 1, field_sources: dict[str, str] | None = None,
             notes: tuple[str, ...] | list[str] = ()) -> Corpus:
    """Build and check the Corpus from a detected layout's fields (name -> unpickled value)."""
    if nan_policy not in ("refuse", "zero"):
        raise UserError(f"nan_policy {nan_policy!r} is not known; use refuse or zero.")
    family = FAMILIES[layout.family]
    where = {name: (field_sources or {}).get(name, source) for name in fields}
    splits, split_note, warnings, empty_dev = _splits(layout, fields, source)
    warnings = list(notes) + warnings
    text, text_name, text_choice = _text_reader(layout, roberta_layer, where[layout.text[0]])
    work = _Assembly(layout=layout, fields=fields, source=source, where=where, family=family,
                     readers=_readers(layout, text, where), nan_policy=nan_policy,
                     names={"text": text_name, "audio": layout.audio, "visual": layout.visual})
    corpus_splits = {split: [work.dialogue(split, d) for d in ids] for split, ids in splits.items()}
    if empty_dev:
        raise UserError(f"{empty_dev}; the clean protocol selects the epoch on dev, so train, dev and test each need "
                        "at least one dialogue. Is this a filtered or renumbered file?")
    provenance: dict[str, Any] = {"layout": layout.name, "layout_description": layout.description,
                                  "source": source, "text_feature": text_choice, "splits": split_note,
                                  "nan_policy": nan_policy}
    warnings += work.notes(provenance)
    feature_dims = {m: work.dims[m][0] for m in work.readers}
    if layout.dims and roberta_layer != "concat" and feature_dims != layout.dims:
        warnings.append(f"feature sizes {feature_dims} differ from the documented {layout.dims} for {layout.name}")
    warnings += documented_differences(family, {s: [d.labels for d in ds] for s, ds in corpus_splits.items()})
    provenance["warnings"] = warnings
    info = DatasetInfo(
        name=family.name, family=family.name, classes=family.classes, feature_dims=feature_dims,
        num_speakers=family.num_speakers,
        description=f"{family.name.upper()} features from a {layout.description}; text: {text_choice}",
    )
    return Corpus(info=info, provenance=provenance, **corpus_splits)


# -- entry points ----------------------------------------------------------------------------------
def parse_object(obj: Any, *, source: str, nan_policy: str = "refuse", roberta_layer: int | str = 1) -> Corpus:
    """Detect the layout of an unpickled feature file and parse it."""
    candidates = detect(obj, source)
    fields = dict(zip(candidates[0].fields, obj))
    layout, notes = _choose(candidates, fields, source)
    return assemble(layout, fields, source=source, nan_policy=nan_policy, roberta_layer=roberta_layer, notes=notes)


def is_multiemo_folder(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in MULTIEMO_FILES)


def source_files(path: Path) -> list[Path]:
    """The files a source consists of (one pickle, or MultiEMO's four)."""
    path = Path(path)
    return [path / name for name in MULTIEMO_FILES] if is_multiemo_folder(path) else [path]


def _read_multiemo(folder: Path, *, nan_policy: str, roberta_layer: int | str) -> Corpus:
    speakers_path = folder / MULTIEMO_FILES[0]
    source = str(speakers_path)
    obj = load_pickle(speakers_path)
    candidates = [c for c in detect(obj, source) if c.name in ("mmgcn-meld", "dialoguernn-iemocap", "mmgcn-iemocap")]
    if not candidates:
        raise UserError(f"{source}: MultiEMO's Speakers.pkl should be a DialogueRNN/MMGCN IEMOCAP 9-tuple or an "
                        "MMGCN MELD 10-tuple; this one has another structure.")
    base = candidates[0]
    fields = dict(zip(base.fields, obj))
    field_sources = {}
    for modality, name in zip(("text", "audio", "visual"), MULTIEMO_FILES[1:]):
        values = load_pickle(folder / name)
        if not isinstance(values, dict):
            raise UserError(f"{folder / name}: expected a dict from dialogue id to per-utterance {modality} vectors, "
                            f"got a {type(values).__name__}.")
        key = name.removesuffix(".pkl")
        fields[key] = values
        field_sources[key] = str(folder / name)
    layout = dataclasses.replace(
        base, name=f"multiemo-{base.family}", group="",
        description=f"MultiEMO {base.family.upper()} folder ({', '.join(MULTIEMO_FILES)})",
        fields=base.fields + ("TextFeatures", "AudioFeatures", "VisualFeatures"), text=("TextFeatures",),
        audio="AudioFeatures", visual="VisualFeatures", dims=dict(_MULTIEMO_DIMS))
    return assemble(layout, fields, source=str(folder), nan_policy=nan_policy, roberta_layer=roberta_layer,
                    field_sources=field_sources)


def read_source(path: Path, *, nan_policy: str = "refuse", roberta_layer: int | str = 1) -> Corpus:
    """Parse one community feature file, or a MultiEMO folder, into a checked Corpus."""
    path = Path(path)
    if path.is_dir():
        if is_multiemo_folder(path):
            return _read_multiemo(path, nan_policy=nan_policy, roberta_layer=roberta_layer)
        raise UserError(f"{str(path)!r} is a folder but not a MultiEMO feature folder ({', '.join(MULTIEMO_FILES)}); "
                        "point at a feature file (.pkl) instead.")
    obj = load_pickle(path)
    return parse_object(obj, source=str(path), nan_policy=nan_policy, roberta_layer=roberta_layer)
