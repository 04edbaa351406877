"""DialogueGCN and MMGCN: the graphs they build (checked against edge lists written by hand), their
fusers on every modality subset, the focal loss, and both recipes training end to end."""

import dataclasses
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from merc_bench.model import ModelOutput
from merc_bench.plugins import get_registry
from merc_bench.pipeline import prepare
from merc_bench.testing import make_batch
from merc_bench.trainer import Trainer
from merc_bench_dialoguegcn.fuser import DialogueGCNConfig, DialogueGCNFuser, RelationalGraphConv
from merc_bench_dialoguegcn.graph import first_appearance_order, relation_adjacency, window_mask
from merc_bench_mmgcn.focal_loss import FocalLoss, FocalLossConfig
from merc_bench_mmgcn.fuser import MMGCNConfig, MMGCNFuser
from merc_bench_mmgcn.graph import COSINE_SHRINK, angular_similarity, edge_mask, multimodal_adjacency

# One dialogue of 5 utterances, speakers [0, 1, 0, 2, 1], padded to 7, and a second of 2 utterances.
SPEAKERS = torch.tensor([[0, 1, 0, 2, 1, 3, 3], [1, 0, 3, 3, 3, 3, 3]])  # 3 = the collate padding value
MASK = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)
PAST, FUTURE = 2, 1

# Edges j → i of the first dialogue with p = 2, f = 1, as (target i, source j, past or future), by hand.
EXPECTED_EDGES = {
    (0, 1, "future"),
    (1, 0, "past"), (1, 2, "future"),
    (2, 0, "past"), (2, 1, "past"), (2, 3, "future"),
    (3, 1, "past"), (3, 2, "past"), (3, 4, "future"),
    (4, 2, "past"), (4, 3, "past"),
}


def edges_of(adjacency: torch.Tensor, dialogue: int) -> dict[tuple[int, int], int]:
    """{(target, source): relation} of one dialogue of a (B, R, L, L) adjacency."""
    found = {}
    for relation, target, source in adjacency[dialogue].nonzero().tolist():
        assert (target, source) not in found, "an edge has two relations"
        found[(target, source)] = relation
    return found


def test_dialoguegcn_edges_and_speaker_pair_relations():
    adjacency = relation_adjacency(SPEAKERS, MASK, past=PAST, future=FUTURE, scheme="speaker_pairs", max_speakers=3)
    assert adjacency.shape == (2, 2 * 3**2, 7, 7)
    edges = edges_of(adjacency, 0)
    assert set(edges) == {(i, j) for i, j, _ in EXPECTED_EDGES}
    speaker = [0, 1, 0, 2, 1]
    for target, source, direction in EXPECTED_EDGES:
        # relation = direction · M² + speaker(source) · M + speaker(target), past = 0, future = 1
        expected = (direction == "future") * 9 + speaker[source] * 3 + speaker[target]
        assert edges[(target, source)] == expected
    # Spelled out for two of them: 1 → 0 is (future, speaker 1, speaker 0), 0 → 2 is (past, 0, 0).
    assert edges[(0, 1)] == 12 and edges[(2, 0)] == 0
    assert edges_of(adjacency, 1) == {(0, 1): 9 + 0 * 3 + 1, (1, 0): 0 + 1 * 3 + 0}


def test_dialoguegcn_same_or_different_relations():
    adjacency = relation_adjacency(SPEAKERS, MASK, past=PAST, future=FUTURE, scheme="same_or_different",
                                   max_speakers=3)
    assert adjacency.shape[1] == 4
    speaker = [0, 1, 0, 2, 1]
    edges = edges_of(adjacency, 0)
    for target, source, direction in EXPECTED_EDGES:
        assert edges[(target, source)] == (direction == "future") * 2 + (speaker[source] != speaker[target])
    assert edges[(2, 0)] == 0  # past, same speaker
    assert edges[(0, 1)] == 3  # future, different speakers


def test_dialoguegcn_padding_and_windows():
    adjacency = relation_adjacency(SPEAKERS, MASK, past=PAST, future=FUTURE, max_speakers=3)
    any_edge = adjacency.any(dim=1)  # (B, L, L)
    padded = ~MASK
    assert not any_edge[padded].any() and not any_edge.transpose(1, 2)[padded].any()
    assert not any_edge.diagonal(dim1=1, dim2=2).any()  # the self-connection is not an edge
    target, source = torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij")
    assert not any_edge[:, (source < target - PAST) | (source > target + FUTURE)].any()
    assert not relation_adjacency(SPEAKERS, MASK, past=0, future=0, max_speakers=3).any()
    full = relation_adjacency(SPEAKERS, MASK, past=10, future=10, max_speakers=3).any(dim=1)
    assert int(full[0].sum()) == 5 * 4 and int(full[1].sum()) == 2
    window = window_mask(MASK, PAST, FUTURE)
    assert window[0, 3, 3] and not window[0, 5, 5]  # the attention window includes i itself, padding never


def test_dialoguegcn_speaker_slots():
    speakers = torch.tensor([[2, 0, 2, 1, 0, 7]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    assert first_appearance_order(speakers, mask).tolist() == [[0, 1, 0, 2, 1, 0]]
    # With first-appearance order and M = 2, the third speaker shares the second's slot.
    adjacency = relation_adjacency(speakers, mask, past=1, future=0, max_speakers=2, order="first_appearance")
    edges = edges_of(adjacency, 0)  # slots [0, 1, 0, 1, 1]
    assert edges == {(1, 0): 0 * 2 + 1, (2, 1): 1 * 2 + 0, (3, 2): 0 * 2 + 1, (4, 3): 1 * 2 + 1}


MODALITIES = ("text", "audio", "visual")


@pytest.mark.parametrize("bases", [None, 3])
def test_relational_conv_is_eq_2_written_out(bases):
    """h_i = ReLU(Σ_r Σ_j α_ij / |N_i^r| · W_r g_j + α_ii W_0 g_i), W_r = Σ_b a_rb V_b, by explicit loops."""
    torch.manual_seed(0)
    batch, relations, length, hidden = 2, 5, 4, 3
    layer = RelationalGraphConv(hidden, relations, bases)
    g = torch.randn(batch, length, hidden)
    kind = torch.randint(0, relations, (batch, length, length))  # one relation per edge
    present = torch.rand(batch, length, length) < 0.7
    edges = (F.one_hot(kind, relations).permute(0, 3, 1, 2) * present[:, None]).float()  # (B, R, L, L)
    alpha = torch.softmax(torch.randn(batch, length, length), dim=-1)
    if bases is None:
        kernels = layer.kernels
    else:
        kernels = torch.einsum("rc,chk->rhk", layer.coefficients, layer.kernels)  # W_r = Σ_b a_rb V_b
    expected = torch.zeros(batch, length, hidden)
    for b, i in itertools.product(range(batch), range(length)):
        total = alpha[b, i, i] * layer.root(g[b, i])
        for r in range(relations):
            count = max(float(edges[b, r, i].sum()), 1.0)
            for j in range(length):
                total = total + edges[b, r, i, j] * alpha[b, i, j] / count * (g[b, j] @ kernels[r])
        expected[b, i] = torch.relu(total)
    assert torch.allclose(layer(g, edges, alpha), expected, atol=1e-5)


def test_mmgcn_edge_structure():
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)  # L = 3, second dialogue padded
    edges = edge_mask(mask, 2)  # nodes: text u0 u1 u2, audio u0 u1 u2
    assert edges.shape == (2, 6, 6)
    assert torch.equal(edges, edges.transpose(1, 2))
    expected_first = {(a, b) for a in range(3) for b in range(3)}  # intra text, self included
    expected_first |= {(3 + a, 3 + b) for a in range(3) for b in range(3)}  # intra audio
    expected_first |= {(i, 3 + i) for i in range(3)} | {(3 + i, i) for i in range(3)}  # inter, same utterance
    assert {tuple(e) for e in edges[0].nonzero().tolist()} == expected_first
    expected_second = {(a, b) for a in (0, 1) for b in (0, 1)} | {(3 + a, 3 + b) for a in (0, 1) for b in (0, 1)}
    expected_second |= {(0, 3), (3, 0), (1, 4), (4, 1)}
    assert {tuple(e) for e in edges[1].nonzero().tolist()} == expected_second  # nothing touches u2 (padding)


def test_mmgcn_angular_similarity_values():
    vectors = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]])
    similarity = angular_similarity(vectors)[0]
    assert similarity[0, 1].item() == pytest.approx(1 - math.acos(COSINE_SHRINK) / math.pi, abs=1e-6)  # parallel
    assert similarity[0, 2].item() == pytest.approx(0.5, abs=1e-6)  # orthogonal
    assert similarity[0, 3].item() == pytest.approx(math.acos(COSINE_SHRINK) / math.pi, abs=1e-5)  # opposite
    assert torch.equal(similarity, similarity.T)


def test_mmgcn_normalised_adjacency():
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    # Identical node vectors: every edge has the same weight w, so D^-1/2 A D^-1/2 has 1 / degree on
    # every edge of a node whose neighbours have its degree: n utterances + (M − 1) modalities.
    same = torch.ones(2, 3, 4, 5)
    normalised = multimodal_adjacency(same, mask)  # (B, 12, 12)
    for dialogue, n in ((0, 4), (1, 2)):
        structure = edge_mask(mask, 3)[dialogue]
        values = normalised[dialogue][structure]
        assert torch.allclose(values, torch.full_like(values, 1 / (n + 3 - 1)), atol=1e-6)
        assert (normalised[dialogue][~structure] == 0).all()
    # Random nodes: the hand-computed normalisation, symmetry, and no weight on padded nodes.
    nodes = torch.randn(2, 3, 4, 5)
    normalised = multimodal_adjacency(nodes, mask)
    flat = nodes.reshape(2, 12, 5)
    raw = torch.where(edge_mask(mask, 3), angular_similarity(flat), torch.zeros(()))
    degree = raw.sum(-1).clamp_min(1e-12)
    assert torch.allclose(normalised, raw / degree.sqrt()[:, :, None] / degree.sqrt()[:, None, :], atol=1e-6)
    assert torch.allclose(normalised, normalised.transpose(1, 2), atol=1e-6)
    padded_nodes = (~mask).repeat(1, 3)  # (B, 12)
    assert (normalised[padded_nodes] == 0).all() and (normalised.transpose(1, 2)[padded_nodes] == 0).all()


def fuser_outputs(fuser, modalities, batch):
    torch.manual_seed(1)
    hidden = {m: torch.randn(*batch.mask.shape, 16) for m in modalities}
    return fuser(mixed=hidden, encoded=hidden, mask=batch.mask, speakers=batch.speakers)


@pytest.mark.parametrize("subset", [s for k in (1, 2, 3) for s in itertools.combinations(MODALITIES, k)])
def test_both_fusers_work_on_every_modality_subset(subset):
    batch = make_batch()
    for fuser in (
        DialogueGCNFuser(DialogueGCNConfig(), modalities=subset, hidden_size=16, num_speakers=3).eval(),
        DialogueGCNFuser(DialogueGCNConfig(context="mixed", bases=2, relations="same_or_different",
                                           dialogue_attention=False),
                         modalities=subset, hidden_size=16, num_speakers=3).eval(),
        MMGCNFuser(MMGCNConfig(), modalities=subset, hidden_size=16, num_speakers=3).eval(),
        MMGCNFuser(MMGCNConfig(speaker_embedding="text", layer_weight="concatenated", input_residual=False),
                   modalities=subset, hidden_size=16, num_speakers=3).eval(),
    ):
        out = fuser_outputs(fuser, subset, batch)
        assert out.fused.shape == (*batch.mask.shape, 16)
        assert set(out.per_modality) == set(subset)
        assert torch.isfinite(out.fused[batch.mask]).all()


def test_mmgcn_speaker_embedding_reaches_only_the_chosen_modalities():
    batch = make_batch()
    other = batch.speakers.clone()
    other[batch.mask] = (other[batch.mask] + 1) % 3
    changed = dataclasses.replace(batch, speakers=other)
    for choice, sees_speakers in (("text", True), ("none", False)):
        torch.manual_seed(0)
        fuser = MMGCNFuser(MMGCNConfig(speaker_embedding=choice), modalities=MODALITIES, hidden_size=16,
                           num_speakers=3).eval()
        first, second = fuser_outputs(fuser, MODALITIES, batch), fuser_outputs(fuser, MODALITIES, changed)
        same = torch.allclose(first.fused[batch.mask], second.fused[batch.mask])
        assert same != sees_speakers
    text_only = MMGCNFuser(MMGCNConfig(speaker_embedding="text"), modalities=MODALITIES, hidden_size=16, num_speakers=3)
    assert text_only.speaker_modalities == ("text",)
    no_text = MMGCNFuser(MMGCNConfig(speaker_embedding="text"), modalities=("audio",), hidden_size=16, num_speakers=3)
    assert no_text.speakers is None


def test_gcnii_identity_mapping_strength():
    fuser = MMGCNFuser(MMGCNConfig(layers=4, lamda=0.5), modalities=MODALITIES, hidden_size=16, num_speakers=3)
    assert fuser.betas == pytest.approx([math.log(0.5 / layer + 1) for layer in (1, 2, 3, 4)])


def test_focal_loss_values():
    batch = make_batch(lengths=(3, 2))
    torch.manual_seed(0)
    logits = torch.randn(*batch.mask.shape, 4, requires_grad=True)
    output = ModelOutput(logits=logits, modality_logits={}, hidden=torch.zeros(0), modality_hidden={})
    labels = batch.labels[batch.mask]
    log_p = F.log_softmax(logits[batch.mask], -1)
    true = log_p[torch.arange(len(labels)), labels]
    # γ = 0 is cross-entropy, with and without class weights.
    plain = FocalLoss(FocalLossConfig(gamma=0.0))(output=output, batch=batch, class_weights=None)["focal"]
    assert plain.item() == pytest.approx(F.cross_entropy(logits[batch.mask], labels).item(), rel=1e-6)
    weights = torch.tensor([1.0, 2.0, 0.5, 3.0])
    weighted = FocalLoss(FocalLossConfig(gamma=0.0))(output=output, batch=batch, class_weights=weights)["focal"]
    expected = F.cross_entropy(logits[batch.mask], labels, weight=weights)
    assert weighted.item() == pytest.approx(expected.item(), rel=1e-6)
    # Lin et al. with γ = 2, α = 0.5.
    focal = FocalLoss(FocalLossConfig(gamma=2.0, alpha=0.5))(output=output, batch=batch, class_weights=None)["focal"]
    assert focal.item() == pytest.approx((-0.5 * (1 - true.exp()) ** 2 * true).mean().item(), rel=1e-6)
    # The MMGCN code's form: true class −(1 − log p_y)^γ log p_y, others −log p_c, mean over N·C.
    code = FocalLoss(FocalLossConfig(gamma=2.5, form="mmgcn_code"))(output=output, batch=batch,
                                                                     class_weights=None)["focal"]
    others = log_p.sum(-1) - true
    by_hand = (-((1 - true) ** 2.5) * true - others).sum() / log_p.numel()
    assert code.item() == pytest.approx(by_hand.item(), rel=1e-6)
    code.backward()
    assert (logits.grad[~batch.mask] == 0).all() and logits.grad[batch.mask].abs().sum() > 0
    assert FocalLoss.replaces_task_loss


TINY = ["dataset.train_dialogues=6", "dataset.dev_dialogues=3", "dataset.test_dialogues=3",
        "model.hidden_size=16", "training.epochs=1", "training.save_checkpoint=false"]


@pytest.mark.parametrize(
    ("name", "shape", "terms"),
    [("dialoguegcn", "meld", {"task"}), ("dialoguegcn", "iemocap", {"task"}),
     ("mmgcn", "meld", {"focal"}), ("mmgcn", "iemocap", {"task"})],
)
def test_recipe_trains_one_epoch_end_to_end(name, shape, terms):
    registry = get_registry()
    overrides = [f"dataset.shape={shape}", *TINY]
    prepared = prepare(registry, recipe=name, dataset="synthetic", overrides=overrides, flags={"device": "cpu"})
    trainer = Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry)
    model, distiller = trainer.build()
    _, found, _ = trainer.loss(model, distiller, trainer._batches(prepared.corpus.train, None)[0])
    assert set(found) == terms
    result = trainer.fit(0)
    assert len(result.history) == 1
    assert 0.0 <= result.test["weighted_f1"] <= 1.0


def test_recipe_settings():
    registry = get_registry()
    gcn = registry.get("recipe", "dialoguegcn").obj
    training = gcn.resolve("iemocap")["training"]
    assert {k: training[k] for k in ("lr", "weight_decay", "batch_size", "epochs")} == {
        "lr": 1e-4, "weight_decay": 1e-5, "batch_size": 32, "epochs": 60}
    assert gcn.resolve("meld")["fuser"]["config"]["bases"] == 30
    mmgcn = registry.get("recipe", "mmgcn").obj
    iemocap, meld = mmgcn.resolve("iemocap"), mmgcn.resolve("meld")
    assert (iemocap["training"]["lr"], iemocap["training"]["weight_decay"], iemocap["training"]["batch_size"]) == (
        3e-4, 3e-5, 16)
    assert iemocap["distiller"]["name"] == "none" and meld["distiller"]["name"] == "focal-loss"
    assert meld["training"]["lr"] == 1e-3


def test_fusers_give_finite_gradients_under_bf16_autocast():
    # bf16 rounds MMGCN's shrunk cosine (1 − 1e-5) to 1, where arccos has an infinite slope: the
    # similarity must stay in float32.
    batch = make_batch()
    for fuser in (MMGCNFuser(MMGCNConfig(), modalities=MODALITIES, hidden_size=16, num_speakers=3),
                  DialogueGCNFuser(DialogueGCNConfig(), modalities=MODALITIES, hidden_size=16, num_speakers=3)):
        hidden = {m: torch.randn(*batch.mask.shape, 16) for m in MODALITIES}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fuser(mixed=hidden, encoded=hidden, mask=batch.mask, speakers=batch.speakers)
            loss = out.fused[batch.mask].float().pow(2).mean()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in fuser.parameters() if p.grad is not None)
