"""DialogueRNN's components and recipe, registered through merc-bench's public plugin hook.

* fuser ``dialoguernn``: early fusion, then the (Bi)DialogueRNN over the dialogue (the paper's model);
* mixer ``dialoguernn``: the same recurrence over one modality (MultiEMO's context modelling);
* recipe ``dialoguernn``.
"""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_dialoguernn import fuser, mixer
from merc_bench_dialoguernn.recipe import DIALOGUERNN


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(fuser, mixer)
    registry.register("recipe", DIALOGUERNN.name, DIALOGUERNN, description=DIALOGUERNN.description,
                      paper=DIALOGUERNN.paper)
