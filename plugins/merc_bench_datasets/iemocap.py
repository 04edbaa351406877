"""The ``iemocap`` dataset: IEMOCAP (Busso et al., LRE 2008), 6-way, from the community's feature files.

Reads any IEMOCAP layout of ``shared/docs/reference-models.md`` §1 — SDT's 12-tuple
(``iemocap_multimodal_features.pkl``, Python 2 era, text 1024 / audio 1582 / visual 342), the
DialogueRNN (``IEMOCAP_features_raw.pkl``, 100/100/512) and MMGCN (``IEMOCAP_features.pkl``,
100/1582/342) 9-tuples, COSMIC's RoBERTa lists (``iemocap_features_roberta.pkl``, text only), a
MultiEMO folder — through the safe unpickler, or a folder written by ``merc-bench data convert``.
IEMOCAP's licence forbids redistribution, so there is no ``data prepare`` for it.

Classes (index order of every IEMOCAP file): ``hap sad neu ang exc fru``. Speakers: 2 slots, the
files' ``'M'``/``'F'`` mapped M → 0, F → 1 (SDT's one-hot order). Splits: the files' 120 training
dialogues minus COSMIC's 12 validation dialogues (listed in
:data:`~merc_bench_datasets.checks.IEMOCAP_VALIDATION_IDS`) for train, those 12 for dev, the 31
Session-5 dialogues for test. Sizes or class counts that differ from the documented ones are
reported as a :class:`~merc_bench_datasets.checks.DatasetWarning`.
"""

from __future__ import annotations

from merc_bench import component
from merc_bench_datasets.sources import FeatureFileConfig, FeatureFileDataset

__all__ = ["IEMOCAPConfig", "IEMOCAPDataset"]


class IEMOCAPConfig(FeatureFileConfig):
    """Options of the ``iemocap`` dataset (see :class:`~merc_bench_datasets.sources.FeatureFileConfig`)."""


@component("dataset", "iemocap", config=IEMOCAPConfig, paper="Busso et al., LRE 2008",
           description="IEMOCAP (6 classes) from a community feature file (SDT, MMGCN, DialogueRNN, COSMIC, "
           "MultiEMO) or a converted folder")
class IEMOCAPDataset(FeatureFileDataset):
    """IEMOCAP from a community feature file or a converted folder: 6 classes, 2 speakers."""

    family = "iemocap"
