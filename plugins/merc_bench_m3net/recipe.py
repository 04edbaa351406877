"""Recipe ``m3net``: M3Net as published (Chen et al., CVPR 2023). Settings from the authors' run
commands (feiyuchen7/M3NET, README "Training examples") and the defaults of their ``train.py`` /
``model.py`` / ``model_hyper.py`` for what those commands do not set; the paper's implementation
details were not at hand to compare line by line.

Both families: Adam, lr 1e-4, L2 weight decay 3e-5 (``train.py``'s ``--l2`` default), batch 16
dialogues, H = 512 (the code's ``D_g`` and graph size ``graph_h``), 3 hypergraph layers and 4
multi-frequency layers (``num_L``, ``num_K``), the whole dialogue as the intra-modal context
(``--graph_construct direct``), speaker embedding on the text nodes only (``--use_speaker``), no
input residual (``--use_residue`` not passed). Modality encoders: the code maps each modality
linearly to 512 and runs a 2-layer BiGRU over the text only (``--base-model GRU``, no
``--av_using_lstm``); merc-bench names one mixer for every modality, so this recipe runs the
``linear`` encoder and a 2-layer ``bigru`` mixer on all three (a difference, as in ``mmgcn``).

IEMOCAP (``--dropout 0.5 --epochs 80``): the authors' class weights (1 / train frequency, the same
numbers as SDT and MMGCN), cross-entropy.
MELD (``--dropout 0.4 --epochs 15``): no class weights and the focal loss of the code (γ = 2.5, α = 1,
MMGCN's ``form = "mmgcn_code"``, from the ``mmgcn`` plugin) instead of cross-entropy.

Not reproduced: the code's batch normalisation of the text features (``--norm BN``) and its average of
the four RoBERTa layers of the SDT/M3Net feature files (a dataset option here), its fixed seeds (1746
IEMOCAP, 67137 MELD) and its best-test-epoch selection (merc-bench's ``paper`` protocol offers that).

Published numbers: the paper's result tables could not be read here, so none are recorded in
``merc_bench/reference_data`` (only numbers checked against the paper belong there).
"""

from __future__ import annotations

from merc_bench import Recipe
from merc_bench.class_weights import IEMOCAP_INVERSE_FREQUENCY

PAPER = ("Chen et al., Multivariate, Multi-frequency and Multimodal: Rethinking Graph Neural Networks "
         "for Emotion Recognition in Conversation, CVPR 2023")

M3NET = Recipe(
    name="m3net",
    description="M3Net: (utterance, modality) hypergraph plus a graph mixing low- and high-frequency messages",
    paper=PAPER,
    requires=("basic", "mmgcn"),  # linear encoder, bigru mixer, no distiller; MMGCN's focal loss on MELD
    encoder={"name": "linear"},
    mixer={"name": "bigru", "config": {"layers": 2, "dropout": 0.5}},
    fuser={
        "name": "m3net",
        "config": {
            "hypergraph_layers": 3,
            "frequency_layers": 4,
            "frequency": "adaptive",
            "epsilon": 1.0,
            "hyperedge_weights": "learned",
            "hypergraph_transform": False,
            "speaker_embedding": "text",
            "input_residual": False,
            "dropout": 0.5,
        },
    },
    distiller={"name": "none"},
    model={"hidden_size": 512, "head_dropout": 0.5, "modality_heads": False},
    training={"lr": 1e-4, "weight_decay": 3e-5, "batch_size": 16},
    family_defaults={
        "iemocap": {"training": {"epochs": 80, "class_weights": IEMOCAP_INVERSE_FREQUENCY}},
        "meld": {
            "training": {"epochs": 15, "class_weights": "none"},
            "mixer": {"config": {"dropout": 0.4}},
            "fuser": {"config": {"dropout": 0.4}},
            "model": {"head_dropout": 0.4},
            "distiller": {"name": "focal-loss", "config": {"gamma": 2.5, "alpha": 1.0, "form": "mmgcn_code"}},
        },
    },
)
