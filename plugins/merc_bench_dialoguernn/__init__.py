"""DialogueRNN's components and recipe, registered through merc-bench's public plugin hook.

* fuser ``dialoguernn``: early fusion, then the (Bi)DialogueRNN over the dialogue (the paper's model);
* mixer ``dialoguernn``: the same recurrence over one modality (MultiEMO's context modelling);
* recipe ``dialoguernn``.
"""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_dialoguernn import fuser, mixer
from merc_bench_dialoguernn.recipe import DIALOGUERNN, PAPER


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register(
        "fuser",
        "dialoguernn",
        fuser.DialogueRNNFuser,
        config=fuser.DialogueRNNFuserConfig,
        search_space=fuser.search_space,
        description="early fusion, then (Bi)DialogueRNN with global, party and emotion GRUs",
        paper=PAPER,
    )
    registry.register(
        "mixer",
        "dialoguernn",
        mixer.DialogueRNNMixer,
        config=mixer.DialogueRNNMixerConfig,
        search_space=mixer.search_space,
        description="(Bi)DialogueRNN over one modality's utterances, with speakers",
        paper=PAPER,
    )
    registry.register("recipe", DIALOGUERNN.name, DIALOGUERNN, description=DIALOGUERNN.description, paper=PAPER)
