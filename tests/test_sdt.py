"""SDT as components: parameter counts, per-family defaults, losses, modality subsets."""

import pytest
import torch
import torch.nn.functional as F

from merc_bench.config import RunConfig
from merc_bench.data import DatasetInfo
from merc_bench.losses import masked_cross_entropy, masked_kl_divergence
from merc_bench.model import build_model, count_parameters
from merc_bench.plugins import get_registry
from merc_bench.testing import SMALL_CONTEXT, make_batch

MELD = DatasetInfo("meld-dims", "meld", tuple("abcdefg"), {"text": 1024, "audio": 300, "visual": 342}, 9)
IEMOCAP = DatasetInfo("iemocap-dims", "iemocap", tuple("abcdef"), {"text": 1024, "audio": 1582, "visual": 342}, 2)


def sdt_config(family: str, **changes) -> RunConfig:
    values = get_registry().get("recipe", "sdt").obj.resolve(family)
    values["dataset"] = {"name": "synthetic"}
    for key, value in changes.items():
        values[key] = value
    return RunConfig.model_validate(values)


@pytest.mark.parametrize(
    "info, total, trainable",
    [(MELD, 78_367_772, 68_930_588), (IEMOCAP, 79_669_272, 79_669_272)],
    ids=["meld", "iemocap"],
)
def test_parameter_counts_match_sdt(info, total, trainable):
    model, distiller = build_model(sdt_config(info.family), info, get_registry())
    assert count_parameters(model, distiller) == (total, trainable)


def test_family_defaults():
    meld, iemocap = sdt_config("meld"), sdt_config("iemocap")
    assert (meld.training.lr, meld.training.batch_size, meld.training.epochs) == (5e-6, 8, 50)
    assert (iemocap.training.lr, iemocap.training.batch_size, iemocap.training.epochs) == (1e-4, 16, 150)
    assert meld.distiller.config["temperature"] == 8.0 and iemocap.distiller.config["temperature"] == 1.0
    assert meld.fuser.config["unimodal_gate"] == "frozen_identity"
    assert iemocap.training.class_weights[0] == pytest.approx(1 / 0.086747)


def small_info(modalities):
    dims = {m: SMALL_CONTEXT["feature_dims"][m] for m in modalities}
    return DatasetInfo("small", "meld", tuple("abcd"), dims, 3)


@pytest.mark.parametrize("modalities", [["text"], ["text", "audio"], ["audio", "visual"], ["text", "audio", "visual"]])
def test_any_modality_subset(modalities):
    config = sdt_config("meld", model={"hidden_size": 16, "head_dropout": 0.5, "modality_heads": True},
                        modalities=modalities)
    info = DatasetInfo("small", "meld", tuple("abcd"), dict(SMALL_CONTEXT["feature_dims"]), 3)
    model, distiller = build_model(config, info, get_registry())
    batch = make_batch()
    output = model(batch)
    assert output.logits.shape == (*batch.mask.shape, 4)
    assert set(output.modality_logits) == set(modalities)
    terms = distiller(output=output, batch=batch, class_weights=None)
    assert set(terms) == {f"{kind}_{m}" for m in modalities for kind in ("ce", "kl")}
    # SDT's fuser: one cross-modal block per ordered pair of distinct modalities.
    assert len(model.fuser.cross) == len(modalities) * (len(modalities) - 1)


def test_frozen_identity_gate_is_silu():
    config = sdt_config("meld", model={"hidden_size": 16, "head_dropout": 0.5, "modality_heads": True})
    model, _ = build_model(config, small_info(["text", "audio", "visual"]), get_registry())
    gate = model.fuser.gates["text_to_text"]
    x = torch.randn(2, 3, 16)
    assert not gate.weight.weight.requires_grad
    assert torch.allclose(gate(x), F.silu(x))


def test_losses_equal_sdt_reference_formulas():
    """SDT's masked NLL (weighted) and masked KL, written out as in reference-models.md §2."""
    torch.manual_seed(0)
    batch = make_batch()
    mask = batch.mask
    logits = torch.randn(*mask.shape, 4)
    teacher = torch.randn(*mask.shape, 4)
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0])
    labels = batch.labels.clamp(min=0)  # SDT pads labels with a valid id
    log_probs = F.log_softmax(logits, -1).view(-1, 4)
    flat_mask = mask.view(-1, 1).float()
    nll = F.nll_loss(log_probs * flat_mask, labels.view(-1), weight=weight, reduction="sum")
    expected_ce = nll / torch.sum(weight[labels.view(-1)] * flat_mask.squeeze())
    assert torch.allclose(masked_cross_entropy(logits, batch.labels, mask, weight), expected_ce, atol=1e-6)
    temperature = 8.0
    student = F.log_softmax(logits / temperature, -1)[mask]
    target = F.softmax(teacher / temperature, -1)[mask]
    expected_kl = (target * (target.log() - student)).sum() / mask.sum()
    assert torch.allclose(masked_kl_divergence(logits, teacher, mask, temperature), expected_kl, atol=1e-6)


def test_teacher_receives_gradient_through_kl():
    """SDT does not detach the fused logits in the KL terms; the option to detach does."""
    batch = make_batch()
    teacher = torch.randn(*batch.mask.shape, 4, requires_grad=True)
    student = torch.randn(*batch.mask.shape, 4)
    masked_kl_divergence(student, teacher, batch.mask, 2.0).backward()
    assert teacher.grad.abs().sum() > 0
