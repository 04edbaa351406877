"""Every registered model component passes the contract kit (merc_bench.testing) on every modality subset."""

import pytest
import torch
from pydantic import BaseModel, ConfigDict

from merc_bench.model import FuserOutput
from merc_bench.registry import Registry
from merc_bench.testing import (MODALITY_SUBSETS, check_component, check_config, check_on_modalities,
                                check_search_space, component_entries)

ENTRIES = component_entries()


def test_registry_has_every_kind():
    kinds = {entry.kind for entry in ENTRIES}
    assert kinds == {"encoder", "mixer", "fuser", "distiller"}


def test_the_sweep_covers_the_seven_non_empty_subsets():
    assert len(MODALITY_SUBSETS) == len(set(MODALITY_SUBSETS)) == 7
    assert MODALITY_SUBSETS[0] == ("text", "audio", "visual")
    assert {m for subset in MODALITY_SUBSETS for m in subset} == {"text", "audio", "visual"}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.kind}:{e.name}")
def test_component_config_and_search_space(entry):
    check_config(entry)
    check_search_space(entry)


@pytest.mark.parametrize("modalities", MODALITY_SUBSETS, ids="+".join)
@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.kind}:{e.name}")
def test_component_contract(entry, modalities):
    check_on_modalities(entry, modalities)


def test_only_a_distiller_that_needs_text_refuses_subsets_without_it():
    """Refusing a subset is the exception: every built-in but IKD (its teacher reads text) works on all seven."""
    refused = {(entry.kind, entry.name, subset) for entry in ENTRIES for subset in MODALITY_SUBSETS
               if "text" not in subset and entry.name == "ikd" and not check_on_modalities(entry, subset)}
    assert refused == {("distiller", "ikd", subset) for subset in MODALITY_SUBSETS if "text" not in subset}


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HardCodedVisual(torch.nn.Module):
    """The fuser of the fuzz campaign: fine on text+audio+visual, KeyError: 'visual' on text,audio."""

    def __init__(self, config: _Options, *, hidden_size: int):
        super().__init__()
        self.gate = torch.nn.Linear(hidden_size, hidden_size)

    def forward(self, *, mixed, encoded, mask):
        fused = self.gate(mixed["visual"]) + sum(mixed.values())
        return FuserOutput(fused=fused, per_modality=dict(mixed))


class NamesEveryModality(torch.nn.Module):
    """Returns per-modality outputs for text, audio and visual whatever the run has: heads for absent ones."""

    def __init__(self, config: _Options, *, hidden_size: int):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(hidden_size))

    def forward(self, *, mixed, encoded, mask):
        fused = sum(mixed.values()) * self.scale
        return FuserOutput(fused=fused, per_modality={m: mixed.get(m, fused) for m in ("text", "audio", "visual")})


@pytest.mark.parametrize("fuser, message", [(HardCodedVisual, "KeyError: 'visual'"), (NamesEveryModality, "per_modality has")])
def test_the_kit_catches_a_fuser_that_passes_on_all_three_modalities(fuser, message):
    registry = Registry()
    entry = registry.register("fuser", "broken", fuser, config=_Options)
    assert check_on_modalities(entry, ("text", "audio", "visual"))  # the old kit's only case
    with pytest.raises(AssertionError, match=message):
        check_component(entry)


def _recipe_cases():
    from merc_bench.plugins import get_registry

    return [(entry.name, family) for entry in get_registry().entries("recipe") for family in ("meld", "iemocap")]


@pytest.mark.parametrize("recipe, family", _recipe_cases())
def test_every_recipe_trains_a_step_on_every_modality_subset(recipe, family):
    """The recipes' own options (not only the defaults the kit checks) on all seven subsets: a model step
    with its distiller runs, or the build is refused as one paragraph (IKD without text)."""
    from merc_bench.config import RunConfig
    from merc_bench.data import DatasetInfo
    from merc_bench.errors import UserError
    from merc_bench.losses import masked_cross_entropy
    from merc_bench.model import build_model
    from merc_bench.plugins import get_registry
    from merc_bench.testing import SMALL_CONTEXT, make_batch, small_teacher, subset_context

    registry = get_registry()
    info = DatasetInfo("small", family, tuple("abcd"), dict(SMALL_CONTEXT["feature_dims"]), SMALL_CONTEXT["num_speakers"])
    values = registry.get("recipe", recipe).obj.resolve(family)
    values["model"] = dict(values.get("model", {}), hidden_size=SMALL_CONTEXT["hidden_size"])
    # The kit's dataset has 4 classes, not the family's; the step below uses no class weights.
    values["training"] = dict(values.get("training", {}), class_weights="none")
    refused = []
    for subset in MODALITY_SUBSETS:
        config = RunConfig.model_validate(dict(values, dataset={"name": "synthetic"}, modalities=list(subset)))
        try:
            model, distiller = build_model(config, info, registry)
        except UserError as error:
            refused.append((subset, str(error)))
            continue
        if callable(getattr(distiller, "attach_teacher", None)):
            distiller.attach_teacher(small_teacher(), SMALL_CONTEXT["hidden_size"])
        batch = make_batch(context=subset_context(subset))
        output = model(batch)
        terms = distiller(output=output, batch=batch, class_weights=None)
        loss = masked_cross_entropy(output.logits, batch.labels, batch.mask, None) + sum(terms.values())
        loss = loss + sum(output.aux_losses.values())
        loss.backward()
        assert torch.isfinite(loss), f"{recipe} ({family}) on {'+'.join(subset)}: loss {loss}"
    assert all("text" not in subset and "distiller 'ikd'" in message for subset, message in refused), refused
