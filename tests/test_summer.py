"""SUMMER's components: SDMoE routing and Gumbel gate, HCMF's φ and stage order, IKD's terms,
the frozen teacher and its cache."""

import dataclasses
import math

import pydantic
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from merc_bench.config import RunConfig
from merc_bench.data import DatasetInfo
from merc_bench.model import build_model
from merc_bench.plugins import get_registry
from merc_bench.pipeline import load_dataset, prepare, resolve
from merc_bench.testing import SMALL_CONTEXT, check_component, make_batch, small_teacher
from merc_bench.pipeline import train_seed
from merc_bench.teachers import prepare_teacher, teacher_config, teacher_fingerprint
from merc_bench.trainer import Trainer
from merc_bench_summer.hcmf import HCMFConfig, HCMFFuser
from merc_bench_summer.ikd import IKDConfig, InteractiveKnowledgeDistillation, label_smoothed_cross_entropy
from merc_bench_summer.sdmoe import SDMoEConfig, SDMoEMixer, routing_mask
from merc_bench.model import ModelOutput


@pytest.mark.parametrize("experts", [2, 3, 4, 6, 9])
def test_alpha_above_sqrt_n_minus_1_never_deactivates(experts):
    generator = torch.Generator().manual_seed(experts)
    weights = torch.randn(4000, experts, generator=generator) * torch.rand(4000, 1, generator=generator) * 5
    weights[:5, 0] = 10.0  # extreme outliers too
    # Near ties: gate weights a few float32 steps apart, where float32 statistics misjudge the z-score.
    steps = torch.randint(1, 5, (2000, experts), generator=generator)
    weights[2000:] = 0.5 + steps * 6e-8
    alpha = math.sqrt(experts - 1) + 1e-3
    assert routing_mask(weights, alpha, "two-sided").all() and routing_mask(weights, alpha, "lower").all()
    w = weights.double()
    z = (w - w.mean(-1, keepdim=True)).abs() / w.std(-1, keepdim=True, correction=0).clamp_min(1e-300)
    assert z.max() <= math.sqrt(experts - 1) * (1 + 1e-6)  # the bound the docstring states


def test_routing_keeps_weights_inside_the_interval():
    weights = torch.tensor([[0.0, 0.1, -0.1, 0.05, -0.05, 3.0]])  # one outlier among six
    keep = routing_mask(weights, alpha=2.0, routing="two-sided")
    assert keep.tolist() == [[True, True, True, True, True, False]]
    assert routing_mask(torch.zeros(1, 4), alpha=0.5, routing="two-sided").all()  # σ = 0: keep everyone
    lonely = routing_mask(torch.tensor([[1.0, -1.0]]), alpha=0.5, routing="two-sided")  # both outside: keep the best
    assert lonely.tolist() == [[True, False]]


def test_gumbel_noise_only_while_training():
    torch.manual_seed(0)
    mixer = SDMoEMixer(SDMoEConfig(experts=3), hidden_size=16)
    batch = make_batch()
    x = torch.randn(*batch.mask.shape, 16)
    mixer.eval()
    first, second = mixer(x, batch.mask), mixer(x, batch.mask)
    assert torch.equal(first.hidden, second.hidden)
    mixer.train()
    mixer.dropout.p = 0.0
    noisy_a, noisy_b = mixer(x, batch.mask), mixer(x, batch.mask)
    assert not torch.allclose(noisy_a.hidden[batch.mask], noisy_b.hidden[batch.mask])
    assert 1.0 <= float(first.metrics["active_experts"]) <= 3.0


def test_sparse_routing_reports_fewer_active_experts():
    torch.manual_seed(0)
    mixer = SDMoEMixer(SDMoEConfig(experts=8, alpha=0.8), hidden_size=16).eval()
    batch = make_batch()
    out = mixer(torch.randn(*batch.mask.shape, 16) * 3, batch.mask)
    assert float(out.metrics["active_experts"]) < 8.0


# The gate's favourite expert as a high outlier among six: w = 3 has z = √5 ≈ 2.24 > α = 2.
FAVOURITE_OUTLIER = [3.0, 0.0, 0.1, -0.1, 0.05, -0.05]


def test_two_sided_routing_drops_the_favourite_expert_and_lower_never_does():
    weights = torch.tensor([FAVOURITE_OUTLIER])
    assert routing_mask(weights, alpha=2.0, routing="two-sided").tolist() == [[False, True, True, True, True, True]]
    assert routing_mask(weights, alpha=2.0, routing="lower").tolist() == [[True] * 6]
    # Mirrored, the outlier is the gate's least liked expert: both rules drop it.
    mirrored = -weights
    assert routing_mask(mirrored, alpha=2.0, routing="two-sided").tolist() == [[False, True, True, True, True, True]]
    assert routing_mask(mirrored, alpha=2.0, routing="lower").tolist() == [[False, True, True, True, True, True]]


def _constant_gate_mixer(weights: list[float], **options) -> SDMoEMixer:
    """A mixer whose gate gives every utterance the same weights (zero matrix, bias = weights)."""
    torch.manual_seed(0)
    mixer = SDMoEMixer(SDMoEConfig(experts=len(weights), **options), hidden_size=16).eval()
    with torch.no_grad():
        mixer.gate.weight.zero_()
        mixer.gate.bias.copy_(torch.tensor(weights))
    return mixer


@pytest.mark.parametrize("gate", ["token", "dialogue"])
def test_routing_metrics_report_active_experts_and_the_gate_mass_removed(gate):
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    x = torch.randn(2, 4, 16)
    dense = torch.softmax(torch.tensor(FAVOURITE_OUTLIER) / 0.5, dim=-1)  # τ = 0.5
    two_sided = _constant_gate_mixer(FAVOURITE_OUTLIER, temperature=0.5, gate=gate, routing="two-sided")(x, mask).metrics
    assert float(two_sided["active_experts"]) == 5.0
    assert float(two_sided["removed_gate_mass"]) == pytest.approx(float(dense[0]), rel=1e-6)
    assert float(two_sided["removed_gate_mass"]) > 0.95  # the favourite held nearly all the mass
    lower = _constant_gate_mixer(FAVOURITE_OUTLIER, temperature=0.5, gate=gate, routing="lower")(x, mask).metrics
    assert float(lower["active_experts"]) == 6.0
    assert float(lower["removed_gate_mass"]) == 0.0
    mirrored = [-w for w in FAVOURITE_OUTLIER]
    dropped_least = _constant_gate_mixer(mirrored, temperature=0.5, gate=gate, routing="lower")(x, mask).metrics
    least_liked = float(torch.softmax(torch.tensor(mirrored) / 0.5, dim=-1)[0])
    assert float(dropped_least["active_experts"]) == 5.0
    assert float(dropped_least["removed_gate_mass"]) == pytest.approx(least_liked, rel=1e-6)
    assert least_liked < 1e-3  # lower only ever removes the tail the gate barely uses


@settings(max_examples=300, deadline=None)
@given(
    weights=st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=1, max_size=12),
    alpha=st.floats(0.01, 5.0),
)
def test_lower_routing_always_keeps_the_argmax_and_everything_two_sided_keeps(weights, alpha):
    w = torch.tensor([weights])
    lower = routing_mask(w, alpha, routing="lower")
    assert lower[0, int(w.argmax())]
    assert (lower | ~routing_mask(w, alpha, routing="two-sided")).all()  # two-sided's kept set ⊆ lower's
    # lower keeps an upper set of the weights: whatever it drops lies below whatever it keeps.
    if (~lower).any():
        assert w[~lower].max() < w[lower].min()


def _gates_per_utterance(mixer: SDMoEMixer, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Recover G (B, L, n) from the mixer's output by least squares against its experts' outputs."""
    lengths = mask.sum(dim=1)
    with torch.no_grad():
        experts = torch.stack([expert(x, lengths) for expert in mixer.experts], dim=-1)  # (B, L, H, n)
        mixed = mixer(x, mask).hidden  # (B, L, H)
    return torch.linalg.lstsq(experts.double(), mixed.double().unsqueeze(-1)).solution.squeeze(-1)


def test_a_dialogue_gate_gives_every_utterance_of_a_dialogue_the_same_mixture():
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    x = torch.randn(2, 5, 16) * 3
    for gate in ("token", "dialogue"):
        torch.manual_seed(0)
        mixer = SDMoEMixer(SDMoEConfig(experts=3, gate=gate), hidden_size=16).eval()
        gates = _gates_per_utterance(mixer, x, mask)  # (B, L, n)
        assert torch.allclose(gates.sum(-1)[mask], torch.ones(()).double(), atol=1e-4)
        spread = max(float((gates[b, mask[b]] - gates[b, 0]).abs().max()) for b in range(2))
        if gate == "dialogue":
            assert spread < 1e-4
            pooled = x[1, :3].mean(0)  # the mean of the real utterances only
            expected = torch.softmax(mixer.gate(pooled) / mixer.temperature, -1).double()
            assert torch.allclose(gates[1, 0], expected, atol=1e-4)
        else:
            assert spread > 1e-2  # per-utterance gates differ, so the check above can fail


@pytest.mark.parametrize("routing", ["two-sided", "lower"])
@pytest.mark.parametrize("gate", ["token", "dialogue"])
def test_padding_with_garbage_leaves_the_real_utterances_unchanged(gate, routing):
    torch.manual_seed(0)
    mixer = SDMoEMixer(SDMoEConfig(experts=6, alpha=0.9, gate=gate, routing=routing), hidden_size=16).eval()
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    x = torch.randn(2, 4, 16) * 3
    x[1, 2:] = 0.0
    padded_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], dim=1)  # (B, L + 3)
    garbage = torch.cat([x, torch.randn(2, 3, 16) * 1e3], dim=1)
    garbage[1, 2:4] = torch.randn(2, 16) * 1e3
    garbage[0, 5, 0], garbage[1, 6, 1] = float("nan"), float("inf")
    clean, padded = mixer(x, mask), mixer(garbage, padded_mask)
    assert torch.allclose(padded.hidden[:, :4][mask], clean.hidden[mask], atol=1e-6)
    for name in ("active_experts", "removed_gate_mass"):
        assert float(padded.metrics[name]) == pytest.approx(float(clean.metrics[name]), abs=1e-6), name
    assert float(clean.metrics["active_experts"]) < 6.0  # α = 0.9 routes, so routing is part of what is compared


def test_sdmoe_defaults_are_the_dev_choice_and_summer_wide_keeps_the_literal_rule():
    from merc_bench_summer.recipe import SUMMER, SUMMER_WIDE

    config = SDMoEConfig()
    assert (config.routing, config.gate) == ("lower", "token")  # chosen on paper-meld's dev (sdmoe.py, RESULTS.md)

    def routing(recipe, family: str) -> str:
        return SDMoEConfig(**recipe.resolve(family)["mixer"]["config"]).routing

    # Each family's routing was chosen on its own dev split: MELD took `lower`, IEMOCAP kept the literal rule.
    assert routing(SUMMER, "meld") == "lower" and routing(SUMMER, "iemocap") == "two-sided"
    assert routing(SUMMER_WIDE, "meld") == routing(SUMMER_WIDE, "iemocap") == "two-sided"  # the model before issue 14
    # The family's routing does not displace the recipe's other mixer options.
    assert SUMMER.resolve("iemocap")["mixer"]["config"]["experts"] == 6


def _fuser_output(fuser: HCMFFuser) -> torch.Tensor:
    torch.manual_seed(3)
    mask = make_batch().mask
    mixed = {m: torch.randn(*mask.shape, 16) for m in fuser.modalities}
    return fuser(mixed=mixed, encoded=mixed, mask=mask).fused[mask]  # (N, H)


def test_hcmf_phi_is_learned_and_branches_follow_the_stage_order():
    torch.manual_seed(0)
    fuser = HCMFFuser(HCMFConfig(layers=2), modalities=("text", "audio", "visual"), hidden_size=16)
    assert fuser.partners == {"text": ["audio", "visual"], "audio": ["text", "visual"], "visual": ["text", "audio"]}
    phi = fuser.branches["text"][0].forward_attention.phi
    assert phi.shape == (4,)  # one φ per head by default
    optimizer = torch.optim.Adam(fuser.parameters(), lr=0.1)
    _fuser_output(fuser).pow(2).mean().backward()
    assert phi.grad is not None and (phi.grad.abs() > 0).all()
    optimizer.step()
    assert (phi.detach() != 1.0).all()
    two = HCMFFuser(HCMFConfig(layers=1), modalities=("text", "audio"), hidden_size=16)
    assert two.branches["text"][0].third_attention is None  # stage 2 needs a third modality


@pytest.mark.parametrize("phi", ["per-head", "scalar"])
def test_hcmf_phi_changes_the_output(phi):
    torch.manual_seed(0)
    fuser = HCMFFuser(HCMFConfig(layers=1, phi=phi), modalities=("text", "audio", "visual"), hidden_size=16).eval()
    before = _fuser_output(fuser)
    phi = fuser.branches["audio"][0].third_attention.phi
    with torch.no_grad():
        phi.mul_(torch.linspace(0.5, 2.0, phi.numel()).view_as(phi))
    after = _fuser_output(fuser)
    assert not torch.allclose(before, after)


def test_hcmf_per_head_phi_scales_each_head_before_the_output_projection():
    torch.manual_seed(0)
    attention = HCMFFuser(HCMFConfig(layers=1), modalities=("text", "audio", "visual"),
                          hidden_size=16).branches["text"][0].forward_attention.eval()
    query, source, mask = torch.randn(2, 3, 16), torch.randn(2, 3, 16), torch.ones(2, 3, dtype=torch.bool)
    with torch.no_grad():
        attention.phi.copy_(torch.tensor([1.0, 0.0, 1.0, 1.0]))  # silence head 1
        silenced = attention(query, source, mask)
        attention.output.weight[:, 4:8].normal_()  # the projection's columns that read head 1
        assert torch.equal(attention(query, source, mask), silenced)  # head 1 no longer reaches the output


def test_hcmf_phi_none_is_plain_attention():
    fuser = HCMFFuser(HCMFConfig(layers=1, phi="none"), modalities=("text", "audio", "visual"), hidden_size=16)
    assert not any(name.endswith("phi") for name, _ in fuser.named_parameters())


def _linear(inputs: int, outputs: int, bias: bool = True) -> int:
    return inputs * outputs + (outputs if bias else 0)


def _hcmf_parameters(config: HCMFConfig, hidden: int, modalities: int = 3) -> int:
    """HCMF's parameter count from its structure: per branch and layer, the attentions (Q, K/V and output
    maps plus φ), the feed-forward network and three layer norms; then the gated fusion's score."""
    phi = {"per-head": config.heads, "scalar": 1, "none": 0}[config.phi]
    attention = _linear(hidden, hidden) + _linear(hidden, 2 * hidden) + _linear(hidden, hidden) + phi
    attentions = 2 + config.backward_term  # stage 1, stage 2 (and the backward term)
    ffn = config.feed_forward_multiplier * hidden
    layer = attentions * attention + _linear(hidden, ffn) + _linear(ffn, hidden) + 3 * 2 * hidden
    assert config.combine == "gated"
    return modalities * config.layers * layer + _linear(hidden, hidden, bias=False)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_no_backward_term_by_default_and_the_option_restores_it():
    torch.manual_seed(0)
    config = HCMFConfig(layers=2)
    default = HCMFFuser(config, modalities=("text", "audio", "visual"), hidden_size=16)
    assert all(layer.backward_attention is None for layers in default.branches.values() for layer in layers)
    assert _count(default) == _hcmf_parameters(config, 16)
    earlier = HCMFConfig(layers=2, backward_term=True, phi="scalar")
    both_ways = HCMFFuser(earlier, modalities=("text", "audio", "visual"), hidden_size=16)
    assert _count(both_ways) == _hcmf_parameters(earlier, 16)
    one_attention = _linear(16, 16) * 2 + _linear(16, 32) + 1  # Q, output, K/V and a scalar φ
    assert _count(both_ways) - _count(HCMFFuser(HCMFConfig(layers=2, phi="scalar"), modalities=("text", "audio",
                                                "visual"), hidden_size=16)) == 3 * 2 * one_attention


def test_concat_combine_is_concat_linear_then_mlp():
    torch.manual_seed(0)
    fuser = HCMFFuser(HCMFConfig(layers=1, combine="concat"), modalities=("text", "audio", "visual"), hidden_size=16)
    assert tuple(fuser.fusion_project.weight.shape) == (16, 3 * 16)  # Linear(M·H → H)
    first, activation, _, second = fuser.fusion_mlp
    assert tuple(first.weight.shape) == (32, 16) and isinstance(activation, torch.nn.ReLU)  # H → 2H
    assert tuple(second.weight.shape) == (16, 32)  # back to H for the model's head
    fuser.eval()
    torch.manual_seed(3)
    mask = make_batch().mask
    mixed = {m: torch.randn(*mask.shape, 16) for m in fuser.modalities}
    out = fuser(mixed=mixed, encoded=mixed, mask=mask)
    expected = fuser.fusion_mlp(fuser.fusion_project(torch.cat([out.per_modality[m] for m in fuser.modalities], -1)))
    assert out.fused.shape == (*mask.shape, 16) and torch.allclose(out.fused, expected)


@pytest.mark.parametrize("options", [{"phi": "scalar", "backward_term": True}, {"phi": "none"},
                                     {"combine": "concat"}], ids=str)
def test_hcmf_options_pass_the_contract_kit(options):
    entry = get_registry().get("fuser", "hcmf")
    fields = {name: (HCMFConfig.model_fields[name].annotation, value) for name, value in options.items()}
    variant = pydantic.create_model("HCMFVariant", __base__=HCMFConfig, **fields)
    check_component(dataclasses.replace(entry, config=variant))


MELD_SHAPE = DatasetInfo("meld-shaped", "meld", ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"),
                         {"text": 1024, "audio": 300, "visual": 342}, 9)  # the synthetic dataset's MELD shape


def _recipe_model(recipe: str, *overrides: tuple[str, dict]) -> tuple[torch.nn.Module, RunConfig]:
    """The recipe's model at MELD dims, built on the meta device (shapes only, nothing allocated)."""
    registry = get_registry()
    values = registry.get("recipe", recipe).obj.resolve("meld")
    values["dataset"] = {"name": "synthetic"}
    for slot, changes in overrides:
        values[slot]["config"].update(changes)
    config = RunConfig.model_validate(values)
    with torch.device("meta"):
        model, _ = build_model(config, MELD_SHAPE, registry, check_size=False)
    return model, config


def test_summer_is_the_multiemo_sized_reading():
    model, config = _recipe_model("summer")
    hcmf = HCMFConfig.model_validate(config.fuser.config)
    hidden = config.model.hidden_size
    assert (hidden, hcmf.feed_forward_multiplier * hidden, hcmf.heads, hcmf.layers) == (256, 1024, 4, 6)
    assert _count(model.fuser) == _hcmf_parameters(hcmf, hidden)
    # MultiEMO-sized: tens of millions (24.8 M at MELD dims), not the 1024-wide reading's hundreds.
    assert 20e6 < _count(model) < 35e6
    assert _count(model.fuser) > _count(model) / 2  # the fuser is most of it
    with_backward, _ = _recipe_model("summer", ("fuser", {"backward_term": True}))
    one_attention = 4 * hidden * hidden + 4 * hidden + hcmf.heads
    assert _count(with_backward) - _count(model) == 3 * hcmf.layers * one_attention


def test_summer_wide_is_the_earlier_model():
    model, config = _recipe_model("summer-wide")
    hcmf = HCMFConfig.model_validate(config.fuser.config)
    assert (config.model.hidden_size, hcmf.phi, hcmf.backward_term) == (1024, "scalar", True)
    assert _count(model.fuser) == _hcmf_parameters(hcmf, 1024)
    assert _count(model) == 465_747_023  # what `merc-bench validate summer` printed on MELD shape before issue 14
    summer = get_registry().get("recipe", "summer").obj.resolve("meld")
    wide = get_registry().get("recipe", "summer-wide").obj.resolve("meld")
    differ = {slot for slot in summer if summer[slot] != wide[slot]}
    assert differ == {"recipe", "fuser", "model", "mixer"}  # the same training, encoder and distiller
    assert {**summer["mixer"]["config"], "routing": "two-sided"} == wide["mixer"]["config"]  # only the routing rule


def test_ikd_terms_match_hand_computed_values():
    torch.manual_seed(0)
    batch = make_batch(lengths=(3, 2))
    teacher = small_teacher()
    distiller = InteractiveKnowledgeDistillation(IKDConfig(), hidden_size=16)
    distiller.attach_teacher(teacher, 16)
    classes = SMALL_CONTEXT["num_classes"]
    hidden = torch.randn(*batch.mask.shape, 16)
    logits = torch.randn(*batch.mask.shape, classes)
    output = ModelOutput(logits=logits, modality_logits={}, hidden=hidden, modality_hidden={})
    terms = distiller(output=output, batch=batch, class_weights=None)
    mask, labels = batch.mask, batch.labels[batch.mask]
    p_tea = F.softmax(teacher(batch).logits[mask], -1)
    st_logits = teacher.head(hidden)[mask]
    log_p_st = F.log_softmax(st_logits, -1)
    cross = (p_tea * (p_tea.log() - log_p_st)).sum(-1).mean()
    align = F.nll_loss(log_p_st, labels)
    eps = 0.1
    soft = torch.full((labels.numel(), classes), eps / (classes - 1))
    soft[torch.arange(labels.numel()), labels] = 1 - eps
    smooth = -(soft * F.log_softmax(logits[mask], -1)).sum(-1).mean()
    assert terms["cross"].item() == pytest.approx(0.3 * cross.item(), rel=1e-5)
    assert terms["align"].item() == pytest.approx(0.3 * align.item(), rel=1e-5)
    assert terms["smooth"].item() == pytest.approx(0.4 * smooth.item(), rel=1e-5)
    assert label_smoothed_cross_entropy(logits, batch.labels, mask, eps).item() == pytest.approx(smooth.item())


TINY = ["dataset.train_dialogues=10", "dataset.dev_dialogues=4", "dataset.test_dialogues=4",
        "model.hidden_size=16", "training.epochs=2", "mixer.experts=2", "fuser.layers=1"]


def test_teacher_is_trained_once_then_reused_and_stays_frozen(tmp_path, monkeypatch):
    monkeypatch.setenv("MERC_BENCH_CACHE", str(tmp_path / "cache"))
    registry = get_registry()
    prepared = prepare(registry, recipe="summer-small", dataset="synthetic", overrides=TINY, flags={"device": "cpu"})
    trainer = Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry)
    first = train_seed(trainer, 0)
    assert first.teacher["status"] == "trained" and first.teacher["modalities"] == ["text"]
    assert 0.0 <= first.teacher["test"]["weighted_f1"] <= 1.0
    second = train_seed(trainer, 0)
    assert second.teacher["status"] == "reused"
    assert second.teacher["fingerprint"] == first.teacher["fingerprint"]
    assert second.history == first.history  # same seed, same teacher, same student
    other_seed = train_seed(trainer, 1)
    assert other_seed.teacher["status"] == "trained"  # the fingerprint includes the seed
    later_range = prepare(registry, recipe="summer-small", dataset="synthetic", overrides=[*TINY, "training.seed=1"],
                          flags={"device": "cpu"})  # a --seeds range starting at 1 finds seed 1's teacher
    later = teacher_config(later_range.config, later_range.corpus.info, registry)
    assert teacher_fingerprint(later, later_range.corpus, registry, "clean", 1) == other_seed.teacher["fingerprint"]

    # A student step leaves the attached teacher untouched.
    model, distiller = trainer.build()
    teacher = prepare_teacher(prepared.config, trainer.corpus, registry, 0, trainer.device)
    assert teacher.status == "reused"
    teacher.attach(model, distiller)
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train(), distiller.train()
    batch = trainer._batches(prepared.corpus.train, None)[0]
    total, terms, _ = trainer.loss(model, distiller, batch)
    assert set(terms) == {"smooth", "align", "cross"}  # IKD replaces the plain task loss
    total.backward()
    optimizer.step()
    assert all(p.grad is None for p in teacher.model.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.model.state_dict().items())
    assert not teacher.model.training


# -- the teacher's own schedule (issue 14, item 5) ---------------------------------------------------
def test_ikd_add_mode_terms_are_sdts_self_distillation_terms():
    """``self_distillation_temperature`` adds exactly what SDT's distiller computes (weights 1, T, not detached)."""
    torch.manual_seed(0)
    registry = get_registry()
    batch = make_batch(lengths=(3, 2))
    modalities = SMALL_CONTEXT["modalities"]
    classes = SMALL_CONTEXT["num_classes"]
    shape = (*batch.mask.shape, classes)
    output = ModelOutput(logits=torch.randn(shape), modality_logits={m: torch.randn(shape) for m in modalities},
                         hidden=torch.randn(*batch.mask.shape, 16), modality_hidden={})
    weights = torch.rand(classes) + 0.5
    entry = registry.get("distiller", "self-distillation")
    sdt = entry.build(entry.make_config({"temperature": 8.0}), SMALL_CONTEXT)
    ikd = InteractiveKnowledgeDistillation(IKDConfig(self_distillation_temperature=8.0), hidden_size=16,
                                           modalities=modalities)
    ikd.attach_teacher(small_teacher(), 16)
    expected = sdt(output=output, batch=batch, class_weights=weights)
    terms = ikd(output=output, batch=batch, class_weights=weights)
    assert set(terms) == {"smooth", "align", "cross"} | set(expected)
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-6), name
    plain = InteractiveKnowledgeDistillation(IKDConfig(), hidden_size=16, modalities=modalities)
    plain.attach_teacher(small_teacher(), 16)
    assert set(plain(output=output, batch=batch, class_weights=weights)) == {"smooth", "align", "cross"}


def test_class_weights_reach_the_label_smoothed_term():
    torch.manual_seed(0)
    batch = make_batch(lengths=(4, 3))
    classes = SMALL_CONTEXT["num_classes"]
    logits = torch.randn(*batch.mask.shape, classes)
    weights = torch.arange(1, classes + 1, dtype=torch.float32)  # non-uniform
    eps = 0.1
    weighted = label_smoothed_cross_entropy(logits, batch.labels, batch.mask, eps, weights)
    plain = label_smoothed_cross_entropy(logits, batch.labels, batch.mask, eps)
    labels = batch.labels[batch.mask]
    soft = torch.full((labels.numel(), classes), eps / (classes - 1))
    soft[torch.arange(labels.numel()), labels] = 1 - eps
    per_utterance = -(soft * F.log_softmax(logits[batch.mask], -1)).sum(-1)
    direct = (weights[labels] * per_utterance).sum() / weights[labels].sum()
    assert weighted.item() == pytest.approx(direct.item(), rel=1e-6)
    assert weighted.item() != pytest.approx(plain.item(), rel=1e-3)
    uniform = label_smoothed_cross_entropy(logits, batch.labels, batch.mask, eps, torch.full((classes,), 3.0))
    assert uniform.item() == pytest.approx(plain.item(), rel=1e-6)
    # The distiller passes the trainer's class weights to the smoothed term.
    distiller = InteractiveKnowledgeDistillation(IKDConfig(), hidden_size=16)
    distiller.attach_teacher(small_teacher(), 16)
    output = ModelOutput(logits=logits, modality_logits={}, hidden=torch.randn(*batch.mask.shape, 16),
                         modality_hidden={})
    terms = distiller(output=output, batch=batch, class_weights=weights)
    assert terms["smooth"].item() == pytest.approx(0.4 * direct.item(), rel=1e-6)


def test_the_teacher_is_sdt_on_text_with_sdts_published_schedule():
    registry = get_registry()
    for shape, expected in (("meld", {"lr": 5e-6, "batch_size": 8, "epochs": 50, "class_weights": "none"}),
                            ("iemocap", {"lr": 1e-4, "batch_size": 16, "epochs": 150})):
        corpus, choice, _ = load_dataset(registry, "synthetic", [f"dataset.shape={shape}"])
        config = resolve(registry, "summer", corpus, dataset=choice, flags={"device": "cpu", "protocol": "paper"},
                         check_memory=False)  # the paper's sizes: only the configuration is looked at
        teacher = teacher_config(config, corpus.info, registry)
        sdt = registry.get("recipe", "sdt").obj.resolve(corpus.info.family)
        assert teacher.modalities == ["text"] and teacher.protocol == "clean"  # selected on dev, never test
        assert (teacher.mixer.name, teacher.fuser.name, teacher.distiller.name) == (
            "transformer", "cross-modal-transformer", "self-distillation")
        assert teacher.model.hidden_size == sdt["model"]["hidden_size"] == 1024
        assert teacher.training.model_dump(include=set(expected)) == expected
        assert teacher.training.class_weights == sdt["training"]["class_weights"]


def test_the_teachers_schedule_is_in_its_fingerprint_and_it_keeps_its_best_dev_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("MERC_BENCH_CACHE", str(tmp_path / "cache"))
    registry = get_registry()

    def teacher_of(*extra):
        prepared = prepare(registry, recipe="summer-small", dataset="synthetic", overrides=[*TINY, *extra],
                           flags={"device": "cpu"})
        config = teacher_config(prepared.config, prepared.corpus.info, registry)
        return prepared, config, teacher_fingerprint(config, prepared.corpus, registry, "clean", 0)

    _, default, default_print = teacher_of()
    assert default.training.epochs == 40 and default.training.lr == 1e-3  # summer-small's teacher, not the student's 2
    prepared, three, three_print = teacher_of("distiller.teacher.epochs=3")
    assert three.training.epochs == 3 and three_print != default_print
    assert teacher_of("distiller.teacher.epochs=3")[2] == three_print
    assert teacher_of("training.epochs=5")[2] == default_print  # the student's schedule is not the teacher's

    events = []
    teacher = prepare_teacher(prepared.config, prepared.corpus, registry, 0, torch.device("cpu"),
                              on_epoch=events.append)
    assert teacher.status == "trained" and teacher.epochs == 3 and len(events) == 3
    assert {(e.role, e.split) for e in events} == {("teacher", "dev")}
    scores = [e.metrics["dev_weighted_f1"] for e in events]
    assert teacher.selected_epoch == scores.index(max(scores)) + 1  # the first epoch reaching the best dev score
    assert teacher.dev["weighted_f1"] == pytest.approx(max(scores))
    again = prepare_teacher(prepared.config, prepared.corpus, registry, 0, torch.device("cpu"))
    assert (again.status, again.selected_epoch, again.epochs) == ("reused", teacher.selected_epoch, 3)


def _seed(seed, student_dev, teacher_dev):
    from merc_bench.trainer import SeedResult

    metrics = {"accuracy": 0.5, "weighted_f1": 0.5, "macro_f1": 0.5}
    return SeedResult(seed=seed, selected_epoch=1, dev=dict(metrics, weighted_f1=student_dev), test=metrics,
                      history=[], seconds=1.0, teacher={"dev": dict(metrics, weighted_f1=teacher_dev),
                                                        "test": metrics, "modalities": ["text"], "status": "trained",
                                                        "path": "t.pt", "epochs": 3, "selected_epoch": 2})


def test_a_teacher_below_the_student_baseline_warns_in_one_line():
    import io

    from rich.console import Console

    from merc_bench.events import RunEnded
    from merc_bench.pipeline import teacher_warning
    from merc_bench.subscribers import ConsoleSubscriber

    prepared = prepare(get_registry(), recipe="summer-small", dataset="synthetic", overrides=TINY,
                       flags={"device": "cpu"})
    config = prepared.config
    assert teacher_warning(config, [_seed(0, 0.70, 0.71), _seed(1, 0.60, 0.60)]) is None  # not below: no warning
    warning = teacher_warning(config, [_seed(0, 0.70, 0.50), _seed(1, 0.60, 0.65)])
    assert warning.startswith("warning: the teacher's dev weighted_f1 is below the student's own")
    assert "1 of 2 seed(s) (50.00 vs 70.00)" in warning and "distiller.teacher.epochs" in warning
    paper = config.model_copy(update={"protocol": "paper"})  # the student's dev is training data there
    assert teacher_warning(paper, [_seed(0, 0.70, 0.50)]) is None

    out = io.StringIO()
    subscriber = ConsoleSubscriber(Console(file=out, width=40))
    subscriber.run_ended(RunEnded(config, "FINISHED", summary={"teacher": {"warning": warning}}))
    assert out.getvalue().splitlines() == [warning]  # one line, even on a narrow terminal


def test_the_teachers_dev_and_test_scores_reach_results_console_and_tracking(tmp_path, monkeypatch):
    import io
    import json

    from rich.console import Console

    from merc_bench.events import SeedEnded
    from merc_bench.pipeline import execute
    from merc_bench.report import results_table
    from merc_bench.subscribers import ConsoleSubscriber, TrackingSubscriber
    from merc_bench.tracking import Tracker

    monkeypatch.setenv("MERC_BENCH_CACHE", str(tmp_path / "cache"))
    registry = get_registry()
    prepared = prepare(registry, recipe="summer-small", dataset="synthetic",
                       overrides=[*TINY, "distiller.teacher.epochs=2"], flags={"device": "cpu"})
    out = io.StringIO()
    result = execute(prepared.config, prepared.corpus, registry=registry, out_dir=tmp_path / "run",
                     subscribers=[ConsoleSubscriber(Console(file=out, width=60))])
    teacher = json.loads((tmp_path / "run" / "results.json").read_text())["teacher"]
    assert teacher["epochs"] == [2] and 1 <= teacher["selected_epochs"][0] <= 2
    assert 0.0 <= teacher["dev"]["weighted_f1"]["mean"] <= 1.0 and 0.0 <= teacher["test"]["weighted_f1"]["mean"] <= 1.0
    seed = result.seeds[0].teacher
    assert (f"teacher (text) trained, epoch {seed['selected_epoch']}/2: dev w-F1 "
            f"{100 * seed['dev']['weighted_f1']:.2f}, test w-F1 {100 * seed['test']['weighted_f1']:.2f}") in out.getvalue()
    printed = io.StringIO()
    Console(file=printed, width=200).print(results_table(result.summary))
    assert "teacher dev" in printed.getvalue() and "teacher test" in printed.getvalue()

    class Recording(Tracker):
        def __init__(self):
            self.metrics = {}

        def log_metrics(self, metrics, step=None):
            self.metrics.update(metrics)

    tracker = Recording()
    TrackingSubscriber(tracker).seed_ended(SeedEnded(prepared.config, result.seeds[0], reused=False))
    assert tracker.metrics["teacher_dev_weighted_f1"] == seed["dev"]["weighted_f1"]
    assert tracker.metrics["teacher_test_accuracy"] == seed["test"]["accuracy"]
    assert tracker.metrics["teacher_selected_epoch"] == seed["selected_epoch"]
