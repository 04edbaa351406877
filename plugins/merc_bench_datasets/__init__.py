"""Datasets read from files: real corpora and user-supplied conversations.

* ``meld`` and ``iemocap`` — the benchmarks from the community's feature files (SDT, MMGCN,
  DialogueRNN, COSMIC, MultiEMO layouts, read through the safe unpickler) or from a folder written by
  ``merc-bench data convert`` / ``data prepare`` (:mod:`merc_bench_datasets.layouts`,
  :mod:`merc_bench_datasets.sources`).
* ``conversation-csv`` — any conversational emotion corpus as CSV files with a column mapping
  (:mod:`merc_bench_datasets.conversation_csv`).
* :mod:`merc_bench_datasets.meld_annotations` parses MELD's raw annotation CSVs for
  ``merc-bench data prepare meld`` (:mod:`merc_bench.prepare`).
"""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_datasets import conversation_csv, iemocap, meld
from merc_bench_datasets.conversation_csv import ConversationCSVConfig, ConversationCSVDataset
from merc_bench_datasets.iemocap import IEMOCAPConfig, IEMOCAPDataset
from merc_bench_datasets.meld import MELDConfig, MELDDataset

__all__ = ["ConversationCSVConfig", "ConversationCSVDataset", "IEMOCAPConfig", "IEMOCAPDataset", "MELDConfig",
           "MELDDataset", "merc_bench_register"]


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(meld, iemocap, conversation_csv)
