"""Reference components every comparison needs: linear encoder, identity and BiGRU mixers,
concatenation, mean and concat-BiGRU fusers, no distiller and per-modality cross-entropy, and the
reference recipes built from them:

* ``bigru-concat``: a BiGRU per modality (context first), then concatenation (fusion second);
* ``early-fusion``: concatenation of the encoded modalities (fusion first), then one BiGRU;
* ``late-fusion``: one linear → BiGRU → head model per modality, each trained on its own
  cross-entropy, predictions averaged over modalities (fusion of decisions only).

None of the three is a published model, so their settings are ours: hidden size 256, Adam with
lr 1e-3 and coupled weight decay 1e-5, batches of 16 dialogues, 20 (bigru-concat) or 30 epochs,
no class weights, the same for MELD and IEMOCAP (no ``family_defaults``).
"""

from __future__ import annotations

from merc_bench import Recipe, hookimpl
from merc_bench_basic import (
    bigru_mixer,
    concat_bigru_fuser,
    concat_fuser,
    identity_mixer,
    linear_encoder,
    mean_fuser,
    no_distiller,
    per_modality_ce,
)

BIGRU_CONCAT = Recipe(
    name="bigru-concat",
    description="a BiGRU context encoder per modality, then concatenation: a cheap reference",
    encoder={"name": "linear"},
    mixer={"name": "bigru"},
    fuser={"name": "concat"},
    distiller={"name": "none"},
    model={"hidden_size": 256, "head_dropout": 0.1, "modality_heads": False},
    training={"lr": 1e-3, "weight_decay": 1e-5, "batch_size": 16, "epochs": 20},
)

# Our settings for both fusion references (no paper publishes them): one training budget for both,
# so that the two differ only in where the modalities meet.
_REFERENCE_TRAINING = {"lr": 1e-3, "weight_decay": 1e-5, "batch_size": 16, "epochs": 30}

EARLY_FUSION = Recipe(
    name="early-fusion",
    description="early fusion: concatenate the encoded modalities, then one BiGRU over the dialogue",
    encoder={"name": "linear"},
    mixer={"name": "identity"},
    fuser={"name": "concat-bigru"},
    distiller={"name": "none"},
    model={"hidden_size": 256, "head_dropout": 0.1, "modality_heads": False, "prediction": "fused"},
    training=dict(_REFERENCE_TRAINING),
)

LATE_FUSION = Recipe(
    name="late-fusion",
    description="late fusion: a BiGRU model per modality on its own loss, class probabilities averaged",
    encoder={"name": "linear"},
    mixer={"name": "bigru"},
    fuser={"name": "mean"},
    distiller={"name": "per-modality-ce"},
    model={"hidden_size": 256, "head_dropout": 0.1, "modality_heads": True, "prediction": "modality_average"},
    training=dict(_REFERENCE_TRAINING),
)


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(linear_encoder, identity_mixer, bigru_mixer, concat_fuser, mean_fuser,
                               concat_bigru_fuser, no_distiller, per_modality_ce)
    for recipe in (BIGRU_CONCAT, EARLY_FUSION, LATE_FUSION):
        registry.register("recipe", recipe.name, recipe, description=recipe.description)
