"""The SUMMER paper's ablation grids, declared for ``merc-bench ablate`` (hook ``merc_bench_ablation_grids``).

* ``components`` (Table IV): the 8 combinations of {SDMoE vs SDT's intra-modal transformer} ×
  {HCMF vs SDT's cross-modal fusion} × {IKD vs SDT's self-distillation}, in the paper's row order,
  each reported with ACC and w-F1 and the difference from the all-SDT row.
* ``modalities`` (Table I): the 7 non-empty modality subsets through SDT's original attention path
  (recipe ``sdt``).

A swapped-in SDT component takes its options from the ``sdt`` recipe for the dataset's family;
everything else (sizes, training) comes from the recipe being ablated. Self-distillation needs
per-modality heads, so rows with it switch them on. The ``sdt`` recipe is looked up in the
registry (its plugin must be loaded), not imported.

The components grid has two options (``--grid-option KEY=VALUE``, ``grid_options={...}``), so that
each column measures one thing:

* ``row1`` — ``sdt`` (default): row 1 (no SUMMER component) is SDT exactly as published, the
  ``sdt`` recipe's model and training settings for the family (what the paper's row 1 reports);
  ``recipe``: SDT's components inside the ablated recipe's sizes and training settings, so that
  row 1 differs from the others only in components, not in schedule.
* ``ikd`` — ``replace`` (default): an IKD row drops SDT's self-distillation and the modality
  heads (the paper's objective, eq. 10, has no other distillation term); ``add``: an IKD row keeps
  both and adds IKD's terms, so the IKD column measures IKD alone, not IKD minus self-distillation.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from merc_bench import AblationGrid, UserError

#: Table IV's row order: (SDMoE, HCMF, IKD).
COMPONENT_ROWS = [
    (False, False, False), (True, False, False), (False, True, False), (False, False, True),
    (True, True, False), (False, True, True), (True, False, True), (True, True, True),
]
SUMMER_PARTS = {"mixer": "sdmoe", "fuser": "hcmf", "distiller": "ikd"}
PAPER = "SUMMER paper, Tables IV and I"


class ComponentGridOptions(BaseModel):
    """Options of the ``components`` grid (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    row1: Literal["sdt", "recipe"] = Field(
        "sdt", description="row 1's settings: sdt = the sdt recipe as published for the family; recipe = "
        "SDT's components with the ablated recipe's sizes and training")
    ikd: Literal["replace", "add"] = Field(
        "replace", description="replace = IKD rows drop SDT's self-distillation and modality heads (the paper's "
        "objective); add = IKD rows keep both and add IKD's terms")


def describe_component_options(options: ComponentGridOptions) -> str:
    """The caption's sentence on what the options chose."""
    row1 = ("SDT as published (recipe sdt's model and training settings)" if options.row1 == "sdt" else
            "SDT's components with the ablated recipe's model and training settings")
    ikd = ("IKD replaces SDT's self-distillation and modality heads" if options.ikd == "replace" else
           "IKD is added to SDT's self-distillation and modality heads")
    return f"Row 1 (row1={options.row1}): {row1}. IKD rows (ikd={options.ikd}): {ikd}."


def _uses_summer_parts(registry: Any, recipe: str) -> bool:
    values = registry.get("recipe", recipe).obj.resolve("meld")
    return all(values[slot]["name"] == name for slot, name in SUMMER_PARTS.items())


def component_rows(registry: Any, recipe: str | None, info: Any,
                   options: ComponentGridOptions | None = None) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(row labels, run-config values without dataset) for each of the 8 component combinations."""
    recipe, options = recipe or "summer", options or ComponentGridOptions()
    base = registry.get("recipe", recipe).obj.resolve(info.family)
    if any(base[slot]["name"] != name for slot, name in SUMMER_PARTS.items()):
        raise UserError(f"recipe {recipe!r} does not use SDMoE, HCMF and IKD; ablate a SUMMER recipe "
                        "(summer, summer-wide or summer-small).")
    sdt = registry.get("recipe", "sdt").obj.resolve(info.family)
    rows = []
    for flags in COMPONENT_ROWS:
        labels = {"SDMoE": "✓" if flags[0] else "✗", "HCMF": "✓" if flags[1] else "✗", "IKD": "✓" if flags[2] else "✗"}
        if not any(flags) and options.row1 == "sdt":
            rows.append((labels, copy.deepcopy(sdt)))  # the recipe itself: its seeds are shared with `run sdt`
            continue
        values = copy.deepcopy(base)
        for (slot, _), use_summer in zip(SUMMER_PARTS.items(), flags):
            if not use_summer:
                values[slot] = copy.deepcopy(sdt[slot])
        if flags[2] and options.ikd == "add":  # IKD's terms beside SDT's self-distillation, at SDT's temperature
            temperature = sdt["distiller"]["config"].get("temperature", 1.0)
            values["distiller"]["config"]["self_distillation_temperature"] = temperature
        values["model"]["modality_heads"] = not flags[2] or options.ikd == "add"
        values["recipe"] = f"{recipe}[{'+'.join(n for (s, n), f in zip(SUMMER_PARTS.items(), flags) if f) or 'sdt'}]"
        rows.append((labels, values))
    return rows


def modality_rows(registry: Any, recipe: str | None, info: Any) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """Table I: every non-empty modality subset of the dataset through ``recipe`` (default SDT's attention path)."""
    recipe = recipe or "sdt"
    base = registry.get("recipe", recipe).obj.resolve(info.family)
    rows = []
    for size in range(1, len(info.modalities) + 1):
        for subset in itertools.combinations(info.modalities, size):
            values = copy.deepcopy(base)
            values["modalities"] = list(subset)
            values["recipe"] = f"{recipe}[{'+'.join(subset)}]"
            rows.append(({"modalities": "+".join(subset)}, values))
    return rows


GRIDS = [
    AblationGrid(name="components", description="Table IV: SDMoE × HCMF × IKD against SDT's parts (8 rows)",
                 label_columns=("SDMoE", "HCMF", "IKD"), rows=component_rows, applies_to=_uses_summer_parts,
                 default_recipe="summer", paper=PAPER, options=ComponentGridOptions,
                 describe=describe_component_options),
    AblationGrid(name="modalities", description="Table I: every modality subset through SDT (7 rows)",
                 label_columns=("modalities",), rows=modality_rows, default_recipe="sdt", paper=PAPER),
]
