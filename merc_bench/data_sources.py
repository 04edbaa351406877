"""Data sources plugins declare for ``merc-bench data prepare``, ``data convert`` and ``data inspect``.

The core knows no corpus and no file layout (issue 13: "the core knows no paper"). A plugin declares
them through the ``merc_bench_data_sources`` hook, returning any mix of

* :class:`PreparableDataset` — what ``merc-bench data prepare NAME`` does: check the options, put
  the raw files in a folder, verify and parse them into dialogues of utterance texts with speakers
  and labels (:class:`RawCorpus`). The core (:mod:`merc_bench.prepare`) does the rest for every
  dataset alike: the target-folder rules, the text encoder and its embedding cache, the manifest
  and the atomic write. A dataset whose raw release has audio/video also says where each
  utterance's media file is (``media``, returning :class:`MediaFiles`), so ``data prepare NAME
  --media-dir PATH`` adds audio and visual features (:mod:`merc_bench.media_features`).
  A source configured like a registered dataset (``options_of``: the CSV
  corpora of ``data prepare csv`` take the ``conversation-csv`` dataset's options) receives those
  options from ``--dataset-config FILE`` and ``--set dataset.*``, validated by that dataset's config.
* :class:`FeatureFormat` — a file or folder layout ``data convert`` and ``data inspect`` read: the
  file-name endings or the set of files that make one source, and a function reading it into a
  checked :class:`~merc_bench.data.Corpus`. What ``data inspect`` shows is that corpus's summary
  and provenance (``layout``, ``layout_description`` and ``warnings`` get lines of their own).

The built-in datasets plugin declares MELD's raw-annotation preparation and the community feature
pickles / MultiEMO folders exactly this way (``merc_bench_datasets.data_sources``). This module
imports nothing heavy, so the hook specifications can name its classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from merc_bench.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from merc_bench.data import Corpus

__all__ = ["PrepareRequest", "TextDialogue", "RawCorpus", "MediaFiles", "PreparableDataset", "FeatureFormat",
           "DataSources", "declared_data_sources"]


@dataclass(frozen=True)
class PrepareRequest:
    """What ``merc-bench data prepare NAME`` was asked: where to write, and where the raw files are."""

    target: Path  # --to: the folder the prepared dataset will be (written only by the core, atomically)
    source: Path | None  # --from: a local folder holding the raw files (no download)
    url: str | None  # --url: another base URL to download the raw files from
    console: Any  # a rich Console for progress lines
    #: with ``PreparableDataset.options_of``: that dataset's config object, built from --dataset-config and
    #: --set dataset.* (its ``model_fields_set`` tells the options given from the defaults); else None
    dataset_config: Any = None
    text_encoder: str = "minilm"  # --text-encoder: the registered encoder the core embeds the texts with


class TextDialogue(Protocol):
    """One parsed dialogue: utterance texts in speaking order, with per-utterance speakers and labels."""

    id: str
    texts: Sequence[str]

    @property
    def speakers(self) -> np.ndarray: ...  # (n,) int64, 0-based speaker slots

    @property
    def labels(self) -> np.ndarray: ...  # (n,) int64 class ids in ``RawCorpus.classes`` order

    # Optional: ``speaker_names`` (n names, for fine-tuning's "speaker: utterance" inputs; else
    # "speaker 1", ...) and ``features``, modality -> (n, D) float32 of modalities other than text the
    # source already has (``.npy`` audio/visual of a CSV corpus), carried into the folder as they are.


@dataclass
class RawCorpus:
    """What a :class:`PreparableDataset` read from its raw files, before the text features exist."""

    name: str
    family: str
    classes: tuple[str, ...]
    num_speakers: int
    description: str  # the core appends "; text features: <encoder>"
    splits: dict[str, list[TextDialogue]]  # "train", "dev", "test"
    #: split -> sha256 of the raw file it came from; keys the embedding cache, so a changed file never
    #: reuses the vectors of another
    source_sha256: dict[str, str]
    #: where the files came from and how they were read; the core adds ``prepared_by`` before it and
    #: the text encoder, embeddings, warnings and creation time after it
    provenance: dict[str, Any] = field(default_factory=dict)
    #: differences from the published counts: printed as warnings, stored as ``count_warnings``
    warnings: list[str] = field(default_factory=list)
    #: printed after a successful prepare; ``{target}`` is replaced by the prepared folder and
    #: ``{modalities}`` by its modalities, comma-separated
    next_step: str = ""
    #: modality -> size of the non-text features every dialogue carries in ``features`` (none: text only)
    feature_dims: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MediaFiles:
    """Where each utterance's media file should be, as a :class:`PreparableDataset`'s ``media`` finds them."""

    #: split -> one path per utterance, in the order of the split's dialogues and their utterances (the
    #: order of ``RawCorpus.splits``); a path may not exist: the core lists missing files as errors
    files: dict[str, list[Path]]
    #: how the files were found, for the manifest (e.g. "MELD.Raw: train/train_splits/dia{D}_utt{U}.mp4")
    layout: dict[str, str]


@dataclass(frozen=True)
class PreparableDataset:
    """A dataset ``merc-bench data prepare NAME`` builds from its raw files plus text features."""

    name: str
    description: str
    #: refuses contradictory or unusable options (a :class:`UserError`) before anything is fetched
    check: Callable[[PrepareRequest], None]
    #: (request, raw folder) -> RawCorpus: copies or downloads the raw files into the folder (it becomes
    #: ``DIR/raw/``), verifies them and parses them; raises :class:`UserError` on bad input
    read: Callable[[PrepareRequest, Path], RawCorpus]
    #: (media folder, parsed corpus) -> MediaFiles for ``data prepare --media-dir``: where each utterance's
    #: audio/video file is in the dataset's own layout; raises :class:`UserError` when the folder is in no
    #: layout it accepts. None: the dataset has no media layout (``--media-dir`` is refused).
    media: Callable[[Path, RawCorpus], MediaFiles] | None = None
    #: the media layouts ``media`` accepts, one line for ``--help`` and errors
    media_layouts: str = ""
    #: path -> the dialogues of one raw file in this dataset's own format (labels from its label column),
    #: parsed exactly as ``read`` parses a split; ``merc-bench predict --input FILE`` uses it for a model
    #: whose features this source prepared, so new text is read as the training text was. None: the
    #: generic CSV of :mod:`merc_bench.prediction`.
    read_file: Callable[[Path], Sequence[TextDialogue]] | None = None
    #: the registered dataset whose options configure this source (``PrepareRequest.dataset_config``);
    #: None: the source takes no dataset options, and ``--dataset-config`` / ``--set dataset.*`` are refused
    options_of: str | None = None


@dataclass(frozen=True)
class FeatureFormat:
    """A feature-file layout ``merc-bench data convert`` and ``data inspect`` read.

    A file is read by the format whose ``suffixes`` end its name, the longest ending first; the
    empty ending ``""`` makes a format the reader of any other file (the built-in feature pickles,
    whose reader recognises the layout by structure, not by name). A folder that holds every one of
    ``folder_files`` is one source of this format as a whole (MultiEMO's four pickles).
    """

    name: str
    description: str
    #: (path, nan_policy "refuse" | "zero") -> a checked Corpus whose provenance names the layout
    read: Callable[..., Corpus]
    suffixes: tuple[str, ...] = ()
    folder_kind: str = ""  # e.g. "MultiEMO folder"
    folder_files: tuple[str, ...] = ()

    def is_folder(self, path: Path) -> bool:
        """Whether ``path`` is a folder holding every one of :attr:`folder_files`."""
        return bool(self.folder_files) and path.is_dir() and all((path / n).is_file() for n in self.folder_files)

    def files(self, path: Path) -> list[Path]:
        """The files one source consists of: the file itself, or the folder's :attr:`folder_files`."""
        return [path / name for name in self.folder_files] if self.is_folder(path) else [path]

    def matched_suffix(self, path: Path) -> str | None:
        """The longest of :attr:`suffixes` that ends ``path``'s name, or None."""
        matching = [suffix for suffix in self.suffixes if path.name.endswith(suffix)]
        return max(matching, key=len) if matching else None


@dataclass(frozen=True)
class DataSources:
    """Every declared source, by kind; the first plugin to declare a name keeps it."""

    preparable: dict[str, PreparableDataset]
    formats: tuple[FeatureFormat, ...]

    def preparable_dataset(self, name: str) -> PreparableDataset | None:
        return self.preparable.get(name)

    def file_suffixes(self) -> list[str]:
        """The non-empty file-name endings some format reads (for picking files inside a folder)."""
        return list(dict.fromkeys(s for f in self.formats for s in f.suffixes if s))

    def folder_formats(self) -> list[FeatureFormat]:
        return [f for f in self.formats if f.folder_files]

    def format_of_folder(self, path: Path) -> FeatureFormat | None:
        """The format for which ``path`` is one whole source folder, if any."""
        return next((f for f in self.folder_formats() if f.is_folder(path)), None)

    def format_of_file(self, path: Path) -> FeatureFormat | None:
        """The format whose longest suffix ends the file's name (the first declared wins a tie)."""
        best: tuple[int, FeatureFormat] | None = None
        for candidate in self.formats:
            suffix = candidate.matched_suffix(path)
            if suffix is not None and (best is None or len(suffix) > best[0]):
                best = (len(suffix), candidate)
        return best[1] if best else None


def declared_data_sources(hook: Any) -> DataSources:
    """Collect what every plugin's ``merc_bench_data_sources`` hook returns."""
    preparable: dict[str, PreparableDataset] = {}
    formats: dict[str, FeatureFormat] = {}
    for declared in hook.merc_bench_data_sources():
        for source in declared or []:
            if isinstance(source, PreparableDataset):
                preparable.setdefault(source.name, source)
            elif isinstance(source, FeatureFormat):
                formats.setdefault(source.name, source)
            else:
                raise UserError(f"a plugin's merc_bench_data_sources returned {type(source).__name__}, not a "
                                "PreparableDataset or FeatureFormat (merc_bench.data_sources).")
    return DataSources(preparable=preparable, formats=tuple(formats.values()))


def data_sources() -> DataSources:
    """The sources of every loaded plugin (built-ins included)."""
    from merc_bench.plugins import plugin_manager

    return declared_data_sources(plugin_manager().hook)
