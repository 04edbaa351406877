"""SDT's components and recipe, registered through merc-bench's public plugin hook."""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_sdt import distiller, encoder, fuser, mixer
from merc_bench_sdt.recipe import SDT

PAPER = "Ma et al., IEEE TMM 2023 (SDT)"


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register(
        "encoder",
        "speaker-position",
        encoder.SpeakerPositionEncoder,
        config=encoder.SpeakerPositionEncoderConfig,
        paper=PAPER,
    )
    registry.register(
        "mixer",
        "transformer",
        mixer.TransformerMixer,
        config=mixer.TransformerMixerConfig,
        search_space=mixer.search_space,
        paper=PAPER,
    )
    registry.register(
        "fuser",
        "cross-modal-transformer",
        fuser.CrossModalFuser,
        config=fuser.CrossModalFuserConfig,
        search_space=fuser.search_space,
        paper=PAPER,
    )
    registry.register(
        "distiller",
        "self-distillation",
        distiller.SelfDistillation,
        config=distiller.SelfDistillationConfig,
        search_space=distiller.search_space,
        paper=PAPER,
    )
    registry.register("recipe", "sdt", SDT, description=SDT.description, paper=SDT.paper)
