"""Where the ``meld`` and ``iemocap`` datasets find their data, and the behaviour they share.

Resolution order for the folder (or file) to search — the first one given wins:

1. the dataset option ``path`` (``--set dataset.path=...``), a file or a folder;
2. the build-context ``data_dir`` (the CLI's ``--data-dir``);
3. the environment variable ``MERC_BENCH_DATA``;
4. ``./data``.

A file is parsed as a feature pickle. In a folder ``F`` the dataset looks, in this order, for

* a folder written by ``merc-bench data convert`` or ``data prepare`` (a ``manifest.json``): ``F``
  itself, then ``F/<dataset>`` (``F/meld`` or ``F/MELD``) — read through
  :func:`merc_bench.feature_store.read_corpus`, which verifies the whole folder (manifest schema,
  files confined to it, sha256, arrays against the manifest);
* a MultiEMO folder (``Speakers.pkl`` + ``Text/Audio/VisualFeatures.pkl``): ``F``, ``F/<dataset>``;
* any ``*.pkl`` in ``F/<dataset>`` then ``F`` (names containing the dataset's name first), detected by
  structure; files of the other family, of no supported layout, or refused by the safe unpickler
  are skipped and listed.

Parsing a pickle takes a few seconds at full size; ``merc-bench data convert`` writes the safe
``.npz`` format once, which then loads several times faster (benchmarks/convert_speed.py).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from merc_bench.data import PATH_OPTION, Corpus
from merc_bench.errors import UserError
from merc_bench.feature_store import MANIFEST, is_feature_store, read_corpus
from merc_bench.safe_pickle import load_pickle
from merc_bench_datasets.checks import FAMILIES, DatasetWarning
from merc_bench_datasets.layouts import MULTIEMO_FILES, detect, is_multiemo_folder, parse_object, read_source

__all__ = ["FeatureFileConfig", "FeatureFileDataset", "load_family", "search_root"]

_EXAMPLE_FILES = {
    "meld": "meld_multimodal_features.pkl (SDT), MELD_features_raw1.pkl (MMGCN) or meld_features_roberta.pkl (COSMIC)",
    "iemocap": "iemocap_multimodal_features.pkl (SDT), IEMOCAP_features.pkl (MMGCN) or iemocap_features_roberta.pkl "
               "(COSMIC)",
}


class FeatureFileConfig(BaseModel):
    """Options shared by the ``meld`` and ``iemocap`` datasets."""

    model_config = ConfigDict(extra="forbid")

    path: Annotated[str | None, PATH_OPTION] = Field(
        None, description="feature file or folder to read (default: --data-dir, else $MERC_BENCH_DATA, else ./data)"
    )
    # merc-bench's generic dataset option, declared here so the parser can count replacements per file;
    # `nan_policy` is its earlier name, still accepted.
    nonfinite: Literal["refuse", "zero"] = Field(
        "refuse", validation_alias=AliasChoices("nonfinite", "nan_policy"),
        description="refuse NaN/inf features (default), or replace them with 0 and record the count "
                    "(also accepted as nan_policy)",
    )
    roberta_layer: Literal[1, 2, 3, 4, "mean", "concat"] = Field(
        1, description="SDT/COSMIC files: RoBERTa layer for text (1 = last, SDT's input), or mean/concat of the four"
    )


def search_root(path: str | Path | None, data_dir: str | Path | None) -> tuple[Path, str]:
    """The file or folder to search, and where that choice came from."""
    if path:
        return Path(path), "dataset.path"
    if data_dir:
        return Path(data_dir), "--data-dir"
    if os.environ.get("MERC_BENCH_DATA"):
        return Path(os.environ["MERC_BENCH_DATA"]), "$MERC_BENCH_DATA"
    return Path("data"), "the default folder"


def _wrong_family(found: str, family: str, what: str) -> UserError:
    return UserError(f"{what} holds {found.upper()} data, but the dataset {family!r} was asked for; "
                     f"use --dataset {found}, or point --data-dir at {family.upper()} features.")


def _read_store(folder: Path, family: str, roberta_layer: Any, nonfinite: str) -> Corpus:
    corpus = read_corpus(folder, nonfinite=nonfinite)
    if corpus.info.family != family:
        raise _wrong_family(corpus.info.family, family, f"the converted folder {str(folder)!r}")
    expected = FAMILIES[family].classes
    if tuple(corpus.info.classes) != expected:
        raise UserError(f"the converted folder {str(folder)!r} has classes {', '.join(corpus.info.classes)}; "
                        f"the {family} dataset needs {', '.join(expected)} in this order.")
    if roberta_layer != 1:
        raise UserError(f"{str(folder)!r} is a converted folder whose text features were fixed at conversion "
                        f"({corpus.provenance.get('text_feature', 'see its manifest')}); roberta_layer={roberta_layer!r} "
                        "applies only when reading an SDT or COSMIC pickle directly (--set dataset.path=FILE).")
    return corpus


def _subfolders(root: Path, family: str) -> list[Path]:
    names = dict.fromkeys([family, family.upper()])
    return [root / name for name in names]


def load_family(family: str, *, path: str | Path | None, data_dir: str | Path | None, nan_policy: str,
                roberta_layer: Any) -> Corpus:
    """Find and load ``family``'s data (see the module docstring for where it looks)."""
    root, origin = search_root(path, data_dir)
    options = {"nan_policy": nan_policy, "roberta_layer": roberta_layer}
    if root.is_file():
        corpus = read_source(root, **options)
        if corpus.info.family != family:
            raise _wrong_family(corpus.info.family, family, f"{str(root)!r} ({corpus.provenance['layout']})")
        return corpus
    if not root.is_dir():
        raise UserError(_missing_message(family, [f"{origin} {str(root)!r}, which does not exist"], []))
    folders = [root, *_subfolders(root, family)]
    looked = [f"{origin} {str(root)!r}"]
    for folder in folders:
        if is_feature_store(folder):
            return _read_store(folder, family, roberta_layer, nan_policy)
    looked.append("converted folders: " + ", ".join(str(f / MANIFEST) for f in folders))
    for folder in folders:
        if is_multiemo_folder(folder):
            corpus = read_source(folder, **options)
            if corpus.info.family != family:
                raise _wrong_family(corpus.info.family, family, f"the MultiEMO folder {str(folder)!r}")
            return corpus
    looked.append("MultiEMO folders (" + ", ".join(MULTIEMO_FILES) + "): " + ", ".join(map(str, folders)))
    skipped: list[str] = []
    for folder in [*folders[1:], root]:
        pickles = sorted(folder.glob("*.pkl"), key=lambda p: (family not in p.name.lower(), p.name)) \
            if folder.is_dir() else []
        looked.append(f"*.pkl in {folder}" + (f" ({len(pickles)} found)" if folder.is_dir() else " (no such folder)"))
        for candidate in pickles:
            try:
                obj = load_pickle(candidate)
                layout = detect(obj, str(candidate))[0]
            except UserError as error:
                skipped.append(f"{candidate.name}: {error}")
                continue
            if layout.family != family:
                skipped.append(f"{candidate.name}: {layout.family.upper()} features ({layout.name})")
                continue
            corpus = parse_object(obj, source=str(candidate), **options)
            if skipped:
                corpus.provenance["warnings"].append("skipped other pickles: " + "; ".join(skipped))
            return corpus
    raise UserError(_missing_message(family, looked, skipped))


def _missing_message(family: str, looked: list[str], skipped: list[str]) -> str:
    message = f"no {family.upper()} data found. Looked at: " + "; ".join(looked) + "."
    if skipped:
        message += " Skipped: " + "; ".join(skipped) + "."
    if family == "meld":
        message += (" To get data: `merc-bench data prepare meld --to data/meld` builds text features from MELD's "
                    "public annotations (from a local copy of the CSVs add `--from PATH`); or pass `--data-dir PATH` "
                    f"pointing at a community feature file such as {_EXAMPLE_FILES[family]}, a folder holding one, or "
                    "a folder written by `merc-bench data convert`.")
    else:
        message += (" IEMOCAP is licensed by USC SAIL and cannot be downloaded by merc-bench: pass `--data-dir PATH` "
                    f"pointing at a community feature file such as {_EXAMPLE_FILES[family]}, a folder holding one, or "
                    "a folder written by `merc-bench data convert FILE --to data/iemocap`.")
    return message + " MERC_BENCH_DATA sets the default folder (./data)."


class FeatureFileDataset:
    """Shared ``load()`` of the ``meld`` and ``iemocap`` datasets; subclasses set ``family``."""

    family: ClassVar[str]

    def __init__(self, config: FeatureFileConfig, *, data_dir: Path | None = None) -> None:
        self.config = config
        self.data_dir = data_dir  # build context: the CLI's --data-dir

    def load(self) -> Corpus:
        corpus = load_family(self.family, path=self.config.path, data_dir=self.data_dir,
                             nan_policy=self.config.nonfinite, roberta_layer=self.config.roberta_layer)
        notes = list(corpus.provenance.get("warnings") or [])
        if notes:
            source = corpus.provenance.get("feature_store") or corpus.provenance.get("source", "")
            warnings.warn(DatasetWarning(f"{self.family} data from {source}: " + "; ".join(notes) + "."),
                          stacklevel=2)
        return corpus
