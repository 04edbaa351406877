"""Reference components every comparison needs: linear encoder, identity and BiGRU mixers,
concatenation and mean fusers, no distiller, and the ``bigru-concat`` recipe built from them."""

from __future__ import annotations

from merc_bench import Recipe, hookimpl
from merc_bench_basic import bigru_mixer, concat_fuser, identity_mixer, linear_encoder, mean_fuser, no_distiller

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


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register("encoder", "linear", linear_encoder.LinearEncoder, config=linear_encoder.LinearEncoderConfig)
    registry.register("mixer", "identity", identity_mixer.IdentityMixer, config=identity_mixer.IdentityMixerConfig)
    registry.register(
        "mixer", "bigru", bigru_mixer.BiGRUMixer, config=bigru_mixer.BiGRUMixerConfig, search_space=bigru_mixer.search_space
    )
    registry.register(
        "fuser", "concat", concat_fuser.ConcatFuser, config=concat_fuser.ConcatFuserConfig,
        search_space=concat_fuser.search_space,
    )
    registry.register("fuser", "mean", mean_fuser.MeanFuser, config=mean_fuser.MeanFuserConfig)
    registry.register("distiller", "none", no_distiller.NoDistiller, config=no_distiller.NoDistillerConfig)
    registry.register("recipe", "bigru-concat", BIGRU_CONCAT, description=BIGRU_CONCAT.description)
