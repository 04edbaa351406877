"""Datasets read from files: real corpora and user-supplied conversations.

* ``meld`` and ``iemocap`` — the benchmarks from the community's feature files (SDT, MMGCN,
  DialogueRNN, COSMIC, MultiEMO layouts, read through the safe unpickler) or from a folder written by
  ``merc-bench data convert`` / ``data prepare`` (:mod:`merc_bench_datasets.layouts`,
  :mod:`merc_bench_datasets.sources`).
* ``conversation-csv`` — any conversational emotion corpus as CSV files with a column mapping
  (:mod:`merc_bench_datasets.conversation_csv`).
* ``prepared`` — any folder written by ``data prepare`` / ``data convert``, with the classes and
  family its manifest records (:mod:`merc_bench_datasets.prepared`), e.g. from ``data prepare csv``.
* ``merc-bench data prepare meld`` (MELD's raw annotation CSVs, :mod:`merc_bench_datasets.meld_prepare`),
  ``data prepare csv`` (a conversation-csv corpus, :mod:`merc_bench_datasets.csv_prepare`) and the
  feature-file formats of ``data convert`` / ``data inspect`` reach the core through the
  ``merc_bench_data_sources`` hook (:mod:`merc_bench_datasets.data_sources`).
"""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_datasets import conversation_csv, iemocap, meld, prepared
from merc_bench_datasets.conversation_csv import ConversationCSVConfig, ConversationCSVDataset
from merc_bench_datasets.iemocap import IEMOCAPConfig, IEMOCAPDataset
from merc_bench_datasets.meld import MELDConfig, MELDDataset
from merc_bench_datasets.prepared import PreparedConfig, PreparedDataset

__all__ = ["ConversationCSVConfig", "ConversationCSVDataset", "IEMOCAPConfig", "IEMOCAPDataset", "MELDConfig",
           "MELDDataset", "PreparedConfig", "PreparedDataset", "merc_bench_register"]


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(meld, iemocap, conversation_csv, prepared)


@hookimpl
def merc_bench_data_sources():
    """MELD's and CSV corpora's preparation and the community feature-file formats (``data_sources``)."""
    from merc_bench_datasets.data_sources import DATA_SOURCES

    return DATA_SOURCES
