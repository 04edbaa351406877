"""Recipe ``dialoguegcn``: DialogueGCN as published (Ghosal et al., EMNLP 2019; settings from §4.3 of
the paper and reference-models.md §3).

Both families: Adam, lr 1e-4, L2 weight decay 1e-5, dropout 0.5, batch 32 dialogues, 60 epochs,
windows 10/10, 2-layer BiGRU over the early-fused features (the linear encoder projects each
modality to H first; a linear map followed by the GRU's own input map is still linear, so this only
adds a low-rank factorisation), nodal attention on. H = 200, the size of the paper's g_i (2 × 100).

IEMOCAP: the paper's 2·M² = 8 relations from the dataset's two speaker slots (M/F, as in the
authors' code) and the authors' class weights (1 / train frequency, the numbers SDT also uses).

MELD (the paper reports MELD but the authors' repository has no MELD script; chosen here): the same
optimiser settings, no class weights, relations over the 9 speaker slots of the MELD files (which are
the order of first appearance in each dialogue) with 30 bases, the basis count of the authors'
RGCN layer; 2·9² = 162 relations without bases would add 6.5M rarely trained weights.
"""

from __future__ import annotations

from merc_bench import Recipe
from merc_bench.class_weights import IEMOCAP_INVERSE_FREQUENCY

PAPER = "Ghosal et al., DialogueGCN: A Graph Convolutional Neural Network for ERC, EMNLP 2019"

DIALOGUEGCN = Recipe(
    name="dialoguegcn",
    description="DialogueGCN: BiGRU over early-fused features, speaker-relational graph (RGCN + GCN)",
    paper=PAPER,
    requires=("basic",),  # linear encoder, identity mixer, no distiller
    encoder={"name": "linear"},
    mixer={"name": "identity"},
    fuser={
        "name": "dialoguegcn",
        "config": {
            "context": "bigru",
            "gru_layers": 2,
            "window_past": 10,
            "window_future": 10,
            "relations": "speaker_pairs",
            "speaker_order": "dataset",
            "dialogue_attention": True,
            "dropout": 0.5,
        },
    },
    distiller={"name": "none"},
    model={"hidden_size": 200, "head_dropout": 0.5, "modality_heads": False},
    training={"lr": 1e-4, "weight_decay": 1e-5, "batch_size": 32, "epochs": 60},
    family_defaults={
        "iemocap": {"training": {"class_weights": IEMOCAP_INVERSE_FREQUENCY}},
        "meld": {"training": {"class_weights": "none"}, "fuser": {"config": {"bases": 30}}},
    },
)
