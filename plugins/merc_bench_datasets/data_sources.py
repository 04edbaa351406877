"""The datasets plugin's data sources, declared through the ``merc_bench_data_sources`` hook.

* ``meld`` — ``merc-bench data prepare meld``: MELD's raw annotation CSVs
  (:mod:`merc_bench_datasets.meld_prepare`, parsed by :mod:`merc_bench_datasets.meld_annotations`).
* ``csv`` (alias ``conversation-csv``) — ``merc-bench data prepare csv --dataset-config corpus.toml``:
  a corpus described by the conversation-csv dataset's options (:mod:`merc_bench_datasets.csv_prepare`).
* ``feature-pickle`` — ``data convert`` / ``data inspect`` of a community feature pickle (SDT,
  MMGCN, DialogueRNN, COSMIC; :mod:`merc_bench_datasets.layouts` recognises the layout by structure,
  so this format reads any file that no other format claims by its name).
* ``multiemo-folder`` — the same for MultiEMO's folder of four pickles.

The core reaches these only through the hook, as it would a third party's.
"""

from __future__ import annotations

from merc_bench.data_sources import FeatureFormat, PreparableDataset
from merc_bench_datasets import csv_prepare, meld_media, meld_prepare
from merc_bench_datasets.layouts import MULTIEMO_FILES, read_source

__all__ = ["DATA_SOURCES"]

_CSV = "any conversation corpus as CSV files, described by the conversation-csv dataset's options (--dataset-config " \
    "corpus.toml, --set dataset.KEY=VALUE)"

DATA_SOURCES = [
    PreparableDataset(
        name="meld", description="MELD (Poria et al., ACL 2019) from its annotation CSVs at declare-lab/MELD "
        f"commit {meld_prepare.MELD_COMMIT[:7]}, checksummed", check=meld_prepare.check, read=meld_prepare.read,
        media=meld_media.media_files, media_layouts=meld_media.LAYOUTS, read_file=meld_prepare.read_file),
    PreparableDataset(name="csv", description=_CSV, check=csv_prepare.check, read=csv_prepare.read,
                      options_of="conversation-csv"),
    PreparableDataset(name="conversation-csv", description=f"the same as csv: {_CSV}", check=csv_prepare.check,
                      read=csv_prepare.read, options_of="conversation-csv"),
    FeatureFormat(
        name="feature-pickle", description="a community feature pickle (SDT, MMGCN, DialogueRNN or COSMIC layout, "
        "recognised by its structure)", read=read_source, suffixes=(".pkl", "")),
    FeatureFormat(
        name="multiemo-folder", description=f"MultiEMO's feature folder ({', '.join(MULTIEMO_FILES)})",
        read=read_source, folder_kind="MultiEMO folder", folder_files=MULTIEMO_FILES),
]
