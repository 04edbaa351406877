"""Recipes ``summer`` (the paper's settings) and ``summer-small`` (a CPU-sized variant).

SUMMER (§IV-C): Adam, lr 1e-4, L2 weight decay 1e-5, batch 32 dialogues (IEMOCAP) / 100 (MELD),
hidden size 1024, 4 attention heads, 6 cross-modal fusion layers, τ = 0.5, α = 2, ε = 0.1,
k1/k2/k3 = 0.4/0.3/0.3. The encoder is SDT's speaker-and-position encoder (eq. 1 is SDT's input
embedding). Choices the paper leaves open: 6 experts (the least for which α = 2 can deactivate
anything, see sdmoe.py); epochs 150 (IEMOCAP) and 50 (MELD), SDT's budgets, since SUMMER extends
SDT; dropout 0.1 inside SDMoE/HCMF; IEMOCAP class weights as in SDT.

``summer-small`` keeps every component and loss but shrinks the sizes (hidden 128, 2 experts,
2 fusion layers, 20 epochs, batch 16) so a CPU demo trains in well under three minutes. With 2
experts, α = 2 > √(2 − 1) so routing keeps both: the demo's SDMoE is dense (see sdmoe.py).
"""

from __future__ import annotations

from merc_bench import Recipe
from merc_bench.class_weights import IEMOCAP_INVERSE_FREQUENCY

PAPER = "Li et al., Unimodal-driven Distillation in Multimodal Emotion Recognition with Dynamic Fusion (SUMMER), arXiv:2503.23721, 2025"

SUMMER = Recipe(
    name="summer",
    description="SUMMER: SDMoE mixer, HCMF fuser, IKD from a frozen text teacher (paper settings)",
    paper=PAPER,
    requires=("sdt",),  # SDT's encoder; the teacher is recipe sdt on text (distiller.teacher.recipe)
    encoder={"name": "speaker-position"},
    mixer={"name": "sdmoe", "config": {"experts": 6, "alpha": 2.0, "temperature": 0.5}},
    fuser={"name": "hcmf", "config": {"heads": 4, "layers": 6, "combine": "gated"}},
    distiller={"name": "ikd", "config": {"smoothing": 0.1, "smooth_weight": 0.4, "align_weight": 0.3,
                                         "cross_weight": 0.3}},
    model={"hidden_size": 1024, "head_dropout": 0.1, "modality_heads": False},
    training={"lr": 1e-4, "weight_decay": 1e-5},
    family_defaults={
        "iemocap": {"training": {"batch_size": 32, "epochs": 150, "class_weights": IEMOCAP_INVERSE_FREQUENCY}},
        "meld": {"training": {"batch_size": 100, "epochs": 50, "class_weights": "none"}},
    },
)

SUMMER_SMALL = Recipe(
    name="summer-small",
    description="SUMMER with every component at CPU-demo sizes (hidden 128, 2 experts, 2 fusion layers)",
    paper=PAPER,
    requires=("sdt",),  # SDT's encoder; the teacher is recipe sdt on text (distiller.teacher.recipe)
    encoder={"name": "speaker-position"},
    mixer={"name": "sdmoe", "config": {"experts": 2, "alpha": 2.0, "temperature": 0.5}},
    fuser={"name": "hcmf", "config": {"heads": 4, "layers": 2, "combine": "gated"}},
    # The teacher (SDT on text) at the demo's size: SDT's MELD schedule (lr 5e-6) barely moves a
    # 128-wide model in a demo's time, so lr 1e-3 for 40 epochs (1.6 s on the synthetic data).
    distiller={"name": "ikd", "config": {"smoothing": 0.1, "smooth_weight": 0.4, "align_weight": 0.3,
                                         "cross_weight": 0.3,
                                         "teacher": {"hidden_size": 128, "lr": 1e-3, "epochs": 40}}},
    model={"hidden_size": 128, "head_dropout": 0.1, "modality_heads": False},
    training={"lr": 1e-3, "weight_decay": 1e-5, "batch_size": 16, "epochs": 20},
    family_defaults={"iemocap": {"training": {"class_weights": IEMOCAP_INVERSE_FREQUENCY}}},
)
