"""Recipe ``dialoguernn``: multimodal BiDialogueRNN + emotion attention (Majumder et al., AAAI 2019),
with the settings of the authors' scripts (declare-lab/conv-emotion, DialogueRNN/train_*.py).

Composition: ``linear`` encoder (one projection per modality), ``identity`` mixer, ``dialoguernn``
fuser (early fusion of the projections, see fuser.py), no distiller, no per-modality heads.
Both scripts use the "general" context attention, the emotion attention (att2) and no active
listener; Adam with coupled L2 1e-5; dropout 0.1 and recurrent dropout 0.1 (their dropout + 0.15 =
0.25 on the emotion states); test-set epoch selection, which merc-bench offers as ``--protocol paper``.

* IEMOCAP: lr 1e-4, batch 30 dialogues, 60 epochs, class weights 1 / train frequency (the script
  hard-codes those frequencies; ``inverse_frequency`` computes them from the run's train split),
  D_g = D_p = 500, D_e = D_h = 300 (reference-models.md §3; a later version of the script sets
  D_e = D_h = 500).
* MELD (train_MELD.py): lr 5e-4, batch 30, 100 epochs, no class weights, D_g = D_p = 150,
  D_e = D_h = 100. That script trains on text alone (600-d); we run every modality the dataset has.

Hidden size = D_h: the fused output is the paper's classifier layer l_t (see fuser.py), so H is
300 on IEMOCAP and 100 on MELD. The encoder's per-modality projections have the same size H, so the
concatenated input is 3·300 = 900-d on IEMOCAP, near the paper's 712-d concatenated features.
The authors' bidirectional model widens l_t to 2·D_h; ``--set model.hidden_size=600`` gives that.
"""

from __future__ import annotations

from merc_bench import Recipe

PAPER = "Majumder et al., DialogueRNN: An Attentive RNN for Emotion Detection in Conversations, AAAI 2019"

DIALOGUERNN = Recipe(
    name="dialoguernn",
    description="BiDialogueRNN+Att over early-fused (concatenated) modality projections",
    paper=PAPER,
    requires=("basic",),  # linear encoder, identity mixer, no distiller
    encoder={"name": "linear"},
    mixer={"name": "identity"},
    fuser={
        "name": "dialoguernn",
        "config": {
            "bidirectional": True,
            "context_attention": "general",
            "emotion_attention": True,
            "listener_update": False,
            "state_dropout": 0.1,
            "emotion_dropout": 0.25,
            "dropout": 0.1,
        },
    },
    distiller={"name": "none"},
    model={"hidden_size": 300, "head_dropout": 0.1, "modality_heads": False},
    training={"weight_decay": 1e-5, "batch_size": 30},
    family_defaults={
        "iemocap": {
            "model": {"hidden_size": 300},
            "fuser": {"config": {"global_size": 500, "party_size": 500, "emotion_size": 300}},
            "training": {"lr": 1e-4, "epochs": 60, "class_weights": "inverse_frequency"},
        },
        "meld": {
            "model": {"hidden_size": 100},
            "fuser": {"config": {"global_size": 150, "party_size": 150, "emotion_size": 100}},
            "training": {"lr": 5e-4, "epochs": 100, "class_weights": "none"},
        },
    },
)
