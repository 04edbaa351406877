"""The ``meld`` dataset: MELD (Poria et al., ACL 2019) from the community's feature files.

Reads any MELD layout of ``shared/docs/reference-models.md`` §1 — SDT's 13-tuple
(``meld_multimodal_features.pkl``, text 1024 / audio 300 / visual 342), MMGCN's 10-tuple
(``MELD_features_raw1.pkl``, 600/300/342), DialogueRNN's 9-tuple (``MELD_features_raw.pkl``, text and
audio only), COSMIC's RoBERTa lists (``meld_features_roberta.pkl``, text only), a MultiEMO folder —
through the safe unpickler, or a folder written by ``merc-bench data convert`` / ``data prepare``.
Where it looks: :mod:`merc_bench_datasets.sources`; how each layout is parsed:
:mod:`merc_bench_datasets.layouts`.

Classes (index order of every MELD file): ``neutral surprise fear sadness joy disgust anger``.
Speakers: 9 slots, the files' one-hot vectors (index = order of first appearance within the
dialogue; MELD has no global speaker identity). Splits: train 1038 dialogues, dev 114 (the official
dev set, ids 1039..1152 inside the SDT/MMGCN/DialogueRNN training list), test 280. Sizes or class
counts that differ from these are reported as a :class:`~merc_bench_datasets.checks.DatasetWarning`.
"""

from __future__ import annotations

from merc_bench import component
from merc_bench_datasets.sources import FeatureFileConfig, FeatureFileDataset

__all__ = ["MELDConfig", "MELDDataset"]


class MELDConfig(FeatureFileConfig):
    """Options of the ``meld`` dataset (see :class:`~merc_bench_datasets.sources.FeatureFileConfig`)."""


@component("dataset", "meld", config=MELDConfig, paper="Poria et al., ACL 2019",
           description="MELD (7 classes) from a community feature file (SDT, MMGCN, DialogueRNN, COSMIC, MultiEMO) "
           "or a converted/prepared folder")
class MELDDataset(FeatureFileDataset):
    """MELD from a community feature file or a converted folder: 7 classes, 9 speaker slots."""

    family = "meld"
