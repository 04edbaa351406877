"""Published numbers, as data: every result row of the SUMMER paper's Tables I–IV.

Source: Jiagen Li, Rui Yu, Huihao Huang and Huaicheng Yan, "Unimodal-driven Distillation in
Multimodal Emotion Recognition with Dynamic Fusion" (the SUMMER paper), arXiv:2503.23721, 2025
(© 2025 IEEE). Table I: modality subsets; Table II: IEMOCAP (6 classes) and Table III: MELD
(7 classes), per-class ACC and F1 plus w-ACC and w-F1 of SUMMER and its baselines; Table IV: the
SDMoE / HCMF / IKD ablation.

The file ``merc_bench/reference_data/summer_paper.csv`` holds one row per (table, dataset, model,
metric), values in percent exactly as printed (a cell printed "-" has no row). Columns:

* ``table``: ``I``, ``II``, ``III`` or ``IV``; ``dataset``: ``iemocap`` or ``meld``;
* ``model``: the row label as printed ("Teacher Model", "Student Model" = SUMMER, …; Table I:
  the modality subset; Table IV: the modules switched on, "none" to "SDMoE+HCMF+IKD");
* ``recipe``: the merc-bench recipe that implements that model, empty when there is none;
* ``modalities``: merc-bench modality names joined by "+" (Tables II–IV use all three);
* ``metric``: ``acc``, ``weighted_acc``, ``weighted_f1``, ``class_acc:<class>``,
  ``class_f1:<class>`` with merc-bench's class names (IEMOCAP ``hap sad neu ang exc fru``, MELD
  ``neutral surprise fear sadness joy disgust anger``). Tables II–III print "W-ACC", Tables I and IV
  "ACC"; on the same model the two agree (SDT: 74.44 in both), as support-weighted per-class
  accuracy equals accuracy;
* ``value`` (float, percent) and ``source`` (citation and table).

Compare with merc-bench's own results (fractions, ``accuracy`` / ``weighted_f1`` / ``per_class``)
after multiplying those by 100, and only under ``--protocol paper``: the published numbers are
best-test-epoch numbers (reference-models.md §4).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from merc_bench.errors import UserError, unknown_name_message

__all__ = ["published_rows", "CSV_NAME"]

#: The data file, relative to the ``merc_bench`` package.
CSV_NAME = "reference_data/summer_paper.csv"

_TEXT_COLUMNS = ("table", "dataset", "model", "recipe", "modalities", "metric", "source")


def published_rows(dataset: str | None = None, table: str | None = None) -> pd.DataFrame:
    """The SUMMER paper's published rows, optionally only one dataset's and/or one table's.

    ``dataset`` is ``"iemocap"`` or ``"meld"``; ``table`` is ``"I"``, ``"II"``, ``"III"`` or
    ``"IV"``. Rows keep the paper's order; ``value`` is a float in percent, every other column a
    string (``recipe`` is ``""`` where merc-bench has no recipe for the model).
    """
    with resources.files("merc_bench").joinpath(CSV_NAME).open("r", encoding="utf-8") as handle:
        rows = pd.read_csv(handle, dtype={column: str for column in _TEXT_COLUMNS} | {"value": float},
                           keep_default_na=False)
    keep = pd.Series(True, index=rows.index)
    for column, wanted in (("dataset", dataset), ("table", table)):
        if wanted is None:
            continue
        if wanted not in set(rows[column]):
            raise UserError(unknown_name_message(f"published {column}", wanted, set(rows[column])))
        keep &= rows[column] == wanted
    return rows[keep].reset_index(drop=True)  # empty for a table without that dataset (meld, "II")
