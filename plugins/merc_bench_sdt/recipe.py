"""Recipe ``sdt``: SDT as published (Ma et al. 2023; hyper-parameters from the authors' scripts,
reference-models.md §2).

Hidden size 1024, 8 heads, dropout 0.5 everywhere, Adam with coupled weight decay 1e-5.
IEMOCAP family: lr 1e-4, batch 16 dialogues, 150 epochs, T = 1, learned unimodal gates, class
weights 1/train frequency as in SDT's script. MELD family: lr 5e-6, batch 8, 50 epochs, T = 8,
unimodal gates frozen to the identity, no class weights.
"""

from __future__ import annotations

from merc_bench import Recipe
from merc_bench.class_weights import IEMOCAP_INVERSE_FREQUENCY

PAPER = "Ma et al., IEEE TMM 2023 (SDT)"


SDT = Recipe(
    name="sdt",
    description="SDT: intra/cross-modal transformers, gated fusion, self-distillation",
    paper="Ma et al., A Transformer-Based Model With Self-Distillation for MERC, IEEE TMM 2023",
    encoder={"name": "speaker-position"},
    mixer={"name": "transformer", "config": {"heads": 8, "dropout": 0.5}},
    fuser={"name": "cross-modal-transformer", "config": {"heads": 8, "dropout": 0.5}},
    distiller={"name": "self-distillation"},
    model={"hidden_size": 1024, "head_dropout": 0.5, "modality_heads": True},
    training={"weight_decay": 1e-5},
    family_defaults={
        "iemocap": {
            "training": {"lr": 1e-4, "batch_size": 16, "epochs": 150, "class_weights": IEMOCAP_INVERSE_FREQUENCY},
            "fuser": {"config": {"unimodal_gate": "learned"}},
            "distiller": {"config": {"temperature": 1.0}},
        },
        "meld": {
            "training": {"lr": 5e-6, "batch_size": 8, "epochs": 50, "class_weights": "none"},
            "fuser": {"config": {"unimodal_gate": "frozen_identity"}},
            "distiller": {"config": {"temperature": 8.0}},
        },
    },
)
