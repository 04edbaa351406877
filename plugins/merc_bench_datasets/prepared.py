"""The ``prepared`` dataset: any folder written by ``merc-bench data prepare`` or ``data convert``, as it is.

``meld`` and ``iemocap`` read such folders too, but check them against their benchmark (MELD's
seven classes in MELD's order, the family): right for those corpora, a refusal for a corpus of its
own. A folder prepared from a CSV corpus (``merc-bench data prepare csv --dataset-config
corpus.toml --to DIR``, :mod:`merc_bench_datasets.csv_prepare`) has its own classes, family,
speakers and modalities, all in its manifest; this dataset takes them from there::

    merc-bench run sdt --dataset prepared --data-dir DIR

Where it looks: the option ``path``, else ``--data-dir``, else ``$MERC_BENCH_DATA``, else ``./data``
(:func:`merc_bench_datasets.sources.search_root`, as ``meld`` looks). The folder is verified, not
trusted (:func:`merc_bench.feature_store.read_corpus`: manifest schema, files confined to the
folder, sha256, arrays against the manifest). The manifest's ``family`` selects the recipes'
per-family defaults (``meld``, ``iemocap``; another family gets the recipes' general defaults).

Why a dataset of its own rather than ``conversation-csv --data-dir DIR``: conversation-csv's
``--data-dir`` already means the folder its relative CSV paths are read from, and none of its
options (columns, classes, speaker policy) applies to a folder whose dialogues are already built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from merc_bench import component
from merc_bench.data import PATH_OPTION, Corpus
from merc_bench.errors import UserError
from merc_bench.feature_store import MANIFEST, is_feature_store, read_corpus
from merc_bench_datasets.sources import search_root

__all__ = ["PreparedConfig", "PreparedDataset"]


class PreparedConfig(BaseModel):
    """Options of the ``prepared`` dataset."""

    model_config = ConfigDict(extra="forbid")

    path: Annotated[str | None, PATH_OPTION] = Field(
        None, description="the prepared or converted folder (default: --data-dir, else $MERC_BENCH_DATA, else ./data)")
    # merc-bench's generic dataset option, declared so the folder's reader applies it while reading.
    nonfinite: Literal["refuse", "zero"] = Field(
        "refuse", description="refuse NaN/inf features (default), or replace them with 0 and record the count")


@component("dataset", "prepared", config=PreparedConfig,
           description="a folder written by `merc-bench data prepare` or `data convert`, with the classes, family "
           "and features its manifest records (e.g. a CSV corpus from `data prepare csv`)")
class PreparedDataset:
    """A verified feature-store folder, whatever its corpus."""

    def __init__(self, config: PreparedConfig, *, data_dir: Path | None = None) -> None:
        self.config = config
        self.data_dir = data_dir  # build context: the CLI's --data-dir

    def load(self) -> Corpus:
        folder, origin = search_root(self.config.path, self.data_dir)
        if not is_feature_store(folder):
            what = "does not exist" if not folder.exists() else f"has no {MANIFEST}"
            raise UserError(f"the prepared dataset reads a folder written by `merc-bench data prepare` or `data "
                            f"convert`, but {origin} {str(folder)!r} {what}. Write one with `merc-bench data prepare "
                            "csv --dataset-config corpus.toml --to DIR` (or `data prepare meld`, `data convert FILE`) "
                            "and pass --data-dir DIR.")
        return read_corpus(folder, nonfinite=self.config.nonfinite)
