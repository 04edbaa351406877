"""Recipe ``multiemo`` (Shi and Huang, ACL 2023), with the settings of the authors' scripts
(TaoShi1998/MultiEMO: Train/TrainMultiEMO.py and its two shell scripts).

Composition: ``linear`` encoder (MultiEMO's per-modality ``*_fc`` to the model dimension),
``dialoguernn`` mixer (unimodal context modelling), ``multiattn`` fuser, ``multiemo-losses``
distiller (CE + SWFC + Soft-HGR, which replaces the plain task loss), no per-modality heads.

Shared: hidden size (model_dim) 256, 4 heads, feed-forward 1024 = 4 × 256, every DialogueRNN state
of size 256 with the "simple" context attention and no listener update, all dropout 0 (the scripts
leave both rates at their default 0), Adam lr 1e-4 with coupled L2 1e-5. ``training.class_weights =
inverse_frequency`` feeds SWFC's sample weights (N_train / n_c)^λ; the cross-entropy stays
unweighted, as in MultiEMO (see losses.py).

* IEMOCAP: bidirectional DialogueRNN followed by Linear(2·256 → 256); 6 MultiAttn layers; batch 64
  dialogues; 100 epochs (the script's default); loss weights CE 0.2, SWFC 0.4, Soft-HGR 0.4;
  τ 0.8 (default), γ 2.4, λ 1.1.
* MELD: unidirectional DialogueRNN without the projection; 2 layers; batch 100; 15 epochs;
  CE 0.4, SWFC 0.3, Soft-HGR 0.3; τ 1.4, γ 2.0 (default), λ 1.2.

Differences from the authors' code (documented, not configurable here):

* on MELD MultiEMO skips context modelling for text; a recipe has one mixer for every modality, so
  text goes through the DialogueRNN too;
* the classifier is the model's linear head, not MultiEMO's two-layer MLP (see fuser.py);
* no ReduceLROnPlateau (factor 0.95, patience 10 on the validation loss): the trainer has no
  scheduler; the authors' seed (2023) and 5 % random validation split are replaced by merc-bench's.

Soft-HGR is computed as the authors' code computes it (``soft_hgr_variant = multiemo_code``, see
losses.py), because the published loss weights were tuned against that scale: it divides by the
number of utterances twice, and Wang et al.'s definition (the distiller's default,
``--set distiller.soft_hgr_variant=wang2019``) is about 200× larger at initialisation on the
synthetic data (25.6 against 0.14 weighted, next to a CE of 0.86) and would dominate the CE.
"""

from __future__ import annotations

from merc_bench import Recipe

PAPER = (
    "Shi and Huang, MultiEMO: An Attention-Based Correlation-Aware Multimodal Fusion Framework "
    "for Emotion Recognition in Conversations, ACL 2023"
)

MULTIEMO = Recipe(
    name="multiemo",
    description="MultiEMO: DialogueRNN context per modality, MultiAttn cross-attention fusion, CE + SWFC + Soft-HGR",
    paper=PAPER,
    requires=("basic", "dialoguernn"),  # the linear encoder; the dialoguernn mixer
    encoder={"name": "linear"},
    mixer={
        "name": "dialoguernn",
        "config": {"context_attention": "simple", "emotion_attention": False, "listener_update": False,
                   "state_dropout": 0.0, "dropout": 0.0},
    },
    fuser={"name": "multiattn", "config": {"heads": 4, "feed_forward_multiplier": 4, "dropout": 0.0}},
    distiller={"name": "multiemo-losses", "config": {"soft_hgr_variant": "multiemo_code"}},
    model={"hidden_size": 256, "head_dropout": 0.0, "modality_heads": False},
    training={"lr": 1e-4, "weight_decay": 1e-5, "class_weights": "inverse_frequency"},
    family_defaults={
        "iemocap": {
            "mixer": {"config": {"bidirectional": True, "output_projection": True}},
            "fuser": {"config": {"layers": 6}},
            "distiller": {"config": {"ce_weight": 0.2, "swfc_weight": 0.4, "soft_hgr_weight": 0.4,
                                     "temperature": 0.8, "focusing": 2.4, "sample_weight_power": 1.1}},
            "training": {"batch_size": 64, "epochs": 100},
        },
        "meld": {
            "mixer": {"config": {"bidirectional": False, "output_projection": False}},
            "fuser": {"config": {"layers": 2}},
            "distiller": {"config": {"ce_weight": 0.4, "swfc_weight": 0.3, "soft_hgr_weight": 0.3,
                                     "temperature": 1.4, "focusing": 2.0, "sample_weight_power": 1.2}},
            "training": {"batch_size": 100, "epochs": 15},
        },
    },
)
