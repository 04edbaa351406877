"""Recipe ``mmgcn``: MMGCN as published (Hu et al., ACL 2021; settings from the authors' run script,
reference-models.md §3).

Both families: Adam, batch 16 dialogues, 60 epochs, dropout 0.4, 4 GCNII layers with α = 0.1 and
λ = 0.5 applied as in the authors' code (W on [P̃H; H⁽⁰⁾]), speaker embedding on the text nodes only
(as the authors' code does), the input residual on, H = 200 (the authors' node size, 2 × 100).
Modality encoders: MMGCN runs a 2-layer BiLSTM over the text utterances and linear layers for audio
and visual; merc-bench names one mixer for every modality, so this recipe uses the ``linear``
encoder and a 2-layer ``bigru`` mixer on all three (the authors' ``--av_using_lstm`` option gives
audio and visual the recurrence too).

IEMOCAP: lr 3e-4, L2 3e-5, the authors' class weights (1 / train frequency), cross-entropy.
MELD: lr 1e-3, L2 0, no class weights, and the focal loss of the authors' code (γ = 2.5, α = 1,
``form = "mmgcn_code"``; see focal_loss.py for how it differs from Lin et al.'s) instead of
cross-entropy.
"""

from __future__ import annotations

from merc_bench import Recipe
from merc_bench.class_weights import IEMOCAP_INVERSE_FREQUENCY

PAPER = "Hu et al., MMGCN: Multimodal Fusion via Deep Graph Convolution Network for ERC, ACL 2021"

MMGCN = Recipe(
    name="mmgcn",
    description="MMGCN: (utterance, modality) graph with speaker embeddings, 4-layer GCNII",
    paper=PAPER,
    requires=("basic",),  # linear encoder, bigru mixer, no distiller
    encoder={"name": "linear"},
    mixer={"name": "bigru", "config": {"layers": 2, "dropout": 0.4}},
    fuser={
        "name": "mmgcn",
        "config": {
            "layers": 4,
            "alpha": 0.1,
            "lamda": 0.5,
            "layer_weight": "concatenated",
            "speaker_embedding": "text",
            "input_residual": True,
            "dropout": 0.4,
        },
    },
    distiller={"name": "none"},
    model={"hidden_size": 200, "head_dropout": 0.4, "modality_heads": False},
    training={"batch_size": 16, "epochs": 60},
    family_defaults={
        "iemocap": {"training": {"lr": 3e-4, "weight_decay": 3e-5, "class_weights": IEMOCAP_INVERSE_FREQUENCY}},
        "meld": {
            "training": {"lr": 1e-3, "weight_decay": 0.0, "class_weights": "none"},
            "distiller": {"name": "focal-loss", "config": {"gamma": 2.5, "alpha": 1.0, "form": "mmgcn_code"}},
        },
    },
)
